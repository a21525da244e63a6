"""Shaped per-turn rewards: the registry, the settings, the potential-based form, and the environment's reward."""

from __future__ import annotations

import math

import pytest

from agentclinic.env.gym import ClinicEnv
from agentclinic.env.shaping import ShapedReward
from agentclinic.errors import ConfigError
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.prices import price_table
from agentclinic.scoring.dialogue import reference_cost
from agentclinic.scoring.shaping import (
    PRESETS, TERMS, Shaping, ShapingTerm, register_term, shaped_rewards, unregister_term)

ACTIONS = ["Hello, what brings you in?", "Do you have a fever?", "Do you smoke?", "Examine: respiratory",
           "REQUEST TEST: Chest X-ray", "REQUEST TEST: Bronchoscopy", "REQUEST TEST: Chest X-ray",
           "DIAGNOSIS READY: community-acquired pneumonia"]


@pytest.fixture
def case(scenario_data, write_yaml):
    """The minimal case with a second, harmful test and its facts all important."""
    scenario_data["tests"].append({"name": "Bronchoscopy", "group": "Procedure", "result": "Pus in the right bronchus.",
                                   "harmful": "an invasive procedure the case does not need"})
    return load_scenarios(write_yaml(scenario_data)).scenarios[0]


def play(case, actions=ACTIONS, **kwargs):
    env = ClinicEnv([case], embedder="lexical", **kwargs)
    env.reset(seed=0)
    steps = []
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        steps.append((reward, info))
        if terminated or truncated:
            break
    record = env.clinic.record
    env.close()
    return steps, record


def test_the_registry_checks_names_and_kinds():
    assert list(TERMS) == ["facts", "tests", "cost", "harm", "time"]
    with pytest.raises(ConfigError, match="already registered"):
        register_term(ShapingTerm("facts", "progress", lambda s: 0.0, "again"))
    with pytest.raises(ConfigError, match="lower-case"):
        register_term(ShapingTerm("Bad Name", "cost", lambda s: 0.0, "-"))
    with pytest.raises(ConfigError, match="kind"):
        register_term(ShapingTerm("odd", "bonus", lambda s: 0.0, "-"))  # type: ignore[arg-type]
    register_term(ShapingTerm("questions", "cost", lambda s: float(s.record.events[-1].kind == "ask"), "asks"))
    try:
        assert Shaping.parse({"questions": 1.0}).weights == {"questions": 1.0}
    finally:
        unregister_term("questions")
    assert "questions" not in TERMS


def test_settings_parse_and_reject_bad_input():
    assert Shaping.parse(None) is None and Shaping.parse("off") is None and Shaping.parse(" none ") is None
    assert Shaping.parse("potential") is PRESETS["potential"] and Shaping.parse("DENSE") is PRESETS["dense"]
    assert Shaping.parse({"facts": 0.2}) == Shaping(weights={"facts": 0.2})
    assert Shaping.parse({"weights": {"time": 0.01}, "form": "plain"}).form == "plain"
    with pytest.raises(ConfigError, match="unknown shaping term 'fax'.*facts"):
        Shaping.parse({"fax": 0.1})
    with pytest.raises(ConfigError, match="facts: the weight must be a finite number >= 0"):
        Shaping.parse({"facts": -1})
    with pytest.raises(ConfigError, match="time: the weight must be a finite"):
        Shaping.parse({"time": float("nan")})
    with pytest.raises(ConfigError, match="gamma"):
        Shaping.parse({"weights": {"facts": 1}, "gamma": 0})
    with pytest.raises(ConfigError, match="form"):
        Shaping.parse({"weights": {"facts": 1}, "form": "dense"})
    with pytest.raises(ConfigError, match="extra|not permitted"):
        Shaping.parse({"weights": {"facts": 1}, "gama": 0.9})
    with pytest.raises(ConfigError, match="preset"):
        Shaping.parse("sparse")


