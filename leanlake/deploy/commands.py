"""The ``package``, ``deploy`` and ``destroy`` steps as both front ends run them.

``python -m leanlake.deploy`` (argparse, what ``make`` and CI call) and the ``leanlake`` CLI (typer)
spell the same flags; the work is done once, here. Each step logs progress through ``log``, returns
what it made, and raises ``PackageError`` (``DeployError`` is one) with a one-line reason that the
front end prints its own way.

Example:
    >>> package(project=".", stage="dev", log=print)        # doctest: +SKIP
    PosixPath('dist/package-report.json')
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

Log = Callable[[str], None]


def package(*, project: str | Path = ".", out: str | Path = "dist", stage: str = "dev", formats: Sequence[str] = (),
            python: str | None = None, pyarrow_version: str | None = None, cache_dir: str | None = None,
            keep_build: bool = False, log: Log) -> Path:
    """Build ``out/<format>/`` for each format (default: all) and check it; return the report's path."""
    from leanlake.deploy.package import FORMATS, build

    build(project, out, stage=stage, formats=tuple(formats) or FORMATS, python=python, pyarrow_version=pyarrow_version,
          cache_dir=cache_dir, keep_build=keep_build, log=log)
    return Path(out) / "package-report.json"


def deploy_stage(*, project: str | Path = ".", stage: str = "dev", dry_run: bool = False, python: str | None = None,
                 pyarrow_version: str | None = None, cache_dir: str | None = None, log: Log) -> list[str]:
    """Deploy the stage (queues first, then ``chalice deploy``); with ``dry_run``, return the plan's lines instead."""
    from leanlake.deploy.deploy import deploy

    plan = deploy(project, stage, dry_run=dry_run, python=python, pyarrow_version=pyarrow_version, cache_dir=cache_dir,
                  log=log)
    return plan.lines() if dry_run else []


def destroy_stage(*, project: str | Path = ".", stage: str = "dev", yes: bool = False, python: str | None = None,
                  cache_dir: str | None = None, log: Log, ask: Callable[[str], str] = input) -> None:
    """Say what goes, ask for the stage name unless ``yes`` (refusing when stdin is no terminal), then destroy it."""
    from leanlake.deploy.dashboard import dashboard_name
    from leanlake.deploy.deploy import DeployError, destroy, stage_queues
    from leanlake.deploy.project import ChaliceConfig

    state = Path(project) / ".chalice" / "deployed" / f"{stage}.json"
    try:
        config = ChaliceConfig.load(Path(project) / ".chalice")
        queues = [q.name for q in stage_queues(config, stage)]
        dashboard = dashboard_name(stage, config.app_name)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise DeployError(str(exc).strip("'\"")) from None
    what = f"the Chalice resources recorded in {state}" if state.is_file() else f"no Chalice resources (no {state})"
    if not yes:
        log(f"destroy stage {stage}: {what}, the SQS queues {', '.join(queues) or '(none)'} with their messages, "
            f"and the CloudWatch dashboard {dashboard}")
        if not sys.stdin.isatty():
            raise DeployError("refusing without --yes (not asked: stdin is not a terminal)")
        typed = ask(f"type the stage name ({stage}) to go on: ").strip()
        if typed != stage:
            raise DeployError(f"not destroyed: {typed!r} is not the stage name {stage!r}")
    destroy(project, stage, python=python, cache_dir=cache_dir, log=log)
