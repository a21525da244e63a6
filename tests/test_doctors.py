"""Doctors without a language model: scripted, random, human; and make_doctor."""

from __future__ import annotations

import asyncio
import builtins
from pathlib import Path

import pytest

from agentclinic.env.actions import ACTION_TYPES, Ask, CallTool, Diagnose, Examine, OrderTests, parse_action
from agentclinic.agents.base import Doctor
from agentclinic.agents.doctors import (
    GREETING, HISTORY_QUESTIONS, HumanDoctor, RandomDoctor, ScriptedDoctor, chunks_of, is_negative, make_doctor)
from agentclinic.agents.embeddings import Embedder, default_embedder
from agentclinic.knowledge import knowledge_base

LEXICAL = Embedder(None)  # fast and deterministic; the model is exercised in the slow test


@pytest.fixture(autouse=True)
def no_expert_tools(monkeypatch):
    """The knowledge-base reasoning is tested without expert tools (whatever is registered); the tests of
    the scripted doctor's tool use give it their own."""
    monkeypatch.setattr("agentclinic.agents.doctors.TOOLS", {})


class FakeClinic:
    """Answers each action type with canned text, as the real environment words it."""

    def __init__(self, brief: str, answers: dict[str, str], exam: list[str], results: dict[str, str],
                 default_answer: str = "No, nothing like that.", max_turns: int = 20, tools: dict | None = None):
        self.brief, self.answers, self.exam, self.results = brief, answers, exam, results
        self.default_answer, self.max_turns = default_answer, max_turns
        self.tools = tools or {}  # tool name -> function(arguments) -> result text
        self.actions: list = []

    def reply(self, action) -> str:
        if isinstance(action, Ask):
            text = action.text.lower()
            hit = next((v for k, v in self.answers.items() if k in text), self.default_answer)
            return f"Patient: {hit}"
        if isinstance(action, Examine):
            return "Examination:\n" + "\n".join(f"- {line}" for line in self.exam)
        if isinstance(action, OrderTests):
            lines = [f"- {name}: {next((v for k, v in self.results.items() if k in name.lower()), 'normal')}"
                     for name in action.tests]
            return "Test results:\n" + "\n".join(lines)
        if isinstance(action, CallTool):
            if action.name not in self.tools:
                return f"Error: unknown tool {action.name!r}"
            return f"Tool {action.name}: {self.tools[action.name](action.arguments)}"
        return "Error: this case has no images"

    async def play(self, doctor, seed: int | None = 0):
        doctor.reset(self.brief, seed)
        observation = self.brief
        for _ in range(self.max_turns):
            action = parse_action(await doctor.act(observation))
            self.actions.append(action)
            if isinstance(action, Diagnose):
                return action
            observation = self.reply(action)
        return None


def gout_clinic(**kwargs) -> FakeClinic:
    return FakeClinic(
        "A 52-year-old man presents with a painful foot. Take a history, examine and diagnose.",
        {"brings": "My big toe is agonisingly painful, red and swollen. It woke me up in the night.",
         "start": "It came on suddenly overnight, the worst pain I've ever had.",
         "describe": "It's throbbing and I can't bear even the bedsheet touching it.",
         "alcohol": "I drink a lot of beer at weekends.",
         "medications": "I take a water tablet for my blood pressure."},
        ["Right first metatarsophalangeal joint: hot, red, swollen and exquisitely tender",
         "Temperature 37.2 C"],
        {"urate": "0.62 mmol/L (high)", "aspiration": "needle-shaped negatively birefringent crystals",
         "c-reactive": "raised at 60 mg/L"}, **kwargs)


def pneumonia_clinic() -> FakeClinic:
    return FakeClinic(
        "A 67-year-old woman with a cough and fever.",
        {"brings": "I've had a cough with green phlegm and a high fever for four days.",
         "other symptoms": "I get short of breath and it hurts on the right side when I breathe in.",
         "fevers": "Yes, fevers and shaking chills."},
        ["Temperature 38.9 C, respiratory rate 26", "Chest: bronchial breathing and crackles at the right base"],
        {"chest x-ray": "right lower lobe consolidation", "c-reactive": "raised at 180 mg/L",
         "blood count": "white cells 18 x10^9/L (high), neutrophilia"})


def play(clinic: FakeClinic, doctor, seed: int | None = 0):
    return asyncio.run(clinic.play(doctor, seed))


