"""The garbage collector, set once per process for streaming millions of objects through planning.

What: ``for_streaming()`` (called by ``plan.plan_objects``; only its first call in a process acts)
moves every object alive at that moment (the modules imported, the loaded policies) into the
collector's permanent generation (``gc.freeze``), and collects the youngest generation every
``YOUNG_THRESHOLD`` allocations instead of CPython's 700.

Why: planning makes and drops ~10 objects per listed object, and a batch of 1,000 refs and their
decisions lives across many young collections, so they are promoted and each full collection then
walks the whole heap: boto3's service models, pydantic, pyarrow, rich, a million objects or more.
Measured, ``leanlake plan --inventory … --json`` over 200,000 objects: 6.9–7.4 CPU s with
CPython's thresholds, 5.9–6.5 s set here, 6.1–6.3 s with the collector off (bench/RESULTS.md).
The collector stays on: reference cycles are still found, only less often (a young generation of
50,000 container objects is a few MiB). Frozen objects are never collected as cycles; they are
the process's imports and settings, alive to its end, and later garbage is not frozen because
only the first call freezes.

Example:
    >>> import gc
    >>> for_streaming(); gc.get_threshold()[0] >= YOUNG_THRESHOLD
    True
"""

from __future__ import annotations

import gc

#: Allocations between collections of the youngest generation (CPython's default is 700).
YOUNG_THRESHOLD = 50_000

_set = False


def for_streaming() -> None:
    """Freeze what is alive now and collect young objects less often; only the first call in a process acts
    (a Lambda container's first event, a CLI command's first plan), so nothing made later is ever frozen."""
    global _set
    if _set:
        return
    _set = True
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)
