"""Train / validation / test splits of any scenario set, by a stable hash of each scenario's id.

Two methods:

- ``hash`` (the default): each case on its own. ``u = blake2b(f"{seed}:{id}")`` read as a number in
  [0, 1); the case is ``train`` when ``u < f_train``, ``validation`` when ``u < f_train + f_validation``,
  else ``test``. A case's split depends on its id, the seed and the fractions only, so adding or removing
  cases never moves an old one, and a subset of a set splits as the set does. Every specialty gets the
  fractions in expectation (the hash is independent of the specialty), not exactly: a small specialty may
  have no test case; ``split_counts`` shows the balance.
- ``stratified`` (opt-in): systematic sampling. The cases are ordered by specialty, then by the same hash
  within a specialty, and dealt out in that order by a smooth weighted round robin over the fractions (each
  split's credit grows by its fraction per case; the case goes to the split with the most credit, which then
  pays 1; ties to the earlier split). The whole set gets the fractions to within one case, and every
  specialty as closely as its size allows, the deal running on across specialties so that small ones do not
  all start with train. But adding a case can move other cases between splits (every case dealt after it).
  Stability wins by default; use this only for a fixed set, and compare the assignments recorded in run.json.

A run records the ``Split`` (name, seed, fractions, method) and the assignment of every scenario it read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

from pydantic import Field, field_validator

from agentclinic.errors import ConfigError
from agentclinic.scenario.schema import Scenario, Strict

SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.6, 0.2, 0.2)
DEFAULT_SPLIT_SEED = 0
SplitMethod = Literal["hash", "stratified"]


class Split(Strict):
    """Which part of a scenario set to use, and how the set is cut (recorded in run.json)."""

    name: SplitName
    seed: int = DEFAULT_SPLIT_SEED
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    method: SplitMethod = "hash"

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        return check_fractions(value)

    @classmethod
    def parse(cls, value: str | Split | None, *, seed: int | None = None, fractions=None,
              method: str | None = None) -> Split | None:
        """A Split from a name (or a Split, or None), with the given seed, fractions and method over its own."""
        if value is None:
            return None
        if isinstance(value, str):
            if value not in SPLITS:
                raise ConfigError(f"unknown split {value!r}; expected one of: {', '.join(SPLITS)}")
            value = cls(name=value)
        updates = {k: v for k, v in (("seed", seed), ("fractions", fractions), ("method", method)) if v is not None}
        return cls.model_validate(value.model_dump() | updates) if updates else value


class SplitRecord(Strict):
    """What a run saves about its split: the split and every scenario's assignment."""

    split: Split
    assignment: dict[str, SplitName] = Field(default_factory=dict)


def check_fractions(fractions: Iterable[float]) -> tuple[float, float, float]:
    """Three non-negative fractions (train, validation, test) that add up to 1."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(f < 0 for f in values) or abs(sum(values) - 1.0) > 1e-9:
        raise ConfigError(f"split fractions must be three non-negative numbers (train, validation, test) adding "
                          f"up to 1, got {values}")
    return values  # type: ignore[return-value]


def split_hash(scenario_id: str, seed: int = DEFAULT_SPLIT_SEED) -> float:
    """``blake2b(f"{seed}:{scenario_id}")`` as a number in [0, 1): the same on every machine and Python."""
    digest = hashlib.blake2b(f"{seed}:{scenario_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_of(scenario_id: str, seed: int = DEFAULT_SPLIT_SEED,
             fractions: Iterable[float] = DEFAULT_FRACTIONS) -> str:
    """The split of one case under the ``hash`` method."""
    train, validation, _ = check_fractions(fractions)
    u = split_hash(scenario_id, seed)
    return "train" if u < train else "validation" if u < train + validation else "test"


def assign_splits(scenarios: Iterable[Scenario], seed: int = DEFAULT_SPLIT_SEED,
                  fractions: Iterable[float] = DEFAULT_FRACTIONS, method: SplitMethod = "hash") -> dict[str, str]:
    """Scenario id -> split name for every scenario, in the given order."""
    scenarios = list(scenarios)
    fractions = check_fractions(fractions)
    if method == "hash":
        return {s.id: split_of(s.id, seed, fractions) for s in scenarios}
    if method != "stratified":
        raise ConfigError(f"unknown split method {method!r}; expected hash or stratified")
    order = sorted(scenarios, key=lambda s: (s.specialty or "unknown", split_hash(s.id, seed), s.id))
    credit = [0.0, 0.0, 0.0]
    assigned: dict[str, str] = {}
    for s in order:
        credit = [c + f for c, f in zip(credit, fractions)]
        pick = max(range(3), key=lambda i: (credit[i], -i))
        credit[pick] -= 1.0
        assigned[s.id] = SPLITS[pick]
    return {s.id: assigned[s.id] for s in scenarios}


def split_scenarios(scenarios: Iterable[Scenario], split: str | Split, seed: int | None = None,
                    fractions: Iterable[float] | None = None, method: SplitMethod | None = None) -> list[Scenario]:
    """The scenarios of one split, in the given order."""
    spec = Split.parse(split, seed=seed, fractions=tuple(fractions) if fractions is not None else None,
                       method=method)
    scenarios = list(scenarios)
    assignment = assign_splits(scenarios, spec.seed, spec.fractions, spec.method)
    return [s for s in scenarios if assignment[s.id] == spec.name]


def split_record(scenarios: Iterable[Scenario], split: Split) -> SplitRecord:
    """The split and the assignment of every scenario (the whole set, so a reader sees what was held out)."""
    return SplitRecord(split=split, assignment=assign_splits(scenarios, split.seed, split.fractions, split.method))


def split_counts(scenarios: Iterable[Scenario], seed: int = DEFAULT_SPLIT_SEED,
                 fractions: Iterable[float] = DEFAULT_FRACTIONS,
                 method: SplitMethod = "hash") -> dict[str, dict[str, int]]:
    """Specialty -> split -> number of cases (with an ``all`` row): the balance of a split."""
    scenarios = list(scenarios)
    assignment = assign_splits(scenarios, seed, fractions, method)
    counts: dict[str, dict[str, int]] = {}
    for s in scenarios:
        for row in (s.specialty or "unknown", "all"):
            counts.setdefault(row, dict.fromkeys(SPLITS, 0))[assignment[s.id]] += 1
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] == "all", kv[0])))