# ------------------------------------------------------------------------------- scripted doctor

def test_knowledge_base_has_the_diseases_these_tests_use():
    names = {d.name for d in knowledge_base()}
    assert {"Gout", "Pseudogout", "Septic arthritis", "Community-acquired pneumonia"} <= names


def test_scripted_doctor_takes_history_examines_orders_tests_and_diagnoses():
    clinic = gout_clinic()
    doctor = ScriptedDoctor(embedder=LEXICAL)
    assert isinstance(doctor, Doctor)
    diagnosis = play(clinic, doctor)
    actions = clinic.actions
    assert isinstance(diagnosis, Diagnose) and len(actions) <= 19
    assert actions[0] == Ask(text=GREETING)
    kinds = [type(a).__name__ for a in actions]
    first_exam, first_test = kinds.index("Examine"), kinds.index("OrderTests")
    assert kinds[:first_exam] == ["Ask"] * first_exam and first_exam >= 10  # the history comes first
    assert first_exam < first_test < len(actions) - 1 and kinds[-1] == "Diagnose"
    asked = " ".join(a.text.lower() for a in actions if isinstance(a, Ask))
    for topic in ("start", "describe", "spread", "other symptoms", "better or worse", "medical conditions",
                  "medications", "smoke", "alcohol", "drugs", "work", "travel", "family", "fever", "weight"):
        assert topic in asked, topic
    ordered = [t for a in actions if isinstance(a, OrderTests) for t in a.tests]
    assert len(ordered) == len(set(ordered)) and all(len(a.tests) <= 4 for a in actions if isinstance(a, OrderTests))
    kb_tests = {t.test for d in knowledge_base() for t in d.tests}
    assert set(ordered) <= kb_tests  # canonical knowledge-base names
    assert {"Serum urate", "Joint aspiration"} & set(ordered)  # the leading hypothesis is tested
    assert diagnosis.primary == "Gout"
    assert 2 <= len(diagnosis.differential) <= 4 and "Gout" not in diagnosis.differential
    assert 0 < diagnosis.confidence <= 1


def test_a_longer_budget_covers_every_history_topic():
    clinic = gout_clinic(max_turns=30)
    play(clinic, ScriptedDoctor(embedder=LEXICAL, max_turns=30, max_questions=len(HISTORY_QUESTIONS)))
    asked = [a.text for a in clinic.actions if isinstance(a, Ask)]
    assert asked[:len(HISTORY_QUESTIONS)] == [q for _, _, q in HISTORY_QUESTIONS]
    assert any("allergies" in q for q in asked) and any("family" in q for q in asked)
    assert any(q.startswith("Have you had any") for q in asked[len(HISTORY_QUESTIONS):])  # targeted questions


def test_scripted_doctor_diagnoses_pneumonia():
    diagnosis = play(pneumonia_clinic(), ScriptedDoctor(embedder=LEXICAL))
    assert diagnosis.primary == "Community-acquired pneumonia"


@pytest.mark.slow
def test_scripted_doctor_with_the_embedding_model_ranks_gout_first():
    embedder = default_embedder()
    if not embedder.available:
        pytest.skip("the sentence-embedding model is not installed")
    doctor = ScriptedDoctor(embedder=embedder)
    diagnosis = play(gout_clinic(), doctor)
    assert diagnosis.primary == "Gout"
    assert {"Pseudogout", "Septic arthritis", "Reactive arthritis"} & set(diagnosis.differential)
    assert doctor.last_ranking.diseases[0].name == "Gout"
    assert play(pneumonia_clinic(), doctor).primary == "Community-acquired pneumonia"


def test_results_re_rank_the_hypotheses():
    doctor = ScriptedDoctor(embedder=LEXICAL)
    doctor.reset("A 40-year-old man with a hot swollen knee.", 0)
    asyncio.run(doctor.act(doctor.brief))
    before = doctor.rank().diseases[:3]
    doctor.pending = ["Joint aspiration"]
    asyncio.run(doctor.act("Test results:\n- Synovial fluid: positively birefringent rhomboid crystals of "
                           "calcium pyrophosphate"))
    assert doctor.results and doctor.results[0][1].startswith("Joint aspiration:")  # paired with the order
    after = doctor.rank().diseases
    assert after[0].name == "Pseudogout" and before != after[:3]


