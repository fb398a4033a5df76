"""``leanlake package``: the Chalice deployment packages, built under Python 3.12 and checked against Lambda's limits.

What it does, in a temporary copy of the project so the repository is never dirtied:

1. copies ``app.py``, ``chalicelib/`` (what the functions run, and only that: the tooling, this package
   included, lives in ``leanlake/``), ``.chalice/`` and ``policies/``
   — the last into ``vendor/policies/``, because Chalice ships only app.py, chalicelib/ and vendor/
   and puts vendor's contents at the zip root, so ``policies/`` lands beside ``app.py``;
2. regenerates ``.chalice/policy-<stage>.json`` from the policies (least privilege, see ``iam``);
3. vendors a trimmed, stripped pyarrow for cp312 manylinux_2_28 (see ``vendor``) and drops pyarrow
   from the requirements Chalice installs;
4. runs ``chalice package`` under a Python 3.12 venv for each format into ``dist/<format>/``,
   with dummy credentials (packaging never calls AWS) and ``LEANLAKE_PACKAGE_FORMAT`` set so
   ``app.py`` can leave out what a format cannot express;
5. checks each output: pyarrow, the requirements and the policies inside, runtime python3.12,
   each zip ≤ 50 MiB, each format's zips ≤ 250 MB unzipped; fails with a one-line reason.

Example:
    >>> result = build(".", "dist", stage="dev")                     # doctest: +SKIP
    >>> [(f.format, f.zip_bytes) for f in result.formats]            # doctest: +SKIP
    [('terraform', 34385071), ('cloudformation', 34385071)]
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from leanlake.deploy.project import ChaliceConfig
from leanlake.deploy.python import RUNTIME_VERSION, find_python, version_of
from leanlake.deploy.vendor import download_wheel, vendor_pyarrow

#: Chalice refuses to upload a deployment package larger than this (its direct-upload limit).
MAX_ZIP_BYTES = 50 * 1024 * 1024
#: Lambda's "250 MB" for the function and all its layers unzipped, as Lambda counts it.
MAX_UNZIPPED_BYTES = 262_144_000
FORMATS = ("terraform", "cloudformation")
#: The template each format writes, and what a function is called in it.
TEMPLATES = {"terraform": ("chalice.tf.json", "aws_lambda_function"), "cloudformation": ("sam.json", "AWS::Serverless::Function")}
#: The environment variable app.py reads to learn which format is being packaged (unset for ``chalice deploy``).
FORMAT_ENV = "LEANLAKE_PACKAGE_FORMAT"
#: app.py's single-bucket on_s3_event bucket ($LEANLAKE_UPLOAD_BUCKET, "" disables it).
UPLOAD_BUCKET_ENV = "LEANLAKE_UPLOAD_BUCKET"
#: Packaging is offline: these keep botocore from looking for credentials or probing instance metadata.
OFFLINE_ENV = {"AWS_ACCESS_KEY_ID": "packaging-is-offline", "AWS_SECRET_ACCESS_KEY": "packaging-is-offline",
               "AWS_SESSION_TOKEN": "", "AWS_EC2_METADATA_DISABLED": "true"}
_RUNTIME = "python{}.{}".format(*RUNTIME_VERSION)
_ABI = "cpython-{}{}-x86_64-linux-gnu".format(*RUNTIME_VERSION)


class PackageError(RuntimeError):
    """Packaging failed or its output breaks a limit; the message is one line saying why."""


@dataclass(frozen=True)
class Artifact:
    """One zip Chalice wrote: its size and the size of what it holds."""

    path: Path
    zip_bytes: int
    unzipped_bytes: int
    names: frozenset[str] = field(repr=False, compare=False)


@dataclass(frozen=True)
class FormatResult:
    """The output of one packaging format under ``dist/<format>/``."""

    format: str
    directory: Path
    template: Path
    artifacts: tuple[Artifact, ...]

    @property
    def zip_bytes(self) -> int:
        return sum(a.zip_bytes for a in self.artifacts)

    @property
    def unzipped_bytes(self) -> int:
        return sum(a.unzipped_bytes for a in self.artifacts)


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` made: one result per format, and what it was built with."""

    stage: str
    python: Path
    pyarrow_version: str
    formats: tuple[FormatResult, ...]
    seconds: float

    def as_json(self) -> dict:
        return {
            "stage": self.stage, "runtime": _RUNTIME, "pyarrow": self.pyarrow_version, "seconds": round(self.seconds, 1),
            "limits": {"zip_bytes": MAX_ZIP_BYTES, "unzipped_bytes": MAX_UNZIPPED_BYTES},
            "formats": {f.format: {"template": f.template.name, "zip_bytes": f.zip_bytes, "unzipped_bytes": f.unzipped_bytes,
                                   "zips": {a.path.name: {"zip_bytes": a.zip_bytes, "unzipped_bytes": a.unzipped_bytes}
                                            for a in f.artifacts}}
                        for f in self.formats},
        }


