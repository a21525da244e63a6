"""Whatever a doctor outputs, the environment answers: the parser raises only ``ActionError``, and both
faces of ``step`` (the async ``Clinic`` and the Gymnasium ``ClinicEnv``) record exactly one event and one
turn per call, with a text observation, and end the episode by the turn budget at the latest."""

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentclinic.agents.embeddings import Embedder
from agentclinic.agents.judge import RuleJudge
from agentclinic.agents.measurement import ScriptedMeasurement
from agentclinic.agents.patient import ScriptedPatient
from agentclinic.backends.base import ToolCall
from agentclinic.env.actions import ActionError, Ask, Diagnose, action_names, parse_action
from agentclinic.env.clinic import Clinic
from agentclinic.env.gym import ClinicEnv
from agentclinic.env.ledger import Budget
from agentclinic.runs.runner import play_episode
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR

STEMI = load_scenarios(BANK_DIR).get("cardiology-inferior-stemi")
TURNS = 4
FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def lexical_clinic(turns: int = TURNS) -> Clinic:
    """The scripted agents with the lexical embedder: fast, and the same code paths as the default."""
    lexical = Embedder(None)
    return Clinic(ScriptedPatient(lexical), ScriptedMeasurement(), RuleJudge(embedder=lexical), budget=Budget(turns=turns))


class Opaque:
    def __repr__(self):
        raise RuntimeError("no repr")


def nested(depth: int, open_: str, close: str) -> str:
    return open_ * depth + "1" + close * depth


PHRASES = st.sampled_from([
    "REQUEST TEST: ", "request tests: CBC, troponin; ", "REQUEST IMAGES", "request image: img1", "DIAGNOSIS READY: ",
    "diagnosis ready: inferior STEMI", "EXAMINE: ", "physical exam", "CALL TOOL: retrieve ", "CALL TOOL: check_report ",
    '{"query": "chest pain"}', "{", "}", "[", "]", '"', "\\", "\n", "\r\n", "\x00", "\x1c", "\u2028", "\ud800", "°",
    "NaN", "1e999", "null"])
TEXTS = st.lists(st.one_of(st.text(max_size=40), PHRASES), max_size=8).map("".join)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)
NAMES = st.sampled_from([*action_names(), "retrieve", "segment", "check_report", "function", "teleport", ""]) | JSON
ARGUMENTS = JSON | JSON.map(json.dumps) | st.dictionaries(st.sampled_from(["text", "primary", "tests", "type", "query"]), JSON)
ACTION_DICTS = st.fixed_dictionaries({"type": NAMES}, optional={
    key: JSON for key in ("text", "system", "tests", "image_id", "name", "arguments", "primary", "differential",
                          "confidence", "function", "id")})
TOOL_CALLS = st.fixed_dictionaries({"name": NAMES}, optional={"arguments": ARGUMENTS, "id": JSON})
OPENAI_CALLS = st.fixed_dictionaries({"type": st.just("function"), "function": TOOL_CALLS | JSON}, optional={"id": JSON})
DEEP = st.integers(1, 12_000).flatmap(lambda n: st.sampled_from([
    nested(n, "[", "]"), nested(n, '{"a":', "}"), "CALL TOOL: retrieve " + nested(n, '{"a":', "}"),
    json.dumps({"name": "ask", "arguments": nested(n, "[", "]")})]))
OBJECTS = st.one_of(
    st.binary(max_size=20), st.builds(object), st.builds(Opaque), st.complex_numbers(), st.sets(st.integers(), max_size=3),
    st.tuples(JSON, JSON), st.just(Ellipsis), st.just(float("nan")), st.just(10**5000),
    st.builds(ToolCall, id=st.none() | st.text(max_size=5), name=st.text(max_size=12), arguments=TEXTS | JSON.map(json.dumps)))
VALID = st.sampled_from([
    "When did the chest pain start?", "REQUEST TEST: ECG", "Examine: heart", "REQUEST IMAGES",
    Ask(text="Do you smoke?"), {"type": "function", "function": {"name": "diagnose", "arguments": '{"primary": "STEMI"}'}},
    "DIAGNOSIS READY: Inferior STEMI"])
OUTPUTS = st.one_of(TEXTS, JSON, JSON.map(json.dumps), ACTION_DICTS, ACTION_DICTS.map(json.dumps), TOOL_CALLS,
                    OPENAI_CALLS, OPENAI_CALLS.map(json.dumps), DEEP, OBJECTS, VALID)


@FUZZ
@given(OUTPUTS)
def test_the_parser_raises_only_action_errors(output):
    try:
        action = parse_action(output)
    except ActionError as exc:
        assert str(exc)
    else:
        assert action.type in action_names()


def check_turn(clinic: Clinic, turns_before: int, events_before: int, observation) -> None:
    """One call: one more turn, one more event (JSON-safe, the raw output kept), a text observation that is
    an ``Error: ...`` exactly when the event has an error; the episode over once the turn budget is spent."""
    events = clinic.record.events
    assert clinic.ledger.turns == turns_before + 1 and len(events) == events_before + 1
    event = events[-1]
    assert isinstance(observation, str) and observation and event.turn == clinic.ledger.turns
    assert observation.startswith("Error:") == (event.error is not None)
    json.loads(event.model_dump_json())
    assert clinic.ledger.turns <= TURNS and (clinic.done or clinic.ledger.turns < TURNS)


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def clinic():
    return lexical_clinic()


@FUZZ
@given(st.lists(OUTPUTS, min_size=1, max_size=TURNS + 2))
def test_clinic_step_never_raises_and_records_every_turn(loop, clinic, outputs):
    clinic.reset(STEMI, seed=0)
    for output in outputs:
        if clinic.done:
            clinic.reset(STEMI, seed=0)
        turns, events = clinic.ledger.turns, len(clinic.record.events)
        result = loop.run_until_complete(clinic.step(output))
        check_turn(clinic, turns, events, result.observation)
        assert clinic.done == (result.terminated or result.truncated)


@pytest.fixture(scope="module")
def env():
    env = ClinicEnv([STEMI], clinic=lexical_clinic())
    yield env
    env.close()


@FUZZ
@given(st.lists(OUTPUTS, min_size=1, max_size=TURNS + 2))
def test_gym_step_never_raises_and_records_every_turn(env, outputs):
    env.reset(seed=0)
    for output in outputs:
        if env.clinic.done:
            env.reset(seed=0)
        turns, events = env.clinic.ledger.turns, len(env.clinic.record.events)
        observation, reward, terminated, truncated, info = env.step(output)
        check_turn(env.clinic, turns, events, observation)
        assert observation in env.observation_space and info["turn"] == turns + 1
        assert env.clinic.done == (terminated or truncated) and isinstance(reward, float)


class FlakyDoctor:
    """A doctor whose first output is not an action at all."""

    def __init__(self, outputs):
        self.outputs = list(outputs)

    def reset(self, brief, seed=None):
        pass

    async def act(self, observation):
        return self.outputs.pop(0)


def test_a_bad_output_does_not_make_the_episode_an_error():
    doctor = FlakyDoctor([42, "DIAGNOSIS READY: Inferior STEMI"])
    record = asyncio.run(play_episode(lexical_clinic(), doctor, STEMI, seed=0, run_id="t", doctor_name="flaky"))
    assert record.error is None and record.outcome == "correct" and record.turns == 2
    bad, diagnosis = record.events
    assert bad.doctor == "42" and bad.action is None and bad.observation.startswith("Error: expected text")
    assert bad.error in bad.observation and diagnosis.action == Diagnose(primary="Inferior STEMI").model_dump()
    json.loads(record.model_dump_json())