def test_shaping_is_off_by_default_and_leaves_the_terminal_reward_alone(case):
    plain, record = play(case)
    assert all("shaping" not in info for _, info in plain)
    assert [r for r, _ in plain[:-1]] == [0.0] * (len(plain) - 1) and plain[-1][0] == record.scores.composite > 0
    shaped, _ = play(case, shaping="dense")
    assert len(shaped) == len(plain)
    for (r0, _), (r1, info) in zip(plain, shaped):
        assert math.isclose(r1, r0 + info["shaping"]["reward"], abs_tol=1e-9)
        assert math.isclose(info["shaping"]["reward"], sum(info["shaping"]["terms"].values()), abs_tol=1e-6)
    assert shaped[-1][1]["composite"] == plain[-1][1]["composite"]


def test_each_term_pays_what_happened_that_turn(case):
    weights = {name: 1.0 for name in TERMS}
    steps, record = play(case, shaping={"weights": weights, "form": "plain"})
    terms = [info["shaping"]["terms"] for _, info in steps]
    assert all(t["time"] == -1.0 for t in terms)
    important = [f for f in case.facts if f.important]
    first = record.first_disclosure()
    for turn, t in enumerate(terms, start=1):
        new = sum(1 for f in important if first.get(f.id) == turn)
        assert math.isclose(t["facts"], new / len(important), abs_tol=1e-6)
    assert sum(t["facts"] for t in terms) == pytest.approx(record.scores.axes["coverage"], abs=1e-5)
    xray, bronchoscopy, again = terms[4], terms[5], terms[6]
    assert xray["tests"] == 1.0 and bronchoscopy["tests"] == 0.0 and again["tests"] == 0.0  # relevant, new only
    assert bronchoscopy["harm"] == -1.0 and xray["harm"] == 0.0 and again["harm"] == 0.0
    reference = reference_cost(case, price_table())
    spent = [e.ledger["cost"] for e in record.events]
    assert xray["cost"] == pytest.approx(-(spent[4] - spent[3]) / reference, abs=1e-6) and xray["cost"] < 0
    assert all(t["cost"] == 0.0 for i, t in enumerate(terms) if i not in (4, 5, 6))


def test_the_potential_form_sums_to_zero_and_moves_credit_to_the_turn(case):
    steps, record = play(case, shaping={"facts": 1.0, "tests": 1.0})  # potential form, gamma 1
    total = sum(info["shaping"]["reward"] for _, info in steps)
    assert total == pytest.approx(0.0, abs=1e-5)
    assert steps[4][1]["shaping"]["terms"]["tests"] == 1.0  # the relevant test, paid when ordered
    assert steps[-1][1]["shaping"]["terms"]["tests"] == -1.0  # Phi = 0 at the end: taken back
    discounted, _ = play(case, shaping={"weights": {"tests": 1.0}, "gamma": 0.9})
    assert discounted[4][1]["shaping"]["terms"]["tests"] == pytest.approx(0.9)  # gamma * Phi(s') - Phi(s)
    assert discounted[5][1]["shaping"]["terms"]["tests"] == pytest.approx(0.9 - 1.0)


def test_truncated_episodes_end_the_potential_too(case):
    steps, record = play(case, actions=["Do you have a fever?"] * 30, max_turns=4, shaping="potential")
    assert record.outcome == "no-diagnosis" and len(steps) == 4
    assert sum(info["shaping"]["reward"] for _, info in steps) == pytest.approx(0.0, abs=1e-5)


def test_a_recorded_episode_replays_to_the_same_shaped_rewards(case):
    steps, record = play(case, shaping="dense")
    replayed = shaped_rewards(case, record, "dense")
    assert [r for r, _ in replayed] == [info["shaping"]["reward"] for _, info in steps]
    assert [t for _, t in replayed] == [info["shaping"]["terms"] for _, info in steps]
    assert shaped_rewards(case, record, None) == [(0.0, {})] * len(record.events)


def test_the_wrapper_gives_what_the_keyword_gives(case):
    keyword, _ = play(case, shaping="dense")
    env = ShapedReward(ClinicEnv([case], embedder="lexical"), "dense")
    env.reset(seed=0)
    wrapped = []
    for action in ACTIONS:
        _, reward, terminated, truncated, info = env.step(action)
        wrapped.append((reward, info["shaping"]))
    env.close()
    assert wrapped == [(r, info["shaping"]) for r, info in keyword]
    with pytest.raises(ValueError, match="needs a shaping"):
        ShapedReward(ClinicEnv([case], embedder="lexical"), "off")
