"""The LangGraph tool-using doctor: through the real Clinic with a scripted fake model, and on a real server."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import ClassVar

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agentclinic.agents.base import Doctor
from agentclinic.agents.doctors import make_doctor
from agentclinic.agents.embeddings import Embedder
from agentclinic.agents.judge import RuleJudge
from agentclinic.agents.langgraph_doctor import GraphDoctor, action_line, read_reply
from agentclinic.agents.measurement import ScriptedMeasurement
from agentclinic.agents.patient import ScriptedPatient
from agentclinic.backends import base as backends_base
from agentclinic.backends.base import ChatResult, Settings, ToolCall, Usage
from agentclinic.env.actions import Ask, CallTool, Diagnose, Examine, OrderTests
from agentclinic.env.clinic import Clinic
from agentclinic.errors import AgentClinicError, ConfigError
from agentclinic.runs.runner import play_episode
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.schema import Scenario
from agentclinic.tools import TOOLS, ToolArguments, ToolContext, ToolResult

from conftest import MINIMAL

LEXICAL = Embedder(None)
REPO = Path(__file__).resolve().parents[1]


class FakeChatModel:
    """Implements ChatModel with scripted replies (text, ChatResult, or a function of the messages and tools);
    records every request. After the script, ``default`` answers."""

    def __init__(self, replies=(), *, default="Okay.", supports_images: bool = False, name: str = "fake"):
        self.name, self.supports_images = name, supports_images
        self.replies, self.default = list(replies), default
        self.calls: list[dict] = []

    async def chat(self, messages, settings, *, tools=None, json_schema=None):
        self.calls.append({"messages": list(messages), "tools": tools})
        reply = self.replies.pop(0) if self.replies else self.default
        if callable(reply):
            reply = reply(messages, tools)
        result = ChatResult(text=reply) if isinstance(reply, str) else reply
        return result.model_copy(update={"usage": Usage(prompt_tokens=10, completion_tokens=2), "latency_s": 0.01,
                                         "model": self.name})


def call(name: str, arguments: dict | str, id_: str | None = None) -> ChatResult:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ChatResult(tool_calls=[ToolCall(id=id_, name=name, arguments=args)])


class LookupArguments(ToolArguments):
    query: str
    k: int = 3


class Lookup:
    """A small expert tool for these tests: names two diseases for any query."""

    name: ClassVar[str] = "lookup"
    description: ClassVar[str] = "Look up diseases that match a query."
    Arguments: ClassVar[type[ToolArguments]] = LookupArguments

    async def run(self, arguments: LookupArguments, context: ToolContext) -> ToolResult:
        return ToolResult(text=f"1. Community-acquired pneumonia (J18.9), score 0.81 [kb]: {arguments.query}\n"
                               "2. Acute bronchitis (J20.9), score 0.62 [kb]: cough",
                          data={"hits": [{"disease": "Community-acquired pneumonia", "icd10": "J18.9"}]})


@pytest.fixture
def lookup(monkeypatch):
    monkeypatch.setitem(TOOLS, "lookup", Lookup())
    return "lookup"


def case() -> Scenario:
    return Scenario.model_validate(copy.deepcopy(MINIMAL))


def clinic() -> Clinic:
    return Clinic(ScriptedPatient(embedder=LEXICAL), ScriptedMeasurement(), RuleJudge(embedder=LEXICAL))


def play(doctor, scenario: Scenario | None = None, max_turns: int = 20):
    from agentclinic.env.ledger import Budget

    room = clinic()
    room.budget = Budget(turns=max_turns)
    return asyncio.run(play_episode(room, doctor, scenario or case(), seed=0, doctor_name="graph"))


def types(record) -> list[str | None]:
    return [e.action["type"] if e.action else None for e in record.events]


# --------------------------------------------------------------------------------------------


def test_episode_asks_orders_calls_an_expert_tool_and_diagnoses(lookup):
    model = FakeChatModel([
        call("ask", {"text": "What brings you in today?"}, "c1"),
        call("order_tests", {"tests": ["CXR"]}),
        call("lookup", {"query": "cough and fever, right lower lobe consolidation"}, "c3"),
        call("diagnose", {"primary": "Community-acquired pneumonia", "differential": ["Acute bronchitis"],
                          "confidence": 0.8}),
    ])
    doctor = GraphDoctor(model, max_turns=8)
    assert isinstance(doctor, Doctor)
    record = play(doctor, max_turns=8)
    assert record.error is None and record.outcome == "correct" and record.turns == 4
    assert types(record) == ["ask", "order_tests", "call_tool", "diagnose"]
    assert record.events[2].tool.name == "lookup" and "Community-acquired" in record.events[2].tool.text
    assert record.tool_metrics["calls"] == {"lookup": 1} and record.differential == ["Acute bronchitis"]
    tool_names = {t["function"]["name"] for t in model.calls[0]["tools"]}
    assert {"ask", "examine", "order_tests", "request_image", "diagnose", "lookup"} <= tool_names
    system = model.calls[0]["messages"][0].text()
    assert "lookup {\"query\": string, \"k\": integer (optional)}" in system and "8 turns" in system
    # each observation answers the call it came from; a call without an id gets one
    second = model.calls[1]["messages"]
    assert second[-1].role == "tool" and second[-1].tool_call_id == "c1" and "Patient:" in second[-1].text()
    third = model.calls[2]["messages"]
    assert third[-1].tool_call_id == "call_2_1_0" and "Test results" in third[-1].text()
    assert "Tool lookup:" in model.calls[3]["messages"][-1].text()
    # the record keeps each doctor call with how the graph read it
    doctor_calls = [c for e in record.events for c in e.model_calls if c["role"] == "doctor"]
    assert len(doctor_calls) == 4 and [c["graph"]["action"]["type"] for c in doctor_calls] == types(record)
    assert doctor.snapshot()["done"] is True


def test_invalid_arguments_are_fed_back_and_the_model_recovers(lookup):
    model = FakeChatModel([
        call("lookup", {"qurey": "cough"}, "bad1"),  # wrong argument name
        call("order_tests", {"tests": []}, "bad2"),  # empty list
        call("lookup", {"query": "cough"}, "ok"),
        call("consult_oracle", {}, "bad3"),  # no such function
        ChatResult(tool_calls=[ToolCall(id="bad4", name="diagnose", arguments='{"primary": "CAP"')]),  # cut JSON
        call("diagnose", {"primary": "Community-acquired pneumonia"}),
    ])
    doctor = GraphDoctor(model, max_turns=6, retries=2)
    record = play(doctor, max_turns=6)
    assert record.error is None and record.outcome == "correct"
    assert types(record) == ["call_tool", "diagnose"] and record.turns == 2  # rejected replies cost no turn
    assert record.events[0].tool.error is None and record.tool_metrics["invalid_arguments"] == 0
    fed_back = model.calls[1]["messages"][-1]
    assert fed_back.role == "tool" and fed_back.tool_call_id == "bad1"
    assert fed_back.text().startswith("Error: invalid arguments for lookup") and "qurey" in fed_back.text()
    assert "tests" in model.calls[2]["messages"][-1].text()
    assert "no function 'consult_oracle'" in model.calls[4]["messages"][-1].text()
    assert "not valid JSON" in model.calls[5]["messages"][-1].text()
    errors = doctor.snapshot()["errors"]
    assert [(e["turn"], e["attempt"]) for e in errors] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    calls = record.events[0].model_calls
    assert [c["graph"].get("error") is not None for c in calls if c["role"] == "doctor"] == [True, True, False]


def test_a_model_that_only_emits_garbage_ends_cleanly_without_a_diagnosis():
    garbage = [ChatResult(text=""), ChatResult(text="!!! ??? 123"), call("ask", "{not json"),
               call("frobnicate", {"x": 1}), call("examine", {"system": 7})]
    model = FakeChatModel(default=lambda messages, tools: garbage[len(model.calls) % len(garbage)])
    doctor = GraphDoctor(model, max_turns=5, retries=2)
    record = play(doctor, max_turns=5)
    assert record.error is None and record.outcome == "no-diagnosis" and record.truncated_by == "turns"
    assert record.turns == 5 and all(e.error is None for e in record.events)
    assert set(types(record)) == {"ask"}  # the fallback's open questions
    assert len(model.calls) == 5 * 3  # every turn: the first try and two retries
    assert doctor.snapshot()["fallbacks"] == 5
    many = GraphDoctor(FakeChatModel(default=""), max_turns=2, retries=15)  # within LangGraph's step limit
    assert play(many, max_turns=2).turns == 2 and len(many.model.calls) == 2 * 16


def test_the_fallback_diagnoses_the_best_guess_when_turns_run_short():
    # the model names a diagnosis with an invalid confidence, then only talks nonsense
    model = FakeChatModel([call("diagnose", {"primary": "Community-acquired pneumonia", "confidence": 7})],
                          default="")
    record = play(GraphDoctor(model, max_turns=4, retries=1, warn_turns=1), max_turns=4)
    assert record.outcome == "correct" and record.diagnosis == "Community-acquired pneumonia"
    assert types(record) == ["ask", "ask", "diagnose"]  # open questions until one turn is left


def test_the_fallback_can_diagnose_the_retrieval_tools_leading_hit(monkeypatch):
    monkeypatch.setitem(TOOLS, "retrieve", Lookup())  # answers in the retrieval tool's format
    model = FakeChatModel([call("retrieve", {"query": "cough and fever"})], default="")
    record = play(GraphDoctor(model, max_turns=3, retries=0, warn_turns=1), max_turns=3)
    assert types(record) == ["call_tool", "diagnose"] and record.outcome == "correct"
    assert record.differential == ["Acute bronchitis"]


def test_near_the_limit_the_model_is_told_to_diagnose_and_the_last_turn_is_forced():
    model = FakeChatModel(["Hello, how can I help?", "EXAMINE: respiratory", "Any other symptoms?",
                           "Pneumonia",  # a short text on the forced turn reads as the diagnosis
                           ])
    record = play(GraphDoctor(model, max_turns=4, warn_turns=2), max_turns=4)
    assert types(record) == ["ask", "examine", "ask", "diagnose"] and record.diagnosis == "Pneumonia"
    texts = [c["messages"][-1].text() for c in model.calls]
    assert "Only" not in texts[0] and "Only 2 turns left" in texts[1] and "Only 1 turn left" in texts[2]
    assert "This is your last turn" in texts[3]


def test_the_forced_turn_rejects_other_actions_and_retries():
    model = FakeChatModel([call("ask", {"text": "Anything else?"}), "DIAGNOSIS READY: Acute bronchitis"])
    record = play(GraphDoctor(model, max_turns=1), max_turns=1)
    assert types(record) == ["diagnose"] and record.outcome == "incorrect"
    assert "last turn and ask is not a diagnosis" in model.calls[1]["messages"][-1].text()


def test_text_protocol_mode(lookup):
    model = FakeChatModel(["Doctor: What brings you in today?", "REQUEST TEST: chest X-ray",
                           'CALL TOOL: lookup {"query": "productive cough"}', "EXAMINE",
                           "DIAGNOSIS READY: Community-acquired pneumonia\nbecause of the consolidation"])
    doctor = GraphDoctor(model, mode="text", max_turns=10)
    record = play(doctor, max_turns=10)
    assert types(record) == ["ask", "order_tests", "call_tool", "examine", "diagnose"]
    assert record.outcome == "correct" and record.events[0].action["text"] == "What brings you in today?"
    assert all(c["tools"] is None for c in model.calls)
    system = model.calls[0]["messages"][0].text()
    for phrase in ("REQUEST TEST:", "CALL TOOL:", "DIAGNOSIS READY:", "- lookup {"):
        assert phrase in system
    assert [m.role for m in model.calls[1]["messages"]] == ["system", "user", "assistant", "user"]


def test_a_text_reply_in_tools_mode_is_read_with_the_text_protocol(lookup):
    model = FakeChatModel([ChatResult(text="REQUEST TEST: chest X-ray"),
                           ChatResult(text='{"name": "lookup", "arguments": {"query": "cough"}}'),
                           ChatResult(text="DIAGNOSIS READY: Community-acquired pneumonia")])
    record = play(GraphDoctor(model, max_turns=6), max_turns=6)
    assert types(record) == ["order_tests", "call_tool", "diagnose"] and record.outcome == "correct"
    assert record.events[1].tool.arguments == {"query": "cough"}


def test_read_reply():
    action, error, _ = read_reply("", [ToolCall(name="order_tests", arguments='{"tests": ["CBC"]}')])
    assert action == OrderTests(tests=["CBC"]) and error is None
    assert read_reply("EXAMINE: chest", [])[0] == Examine(system="chest")
    action, error, guesses = read_reply("", [ToolCall(name="diagnose", arguments='{"primary": "Gout", "confidence": 3}')])
    assert action is None and "confidence" in error and guesses == ["Gout"]
    action, error, _ = read_reply("", [ToolCall(name="lookup", arguments="{}")])
    assert action is None and "no function 'lookup'" in error  # not registered in this test
    assert read_reply("What brings you in?", [], forced=True)[1].startswith("this is the last turn")
    assert read_reply("Gout", [], forced=True)[0] == Diagnose(primary="Gout")
    assert action_line(CallTool(name="segment", arguments={"image_id": "ct"})) == 'CALL TOOL: segment {"image_id": "ct"}'


def test_pause_and_resume_mid_episode_from_another_doctor(lookup):
    saver = InMemorySaver()
    script = [call("ask", {"text": "What brings you in today?"}, "c1"),
              call("lookup", {"query": "cough"}, "c2"),
              call("order_tests", {"tests": ["CXR"]}, "c3"),
              call("diagnose", {"primary": "Community-acquired pneumonia"}, "c4")]
    first = GraphDoctor(FakeChatModel(script[:2]), max_turns=10, checkpointer=saver)
    room, scenario = clinic(), case()

    async def run():
        brief, _ = room.reset(scenario, seed=0)
        first.reset(brief, 0)
        step = await room.step(await first.act(brief))
        pending = await first.act(step.observation)  # turn 2 chosen; now a person pauses the episode
        paused = first.snapshot()
        assert paused["turn"] == 2 and paused["action"]["name"] == "lookup" and paused["waiting"]
        assert paused["next"] == ["wait"] and not paused["done"]

        second_model = FakeChatModel(script[2:])
        second = GraphDoctor(second_model, max_turns=10, checkpointer=saver)
        assert second.resume(first.thread_id) == pending
        step = await room.step(pending)
        assert (await second.act(step.observation)) == OrderTests(tests=["CXR"])
        sent = second_model.calls[0]["messages"]  # the whole conversation came back from the checkpoint
        assert sent[1].text().startswith("Case brief:") and sent[2].tool_calls[0].id == "c1"
        assert sent[-1].role == "tool" and sent[-1].tool_call_id == "c2" and "Tool lookup:" in sent[-1].text()
        assert "Turn 3 of 10" in sent[-1].text()
        step = await room.step(OrderTests(tests=["CXR"]))
        final = await second.act(step.observation)
        step = await room.step(final)
        assert step.terminated and room.record.outcome == "correct" and second.snapshot()["done"]
        with pytest.raises(AgentClinicError, match="over"):
            await second.act("more?")

    asyncio.run(run())
    with pytest.raises(AgentClinicError, match="no episode"):
        GraphDoctor(FakeChatModel(), checkpointer=saver).resume("no-such-thread")


def test_a_person_overrides_the_pending_action():
    model = FakeChatModel([call("ask", {"text": "Hello?"}, "c1"), "DIAGNOSIS READY: Community-acquired pneumonia"])
    doctor = GraphDoctor(model, max_turns=5)
    room, scenario = clinic(), case()

    async def run():
        brief, _ = room.reset(scenario, seed=0)
        doctor.reset(brief, 0)
        assert await doctor.act(brief) == Ask(text="Hello?")
        action = doctor.override("REQUEST TEST: CXR")
        assert action == OrderTests(tests=["CXR"]) and doctor.snapshot()["action"]["type"] == "order_tests"
        step = await room.step(action)
        assert isinstance(await doctor.act(step.observation), Diagnose)
        sent = model.calls[1]["messages"]
        assert sent[-2].role == "assistant" and sent[-2].text() == "REQUEST TEST: CXR" and not sent[-2].tool_calls
        assert sent[-1].role == "user" and "Test results" in sent[-1].text()

    asyncio.run(run())


def test_images_reach_a_vision_model_by_reference(tmp_path):
    from PIL import Image

    folder = tmp_path / "case"
    folder.mkdir()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(folder / "cxr.png")
    data = copy.deepcopy(MINIMAL)
    data["images"] = [{"id": "cxr", "asset": "cxr.png", "modality": "X-ray", "description": "Right lower lobe opacity."}]
    (folder / "case.yaml").write_text(json.dumps(data), encoding="utf-8")
    scenario = load_scenarios(folder / "case.yaml").scenarios[0]
    model = FakeChatModel([call("request_image", {}, "c1"), call("diagnose", {"primary": "Pneumonia"})],
                          supports_images=True)
    record = play(GraphDoctor(model, max_turns=4), scenario, max_turns=4)
    assert types(record) == ["request_image", "diagnose"]
    sent = model.calls[1]["messages"]
    assert sent[-2].role == "tool" and "(Attached: cxr (X-ray).)" in sent[-2].text()
    assert sent[-1].role == "user" and sent[-1].images()[0].url.startswith("data:image/png;base64,")
    text_only = FakeChatModel([call("request_image", {}), call("diagnose", {"primary": "Pneumonia"})])
    play(GraphDoctor(text_only, max_turns=4), scenario, max_turns=4)
    assert "cannot be shown" in text_only.calls[1]["messages"][-1].text()


def test_bias_and_history_window():
    model = FakeChatModel(default="Tell me more.")
    doctor = GraphDoctor(model, max_turns=6, history=1)
    doctor.reset("A 40-year-old woman with a cough.", 0, bias="You tend to settle on the first idea.")
    for observation in ("A 40-year-old woman with a cough.", "Patient: one", "Patient: two", "Patient: three"):
        asyncio.run(doctor.act(observation))
    sent = model.calls[-1]["messages"]
    assert "settle on the first idea" in sent[0].text()
    users = [m.text() for m in sent if m.role == "user"]  # the brief's turn, then the last turn only
    assert len(users) == 2 and users[0].startswith("Case brief: A 40") and users[1].startswith("Patient: three")


def test_graph_doctor_from_a_spec(monkeypatch):
    model = FakeChatModel()
    spec = "openai/fake@http://fake.invalid/v1"
    monkeypatch.setitem(backends_base._MODELS, spec, model)
    doctor = make_doctor(spec + "?mode=graph&retries=1&history=3", max_turns=12, settings=Settings(temperature=0.3))
    assert isinstance(doctor, GraphDoctor) and doctor.mode == "tools" and doctor.model is model
    assert (doctor.max_turns, doctor.retries, doctor.history_turns) == (12, 1, 3)
    assert doctor.settings.temperature == 0.3 and doctor.name == spec + "?mode=graph&retries=1&history=3"
    assert make_doctor(spec + "?mode=graph-text").mode == "text"
    with pytest.raises(ConfigError, match="retries"):
        make_doctor(spec + "?mode=tools&retries=2")
    with pytest.raises(ConfigError, match="mode"):
        GraphDoctor(model, mode="json")


def test_a_cli_run_with_the_graph_doctor_writes_its_calls_to_the_record(monkeypatch, tmp_path, lookup):
    from typer.testing import CliRunner

    from agentclinic.cli import app

    def doctor(messages, tools):  # ask, look up, diagnose: by the number of observations so far
        seen = sum(m.role in ("user", "tool") for m in messages)
        if seen == 1:
            return call("ask", {"text": "What brings you in today?"})
        if seen == 2:
            return call("lookup", {"query": "cough"})
        return call("diagnose", {"primary": "Community-acquired pneumonia"})

    spec = "openai/fake-graph@http://fake.invalid/v1"
    monkeypatch.setitem(backends_base._MODELS, spec, FakeChatModel(default=doctor))
    (tmp_path / "case.yaml").write_text(json.dumps(MINIMAL), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--scenarios", str(tmp_path / "case.yaml"), "--doctor",
                                      spec + "?mode=graph&retries=1", "--episodes", "2", "--concurrency", "2",
                                      "--doctor-bias", "recency", "--out", str(tmp_path / "runs"), "--run-id", "g"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "runs" / "g" / "episodes.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for record in records:
        assert record["outcome"] == "correct" and record["turns"] == 3 and record["error"] is None
        assert [e["action"]["type"] for e in record["events"]] == ["ask", "call_tool", "diagnose"]
        calls = [c for e in record["events"] for c in e["model_calls"] if c["role"] == "doctor"]
        assert [c["graph"]["turn"] for c in calls] == [1, 2, 3] and "recency" in json.dumps(record["extra"])
        assert "How you think in this consultation" in calls[0]["messages"][0]["content"]  # the rendered bias


# --------------------------------------------------------------------------------------------
# A real OpenAI-compatible server (llama.cpp serving SmolLM2-135M-Instruct): slow
# --------------------------------------------------------------------------------------------

from llama_server import llama_server  # noqa: E402,F401  (the session fixture)


@pytest.mark.slow
@pytest.mark.parametrize("options", ["", "&tool_choice=retrieve"])
def test_graph_doctor_plays_a_whole_episode_on_a_real_server(llama_server, options):  # noqa: F811
    """SmolLM2 (135M) is a poor doctor: whatever it chooses, the episode must end cleanly, every reply must
    be read or fed back, and every doctor call must be in the record. The built-in expert tools are offered
    as functions; with ``tool_choice=retrieve`` the server always answers with a call of the retrieval tool,
    so the expert-tool path runs over HTTP."""
    spec = f"openai/smollm2@{llama_server}?mode=graph&retries=1&history=1{options}"
    doctor = make_doctor(spec, max_turns=3, settings=Settings(max_tokens=48, timeout_s=600))
    scenario = load_scenarios(REPO / "scenarios" / "pulmonology" / "spontaneous-pneumothorax.yaml").scenarios[0]
    record = play(doctor, scenario, max_turns=3)
    assert record.error is None and record.outcome in ("correct", "incorrect", "no-diagnosis")
    assert 1 <= record.turns <= 3 and all(e.action is not None for e in record.events)
    for event in record.events:
        doctor_calls = [c for c in event.model_calls if c["role"] == "doctor"]
        assert 1 <= len(doctor_calls) <= 2 and all("graph" in c for c in doctor_calls)
        assert all(c["usage"]["prompt_tokens"] > 0 for c in doctor_calls)
    first = next(c for c in record.events[0].model_calls if c["role"] == "doctor")
    assert {"ask", "order_tests", "diagnose", "segment", "retrieve", "check_report"} <= set(first["tools"])
    if options:
        assert any(c["tool_calls"] and c["tool_calls"][0]["name"] == "retrieve"
                   for e in record.events for c in e.model_calls)
