"""Reading scenarios from files: the native format and a registry of adapters.

Every loader turns one file into a stream of ``Scenario`` objects and
``ScenarioError`` objects (one per bad record or field), so one bad case never hides
the others. ``load_scenarios`` walks files and folders, picks a loader by name or by
the file's shape, and either raises on the first error or collects them all.

Files are read within the limits of ``reading.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from agentclinic.errors import ScenarioError
from agentclinic.scenario.reading import jsonl_rows, read_yaml
from agentclinic.scenario.schema import Scenario

SUFFIXES = (".yaml", ".yml", ".json", ".jsonl")
Record = Scenario | ScenarioError
Loader = Callable[[Path], Iterator[Record]]


@dataclass(frozen=True)
class Source:
    """Where a scenario was read from; ``line_of`` maps a field path to a line number."""

    path: Path
    line: int | None = None
    node: yaml.Node | None = field(default=None, repr=False, compare=False)

    def line_of(self, loc: Iterable[str | int] = ()) -> int | None:
        node, line = self.node, self.line
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == key), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
            else:
                node = None
            if node is None:
                break
            line = node.start_mark.line + 1
        return line


def source_of(scenario: Scenario) -> Source | None:
    """The file and line a loaded scenario came from (None when built in code)."""
    return scenario._source


def build(data: object, source: Source) -> Record | list[ScenarioError]:
    """Validate one record; schema problems become one error per field."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        errors = [_field_error(err, source) for err in exc.errors()]
    else:
        scenario._source = source
        return scenario
    if isinstance(data, dict) and data.get("diagnosis") is None and data.get("kind", "diagnostic") == "diagnostic":
        errors = [e for e in errors if "needs a 'diagnosis'" not in e.message]  # said once, on its field
        errors.insert(0, ScenarioError("a diagnostic case needs a diagnosis (or set 'kind: conversation' for a "
                                       "station)", path=source.path, line=source.line, field="diagnosis",
                                       code="missing-diagnosis"))
    return errors


def _field_error(err: dict, source: Source) -> ScenarioError:
    loc = tuple(err["loc"])
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key (not part of the scenario format, see scenarios/README.md)"
    elif err["type"] == "missing":
        message = "required field is missing"
    code = "missing-diagnosis" if loc[:1] == ("diagnosis",) and err["type"] == "missing" else "schema"
    field_name = ".".join(str(part) for part in loc) or None
    return ScenarioError(message, path=source.path, line=source.line_of(loc), field=field_name, code=code)


def _records(items: Iterable[tuple[object, Source]]) -> Iterator[Record]:
    for data, source in items:
        if isinstance(data, ScenarioError):
            yield data
        elif not isinstance(data, dict):
            yield ScenarioError(f"expected a scenario mapping, got {type(data).__name__}",
                                path=source.path, line=source.line)
        else:
            built = build(data, source)
            yield from built if isinstance(built, list) else [built]


def load_native(path: Path) -> Iterator[Record]:
    """Native YAML / JSON: one scenario mapping, or a list of them; JSONL: one per line."""
    if path.suffix == ".jsonl":
        yield from _records((data, Source(path, line)) for line, data in jsonl_rows(path))
        return
    try:
        records = read_yaml(path)
    except ScenarioError as exc:
        yield exc
        return
    for data, node, duplicate_keys in records:
        yield from duplicate_keys or _records([(data, Source(path, node.start_mark.line + 1, node))])


LOADERS: dict[str, Loader] = {"native": load_native}
DETECTORS: list[tuple[str, Callable[[dict], bool]]] = []


def register_loader(name: str, loader: Loader, detect: Callable[[dict], bool] | None = None) -> None:
    """Add a loader; ``detect`` recognises its JSONL records by their first row."""
    LOADERS[name] = loader
    if detect is not None:
        DETECTORS.append((name, detect))


def detect_format(path: Path) -> str:
    """Name the loader for a file by its shape (JSONL rows are recognised by their keys)."""
    if path.suffix == ".jsonl":
        _, row = next(jsonl_rows(path), (None, {}))
        for name, detect in DETECTORS:
            if isinstance(row, dict) and detect(row):
                return name
    return "native"


@dataclass
class ScenarioSet:
    """Scenarios read from files, with the errors met on the way, in file order."""

    scenarios: list[Scenario] = field(default_factory=list)
    errors: list[ScenarioError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scenarios)

    def __iter__(self) -> Iterator[Scenario]:
        return iter(self.scenarios)

    def get(self, scenario_id: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.id == scenario_id:
                return scenario
        raise KeyError(f"no scenario with id {scenario_id!r}")

    def ids(self) -> list[str]:
        return [s.id for s in self.scenarios]

    def split(self, name: str, seed: int = 0, fractions: Iterable[float] = (0.6, 0.2, 0.2),
              method: str = "hash") -> ScenarioSet:
        """The scenarios of one split (train / validation / test; ``agentclinic.scenario.splits``)."""
        from agentclinic.scenario.splits import split_scenarios

        return ScenarioSet(split_scenarios(self.scenarios, name, seed, tuple(fractions), method), list(self.errors))


def scenario_files(path: Path) -> list[Path]:
    """The scenario files under ``path`` (itself if a file), sorted; dotfiles, ``_``-prefixed names and
    ``assets`` folders (images and their metadata) left out."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise ScenarioError("no such file or folder", path=path, code="io")
    return sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                  and not any(part.startswith((".", "_")) or part == "assets" for part in p.relative_to(path).parts[:-1])
                  and not p.name.startswith((".", "_")))


def load_scenarios(paths: str | Path | Iterable[str | Path], *, format: str | None = None,
                   skip_errors: bool = False) -> ScenarioSet:
    """Load every scenario under ``paths``.

    ``format`` names a loader (``native``, ``agentclinic_medqa``, ``agentclinic_nejm``);
    by default each file's shape decides. With ``skip_errors`` bad records are kept in
    ``.errors`` and the rest load; otherwise the first error is raised.
    """
    import agentclinic.scenario.agentclinic_format  # noqa: F401  (registers its loaders)

    if isinstance(paths, (str, Path)):
        paths = [paths]
    if format is not None and format not in LOADERS:
        raise ScenarioError(f"unknown scenario format {format!r}; known: {', '.join(sorted(LOADERS))}", code="io")
    result = ScenarioSet()
    seen: dict[str, Source | None] = {}
    for root in map(Path, paths):
        try:
            files = scenario_files(root)
        except ScenarioError as exc:
            if not skip_errors:
                raise
            result.errors.append(exc)
            continue
        for path in files:
            for record in LOADERS[format or detect_format(path)](path):
                if isinstance(record, Scenario) and record.id in seen:
                    first = seen[record.id]
                    where = f" (first in {first.path}:{first.line})" if first else ""
                    src = source_of(record)
                    record = ScenarioError(f"duplicate scenario id {record.id!r}{where}", path=path,
                                           line=src.line if src else None, field="id", code="duplicate-id")
                if isinstance(record, ScenarioError):
                    if not skip_errors:
                        raise record
                    result.errors.append(record)
                else:
                    seen[record.id] = source_of(record)
                    result.scenarios.append(record)
    return result


BANK_DIR = Path(__file__).resolve().parents[2] / "scenarios"
