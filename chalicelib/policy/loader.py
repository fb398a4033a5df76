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
from typing import Any, Iterable, Sequence

import yaml
from pydantic import ValidationError

from chalicelib.policy.models import Policy, Settings
from chalicelib.policy.policyset import PolicySet, check_overlaps
from chalicelib.policy.problems import LoadedPolicy, PolicyError, Problem

#: The file whose ``settings`` apply to every file that has none of its own.
GLOBAL_SETTINGS_FILE = "leanlake.yaml"


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


#: How many nodes aliases may repeat in one file. Anchors used modestly repeat tens or hundreds;
#: nested aliases ("billion laughs") would repeat billions, so past this the file is refused.
MAX_ALIAS_NODES = 10_000
#: How deep a policy file may nest, aliases expanded (policies need under ten levels). Deeper input
#: would exhaust Python's recursion limit, in PyYAML's composer or in ``_compose``.
MAX_DEPTH = 100
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _check_depth(text: str, file: str) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH`` while parsing, before PyYAML's recursive composer sees it.

    PyYAML's scanner slows down with every open level (5,000 nested ``[`` take 15 s to parse), so
    the events are read one by one and the first level too many stops the parse.

        >>> _check_depth("a: " + "[" * 101 + "]" * 101, "p.yaml")
        Traceback (most recent call last):
        chalicelib.policy.problems.PolicyError: p.yaml:1: nested too deeply for a policy file (more than 100 levels)
    """
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                message = f"nested too deeply for a policy file (more than {MAX_DEPTH} levels)"
                raise PolicyError([Problem(file, event.start_mark.line + 1, message)])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _compose(text: str, file: str) -> PolicyDocument:
    r"""Parse YAML keeping line numbers; duplicate keys are problems, not silent overwrites.

    Aliases are expanded here, so their cost is bounded here: a file whose aliases repeat more
    than ``MAX_ALIAS_NODES`` nodes, that nests deeper than ``MAX_DEPTH`` or whose alias refers to
    itself is a Problem at once, not minutes of work and gigabytes of memory. Merge keys
    (``<<: *defaults``) merge as YAML 1.1 says: the mapping's own keys win.

        >>> _compose("a: &x [1, 2]\nb: *x\n", "p.yaml").data
        {'a': [1, 2], 'b': [1, 2]}
        >>> _compose("a: &x [1, 1]\nb: &y [*x, *x]\nc: [*y, *y]\n", "p.yaml").data["c"]
        [[[1, 1], [1, 1]], [[1, 1], [1, 1]]]
        >>> _compose("a: &a [*a]\n", "p.yaml")
        Traceback (most recent call last):
        chalicelib.policy.problems.PolicyError: p.yaml:1: alias refers to the node that contains it
    """
    _check_depth(text, file)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    doc = PolicyDocument(file=file, data=None)
    problems: list[Problem] = []
    constructor = yaml.SafeLoader("")
    seen: set[int] = set()  # ids of nodes built once; building one again means an alias repeats it
    repeated = 0
    ancestors: list[yaml.Node] = []
    alias_line: int | None = None  # where the outermost alias being expanded is used

    def refuse(line: int, message: str) -> PolicyError:
        return PolicyError([Problem(file, line, message)])

    def key_of(key_node: yaml.Node) -> Any:
        if not isinstance(key_node, yaml.ScalarNode):
            raise refuse(key_node.start_mark.line + 1, "a mapping key must be a plain value, not a list or mapping")
        return constructor.construct_object(key_node, deep=True)

    def merged(value_node: yaml.Node, path: tuple, line: int) -> dict[Any, Any]:
        """The entries a merge key brings in: one mapping, or a list of them (earlier ones win)."""
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        out: dict[Any, Any] = {}
        own_line = doc.lines[path]
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode):
                raise refuse(line, "'<<' merges a mapping or a list of mappings")
            out.update(build(source, path, line))
        doc.lines[path] = own_line  # the mapping is where it is written, not where it merges from
        return out

    def build(node: yaml.Node, path: tuple, line: int) -> Any:
        """The value of ``node``, referred to from ``line``; every node an alias repeats counts against the budget."""
        nonlocal repeated, alias_line
        if any(node is a for a in ancestors):
            raise refuse(line, "alias refers to the node that contains it")
        if len(ancestors) >= MAX_DEPTH:
            raise refuse(alias_line or line, f"nested too deeply for a policy file (more than {MAX_DEPTH} levels)")
        outermost = False
        if id(node) in seen:
            repeated += 1
            if alias_line is None:
                alias_line, outermost = line, True
            if repeated > MAX_ALIAS_NODES:
                raise refuse(alias_line, f"aliases repeat more than {MAX_ALIAS_NODES:,} nodes (a YAML alias bomb?); "
                                         "write the values out or use fewer anchors")
        else:
            seen.add(id(node))
        doc.lines[path] = node.start_mark.line + 1
        ancestors.append(node)
        try:
            if isinstance(node, yaml.MappingNode):
                out: dict[Any, Any] = {}
                inherited: dict[Any, Any] = {}
                for key_node, value_node in node.value:
                    key_line = key_node.start_mark.line + 1
                    if key_node.tag == _MERGE_TAG:
                        inherited.update(merged(value_node, path, key_line))
                        continue
                    key = key_of(key_node)
                    if key in out:
                        problems.append(Problem(file, key_line, f"duplicate key {key!r}"))
                    out[key] = build(value_node, path + (key,), key_line)
                    doc.lines.setdefault(path + (key,), key_line)
                return {**inherited, **out}
            if isinstance(node, yaml.SequenceNode):
                return [build(item, path + (i,), node.start_mark.line + 1) for i, item in enumerate(node.value)]
            return constructor.construct_object(node, deep=True)
        finally:
            ancestors.pop()
            if outermost:
                alias_line = None

    doc.data = build(root, (), root.start_mark.line + 1) if root is not None else {}
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


def load_policies(paths: Sequence[str | os.PathLike]) -> PolicySet:
    """Load and validate every policy file under ``paths``; raise PolicyError listing every problem."""
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
