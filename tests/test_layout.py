"""The layout keeps the Lambda package to what the functions run: ``chalicelib/`` (zipped by Chalice beside
``app.py``) never imports the tooling in ``leanlake/`` (CLI, build, deploy, demo, the local moto stack), nor
the libraries only the tooling has; the tooling depends on the runtime, never the reverse."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Top-level packages the Lambda functions must never import: the tooling, and what only it installs.
TOOLING_ONLY = {"leanlake", "typer", "rich", "plotly", "moto", "flask", "flask_cors", "pytest", "hypothesis"}


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports, anywhere in it (also inside functions), by absolute name.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = Path(d, "m.py").write_text("import os.path\\ndef f():\\n    from leanlake.cli import app\\nfrom . import x\\n")
    ...     sorted(imported_packages(Path(d, "m.py")))
    ['leanlake', 'os']
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value.split(".")[0])
    return found


def _runtime_sources() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]


def test_the_functions_code_never_imports_the_tooling():
    offenders = {f"{p.relative_to(ROOT)}: {', '.join(sorted(imported_packages(p) & TOOLING_ONLY))}"
                 for p in _runtime_sources() if imported_packages(p) & TOOLING_ONLY}
    assert not offenders, f"the Lambda package would import tooling: {sorted(offenders)}"


def test_the_scan_sees_the_tooling_import_the_runtime():
    """The scanner is not blind: the CLI imports chalicelib and typer, the demo moto (through leanlake.local)."""
    assert {"chalicelib", "typer"} <= imported_packages(ROOT / "leanlake" / "cli.py")
    assert "moto" in imported_packages(ROOT / "leanlake" / "local.py")
    assert "leanlake" in imported_packages(ROOT / "leanlake" / "demo" / "run.py")


def test_chalicelib_holds_only_what_the_functions_run():
    tooling = [ROOT / "chalicelib" / name for name in ("cli.py", "local.py", "deploy", "demo")]
    assert [p.name for p in tooling if p.exists()] == []
    assert (ROOT / "leanlake" / "cli.py").is_file() and (ROOT / "leanlake" / "deploy" / "package.py").is_file()


def test_the_runtime_imports_without_the_tooling_installed():
    """With leanlake, typer, rich and moto unimportable, app.py and every chalicelib module still import."""
    modules = sorted({".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                      for p in (ROOT / "chalicelib").rglob("*.py")})
    code = ("import sys\n"
            f"for name in {sorted(TOOLING_ONLY)!r}: sys.modules[name] = None  # an import of it raises ImportError\n"
            "import importlib, app\n"
            f"for module in {modules!r}: importlib.import_module(module)\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr.strip().splitlines()[-1:]
