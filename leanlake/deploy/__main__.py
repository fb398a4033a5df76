"""``python -m leanlake.deploy package|deploy|destroy|iam|eventbridge|find-python``: the deployment steps without the ``leanlake`` CLI.

Example:
    $ python -m leanlake.deploy iam --check     # exit 1 when .chalice/policy-*.json are stale
    $ python -m leanlake.deploy deploy --stage prod --dry-run   # the plan and package sizes, no AWS calls
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leanlake.deploy", description=__doc__.splitlines()[0])
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
        from leanlake.deploy.python import PythonNotFound, find_python

        try:
            print(find_python())
        except PythonNotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command in ("package", "deploy", "destroy"):
        return _build_step(args)
    if args.command == "eventbridge":
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        from leanlake.deploy.notifications import set_eventbridge
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
        from leanlake.deploy.iam import write_policies
        from chalicelib.policy import PolicyError

        try:
            changed = write_policies(args.policies or ["policies"], args.chalice_dir, args.stages, check=args.check)
        except (PolicyError, ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for path in changed:
            print(f"{'stale' if args.check else 'wrote'} {path}")
        if args.check and changed:
            print("error: regenerate with `make iam` (python -m leanlake.deploy iam) and commit", file=sys.stderr)
            return 1
        if not changed:
            print("IAM policies up to date")
        return 0

    raise AssertionError(f"unhandled command {args.command}")  # argparse allows only the commands above


def _build_step(args: argparse.Namespace) -> int:
    """package, deploy or destroy (see ``commands``): progress on stderr, a one-line ``error: …`` on failure."""
    from leanlake.deploy import commands
    from leanlake.deploy.package import PackageError

    def log(line: str) -> None:
        print(line, file=sys.stderr)

    try:
        if args.command == "package":
            print(commands.package(project=args.project, out=args.out, stage=args.stage, formats=args.formats or (),
                                   python=args.python, pyarrow_version=args.pyarrow_version, cache_dir=args.cache_dir,
                                   keep_build=args.keep_build, log=log))
        elif args.command == "deploy":
            lines = commands.deploy_stage(project=args.project, stage=args.stage, dry_run=args.dry_run, python=args.python,
                                          pyarrow_version=args.pyarrow_version, cache_dir=args.cache_dir, log=log)
            if lines:
                print("\n".join(lines))
        else:
            commands.destroy_stage(project=args.project, stage=args.stage, yes=args.yes, python=args.python,
                                   cache_dir=args.cache_dir, log=log)
        return 0
    except PackageError as exc:  # DeployError is one
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
