"""Reading scenario files within limits: YAML / JSON documents, and JSONL a line at a time.

What one file may cost is capped by the constants below (documented in scenarios/README.md):
a YAML or JSON document by its size and by the values and text its aliases expand to, a JSONL
file by the length and nesting of each line. A key given twice in one mapping is an error of
its record, never a silent overwrite. Problems come back as ``ScenarioError`` naming the file
and line, one per record where the record is to blame, so the file's other records still load.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import yaml

from agentclinic.errors import ScenarioError

MAX_FILE_BYTES = 5 * 2**20
"""Largest YAML or JSON scenario file (5 MiB; the bank's largest file is about 12 KB)."""
MAX_YAML_VALUES = 1_000_000
"""Most values (mappings, lists, scalars) in one YAML or JSON file once its aliases are expanded (a
case of the bank has about 1,000), so aliases of lists of aliases cannot multiply into billions."""
MAX_YAML_TEXT = 10 * 2**20
"""Most characters of text (keys and values) in one YAML or JSON file once its aliases are expanded (10 MiB,
twice ``MAX_FILE_BYTES``), so aliases of one long string cannot multiply it into gigabytes."""
MAX_RECORD_BYTES = 2**20
"""Longest line of a JSONL file, i.e. one record (1 MiB; AgentClinic's longest is under 3 KB). A JSONL
file as a whole has no limit: it is read a line at a time."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of lists and objects in one JSONL record (AgentClinic's records reach 6)."""

YamlRecord = tuple[object, yaml.Node, list[ScenarioError]]


def read_yaml(path: Path) -> list[YamlRecord]:
    """The records of a YAML or JSON file: one for a mapping, one per item for a list, each as (data, its
    node, the errors of keys given twice in it). Raises ``ScenarioError`` when the file as a whole is
    unreadable, too large, not YAML, empty, or expands past ``MAX_YAML_VALUES``."""
    try:
        text = _read_capped(path)
        loader = StrictLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_expansion(node, path)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read file: {exc}", path=path, code="io") from None
    except RecursionError:
        raise ScenarioError("lists or mappings are nested too deeply to read", path=path, code="syntax") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ScenarioError(f"not valid YAML/JSON: {getattr(exc, 'problem', exc)}", path=path,
                            line=mark.line + 1 if mark else None, code="syntax") from None
    if data is None:
        raise ScenarioError("file is empty", path=path, code="syntax")
    items = zip(data, node.value) if isinstance(data, list) else [(data, node)]
    return [(datum, sub, _duplicate_keys(sub, loader.duplicates, path)) for datum, sub in items]


def _read_capped(path: Path) -> str:
    with path.open("rb") as handle:
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        size = path.stat().st_size / 2**20
        raise ScenarioError(f"file is {size:.1f} MiB, over the limit of {MAX_FILE_BYTES // 2**20} MiB for a YAML or "
                            "JSON scenario file (MAX_FILE_BYTES); split it, or write it as JSONL, which is limited "
                            "per line", path=path, code="too-large")
    return raw.decode("utf-8")


class StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser where PyYAML has it
    """PyYAML's safe loader that also notes each key given twice in one mapping (PyYAML keeps the last
    silently). Keys brought in by a merge (``<<: *base``) may be overridden: they are not duplicates."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.duplicates: list[tuple[yaml.Node, int]] = []  # (the repeated key's node, line of the first)
        self._seen: set[int] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        if id(node) not in self._seen:  # before a merge rewrites node.value
            self._seen.add(id(node))
            first: dict[tuple[str, str], int] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if (key.tag, key.value) in first:
                        self.duplicates.append((key, first[key.tag, key.value]))
                    else:
                        first[key.tag, key.value] = key.start_mark.line + 1
        super().flatten_mapping(node)


def expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(nodes, characters of scalar text) of the document with every alias expanded; (0, 0) for an endless
    (cyclic) one."""
    sizes: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        if children_done:
            text = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            sizes[id(node)] = (1 + sum(sizes[id(child)][0] for child in children),
                               text + sum(sizes[id(child)][1] for child in children))
        elif id(node) in sizes:
            continue
        elif id(node) in open_nodes:
            return 0, 0  # reached again from inside itself
        else:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def _check_expansion(node: yaml.Node, path: Path) -> None:
    size, text = expanded_size(node)
    if size == 0:
        raise ScenarioError("an alias refers to the mapping or list that holds it, so the file never ends",
                            path=path, line=node.start_mark.line + 1, code="syntax")
    if size > MAX_YAML_VALUES:
        raise ScenarioError(f"aliases expand the file to {size:,} values, over the limit of {MAX_YAML_VALUES:,} "
                            "(MAX_YAML_VALUES)", path=path, code="too-large")
    if text > MAX_YAML_TEXT:
        raise ScenarioError(f"aliases expand the file to {text / 2**20:.1f} MiB of text, over the limit of "
                            f"{MAX_YAML_TEXT // 2**20} MiB of text (MAX_YAML_TEXT)", path=path, code="too-large")


def _duplicate_keys(node: yaml.Node, duplicates: list[tuple[yaml.Node, int]], path: Path) -> list[ScenarioError]:
    """One error per key given twice inside ``node``, with its line and the field that holds it."""
    return [ScenarioError(f"key {key.value!r} is given twice in one mapping (first on line {first}); YAML would keep "
                          "only the last", path=path, line=key.start_mark.line + 1,
                          field=".".join(map(str, _path_to(node, key))) or None, code="duplicate-key")
            for key, first in duplicates if node.start_mark.index <= key.start_mark.index < node.end_mark.index]


def _path_to(root: yaml.Node, target: yaml.Node) -> tuple[str | int, ...]:
    """The field path from ``root`` to the mapping that holds the key node ``target``."""
    stack: list[tuple[yaml.Node, tuple]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key is target:
                    return loc
                stack.append((value, (*loc, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*loc, i)) for i, item in enumerate(node.value))
    return ()


# ------------------------------------------------------------------ JSONL


def jsonl_rows(path: Path) -> Iterator[tuple[int | None, object | ScenarioError]]:
    """(line number, parsed JSON or error) for each non-empty line of a JSONL file, read a line at a time."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield None, ScenarioError(f"cannot read file: {exc}", path=path, code="io")
        return
    with handle:
        for number, raw in enumerate(_lines(handle), 1):
            if raw is None or raw.strip():
                yield number, parse_record(raw, path, number)


def _lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """The lines of a file; None for a line longer than ``MAX_RECORD_BYTES`` (skipped, never held whole)."""
    while raw := handle.readline(MAX_RECORD_BYTES + 1):
        if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
            while (rest := handle.readline(2**16)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield raw


def parse_record(raw: bytes | None, path: Path, number: int) -> object:
    """One JSONL line parsed, or a ``ScenarioError`` naming the line (``raw`` None: over the length limit)."""
    if raw is None:
        return ScenarioError(f"line is longer than {MAX_RECORD_BYTES:,} bytes, the limit for one record "
                             "(MAX_RECORD_BYTES)", path=path, line=number, code="too-large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ScenarioError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path, line=number,
                             code="syntax")
    if too_deep(text):
        return ScenarioError(f"lists and objects nested more than {MAX_JSON_DEPTH} deep (MAX_JSON_DEPTH)",
                             path=path, line=number, code="syntax")
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except json.JSONDecodeError as exc:
        return ScenarioError(f"not valid JSON: {exc.msg}", path=path, line=number, code="syntax")
    except _DuplicateKey as exc:
        return ScenarioError(f"key {exc.args[0]!r} is given twice in one object; JSON readers would keep only the "
                             "last", path=path, line=number, code="duplicate-key")


STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
BRACKETS = re.compile(r"[\[\]{}]")


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests lists and objects more than ``limit`` deep (brackets in strings ignored)."""
    depth = 0
    for bracket in BRACKETS.finditer(STRINGS.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > limit:
            return True
    return False


class _DuplicateKey(Exception):
    pass


def _unique(pairs: list[tuple[str, object]]) -> dict:
    data: dict = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKey(key)
        data[key] = value
    return data