def test_scripted_doctor_is_deterministic_under_a_seed():
    runs = []
    for _ in range(2):
        clinic = gout_clinic()
        play(clinic, ScriptedDoctor(embedder=LEXICAL), seed=7)
        runs.append([a.model_dump() for a in clinic.actions])
    assert runs[0] == runs[1]
    doctor = ScriptedDoctor(embedder=LEXICAL)  # and a doctor reused across episodes
    first, second = gout_clinic(), gout_clinic()
    play(first, doctor, seed=7)
    play(second, doctor, seed=7)
    assert [a.model_dump() for a in first.actions] == [a.model_dump() for a in second.actions] == runs[0]


@pytest.mark.parametrize("max_turns", [2, 3, 5, 8, 12, 20, 30])
@pytest.mark.parametrize("max_questions", [0, 3, 14, 50])
def test_scripted_doctor_diagnoses_within_the_turn_budget(max_turns, max_questions):
    clinic = gout_clinic(max_turns=max_turns)
    diagnosis = play(clinic, ScriptedDoctor(embedder=LEXICAL, max_turns=max_turns, max_questions=max_questions))
    assert isinstance(diagnosis, Diagnose)
    assert len(clinic.actions) <= max(1, max_turns - 1)
    asks_before_exam = 0
    for action in clinic.actions:
        if not isinstance(action, Ask):
            break
        asks_before_exam += 1
    assert asks_before_exam <= max(max_questions, 1 if max_turns > 2 else 0)


def test_max_questions_sets_the_length_of_the_history():
    clinic = gout_clinic()
    play(clinic, ScriptedDoctor(embedder=LEXICAL, max_questions=4))
    assert [type(a).__name__ for a in clinic.actions[:5]] == ["Ask"] * 4 + ["Examine"]
    with pytest.raises(ValueError):
        ScriptedDoctor(max_turns=1)


def test_scripted_doctor_copes_with_errors_and_odd_observations():
    class Broken(FakeClinic):
        def reply(self, action):
            return "Error: something went wrong" if not isinstance(action, Ask) else "???"
    clinic = Broken("", {}, [], {})
    diagnosis = play(clinic, ScriptedDoctor(embedder=LEXICAL))
    assert isinstance(diagnosis, Diagnose) and diagnosis.primary
    assert len(clinic.actions) <= 19


def test_the_brief_is_not_counted_twice():
    doctor = ScriptedDoctor(embedder=LEXICAL)
    doctor.reset("A 30-year-old woman with a rash.", 1)
    asyncio.run(doctor.act("A 30-year-old woman with a rash."))
    assert doctor.observations == ["A 30-year-old woman with a rash."] and doctor.sex == "female"


def test_observation_parsing():
    assert chunks_of("Examination:\n- Chest: crackles at the right base. Heart sounds normal.") == [
        "Chest: crackles at the right base.", "Heart sounds normal."]
    assert is_negative("No fever.") and is_negative("I don't smoke") and is_negative("Troponin: normal")
    assert not is_negative("Serum urate: 0.62 mmol/L (normal range 0.2-0.42), high")
    assert not is_negative("My big toe is swollen")


# ------------------------------------------------------------------ scripted doctor: expert tools

RETRIEVAL = ("1. Pseudogout (M11.20), score 0.74 [kb]: Calcium pyrophosphate crystals in a large joint.\n"
             "2. Gout (M10.9), score 0.70 [kb]: Urate crystals in the big toe.\n"
             "3. Unknown thing (Z99.9), score 0.52 [icd10]: not in the knowledge base.\n"
             "4. Septic arthritis (M00.9), score 0.50 [kb]: A hot swollen joint with fever.")


def retrieval_clinic(queries: list | None = None, **kwargs) -> FakeClinic:
    def retrieve(arguments):
        if queries is not None:
            queries.append(arguments)
        return RETRIEVAL
    return gout_clinic(tools={"retrieve": retrieve}, **kwargs)


