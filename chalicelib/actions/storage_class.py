"""``storage_class``: copy an object in place into another class (on upload and in sweeps)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import field_validator

from chalicelib.actions.base import Action, register
from chalicelib.policy.units import check_storage_class


@register
class StorageClass(Action):
    """Move an object to ``storage_class`` with an in-place copy, when the move pays (DESIGN invariant 5)."""

    name: ClassVar[str] = "storage_class"
    scope: ClassVar[str] = "object"
    shorthand_field: ClassVar[str] = "storage_class"
    object_permissions: ClassVar[tuple[str, ...]] = ("s3:GetObject", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging")
    bucket_permissions: ClassVar[tuple[str, ...]] = ("s3:ListBucket",)

    storage_class: str

    _check_class = field_validator("storage_class")(classmethod(lambda cls, v: check_storage_class(v)))
