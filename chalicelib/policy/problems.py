"""What a loaded policy is, and what can be wrong with a policy file: shared by loading and matching.

Example:
    >>> str(Problem("policies/a.yaml", 3, "unknown key 'sufix'"))
    "policies/a.yaml:3: unknown key 'sufix'"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from chalicelib.policy.models import Policy, Settings


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a policy file."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PolicyError(Exception):
    """Policies did not validate; ``problems`` lists each with file and line."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy with the settings that apply to it and where it was written."""

    policy: Policy
    settings: Settings
    file: str
    line: int
