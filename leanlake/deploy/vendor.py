"""A trimmed pyarrow for Lambda, unpacked into a Chalice ``vendor/`` directory.

The full cp312 manylinux_2_28 wheel (pyarrow 26) unpacks to 166 MB and makes the function zip
58.8 MB, over the 50 MiB Chalice uploads directly. Trimmed of what a Lambda function converting
CSV/JSON to Parquet never loads (tests, C++ headers and Cython sources, Flight, ORC, the cloud and
HDFS filesystems, the C++ test module, the copies of each shared library under its link-time
names) and with its shared objects stripped, it is 82.5 MB and the whole zip 37.8 MiB.
``libarrow_substrait`` stays: every pyarrow extension module links against it.

Example:
    >>> trimmed("pyarrow/tests/test_csv.py"), trimmed("pyarrow/_flight.cpython-312-x86_64-linux-gnu.so")
    (True, True)
    >>> trimmed("pyarrow/lib.cpython-312-x86_64-linux-gnu.so"), trimmed("pyarrow/libarrow_substrait.so.2600")
    (False, False)
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

#: The Lambda platform: x86_64, Amazon Linux 2023 (glibc 2.34), so manylinux_2_28 wheels fit.
PLATFORM = "manylinux_2_28_x86_64"

#: Directories of the wheel never needed at run time.
_TRIM_DIRS = ("pyarrow/tests/", "pyarrow/include/", "pyarrow/includes/", "pyarrow/src/")
#: File name patterns (under pyarrow/) never needed at run time.
_TRIM_FILES = (
    "*.pyx", "*.pxd", "*.pxi", "*.pyi", "*.h", "*.cc", "*.cpp",          # sources and headers
    "_flight.*", "flight.py", "libarrow_flight.so*", "libarrow_python_flight.so*",   # Flight (RPC)
    "_orc.*", "_dataset_orc.*", "orc.py",                                  # ORC
    "_s3fs.*", "_gcsfs.*", "_azurefs.*", "_hdfs.*", "libarrow_s3.so*",      # remote filesystems (leanlake uses boto3)
    "_pyarrow_cpp_tests.*", "conftest.py",                                 # pyarrow's own tests
)
_SONAME = re.compile(r"^(lib[\w-]+\.so)\.\d+$")       # libarrow_python.so.2600: what extension modules load
_ALIAS = re.compile(r"^(lib[\w-]+\.so)(?:\.\d+)*$")    # libarrow_python.so, libarrow_python.so.2600.1.0


def _alias_copy(name: str, present: frozenset[str]) -> bool:
    """A wheel has no symlinks: ``libX.so`` and ``libX.so.A.B.C`` are full copies of the ``libX.so.A`` loaded by soname."""
    parent, _, base = name.rpartition("/")
    alias = _ALIAS.match(base)
    if _SONAME.match(base) or not alias:
        return False
    return any(other.startswith(f"{parent}/{alias.group(1)}.") and _SONAME.match(other.rpartition("/")[2])
               for other in present)


def trimmed(name: str, present: frozenset[str] = frozenset()) -> bool:
    """True when the wheel member ``name`` is left out of the Lambda package (``present``: all members)."""
    if not name.startswith("pyarrow/"):
        return False
    if name.startswith(_TRIM_DIRS):
        return True
    base = PurePosixPath(name).name
    return any(fnmatch.fnmatch(base, pattern) for pattern in _TRIM_FILES) or _alias_copy(name, present)


def download_wheel(pip_python: str | Path, version: str | None, cache_dir: Path, log: Callable[[str], None] = print) -> Path:
    """The cp312 manylinux_2_28 x86_64 pyarrow wheel, from ``cache_dir`` or downloaded with pip."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    pattern = f"pyarrow-{version or '*'}-cp312-cp312-manylinux*x86_64.whl"
    cached = sorted(cache_dir.glob(pattern))
    if version and cached:
        return cached[-1]
    spec = f"pyarrow=={version}" if version else "pyarrow"
    log(f"downloading {spec} for cp312 {PLATFORM}")
    cmd = [str(pip_python), "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--platform", PLATFORM, "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
           "--dest", str(cache_dir), spec]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"pip could not download {spec} for cp312 {PLATFORM}: {lines[-1] if lines else done.returncode}")
    cached = sorted(cache_dir.glob(pattern))
    if not cached:
        raise RuntimeError(f"pip downloaded no wheel matching {pattern} into {cache_dir}")
    return cached[-1]


def vendor_pyarrow(wheel: Path, vendor_dir: Path, strip: bool = True, log: Callable[[str], None] = print) -> int:
    """Unpack ``wheel`` trimmed into ``vendor_dir``, strip its shared objects; return the bytes written."""
    with zipfile.ZipFile(wheel) as zf:
        names = frozenset(zf.namelist())
        keep = [n for n in sorted(names) if not n.endswith("/") and not trimmed(n, names)]
        for name in keep:
            zf.extract(name, vendor_dir)
    libraries = [vendor_dir / n for n in keep if n.endswith(".so") or ".so." in n]
    if strip:
        strip_exe = shutil.which("strip")
        if strip_exe is None:
            log("warning: no `strip` on PATH (binutils): shared objects stay unstripped and the zip is larger")
        else:
            subprocess.run([strip_exe, "--strip-unneeded", *map(str, libraries)], check=True)
    total = sum((vendor_dir / n).stat().st_size for n in keep)
    log(f"pyarrow vendored from {wheel.name}: {len(keep)} of {len(names)} files, {total / 1e6:.1f} MB unzipped")
    return total