def test_scripted_doctor_looks_up_its_findings_before_diagnosing(monkeypatch):
    monkeypatch.setattr("agentclinic.agents.doctors.TOOLS", {"retrieve": object()})
    queries: list = []
    clinic = retrieval_clinic(queries)
    doctor = ScriptedDoctor(embedder=LEXICAL)
    diagnosis = play(clinic, doctor)
    kinds = [type(a).__name__ for a in clinic.actions]
    assert kinds[-2:] == ["CallTool", "Diagnose"] and kinds.count("CallTool") == 1 and len(kinds) <= 20
    query = queries[0]["query"]
    assert clinic.actions[-2] == CallTool(name="retrieve", arguments={"query": query, "k": 10})
    assert "big toe" in query and "nothing like that" not in query and len(query) <= 900
    assert query.index("big toe") < query.index("urate")  # what the patient said first, then the results
    assert [d.name for d in doctor.retrieved] == ["Pseudogout", "Gout", "Septic arthritis"]
    assert doctor.tool_log == [{"turn": len(kinds) - 1, "tool": "retrieve", "arguments": {"query": query, "k": 10},
                                "text": RETRIEVAL, "hits": ["Pseudogout", "Gout", "Septic arthritis"]}]
    assert diagnosis.primary == "Gout"  # a small weight: the retrieval does not overturn a clear leader


@pytest.mark.parametrize("weight, primary", [(0.0, "Gout"), (5.0, "Pseudogout")])
def test_the_retrieval_ranking_is_fused_with_the_knowledge_base_ranking(monkeypatch, weight, primary):
    monkeypatch.setattr("agentclinic.agents.doctors.TOOLS", {"retrieve": object()})
    doctor = ScriptedDoctor(embedder=LEXICAL, retrieval_weight=weight)
    diagnosis = play(retrieval_clinic(), doctor)
    assert diagnosis.primary == primary and primary not in diagnosis.differential
    assert doctor.last_ranking.diseases[0].name == "Gout"  # the knowledge-base ranking itself is unchanged


@pytest.mark.parametrize("max_turns", [2, 3, 5, 8, 20])
def test_the_lookup_fits_the_turn_budget(monkeypatch, max_turns):
    monkeypatch.setattr("agentclinic.agents.doctors.TOOLS", {"retrieve": object()})
    clinic = retrieval_clinic(max_turns=max_turns)
    diagnosis = play(clinic, ScriptedDoctor(embedder=LEXICAL, max_turns=max_turns))
    assert isinstance(diagnosis, Diagnose) and len(clinic.actions) <= max_turns
    assert isinstance(clinic.actions[-2], CallTool) and clinic.actions[-2].name == "retrieve"


def test_without_the_tool_or_when_it_fails_the_doctor_carries_on(monkeypatch):
    plain = gout_clinic()
    play(plain, ScriptedDoctor(embedder=LEXICAL))  # nothing registered: no tool calls at all
    assert not any(isinstance(a, CallTool) for a in plain.actions)
    monkeypatch.setattr("agentclinic.agents.doctors.TOOLS", {"retrieve": object()})
    broken = gout_clinic()  # the tool is registered but the clinic answers with an error
    doctor = ScriptedDoctor(embedder=LEXICAL)
    diagnosis = play(broken, doctor)
    assert diagnosis.primary == "Gout" and doctor.retrieved is None
    assert doctor.tool_log[-1]["error"].startswith("Error: unknown tool")
    assert [a.model_dump() for a in broken.actions[:-2]] == [a.model_dump() for a in plain.actions[:-1]]
    assert play(gout_clinic(), ScriptedDoctor(embedder=LEXICAL, use_tools=False)) == diagnosis


def _tool_case(tmp_path, image: bool = True):
    """The minimal pneumonia case with a CT-like image (a dark oval on grey) and its X-ray as a radiology report."""
    import copy

    import numpy as np
    import yaml
    from PIL import Image

    from conftest import MINIMAL
    from agentclinic.scenario import load_scenarios

    data = copy.deepcopy(MINIMAL)
    data["doctor_brief"] = "A 40-year-old woman with a cough. Review her images, assess and diagnose."
    data["tests"][0]["result"] = ("FINDINGS: Dense consolidation in the right lower lobe with air bronchograms. "
                                  "No pleural effusion. IMPRESSION: Right lower lobe consolidation.")
    if image:
        pixels = np.full((64, 64), 160, np.uint8)
        yy, xx = np.mgrid[:64, :64]
        pixels[((yy - 30) / 9) ** 2 + ((xx - 34) / 12) ** 2 <= 1] = 40
        Image.fromarray(pixels).save(tmp_path / "chest.png")
        data["images"] = [{"id": "chest", "asset": "chest.png", "modality": "CT", "description": "Axial slice."}]
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_scenarios(tmp_path / "case.yaml").scenarios[0]


