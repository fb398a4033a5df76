"""What happens to a source object once its replacement is written and verified.

``keep`` leaves it, ``delete`` deletes it, ``storage_class:CLASS`` copies it in place into CLASS.

Example:
    >>> check_source_disposition("storage_class:glacier_ir")
    'storage_class:GLACIER_IR'
"""

from __future__ import annotations

from chalicelib.policy.units import check_storage_class

#: IAM actions needed to handle a source after its output is verified (delete, lock checks, re-class).
SOURCE_PERMISSIONS = ("s3:DeleteObject", "s3:GetObjectRetention", "s3:GetObjectLegalHold")


def check_source_disposition(value: str) -> str:
    """The normalised disposition, or ValueError naming the valid forms."""
    text = str(value).strip()
    if text in ("keep", "delete"):
        return text
    head, _, cls = text.partition(":")
    if head == "storage_class" and cls:
        return f"storage_class:{check_storage_class(cls)}"
    raise ValueError(f"source must be keep, delete or storage_class:CLASS, not {value!r}")
