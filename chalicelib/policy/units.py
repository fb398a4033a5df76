"""Sizes and storage classes as the policy language spells them.

Example:
    >>> parse_size("1 KiB"), parse_size("20 GiB"), parse_size(512)
    (1024, 21474836480, 512)
"""

from __future__ import annotations

import re

_UNITS = {
    "": 1, "B": 1,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
    "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as ``"1 KiB"``, ``"5MB"``, ``"20 GiB"`` (KB = 1000, KiB = 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative: {value}")
        return value
    match = _SIZE.match(str(value))
    if not match or match.group(2).upper() not in _UNITS:
        raise ValueError(f"not a size: {value!r} (use e.g. 512, '1 KiB', '20 GiB', '5 MB')")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def check_storage_class(value: str) -> str:
    """The S3 storage class name, or ValueError naming the valid ones."""
    from chalicelib.economics.figures import class_names  # here: parse_size (a local convert) needs no prices

    name = str(value).strip().upper()
    if name not in class_names():
        raise ValueError(f"unknown storage class {value!r}; one of {', '.join(class_names())}")
    return name