def _real_clinic(**kwargs):
    from agentclinic.agents.judge import RuleJudge
    from agentclinic.agents.measurement import ScriptedMeasurement
    from agentclinic.agents.patient import ScriptedPatient
    from agentclinic.env.clinic import Clinic

    return Clinic(ScriptedPatient(embedder=LEXICAL), ScriptedMeasurement(), RuleJudge(embedder=LEXICAL), **kwargs)


@pytest.mark.parametrize("policy", ["on-request", "upfront"])
def test_scripted_doctor_segments_the_images_and_checks_the_reports(monkeypatch, tmp_path, policy):
    import agentclinic.tools.report_check  # noqa: F401  (registers check_report)
    import agentclinic.tools.segmentation  # noqa: F401  (registers segment)
    from agentclinic.runs.runner import play_episode
    from agentclinic.tools import TOOLS

    monkeypatch.setattr("agentclinic.agents.doctors.TOOLS", {k: TOOLS[k] for k in ("segment", "check_report")})
    case = _tool_case(tmp_path)
    doctor = ScriptedDoctor(embedder=LEXICAL, max_questions=4)
    record = asyncio.run(play_episode(_real_clinic(image_policy=policy), doctor, case, seed=0, out_dir=tmp_path / "out"))
    assert record.error is None and record.outcome == "correct"
    kinds = [e.action["type"] for e in record.events]
    assert kinds.count("request_image") == (1 if policy == "on-request" else 0)
    tools = [e.tool for e in record.events if e.tool]
    assert [t.name for t in tools] == ["segment", "check_report"] and not any(t.error for t in tools)
    segment, check = tools
    assert segment.arguments == {"image_id": "chest"} and segment.data["mode"] == "automatic"
    assert segment.data["area_px"] > 100 and Path(segment.data["overlay_path"]).is_file()
    assert check.arguments == {"test": "Chest X-ray"} and "suspected error" in check.text
    assert record.tool_metrics["calls"] == {"check_report": 1, "segment": 1}
    assert [t["tool"] for t in doctor.tool_log] == ["segment", "check_report"] and doctor.tool_log[0]["text"]
    assert any(s.startswith("Segmented chest") for s in doctor.clinical)  # folded in as weak evidence


class FakeRetrieve:
    """A stand-in for the retrieval tool in the registry (same arguments, same answer format)."""

    name = "retrieve"
    description = "Look up diseases."

    def __init__(self):
        from agentclinic.tools import ToolArguments

        class Arguments(ToolArguments):
            query: str
            k: int = 5

        self.Arguments = Arguments
        self.queries: list[str] = []

    async def run(self, arguments, context):
        from agentclinic.tools import ToolResult

        self.queries.append(arguments.query)
        return ToolResult(text="1. Acute bronchitis (J20.9), score 0.71 [kb]: cough\n"
                               "2. Community-acquired pneumonia (J18.9), score 0.69 [kb]: fever and cough",
                          data={"hits": [{"disease": "Acute bronchitis"}, {"disease": "Community-acquired pneumonia"}]})


def _retrieve_episode(monkeypatch, tmp_path, tool):
    from agentclinic.runs.runner import play_episode
    from agentclinic.tools import TOOLS

    monkeypatch.setitem(TOOLS, "retrieve", tool)
    monkeypatch.setattr("agentclinic.agents.doctors.TOOLS", {"retrieve": tool})
    doctor = ScriptedDoctor(embedder=LEXICAL, max_questions=4)
    record = asyncio.run(play_episode(_real_clinic(), doctor, _tool_case(tmp_path, image=False), seed=0))
    assert record.error is None and record.outcome == "correct"
    events = [e for e in record.events if e.tool]
    assert len(events) == 1 and events[0].turn == record.turns - 1 and events[0].action["type"] == "call_tool"
    assert events[0].tool.name == "retrieve" and not events[0].tool.error
    assert events[0].tool.arguments == {"query": doctor.retrieval_query(), "k": 10}
    assert record.tool_metrics["calls"] == {"retrieve": 1} and record.events[-1].action["type"] == "diagnose"
    return record, events[0], doctor


def test_scripted_doctor_records_retrieve_calls(monkeypatch, tmp_path):
    tool = FakeRetrieve()
    record, event, doctor = _retrieve_episode(monkeypatch, tmp_path, tool)
    assert "cough" in tool.queries[0] and "Bronchial breathing" in tool.queries[0]
    assert event.tool.data["hits"][0] == {"disease": "Acute bronchitis"}
    assert [d.name for d in doctor.retrieved] == ["Acute bronchitis", "Community-acquired pneumonia"]