def default_cache_dir() -> Path:
    """Where build venvs and wheels are kept between builds: $LEANLAKE_BUILD_CACHE or ~/.cache/leanlake."""
    base = os.environ.get("LEANLAKE_BUILD_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "leanlake")
    return Path(base)


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run(cmd: Sequence[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
        raise PackageError(f"{what} failed: {lines[-1] if lines else f'exit {done.returncode}'}")
    return done


def build_venv(python: Path, requirements: str, cache_dir: Path, log: Callable[[str], None] = print) -> Path:
    """A cached Python 3.12 venv with Chalice and the app's requirements (Chalice imports app.py); returns its ``chalice``.

    Chalice is the dev environment's version when it has one; boto3 comes too, as the Lambda runtime provides it.
    An interpreter given with Chalice beside it (a venv prepared like that, e.g. CI's gate venv) is used as it is.
    """
    beside = python.parent / "chalice"
    if beside.exists() and subprocess.run([str(python), "-c", "import chalice"], capture_output=True).returncode == 0:
        return beside
    chalice_version = _installed("chalice")
    spec = f"chalice=={chalice_version}" if chalice_version else "chalice>=1.31"
    key = hashlib.sha256(f"{spec}\n{requirements}".encode()).hexdigest()[:10]
    venv = cache_dir / f"build-{_RUNTIME}-{key}"
    chalice = venv / "bin" / "chalice"
    if not chalice.exists():
        log(f"creating build venv {venv} ({spec} and requirements.txt without pyarrow)")
        shutil.rmtree(venv, ignore_errors=True)
        _run([python, "-m", "venv", venv], "creating the build venv")
        reqs = venv / "requirements.txt"
        reqs.write_text(requirements, encoding="utf-8")
        _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", spec, "boto3", "-r", reqs],
             f"pip install {spec} and the requirements into the build venv")
    return chalice


def _build_requirements(text: str) -> str:
    """requirements.txt without pyarrow (it is vendored, trimmed)."""
    keep = [line for line in text.splitlines() if not re.match(r"^\s*pyarrow\b", line, re.IGNORECASE)]
    return "\n".join(keep) + "\n"


def _requirement_names(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match and not line.lstrip().startswith(("#", "-")):
            names.append(match.group(1))
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def make_build_copy(project: Path, build_dir: Path) -> None:
    """Copy what Chalice packages (plus config and policies) into ``build_dir``; policies go to vendor/policies/."""
    if not (project / "app.py").is_file():
        raise PackageError(f"{project / 'app.py'} not found: run from the project root (or pass --project)")
    noise = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    shutil.copy2(project / "app.py", build_dir / "app.py")
    shutil.copytree(project / "chalicelib", build_dir / "chalicelib", ignore=noise)
    shutil.copytree(project / ".chalice", build_dir / ".chalice",
                    ignore=shutil.ignore_patterns("deployments", "deployed", "__pycache__"))
    if not any((project / "policies").glob("*.y*ml")):
        raise PackageError(f"no policies in {project / 'policies'}: a deployment without policies would do nothing")
    # vendor/policies/ lands at the zip root beside app.py; policies/ is what app.py reads while Chalice imports it.
    shutil.copytree(project / "policies", build_dir / "vendor" / "policies", ignore=noise)
    shutil.copytree(project / "policies", build_dir / "policies", ignore=noise)
    text = (project / "requirements.txt").read_text(encoding="utf-8")
    (build_dir / "requirements.txt").write_text(_build_requirements(text), encoding="utf-8")


#: What a build writes into ``dist/<format>/``; anything else there (terraform state, .terraform/) is left alone.
OUTPUT_PATTERNS = ("*.zip", "*.tf.json", "sam.json", "sam.yaml")


def clear_output(directory: Path) -> None:
    """Remove the previous build's files from ``directory``, keeping e.g. ``terraform.tfstate`` beside them."""
    directory.mkdir(parents=True, exist_ok=True)
    for pattern in OUTPUT_PATTERNS:
        for path in directory.glob(pattern):
            path.unlink()


def inspect_zip(path: Path) -> Artifact:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    return Artifact(path, path.stat().st_size, sum(i.file_size for i in infos), frozenset(i.filename for i in infos))


def check_format(fmt: str, directory: Path, requirements: Sequence[str]) -> FormatResult:
    """Check one format's output; raise PackageError naming the first thing wrong."""
    template_name, function_type = TEMPLATES[fmt]
    template = directory / template_name
    try:
        doc = json.loads(template.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PackageError(f"{fmt}: {template} is not readable JSON: {exc}") from None
    if fmt == "terraform":
        functions = list(doc.get("resource", {}).get(function_type, {}).values())
    else:
        functions = [r["Properties"] for r in doc.get("Resources", {}).values() if r.get("Type") == function_type]
    if not functions:
        raise PackageError(f"{fmt}: {template.name} defines no Lambda function")
    runtimes = {f.get("runtime") or f.get("Runtime") for f in functions}
    if runtimes != {_RUNTIME}:
        raise PackageError(f"{fmt}: functions use runtime {', '.join(sorted(map(str, runtimes)))}, not {_RUNTIME}")
    artifacts = tuple(inspect_zip(p) for p in sorted(directory.glob("*.zip")))
    if not artifacts:
        raise PackageError(f"{fmt}: no zip in {directory}")
    names = frozenset().union(*(a.names for a in artifacts))
    if not {"pyarrow/__init__.py", f"pyarrow/lib.{_ABI}.so"} <= names:
        raise PackageError(f"{fmt}: pyarrow for {_RUNTIME} is missing from the package")
    if "app.py" not in names or not any(re.fullmatch(r"policies/[^/]+\.ya?ml", n) for n in names):
        raise PackageError(f"{fmt}: app.py or policies/*.yaml is missing from the package")
    dists = {_normal(n.split("/", 1)[0].removesuffix(".dist-info").rsplit("-", 1)[0]) for n in names if ".dist-info/" in n}
    missing = [r for r in requirements if _normal(r) not in dists]
    if missing:
        raise PackageError(f"{fmt}: requirements missing from the package: {', '.join(missing)} (no {_RUNTIME} wheel?)")
    for artifact in artifacts:
        if artifact.zip_bytes > MAX_ZIP_BYTES:
            raise PackageError(f"{fmt}: {artifact.path.name} is {artifact.zip_bytes / 2**20:.1f} MiB, over the "
                               f"{MAX_ZIP_BYTES / 2**20:.0f} MiB Chalice uploads directly")
    result = FormatResult(fmt, directory, template, artifacts)
    if result.unzipped_bytes > MAX_UNZIPPED_BYTES:
        raise PackageError(f"{fmt}: {result.unzipped_bytes / 1e6:.1f} MB unzipped, over Lambda's "
                           f"{MAX_UNZIPPED_BYTES:,d} bytes for a function and its layers")
    return result


@dataclass(frozen=True)
class BuildCopy:
    """A prepared build directory: what Chalice packages or deploys, and the venv that runs it."""

    directory: Path
    chalice: Path
    python: Path
    config: ChaliceConfig
    buckets: tuple[str, ...]
    pyarrow_version: str | None


@contextmanager
def build_copy(project: Path, stage: str, *, python: str | Path | None = None, cache_dir: str | Path | None = None,
               pyarrow_version: str | None = None, vendor: bool = True,
               log: Callable[[str], None] = print) -> Iterator[BuildCopy]:
    """Validate the policies, find Python 3.12 and its build venv, and lay out the build copy in a temporary
    directory (app.py, chalicelib/, policies beside app.py, fresh ``policy-<stage>.json``, and with ``vendor``
    the trimmed pyarrow); removed on exit. Raises PackageError (one line)."""
    from leanlake.deploy import iam  # these need the policy models: pydantic and PyYAML
    from chalicelib.policy import PolicyError, load_policies

    try:  # first, as it is quick: a policy that does not validate fails here, before anything is built
        policy_set = load_policies([project / "policies"])
    except PolicyError as exc:
        raise PackageError(f"policies: {str(exc).splitlines()[0]}") from None
    try:
        config = ChaliceConfig.load(project / ".chalice")
        config.stage(stage)
    except (FileNotFoundError, KeyError) as exc:
        raise PackageError(str(exc).strip("'\"")) from None
    try:
        py = Path(python) if python else find_python()
    except RuntimeError as exc:
        raise PackageError(str(exc)) from None
    if version_of(py) != RUNTIME_VERSION:
        raise PackageError(f"{py} is not Python {'.'.join(map(str, RUNTIME_VERSION))}, the Lambda runtime leanlake targets")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    chalice = build_venv(py, _build_requirements((project / "requirements.txt").read_text(encoding="utf-8")), cache, log)
    root = Path(tempfile.mkdtemp(prefix="leanlake-build-"))
    directory = root / "app"
    directory.mkdir()
    try:
        make_build_copy(project, directory)
        try:
            iam.write_policies(chalice_dir=directory / ".chalice", stages=[stage], policy_set=policy_set)
            if iam.write_policies(chalice_dir=project / ".chalice", check=True, policy_set=policy_set):
                log("warning: the committed .chalice/policy-*.json are stale; the package uses fresh ones (run `make iam`)")
        except ValueError as exc:  # a least-privilege breach (e.g. over the inline policy size)
            raise PackageError(f"IAM: {exc}") from None
        if vendor:
            try:
                wheel = download_wheel(chalice.parent / "python", pyarrow_version or _installed("pyarrow"), cache / "wheels", log)
            except RuntimeError as exc:
                raise PackageError(str(exc)) from None
            pyarrow_version = wheel.name.split("-")[1]
            vendor_pyarrow(wheel, directory / "vendor", log=log)
        yield BuildCopy(directory, chalice, py, config, tuple(policy_set.buckets), pyarrow_version)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def build(project_dir: str | Path = ".", out_dir: str | Path = "dist", *, stage: str = "dev",
          formats: Sequence[str] = FORMATS, python: str | Path | None = None, pyarrow_version: str | None = None,
          cache_dir: str | Path | None = None, keep_build: bool = False,
          log: Callable[[str], None] = print) -> BuildResult:
    """Package the app for each of ``formats`` into ``out_dir/<format>/`` and check the output.

    ``python``: a Python 3.12 interpreter (default: found, see ``python.find_python``);
    ``pyarrow_version``: default the version installed here, else the newest.
    Raises PackageError (one line) when packaging fails or a limit is passed.
    """
    from leanlake.deploy import extras

    started = time.monotonic()
    project, out = Path(project_dir).resolve(), Path(out_dir).resolve()
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise PackageError(f"unknown format {', '.join(unknown)} (formats: {', '.join(FORMATS)})")
    with build_copy(project, stage, python=python, cache_dir=cache_dir, pyarrow_version=pyarrow_version, log=log) as copy:
        build_dir, py, pyarrow_version = copy.directory, copy.python, copy.pyarrow_version
        requirements = _requirement_names((build_dir / "requirements.txt").read_text(encoding="utf-8"))
        config_path = build_dir / ".chalice" / "config.json"
        config_json = json.loads(config_path.read_text(encoding="utf-8"))
        results = []
        for fmt in formats:
            target = out / fmt
            clear_output(target)
            env = {**os.environ, **OFFLINE_ENV, FORMAT_ENV: fmt}
            env.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
            if fmt == "cloudformation":
                env[UPLOAD_BUCKET_ENV] = ""  # CloudFormation cannot configure an existing bucket's notifications
            fmt_config = extras.terraform_config(config_json) if fmt == "terraform" else config_json
            config_path.write_text(json.dumps(fmt_config, indent=2), encoding="utf-8")
            cmd = [copy.chalice, "package", "--stage", stage, *(["--pkg-format", "terraform"] if fmt == "terraform" else []), target]
            log(f"chalice package ({fmt}, stage {stage}) → {target}")
            done = _run(cmd, f"chalice package ({fmt})", cwd=build_dir, env=env)
            if "Could not install" in done.stdout + done.stderr:  # Chalice warns, exits 0 and leaves them out
                line = next(text for text in (done.stdout + done.stderr).splitlines() if "Could not install" in text)
                raise PackageError(f"{fmt}: {line.strip()}")
            template_path = target / TEMPLATES[fmt][0]
            template = json.loads(template_path.read_text(encoding="utf-8"))
            if fmt == "terraform":
                for name, content in extras.terraform_files(template, copy.config, stage, copy.buckets).items():
                    (target / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
            else:
                completed = extras.complete_sam(template, copy.config, stage, copy.buckets)
                template_path.write_text(json.dumps(completed, indent=2) + "\n", encoding="utf-8")
            results.append(check_format(fmt, target, requirements))
        if keep_build:
            kept = Path(tempfile.mkdtemp(prefix="leanlake-build-kept-"))
            shutil.copytree(build_dir, kept, dirs_exist_ok=True)
            log(f"build copy kept in {kept}")

    result = BuildResult(stage, py, pyarrow_version, tuple(results), time.monotonic() - started)
    (out / "package-report.json").write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
    for fmt in result.formats:
        for artifact in fmt.artifacts:
            log(f"{fmt.format:>14}  {artifact.path.name:<24} {artifact.zip_bytes / 2**20:6.1f} MiB zip  "
                f"{artifact.unzipped_bytes / 1e6:6.1f} MB unzipped")
        log(f"{fmt.format:>14}  {'all zips':<24} {fmt.zip_bytes / 2**20:6.1f} MiB zip  {fmt.unzipped_bytes / 1e6:6.1f} MB unzipped"
            f"  (limits {MAX_ZIP_BYTES / 2**20:.0f} MiB per zip, {MAX_UNZIPPED_BYTES / 1e6:.1f} MB unzipped)")
    log(f"packaged stage {stage} for {_RUNTIME} with pyarrow {pyarrow_version} in {result.seconds:.0f} s")
    return result
