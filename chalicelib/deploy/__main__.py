"""``python -m chalicelib.deploy package|deploy|destroy|iam|eventbridge|find-python``: the deployment steps without the ``leanlake`` CLI.

Example:
    $ python -m chalicelib.deploy iam --check     # exit 1 when .chalice/policy-*.json are stale
    $ python -m chalicelib.deploy deploy --stage prod --dry-run   # the plan and package sizes, no AWS calls
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.deploy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    package = commands.add_parser("package", help="build dist/<format>/ for Lambda (python3.12) and check the limits")
    package.add_argument("--stage", default="dev")
    package.add_argument("--format", dest="formats", action="append", choices=("terraform", "cloudformation"),
                         help="repeatable; default: both")
    package.add_argument("--out", default="dist", help="output directory (default: dist)")
    package.add_argument("--project", default=".", help="project root (default: .)")
    package.add_argument("--python", help="a Python 3.12 interpreter (default: found on PATH, pyenv or uv)")
    package.add_argument("--pyarrow-version", help="default: the version installed here")
    package.add_argument("--cache-dir", help="build venvs and wheels (default: $LEANLAKE_BUILD_CACHE or ~/.cache/leanlake)")
    package.add_argument("--keep-build", action="store_true", help="keep the temporary build copy and print where")

    iam = commands.add_parser("iam", help="write .chalice/policy-<stage>.json derived from the policies")
    iam.add_argument("--policies", action="append", help="policy files or directories (default: policies)")
    iam.add_argument("--chalice-dir", default=".chalice")
    iam.add_argument("--stage", dest="stages", action="append", help="repeatable; default: every stage in config.json")
    iam.add_argument("--check", action="store_true", help="write nothing; exit 1 when a committed file is stale")

    events = commands.add_parser("eventbridge", help="turn S3 → EventBridge on for buckets, keeping their other notifications")
    events.add_argument("buckets", nargs="*", help="default: every bucket the policies name")
    events.add_argument("--policies", action="append", help="policy files or directories (default: policies)")
    events.add_argument("--off", action="store_true", help="turn it off instead (tearing down)")
    events.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")

    deploy = commands.add_parser("deploy", help="chalice deploy from the build copy (python3.12, trimmed pyarrow, "
                                                "policies), after creating the stage's work queue and its -dlq")
    deploy.add_argument("--stage", default="dev")
    deploy.add_argument("--dry-run", action="store_true", help="build and check the package, print the plan; no AWS calls")
    destroy = commands.add_parser("destroy", help="chalice delete the stage (its .chalice/deployed state), then delete its queues")
    destroy.add_argument("--stage", default="dev")
    destroy.add_argument("--yes", action="store_true", help="do it without asking")
    for sub in (deploy, destroy):
        sub.add_argument("--project", default=".", help="project root (default: .)")
        sub.add_argument("--python", help="a Python 3.12 interpreter (default: found on PATH, pyenv or uv)")
        sub.add_argument("--cache-dir", help="build venvs and wheels (default: $LEANLAKE_BUILD_CACHE or ~/.cache/leanlake)")
    deploy.add_argument("--pyarrow-version", help="default: the version installed here")

    commands.add_parser("find-python", help="print the Python 3.12 the build would use")

    args = parser.parse_args(argv)
    if args.command == "find-python":
        from chalicelib.deploy.python import PythonNotFound, find_python

        try:
            print(find_python())
        except PythonNotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command in ("deploy", "destroy"):
        return _deploy_or_destroy(args)
    if args.command == "eventbridge":
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        from chalicelib.deploy.notifications import set_eventbridge
        from chalicelib.policy import PolicyError, load_policies

        try:
            buckets = args.buckets or list(load_policies(args.policies or ["policies"]).buckets)
            s3 = boto3.client("s3")
            for bucket in buckets:
                changed = set_eventbridge(s3, bucket, enabled=not args.off, dry_run=args.dry_run)
                verb = ("would turn" if args.dry_run else "turned") if changed else "already"
                print(f"s3://{bucket}: EventBridge delivery {verb} {'off' if args.off else 'on'}")
        except (PolicyError, BotoCoreError, ClientError) as exc:
            print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 1
        return 0
    if args.command == "iam":
        from chalicelib.deploy.iam import write_policies
        from chalicelib.policy import PolicyError

        try:
            changed = write_policies(args.policies or ["policies"], args.chalice_dir, args.stages, check=args.check)
        except (PolicyError, ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for path in changed:
            print(f"{'stale' if args.check else 'wrote'} {path}")
        if args.check and changed:
            print("error: regenerate with `make iam` (python -m chalicelib.deploy iam) and commit", file=sys.stderr)
            return 1
        if not changed:
            print("IAM policies up to date")
        return 0

    from chalicelib.deploy.package import PackageError, build

    try:
        build(args.project, args.out, stage=args.stage, formats=args.formats or ("terraform", "cloudformation"),
              python=args.python, pyarrow_version=args.pyarrow_version, cache_dir=args.cache_dir,
              keep_build=args.keep_build, log=lambda line: print(line, file=sys.stderr))
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(Path(args.out) / "package-report.json")
    return 0


def _deploy_or_destroy(args: argparse.Namespace) -> int:
    from chalicelib.deploy.deploy import DeployError, deploy, destroy, stage_queues
    from chalicelib.deploy.package import PackageError
    from chalicelib.deploy.project import ChaliceConfig

    def log(line: str) -> None:
        print(line, file=sys.stderr)

    try:
        if args.command == "deploy":
            plan = deploy(args.project, args.stage, dry_run=args.dry_run, python=args.python,
                          pyarrow_version=args.pyarrow_version, cache_dir=args.cache_dir, log=log)
            if args.dry_run:
                print("\n".join(plan.lines()))
            return 0
        state = Path(args.project) / ".chalice" / "deployed" / f"{args.stage}.json"
        try:
            queues = [q.name for q in stage_queues(ChaliceConfig.load(Path(args.project) / ".chalice"), args.stage)]
        except (FileNotFoundError, KeyError) as exc:
            raise DeployError(str(exc).strip("'\"")) from None
        what = (f"the Chalice resources recorded in {state}" if state.is_file() else "no Chalice resources (no " + str(state) + ")")
        if not args.yes:
            log(f"destroy stage {args.stage}: {what}, and the SQS queues {', '.join(queues) or '(none)'} with their messages")
            if not sys.stdin.isatty():
                log("error: refusing without --yes (not asked: stdin is not a terminal)")
                return 1
            if input(f"type the stage name ({args.stage}) to go on: ").strip() != args.stage:
                log("not destroyed")
                return 1
        destroy(args.project, args.stage, python=args.python, cache_dir=args.cache_dir, log=log)
        return 0
    except (DeployError, PackageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
