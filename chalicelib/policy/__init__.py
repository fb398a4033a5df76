"""The policy language: models, loading with ``file:line`` errors, and matching objects to policies.

Example:
    >>> from chalicelib.policy import load_policies    # doctest: +SKIP
    >>> load_policies(["policies"]).buckets             # doctest: +SKIP
    ('ml-lake',)
"""

from chalicelib.policy.loader import LoadedPolicy, PolicyError, Problem, load_policies
from chalicelib.policy.models import Filters, Policy, Settings
from chalicelib.policy.policyset import Match, PolicySet

__all__ = ["LoadedPolicy", "Match", "Policy", "PolicyError", "PolicySet", "Problem", "Settings", "Filters", "load_policies"]
