"""Per-turn shaped rewards for learning: one registry of terms, off by default (docs/scoring.md, "Shaped rewards").

The terminal reward (the composite of the axes) is never changed; a shaped reward is added to each turn's
reward. Each term is a registered function of the scenario and the episode record after the turn:

* a **progress** term has a potential Phi(s) in [0, 1] (share of the important facts disclosed, share of
  the relevant tests ordered). Its per-turn reward is ``gamma * Phi(s') - Phi(s)``, with Phi = 0 at the
  end of the episode (``form="potential"``, the default): potential-based shaping (Ng, Harada & Russell,
  1999) that leaves the optimal policy unchanged; with ``gamma = 1`` an episode's shaping sums to 0, it
  only moves credit to the turn that earned it. ``form="plain"`` pays ``Phi(s') - Phi(s)`` and keeps it:
  an episode then earns Phi at its end (a bonus that changes the objective);
* a **cost** term is a per-turn penalty that changes the objective as intended: money spent on tests
  (relative to the case's reference cost), harmful tests ordered, and time (each turn).

A term's reward is multiplied by its weight (``Shaping.weights``; a term left out is off). ``Shaper``
computes it turn by turn in the environment (``ClinicEnv(shaping=...)``); ``shaped_rewards`` replays a
recorded episode (an ``EpisodeRecord`` from a run folder) through the same code.

Adding a term is one call: ``register_term(ShapingTerm(name, kind, function, description))``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentclinic.errors import ConfigError
from agentclinic.runs.record import EpisodeRecord
from agentclinic.scenario.prices import PriceTable, price_table
from agentclinic.scenario.schema import Disclosure, Scenario
from agentclinic.scoring.dialogue import ordered_tests, reference_cost


@dataclass(frozen=True)
class ShapingState:
    """What a term reads: the scenario, the record up to the turn just played (``record.events[-1]`` is
    that turn), the money spent before it, and the price table."""

    scenario: Scenario
    record: EpisodeRecord
    cost_before: float
    prices: PriceTable


@dataclass(frozen=True)
class ShapingTerm:
    """A shaping term: ``progress`` (``function`` is the potential Phi(s) in [0, 1]) or ``cost`` (``function``
    is the turn's penalty, >= 0, taken off the reward)."""

    name: str
    kind: Literal["progress", "cost"]
    function: Callable[[ShapingState], float]
    description: str


TERMS: dict[str, ShapingTerm] = {}


def register_term(term: ShapingTerm) -> ShapingTerm:
    """Add a shaping term; a ``ConfigError`` when its name is taken or malformed, or its kind unknown."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", term.name):
        raise ConfigError(f"shaping term {term.name!r}: use lower-case letters, digits and '_'")
    if term.name in TERMS:
        raise ConfigError(f"a shaping term named {term.name!r} is already registered")
    if term.kind not in ("progress", "cost"):
        raise ConfigError(f"shaping term {term.name!r}: kind must be 'progress' or 'cost', got {term.kind!r}")
    TERMS[term.name] = term
    return term


def unregister_term(name: str) -> None:
    """Remove a shaping term (for plugins and tests); unknown names are ignored."""
    TERMS.pop(name, None)


# --------------------------------------------------------------------------------------------
# The terms
# --------------------------------------------------------------------------------------------


def facts_potential(state: ShapingState) -> float:
    """Share of the important facts the patient can say that were disclosed (as the coverage axis counts them)."""
    important = {f.id for f in state.scenario.facts if f.important and f.disclosure != Disclosure.HIDDEN}
    if not important:
        return 0.0
    return len(important & {fact for _, fact in state.record.disclosed}) / len(important)


def tests_potential(state: ShapingState) -> float:
    """Share of the case's relevant tests ordered (the recall of the tests axis)."""
    relevant = {t.name for t in state.scenario.tests if t.relevant}
    if not relevant:
        return 0.0
    ordered = {o["name"] for o in ordered_tests(state.record) if o["available"]}
    return len(relevant & ordered) / len(relevant)


def _turn_tests(state: ShapingState) -> set[str]:
    """The case's tests first ordered at this turn (by the case's names)."""
    event = state.record.events[-1]
    earlier = {f.name for e in state.record.events[:-1] for f in e.findings if f.available and f.name}
    return {f.name for f in event.findings if f.available and f.name and f.name not in earlier}


def test_cost(state: ShapingState) -> float:
    """Money spent on tests this turn / the case's reference cost (what its relevant tests cost)."""
    spent = float(state.record.cost) - state.cost_before
    return max(0.0, spent) / reference_cost(state.scenario, state.prices)


def harmful_orders(state: ShapingState) -> float:
    """Harmful tests (the case's ``harmful`` ones) first ordered this turn: 1 each."""
    harmful = {t.name for t in state.scenario.tests if t.harmful}
    return float(len(_turn_tests(state) & harmful))


def time_cost(state: ShapingState) -> float:
    """1 per turn."""
    return 1.0


for _term in (
    ShapingTerm("facts", "progress", facts_potential,
                "important facts newly disclosed; Phi = important facts disclosed / important facts sayable"),
    ShapingTerm("tests", "progress", tests_potential,
                "relevant tests newly ordered; Phi = relevant tests ordered / relevant tests"),
    ShapingTerm("cost", "cost", test_cost, "money spent on tests this turn / the case's reference cost"),
    ShapingTerm("harm", "cost", harmful_orders, "harmful tests ordered this turn (1 each)"),
    ShapingTerm("time", "cost", time_cost, "1 per turn"),
):
    register_term(_term)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


class Shaping(BaseModel):
    """Which terms, their weights, the form of the progress terms and the discount of the potential form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: dict[str, float] = Field(description="term -> weight >= 0; a term left out is off")
    form: Literal["potential", "plain"] = "potential"
    gamma: float = Field(1.0, gt=0.0, le=1.0, description="the trainer's discount (potential form)")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(k for k in value if k not in TERMS)
        if unknown:
            raise ValueError(f"unknown shaping term {', '.join(map(repr, unknown))}; the terms are: {', '.join(TERMS)}")
        for name, weight in value.items():
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"{name}: the weight must be a finite number >= 0, got {weight}")
        return dict(value)

    @classmethod
    def parse(cls, value: Shaping | Mapping[str, Any] | str | None) -> Shaping | None:
        """None, ``"off"`` or ``"none"``: no shaping; a preset's name (``PRESETS``); a mapping of the fields,
        or of term weights alone (``{"facts": 0.1, "time": 0.005}``); a ``ConfigError`` says what is wrong."""
        if value is None or isinstance(value, Shaping):
            return value
        if isinstance(value, str):
            name = value.strip().lower()
            if name in ("", "off", "none"):
                return None
            if name not in PRESETS:
                raise ConfigError(f"shaping {value!r}: expected 'off' or a preset ({', '.join(PRESETS)}), "
                                  "or a mapping of term weights")
            return PRESETS[name]
        data = dict(value)
        if not ({"weights", "form", "gamma"} & data.keys()):
            data = {"weights": data}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join((f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "")
                                 + e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise ConfigError(f"invalid shaping: {problems}") from exc


# Presets. The progress weights follow the coverage and tests axes' terminal weights (0.1, 0.05).
PRESETS: dict[str, Shaping] = {
    # keeps the optimal policy (potential-based, gamma 1): credit moves to the turn that earned it
    "potential": Shaping(weights={"facts": 0.1, "tests": 0.05}),
    # changes the objective a little: progress bonuses kept, test money, harm and time charged
    "dense": Shaping(weights={"facts": 0.05, "tests": 0.05, "cost": 0.01, "harm": 0.1, "time": 0.005},
                     form="plain"),
}


# --------------------------------------------------------------------------------------------
# Computing it
# --------------------------------------------------------------------------------------------


class Shaper:
    """The shaped reward of each turn of an episode in play: ``reset(scenario)``, then ``step(record, done)``
    after each turn (``record`` holds that turn's event)."""

    def __init__(self, shaping: Shaping, prices: PriceTable | None = None):
        self.shaping = shaping
        self.prices = prices or price_table()
        self.scenario: Scenario | None = None
        self._potential: dict[str, float] = {}
        self._cost = 0.0

    def reset(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._potential = {name: 0.0 for name in self.shaping.weights if TERMS[name].kind == "progress"}
        self._cost = 0.0

    def step(self, record: EpisodeRecord, done: bool) -> tuple[float, dict[str, float]]:
        """The turn's shaped reward and each weighted term (rounded to 6 places); ``done``: the episode ended."""
        if self.scenario is None:
            raise RuntimeError("Shaper.step before reset(scenario)")
        state = ShapingState(self.scenario, record, self._cost, self.prices)
        gamma, potential = self.shaping.gamma, self.shaping.form == "potential"
        terms: dict[str, float] = {}
        for name, weight in self.shaping.weights.items():
            term = TERMS[name]
            if term.kind == "cost":
                value = 0.0 - term.function(state)  # a penalty (0.0 - x: never -0.0)
            else:
                now = term.function(state)
                value = ((0.0 if done else gamma * now) - self._potential[name]) if potential \
                    else now - self._potential[name]
                self._potential[name] = now
            terms[name] = round(weight * value, 6)
        self._cost = float(record.cost)
        return round(sum(terms.values()), 6), terms


def shaped_rewards(scenario: Scenario, record: EpisodeRecord, shaping: Shaping | Mapping | str | None,
                   prices: PriceTable | None = None) -> list[tuple[float, dict[str, float]]]:
    """Each turn's shaped reward and terms for a recorded episode (as the environment gave them)."""
    config = Shaping.parse(shaping)
    if config is None:
        return [(0.0, {}) for _ in record.events]
    shaper = Shaper(config, prices)
    shaper.reset(scenario)
    out = []
    for i, event in enumerate(record.events):
        partial = record.model_copy(update={
            "events": record.events[: i + 1],
            "disclosed": [(turn, fact) for turn, fact in record.disclosed if turn <= event.turn],
            "cost": float((event.ledger or {}).get("cost", 0.0))})
        out.append(shaper.step(partial, done=i == len(record.events) - 1 and record.outcome is not None))
    return out
