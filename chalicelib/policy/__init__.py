"""The policy language: models, loading with ``file:line`` errors, and matching objects to policies.

Names are imported lazily: action modules use ``chalicelib.policy.units`` and ``.templates``
while the models (which need the complete action registry) are still being defined.

Example:
    >>> from chalicelib.policy import load_policies    # doctest: +SKIP
    >>> load_policies(["policies"]).buckets             # doctest: +SKIP
    ('ml-lake',)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LoadedPolicy": "problems", "PolicyError": "problems", "Problem": "problems", "load_policies": "loader",
    "Filters": "models", "Policy": "models", "Settings": "models",
    "Match": "policyset", "PolicySet": "policyset",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"chalicelib.policy.{_EXPORTS[name]}"), name)
    raise AttributeError(name)
