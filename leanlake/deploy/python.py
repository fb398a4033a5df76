"""Finding the Python that matches the Lambda runtime (standard library only: it runs before any venv exists).

Chalice picks the Lambda runtime from the Python that runs it, and pyarrow ≥ 21 ships only
manylinux_2_28 wheels, which Chalice accepts for python3.12 but not python3.11 (it then writes a
zip without pyarrow and exits 0). So packaging runs under Python 3.12, wherever it lives.

Example:
    >>> version_of(sys.executable) == sys.version_info[:2]
    True
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: The Lambda runtime leanlake is packaged for.
RUNTIME_VERSION = (3, 12)


class PythonNotFound(RuntimeError):
    """No interpreter of the wanted version could be found."""


def version_of(executable: str | os.PathLike) -> tuple[int, int] | None:
    """``(major, minor)`` of an interpreter, or None when it does not run (e.g. a pyenv shim of a missing version)."""
    try:
        out = subprocess.run([str(executable), "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _candidates(version: tuple[int, int]) -> list[tuple[str, str]]:
    """(where it was found, path), in the order tried."""
    name = "python{}.{}".format(*version)
    found: list[tuple[str, str]] = []
    if os.environ.get("LEANLAKE_BUILD_PYTHON"):
        found.append(("$LEANLAKE_BUILD_PYTHON", os.environ["LEANLAKE_BUILD_PYTHON"]))
    if sys.version_info[:2] == version:
        found.append(("this interpreter", sys.executable))
    on_path = shutil.which(name)
    if on_path:
        found.append((f"{name} on PATH", on_path))
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    if shutil.which("pyenv"):
        try:
            pyenv_root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30,
                                        check=True).stdout.strip() or pyenv_root
        except (OSError, subprocess.SubprocessError):
            pass
    pattern = os.path.join(pyenv_root, "versions", "{}.{}.*".format(*version), "bin", name)

    def patch_level(path: str) -> tuple[int, ...]:
        tail = Path(path).parents[1].name.removeprefix("{}.{}.".format(*version))
        return tuple(int(p) for p in tail.split(".") if p.isdigit()) or (-1,)

    for path in sorted(glob.glob(pattern), key=patch_level, reverse=True):
        found.append(("pyenv versions", path))
    if shutil.which("uv"):
        try:
            path = subprocess.run(["uv", "python", "find", "{}.{}".format(*version)], capture_output=True,
                                  text=True, timeout=60, check=True).stdout.strip()
            if path:
                found.append(("uv python find", path))
        except (OSError, subprocess.SubprocessError):
            pass
    return found


def find_python(version: tuple[int, int] = RUNTIME_VERSION) -> Path:
    """The first working interpreter of ``version``: $LEANLAKE_BUILD_PYTHON, this one, PATH, pyenv, uv.

    Raises PythonNotFound with what was tried and how to get one.
    """
    tried = []
    for where, path in _candidates(version):
        if version_of(path) == version:
            return Path(path)
        tried.append(f"{where} ({path})")
    want = "{}.{}".format(*version)
    raise PythonNotFound(
        f"no Python {want} found (tried $LEANLAKE_BUILD_PYTHON, python{want} on PATH, pyenv versions, "
        f"uv python find {want}{'; not working: ' + ', '.join(tried) if tried else ''}); "
        f"install one (pyenv install {want}, uv python install {want}) or set LEANLAKE_BUILD_PYTHON"
    )