@pytest.mark.slow
def test_scripted_doctor_with_the_real_retrieval_tool(monkeypatch, tmp_path):
    from agentclinic.tools.retrieval import RetrieveTool

    record, event, doctor = _retrieve_episode(monkeypatch, tmp_path, RetrieveTool())
    hits = event.tool.data["hits"]
    names, codes = {h["disease"] for h in hits}, {h.get("icd10") for h in hits}
    assert hits and doctor.retrieved is not None  # the KB diseases among the hits, by name or code
    assert all(d.name in names or d.icd10 in codes for d in doctor.retrieved)


# --------------------------------------------------------------------------------- random doctor

def _random_run(seed: int, max_turns: int = 20):
    clinic = gout_clinic(max_turns=max_turns)
    play(clinic, RandomDoctor(max_turns=max_turns), seed=seed)
    return clinic.actions


def test_random_doctor_is_deterministic_and_valid():
    runs = [_random_run(seed) for seed in range(12)]
    assert [a.model_dump() for a in runs[3]] == [a.model_dump() for a in _random_run(3)]
    assert len({tuple(str(a.model_dump()) for a in run) for run in runs}) > 6  # seeds differ
    names = {d.name for d in knowledge_base()}
    tests = {t.test for d in knowledge_base() for t in d.tests}
    for run in runs:
        assert all(isinstance(a, ACTION_TYPES) for a in run)
        assert all(parse_action(a.model_dump()) == a for a in run)
        assert isinstance(run[-1], Diagnose) and run[-1].primary in names and len(run) <= 19
        assert all(set(a.tests) <= tests for a in run if isinstance(a, OrderTests))
    kinds = {type(a).__name__ for run in runs for a in run}
    assert {"Ask", "Examine", "OrderTests", "Diagnose"} <= kinds


def test_random_doctor_respects_a_short_budget():
    for seed in range(5):
        assert len(_random_run(seed, max_turns=4)) <= 3


# ---------------------------------------------------------------------------------- human doctor

def test_human_doctor_reads_injected_input():
    typed = iter(["", "   ", "  What brings you in today?  ", "DIAGNOSIS READY: Gout"])
    shown, prompts = [], []

    def read(prompt):
        prompts.append(prompt)
        return next(typed)

    doctor = HumanDoctor(input_fn=read, output_fn=shown.append)
    doctor.reset("A 52-year-old man with a painful toe.", 0)
    first = asyncio.run(doctor.act("A 52-year-old man with a painful toe."))
    assert first == "What brings you in today?" and prompts == ["Doctor> "] * 3
    assert shown[0] == HumanDoctor.HELP and shown[1] == "A 52-year-old man with a painful toe."
    second = asyncio.run(doctor.act("Patient: My big toe hurts."))
    assert parse_action(second) == Diagnose(primary="Gout")
    assert shown[2:] == ["Patient: My big toe hurts."]  # the help is shown once


def test_human_doctor_defaults_to_input_and_print(monkeypatch, capsys):
    monkeypatch.setattr(builtins, "input", lambda prompt: "EXAMINE")
    doctor = make_doctor("human")
    assert isinstance(doctor, HumanDoctor) and isinstance(doctor, Doctor)
    assert parse_action(asyncio.run(doctor.act("Patient: hello"))) == Examine()
    assert "Patient: hello" in capsys.readouterr().out


# ---------------------------------------------------------------------------------- make_doctor

def test_make_doctor_builds_each_kind_with_options():
    assert isinstance(make_doctor("scripted"), ScriptedDoctor)
    assert isinstance(make_doctor(" Random "), RandomDoctor)
    doctor = make_doctor("scripted:max_questions=6, max_turns=30")
    assert (doctor.max_questions, doctor.max_turns) == (6, 30)
    assert make_doctor("random:p_diagnose=0.5").p_diagnose == 0.5
    assert make_doctor("scripted").use_tools and not make_doctor("scripted:use_tools=false").use_tools
    assert make_doctor("scripted:retrieval_weight=0.3").retrieval_weight == 0.3


@pytest.mark.parametrize("spec, message", [
    ("llm", "known doctors: scripted, random, human"),
    ("", "known doctors"),
    ("scripted:max_questions", "key=value"),
    ("scripted:bogus=1", "invalid options"),
])
def test_make_doctor_errors_name_the_known_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        make_doctor(spec)
