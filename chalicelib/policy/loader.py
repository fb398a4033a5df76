"""Loading ``policies/*.yaml``: YAML → models, with every problem reported as ``file:line: message``.

Example:
    >>> policy_set = load_policies(["policies"])       # doctest: +SKIP
    >>> [p.name for p in policy_set.policies]          # doctest: +SKIP
    ['raw-tables-to-parquet', ...]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import yaml
from pydantic import ValidationError

from chalicelib.policy.models import Policy, Settings

if TYPE_CHECKING:
    from chalicelib.policy.policyset import PolicySet

#: The file whose ``settings`` apply to every file that has none of its own.
GLOBAL_SETTINGS_FILE = "leanlake.yaml"


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


@dataclass
class PolicyDocument:
    """One parsed YAML file: its data and the line of every node, keyed by path."""

    file: str
    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)

    def line_of(self, loc: Iterable[Any]) -> int:
        """The line of the deepest node of ``loc`` that exists in the data (pydantic adds tags; skip them)."""
        path: tuple = ()
        node = self.data
        for part in loc:
            if isinstance(node, dict) and part in node:
                node, path = node[part], path + (part,)
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node, path = node[part], path + (part,)
        return self.lines.get(path, 1)


def _compose(text: str, file: str) -> PolicyDocument:
    """Parse YAML keeping line numbers; duplicate keys are problems, not silent overwrites."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    doc = PolicyDocument(file=file, data=None)
    problems: list[Problem] = []
    constructor = yaml.SafeLoader("")

    def build(node: yaml.Node, path: tuple) -> Any:
        doc.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if key in out:
                    problems.append(Problem(file, key_node.start_mark.line + 1, f"duplicate key {key!r}"))
                out[key] = build(value_node, path + (key,))
                doc.lines.setdefault(path + (key,), key_node.start_mark.line + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(item, path + (i,)) for i, item in enumerate(node.value)]
        return constructor.construct_object(node, deep=True)

    doc.data = build(root, ()) if root is not None else {}
    if problems:
        raise PolicyError(problems)
    return doc


def _messages(exc: ValidationError, doc: PolicyDocument, base: tuple) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = base + tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown key {error['loc'][-1]!r}"
        elif error["type"] == "missing":
            message = f"missing required key {error['loc'][-1]!r}"
        parts = [str(p) for p in loc if isinstance(p, (str, int))]
        # pydantic repeats an action's name (union tag, step field, shorthand field): say it once.
        where = ".".join(p for i, p in enumerate(parts) if i == 0 or p != parts[i - 1])
        problems.append(Problem(doc.file, doc.line_of(loc), f"{where}: {message}" if where else message))
    return problems


def policy_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` under the given files and directories, sorted."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.exists():
            files.append(path)
        else:
            raise PolicyError([Problem(str(path), 0, "no such file or directory")])
    return files


def load_policies(paths: Sequence[str | os.PathLike]) -> "PolicySet":
    """Load and validate every policy file under ``paths``; raise PolicyError listing every problem."""
    from chalicelib.policy.policyset import PolicySet, check_overlaps

    problems: list[Problem] = []
    docs: list[PolicyDocument] = []
    for path in policy_files(paths):
        try:
            docs.append(_compose(path.read_text(encoding="utf-8"), str(path)))
        except PolicyError as exc:
            problems.extend(exc.problems)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problems.append(Problem(str(path), mark.line + 1 if mark else 1, f"not valid YAML: {getattr(exc, 'problem', exc)}"))
    global_settings = Settings()
    for doc in docs:
        if Path(doc.file).name == GLOBAL_SETTINGS_FILE and isinstance(doc.data, dict) and "settings" in doc.data:
            try:
                global_settings = Settings.model_validate(doc.data["settings"] or {})
            except ValidationError as exc:
                problems.extend(_messages(exc, doc, ("settings",)))

    loaded: list[LoadedPolicy] = []
    first_seen: dict[str, str] = {}
    for doc in docs:
        if not isinstance(doc.data, dict):
            problems.append(Problem(doc.file, 1, "a policy file is a mapping with 'policies' (and optional 'settings')"))
            continue
        for key in doc.data:
            if key not in ("settings", "policies"):
                problems.append(Problem(doc.file, doc.line_of((key,)), f"unknown top-level key {key!r} (use settings, policies)"))
        settings = global_settings
        if "settings" in doc.data and Path(doc.file).name != GLOBAL_SETTINGS_FILE:
            try:
                merged = {**global_settings.model_dump(exclude_unset=True), **(doc.data["settings"] or {})}
                settings = Settings.model_validate(merged)
            except ValidationError as exc:
                problems.extend(_messages(exc, doc, ("settings",)))
        entries = doc.data.get("policies") or []
        if not isinstance(entries, list):
            problems.append(Problem(doc.file, doc.line_of(("policies",)), "policies must be a list"))
            continue
        for index, entry in enumerate(entries):
            line = doc.line_of(("policies", index))
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name in first_seen:
                problems.append(Problem(doc.file, doc.line_of(("policies", index, "name")),
                                        f"duplicate policy name {name!r} (first at {first_seen[name]})"))
                continue
            if isinstance(name, str):
                first_seen[name] = f"{doc.file}:{line}"
            try:
                policy = Policy.model_validate(entry)
            except ValidationError as exc:
                problems.extend(_messages(exc, doc, ("policies", index)))
                continue
            loaded.append(LoadedPolicy(policy, settings, doc.file, line))
    problems.extend(check_overlaps(loaded))
    if problems:
        raise PolicyError(problems)
    return PolicySet(tuple(loaded))
