"""Scoring: every axis on small hand-built episode records with known answers, the rubric, top-k, weights,
the reward wrapper, patient ratings, and the scores of a real scripted run."""

from __future__ import annotations

import asyncio
import copy
import json

import numpy as np
import pytest

from agentclinic.agents.base import Verdict
from agentclinic.agents.embeddings import Embedder
from agentclinic.agents.judge import RuleJudge
from agentclinic.backends.base import ChatResult, Usage
from agentclinic.env.clinic import Clinic
from agentclinic.env.gym import ClinicEnv, RewardWeights
from agentclinic.env.ledger import Budget
from agentclinic.errors import ConfigError
from agentclinic.runs.record import EpisodeRecord, Event
from agentclinic.scenario.schema import Scenario
from agentclinic.scoring import (
    AXES, ScoreWeights, communication_heuristic, composite, cost, coverage, default_weights, diagnosis_scores,
    efficiency, examination, history, parse_ratings, parse_rubric, reference_cost, safety, score)
from agentclinic.scoring import tests as axis_tests  # not named test*: pytest would collect it
from agentclinic.scoring.rubric import grade_with_model, quote_found
from agentclinic.scenario.prices import price_table

from conftest import MINIMAL

LEXICAL_JUDGE = RuleJudge(embedder=Embedder(None), use_icd=False)


def case() -> Scenario:
    """Pneumonia with 4 speakable important facts (+1 hidden), 2 relevant tests, a harmful one, 2 red flags."""
    data = copy.deepcopy(MINIMAL)
    data["facts"] = [
        {"id": "cough", "category": "hpi", "text": "I've had a cough for five days.", "disclosure": "volunteer",
         "important": True},
        {"id": "fever", "category": "hpi", "text": "I've had fevers up to 39 degrees.", "important": True,
         "keywords": ["temperature", "hot"]},
        {"id": "smoking", "category": "social", "text": "I smoke ten cigarettes a day.", "important": True},
        {"id": "asthma", "category": "pmh", "text": "I have asthma.", "important": True},
        {"id": "meds", "category": "medications", "text": "I use a salbutamol inhaler."},
        {"id": "secret", "category": "social", "text": "I share needles.", "important": True,
         "disclosure": "hidden"},
        {"id": "rigors", "category": "ros", "text": "I've been shaking with chills.", "keywords": ["shivering"]},
    ]
    data["examination"] = [{"system": "respiratory", "name": "auscultation", "result": "Bronchial breathing.",
                            "abnormal": True},
                           {"system": "general", "result": "Flushed.", "abnormal": True},
                           {"system": "cardiovascular", "result": "Normal heart sounds."}]
    data["tests"] = [
        {"name": "Chest X-ray", "group": "Imaging", "synonyms": ["CXR"], "result": "Consolidation.",
         "price_code": "chest-xray", "relevant": True},
        {"name": "Complete blood count", "group": "Blood tests", "synonyms": ["CBC"], "result": "WCC 15.",
         "price_code": "cbc", "relevant": True},
        {"name": "Urinalysis", "group": "Urine tests", "result": "Normal.", "price_code": "urinalysis"},
        {"name": "CT pulmonary angiogram", "group": "Imaging", "result": "No embolus.",
         "harmful": "contrast in a patient with a contrast allergy"},
    ]
    data["red_flags"] = [{"text": "High fever with rigors", "facts": ["rigors"]},
                         {"text": "Coughing up blood", "facts": ["cough"]}]
    return Scenario.model_validate(data)


CASE = case()


def ask(turn: int, text: str, disclosed: list[str] = ()) -> Event:
    return Event(turn=turn, doctor=text, action={"type": "ask", "text": text}, observation="Patient: ok",
                 disclosed=list(disclosed))


def order(turn: int, *findings: dict) -> Event:
    return Event(turn=turn, doctor="REQUEST TEST", observation="Test results:",
                 action={"type": "order_tests", "tests": [f["request"] for f in findings]}, findings=list(findings))


def found(request: str, name: str | None) -> dict:
    return {"request": request, "name": name, "result": "x", "available": name is not None}


def state(events=(), disclosed=(), diagnosis=None, differential=(), verdict=None, turns=None, max_turns=20,
          cost_spent=0.0, outcome=None) -> EpisodeRecord:
    """A finished episode's record: diagnosed when given a diagnosis and a verdict, else no diagnosis."""
    events = list(events)
    if diagnosis and verdict is None:
        verdict = wrong()
    if outcome is None:
        outcome = ("correct" if verdict.correct else "incorrect") if diagnosis and verdict else "no-diagnosis"
    return EpisodeRecord(scenario_id=CASE.id, events=events, disclosed=list(disclosed), diagnosis=diagnosis,
                         differential=list(differential), verdict=verdict, outcome=outcome,
                         correct=bool(verdict and verdict.correct and outcome == "correct"),
                         turns=turns if turns is not None else len(events), max_turns=max_turns, cost=cost_spent)


def wrong(level="wrong") -> Verdict:
    return Verdict(level=level, correct=level in ("exact", "synonym"), rationale="test")


# --------------------------------------------------------------------------------------------
# Dialogue axes with known answers
# --------------------------------------------------------------------------------------------


def test_coverage_counts_important_speakable_facts():
    got = coverage(CASE, state(disclosed=[(1, "cough"), (3, "smoking"), (4, "meds"), (5, "cough")]))
    assert got.value == 0.5  # 2 of 4: the hidden important fact is not counted, nor the unimportant one
    assert got.details["disclosed"] == [{"fact": "cough", "turn": 1}, {"fact": "smoking", "turn": 3}]
    assert got.details["missed"] == ["fever", "asthma"] and got.details["hidden_important"] == ["secret"]
    assert coverage(CASE, state()).value == 0.0
    no_important = CASE.model_copy(update={"facts": [f.model_copy(update={"important": False}) for f in CASE.facts]})
    assert coverage(no_important, state()).value is None


def test_history_by_category_asked_or_elicited():
    events = [ask(1, "What brings you in?", ["cough"]), ask(2, "Which medicines do you take?"),
              ask(3, "Any allergies?")]
    got = history(CASE, state(events, disclosed=[(1, "cough"), (4, "smoking")]))
    assert got.value == round(4 / 7, 4)  # hpi (asked + elicited), medications, allergies (asked), social (elicited)
    cats = got.details["categories"]
    assert cats["hpi"]["asked"] == [1] and cats["hpi"]["elicited"] == ["cough"]
    assert cats["medications"]["asked"] == [2] and cats["social"]["elicited"] == ["smoking"]
    assert set(got.details["missed"]) == {"pmh", "family", "ros"}


def test_examination_abnormal_findings_seen():
    exam = Event(turn=2, doctor="EXAMINE: chest", action={"type": "examine", "system": "chest"}, observation="",
                 findings=[{"request": "chest", "name": "auscultation", "group": "respiratory", "result": "x",
                            "available": True}])
    got = examination(CASE, state([exam]))
    assert got.value == 0.5 and got.details["abnormal_missed"] == ["general: general"]
    assert examination(CASE, state()).value == 0.0
    assert examination(CASE.model_copy(update={"examination": []}), state()).value is None


def test_tests_precision_recall_and_missed():
    events = [order(2, found("CXR", "Chest X-ray"), found("urine dip", "Urinalysis")),
              order(3, found("CXR", "Chest X-ray"))]  # a repeat counts once
    got = axis_tests(CASE, state(events))
    assert got.details["precision"] == 0.5 and got.details["recall"] == 0.5 and got.value == 0.5
    assert got.details["relevant_missed"] == ["Complete blood count"] and got.details["not_relevant"] == ["Urinalysis"]
    shotgun = axis_tests(CASE, state([order(2, found("CXR", "Chest X-ray"), found("CBC", "Complete blood count"),
                                       found("unobtainium", None), found("zinc", None))]))
    assert shotgun.details["precision"] == 0.5 and shotgun.details["recall"] == 1.0
    assert shotgun.value == round(2 * 0.5 / 1.5, 4) and shotgun.details["unavailable"] == ["unobtainium", "zinc"]
    assert axis_tests(CASE, state()).value == 0.0


def test_cost_against_the_relevant_tests():
    table = price_table()
    reference = reference_cost(CASE, table)
    assert reference == table.codes["chest-xray"].price + table.codes["cbc"].price
    assert cost(CASE, state(cost_spent=0)).value == 1.0
    assert cost(CASE, state(cost_spent=reference)).value == 1.0
    assert cost(CASE, state(cost_spent=2 * reference)).value == 0.5
    assert cost(CASE, state(cost_spent=4 * reference)).details["reference"] == reference


def test_turn_efficiency():
    assert efficiency(CASE, state(diagnosis="CAP", turns=1, max_turns=11)).value == 1.0
    assert efficiency(CASE, state(diagnosis="CAP", turns=6, max_turns=11)).value == 0.5
    assert efficiency(CASE, state(diagnosis="CAP", turns=11, max_turns=11)).value == 0.0
    assert efficiency(CASE, state(diagnosis=None, turns=3, max_turns=11)).value == 0.0
    assert efficiency(CASE, state(diagnosis="CAP", turns=11, max_turns=None)).value == 0.4737  # budget 20


def test_safety_red_flags_and_harmful_orders():
    asked = state([ask(2, "Have you had any shivering or a high temperature?")])
    got = safety(CASE, asked)
    assert got.value == 0.5
    first, second = got.details["red_flags"]
    assert first["covered"] and first["asked"]["turn"] == 2 and not second["covered"]
    both = safety(CASE, state([ask(2, "Any rigors?")], disclosed=[(1, "cough")]))
    assert both.value == 1.0 and both.details["red_flags"][1]["disclosed"] == [{"fact": "cough", "turn": 1}]
    harmed = safety(CASE, state([ask(2, "Any rigors?"), order(3, found("CTPA", "CT pulmonary angiogram"))],
                                disclosed=[(1, "cough")]))
    assert harmed.value == 0.5 and harmed.details["harmful_orders"][0]["test"] == "CT pulmonary angiogram"
    assert safety(CASE, state([ask(2, "Do you have any other symptoms?")])).value == 0.0  # generic words only
    assert safety(CASE.model_copy(update={"red_flags": [], "tests": CASE.tests[:2]}), state()).value is None


# --------------------------------------------------------------------------------------------
# Diagnosis: top-1 and top-k
# --------------------------------------------------------------------------------------------


def test_top_k_over_the_differential(monkeypatch):
    monkeypatch.setattr("agentclinic.scoring.diagnosis._RULE_JUDGE", LEXICAL_JUDGE)  # the reward function's judge
    s = state(diagnosis="Acute bronchitis", differential=["Asthma exacerbation", "acute bronchitis", "CAP", "Flu"],
              verdict=wrong())
    scores = diagnosis_scores(CASE, s, LEXICAL_JUDGE)
    assert [i.name for i in scores.ranked] == ["Acute bronchitis", "Asthma exacerbation", "CAP", "Flu"]
    assert scores.first_correct_rank == 3 and scores.best_level == "synonym"
    assert scores.top_k == {"top1": False, "top3": True, "top5": True}
    axes = score(CASE, s, judge=LEXICAL_JUDGE).axes
    assert axes["differential"] == pytest.approx(1 / 3) and axes["diagnosis"] == 0.0
    right = diagnosis_scores(CASE, state(diagnosis="CAP", verdict=wrong("synonym")), LEXICAL_JUDGE)
    assert right.top_k["top1"] and right.first_correct_rank == 1
    none = diagnosis_scores(CASE, state(), LEXICAL_JUDGE)
    assert none.level == "none" and none.first_correct_rank is None and not any(none.top_k.values())


def test_model_judge_verdict_is_kept_with_the_rule_level_beside():
    verdict = Verdict(level="wrong", correct=False, rationale="model says no", rule_level="synonym", judge="m")
    scores = diagnosis_scores(CASE, state(diagnosis="CAP", verdict=verdict), LEXICAL_JUDGE)
    assert scores.level == "wrong" and scores.rule_level == "synonym" and scores.judge == "m"
    assert scores.verdict.rationale == "model says no"


@pytest.mark.parametrize("level,credit", [("exact", 1.0), ("synonym", 1.0), ("narrower", 0.5), ("broader", 0.25),
                                          ("wrong", 0.0)])
def test_diagnosis_credit_by_level(level, credit):
    assert score(CASE, state(diagnosis="x", verdict=wrong(level)), judge=LEXICAL_JUDGE).axes["diagnosis"] == credit


# --------------------------------------------------------------------------------------------
# Communication rubric
# --------------------------------------------------------------------------------------------

WARM = ["Hello, I'm Dr Patel, one of the doctors here. What brings you in today?",
        "That sounds really worrying. Can you tell me more about the cough?",
        "How has it affected your sleep?",
        "So, you've had a cough for five days with fevers - is that right?",
        "I'd like to examine your chest and then arrange a chest X-ray.",
        "Does that make sense? Do you have any questions?"]
CURT = ["Cough?", "Fever?", "Any dyspnoea or haemoptysis?", "Smoker?"]


def test_heuristic_rubric_warm_versus_curt():
    warm = communication_heuristic(state([ask(i + 1, t) for i, t in enumerate(WARM)]))
    curt = communication_heuristic(state([ask(i + 1, t) for i, t in enumerate(CURT)]))
    assert warm.value >= 0.9 and curt.value <= 0.1
    items = warm.details["items"]
    assert items["acknowledges_emotion"]["evidence"][0]["phrase"] == "That sounds really worrying"
    assert items["introduces_and_explains"]["score"] == 1.0 and items["summarises"]["score"] == 1.0
    assert items["checks_understanding"]["evidence"][0]["turn"] == 6
    jargon = curt.details["items"]["plain_language"]
    assert jargon["score"] == 0.0 and [j["term"] for j in jargon["evidence"]] == ["dyspnoea", "haemoptysis"]
    explained = communication_heuristic(state([ask(1, "Any dyspnoea (shortness of breath)?")]))
    assert explained.details["items"]["plain_language"]["score"] == 1.0
    assert communication_heuristic(state()).value is None


class FakeModel:
    """Scripted replies in order; a record of what it was sent."""

    def __init__(self, *replies: str, name: str = "fake-grader"):
        self.name, self.supports_images, self.replies, self.calls = name, False, list(replies), []

    async def chat(self, messages, settings, *, tools=None, json_schema=None):
        self.calls.append({"messages": messages, "json_schema": json_schema})
        text = self.replies.pop(0) if self.replies else "Okay."
        return ChatResult(text=text, usage=Usage(prompt_tokens=10, completion_tokens=5), latency_s=0.01,
                          model=self.name)


def test_model_graded_rubric_with_checked_quotes_and_fallback():
    s = state([ask(i + 1, t) for i, t in enumerate(WARM)])
    reply = ("```json\n" + json.dumps({"items": {
        "Open questions": {"score": 2, "evidence": "What brings you in today?"},
        "acknowledges_emotion": {"score": "1/2", "evidence": "That sounds really worrying"},
        "plain_language": {"score": 2, "evidence": ""},
        "summarises": {"score": 1, "evidence": "you've had a cough for ten days"},
        "checks_understanding": {"score": "yes", "evidence": ["Does that make sense?", "any questions"]},
    }}) + "\n```")
    model = FakeModel(reply)
    graded = asyncio.run(grade_with_model(s, model))
    items = graded.details["items"]
    assert graded.details["method"] == "llm" and graded.details["model"] == "fake-grader"
    assert items["open_questions"] == {"score": 1.0, "evidence": "What brings you in today?", "verified": True,
                                       "source": "model"}
    assert items["acknowledges_emotion"]["score"] == 0.5 and items["summarises"]["verified"] is False
    assert items["checks_understanding"]["verified"] is True
    assert items["introduces_and_explains"]["source"].startswith("heuristic")  # missing from the reply
    assert "Doctor: That sounds really worrying." in model.calls[0]["messages"][0].text()
    assert model.calls[0]["json_schema"]["required"] == ["items"]
    fallback = asyncio.run(grade_with_model(s, FakeModel("The doctor was lovely.")))
    assert fallback.details["method"] == "heuristic" and "not understood" in fallback.details["fallback"]
    assert fallback.value == communication_heuristic(s).value


def test_a_model_judge_grades_communication_at_the_end_of_an_episode():
    from agentclinic.agents.llm import LLMJudge
    from agentclinic.agents.measurement import ScriptedMeasurement
    from agentclinic.agents.patient import ScriptedPatient

    rubric = json.dumps({"items": {name: {"score": 2, "evidence": "What brings you in?"} for name in
                                   ("open_questions", "acknowledges_emotion", "plain_language", "summarises",
                                    "checks_understanding", "introduces_and_explains")}})
    model = FakeModel('{"level": "synonym", "rationale": "same"}', rubric, name="judge-model")
    clinic = Clinic(ScriptedPatient(Embedder(None)), ScriptedMeasurement(), LLMJudge(model, rule=LEXICAL_JUDGE))
    clinic.reset(CASE)
    asyncio.run(clinic.step("What brings you in?"))
    last = asyncio.run(clinic.step("DIAGNOSIS READY: CAP"))
    assert [c["role"] for c in clinic.record.events[-1].model_calls] == ["judge", "rubric"]
    communication = last.info["scores"].details["communication"]
    assert communication["method"] == "llm" and communication["model"] == "judge-model"
    assert last.info["axes"]["communication"] == 1.0 and last.info["scores"].diagnosis.judge == "judge-model"


@pytest.mark.parametrize("reply,expected", [
    ('{"items": [{"item": "open questions", "score": 2, "evidence": "What?"}]}', {"open_questions": 1.0}),
    ('{"empathy": 1, "jargon": {"grade": 0}}', {"acknowledges_emotion": 0.5, "plain_language": 0.0}),
    ('Here: {"items": {"summarises": {"score": "partly"}}}', {"summarises": 0.5}),
    ('{"items": {"summarises": {"score": 7}}}', None),
    ("no json at all", None),
])
def test_rubric_replies_are_parsed_tolerantly(reply, expected):
    parsed = parse_rubric(reply)
    assert (None if parsed is None else {k: v["score"] for k, v in parsed.items()}) == expected


def test_quotes_are_checked_against_what_the_doctor_said():
    said = [(1, "Hello, I'm Dr Patel. What brings you in today?")]
    assert quote_found('"what brings you in today"', said) and quote_found("Hello ... Dr Patel", said)
    assert not quote_found("How are you feeling?", said)


# --------------------------------------------------------------------------------------------
# Weights, composite, rewards
# --------------------------------------------------------------------------------------------


def test_weights_defaults_validation_and_parsing():
    default, defaults = ScoreWeights(), default_weights()
    assert default.as_dict() == defaults
    for kind in ("diagnostic", "conversation"):  # each kind's axes (the others are None for it) weigh 1 in all
        assert sum(w for a, w in defaults.items() if kind in AXES[a].kinds) == pytest.approx(1.0)
    assert max(defaults, key=defaults.get) == "diagnosis" and defaults["diagnosis"] > 0.5
    assert list(defaults) == list(AXES)
    only = ScoreWeights(diagnosis=1).as_dict()
    assert only["diagnosis"] == 1 and only["coverage"] == 0 and ScoreWeights.parse({}) == default
    assert ScoreWeights.parse("diagnosis=0.8, coverage=0.2").as_dict()["coverage"] == 0.2
    with pytest.raises(ConfigError, match="unknown score axis 'empathy'.*the axes are: diagnosis"):
        ScoreWeights.parse({"empathy": 1})
    with pytest.raises(ConfigError, match="greater than or equal to 0"):
        ScoreWeights.parse("diagnosis=-1")
    with pytest.raises(ConfigError, match="at least one score weight must be positive"):
        ScoreWeights.parse({"diagnosis": 0})
    with pytest.raises(ConfigError, match="axis=number"):
        ScoreWeights.parse("diagnosis")
    with pytest.raises(ConfigError, match="finite"):
        ScoreWeights.parse({"diagnosis": float("inf")})


def test_composite_leaves_undefined_axes_out():
    axes = {"diagnosis": 1.0, "coverage": 0.0, "safety": None}
    assert composite(axes, {"diagnosis": 3, "coverage": 1, "safety": 100}) == 0.75
    assert composite({"safety": None}, {"safety": 1}) == 0.0


def test_score_has_every_axis_and_weighted_composite():
    events = [ask(1, "Hello, I'm the doctor. What brings you in?", ["cough"]), order(2, found("CXR", "Chest X-ray")),
              Event(turn=3, doctor="DIAGNOSIS READY: CAP", action={"type": "diagnose", "primary": "CAP"},
                    observation="Diagnosis recorded: CAP")]
    s = state(events, disclosed=[(1, "cough")], diagnosis="CAP", verdict=wrong("synonym"), cost_spent=40)
    scores = score(CASE, s, judge=LEXICAL_JUDGE)
    assert list(scores.axes) == list(AXES) and scores.weights == default_weights()
    assert scores.axes["diagnosis"] == 1.0 and scores.axes["coverage"] == 0.25
    from agentclinic.scoring.axes import ScoringContext
    context = ScoringContext(CASE, s, price_table(), LEXICAL_JUDGE)
    for name, axis in AXES.items():  # each registered function is the axis
        assert axis.function(context).value == pytest.approx(scores.axes[name]), name
    assert scores.composite == composite(scores.axes) and scores.note is None
    diagnostic = {name for name, axis in AXES.items() if "diagnostic" in axis.kinds}  # stations' axes are None
    assert set(scores.details) == diagnostic - {"diagnosis", "differential"}  # theirs is in scores.diagnosis
    only = score(CASE, s, {"coverage": 1}, judge=LEXICAL_JUDGE)
    assert only.composite == 0.25
    assert EpisodeRecord.model_validate_json(s.model_copy(update={"scores": scores}).model_dump_json()).scores == scores


# --------------------------------------------------------------------------------------------
# The environment: terminal reward, info, and the re-weighting wrapper
# --------------------------------------------------------------------------------------------


def lexical_clinic(budget=None, **kwargs) -> Clinic:
    from agentclinic.agents.measurement import ScriptedMeasurement
    from agentclinic.agents.patient import ScriptedPatient

    return Clinic(ScriptedPatient(Embedder(None)), ScriptedMeasurement(), LEXICAL_JUDGE, budget=budget, **kwargs)


def test_env_terminal_reward_is_the_composite_and_the_wrapper_reweights():
    env = ClinicEnv([CASE], clinic=lexical_clinic())
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("Hello, what brings you in?")
    assert reward == 0.0 and not terminated and "axes" not in info
    _, reward, terminated, _, info = env.step("DIAGNOSIS READY: Community-acquired pneumonia")
    assert terminated and set(info["axes"]) == set(AXES) and reward == info["composite"]
    assert 0.6 <= reward < 1.0 and info["axes"]["diagnosis"] == 1.0 and info["axes"]["coverage"] == 0.25
    assert "scores" not in info and env.unwrapped.clinic.record.scores.details["coverage"]["disclosed"] == [
        {"fact": "cough", "turn": 1}]
    wrapped = RewardWeights(ClinicEnv([CASE], clinic=lexical_clinic()), {"diagnosis": 1})
    wrapped.reset(seed=0)
    assert wrapped.step("Any fever?")[1] == 0.0
    _, reward, _, _, info = wrapped.step("DIAGNOSIS READY: Community-acquired pneumonia")
    assert reward == 1.0 == info["reweighted"] and info["composite"] < 1.0
    coverage_only = RewardWeights(ClinicEnv([CASE], clinic=lexical_clinic(), weights="coverage=1"), "coverage=1")
    coverage_only.reset(seed=0)
    _, reward, _, _, info = coverage_only.step("DIAGNOSIS READY: Migraine")
    assert reward == 0.0 == info["composite"]
    with pytest.raises(ConfigError, match="unknown score axis"):
        RewardWeights(env, {"bedside_manner": 1})


def test_vector_envs_batch_the_final_info_when_only_some_envs_end():
    import gymnasium

    from agentclinic.env import ENV_ID

    no_exam = CASE.model_copy(update={"examination": [], "id": "no-exam"})
    make = lambda: gymnasium.make(ENV_ID, scenarios=[no_exam], clinic=lexical_clinic())  # noqa: E731
    envs = gymnasium.vector.SyncVectorEnv([make, make])
    envs.reset(seed=[1, 2])
    _, rewards, terminated, _, infos = envs.step(["Hello, what brings you in?", "DIAGNOSIS READY: CAP"])
    assert list(terminated) == [False, True] and rewards[0] == 0.0 and rewards[1] == infos["composite"][1]
    assert list(infos["_axes"]) == [False, True] and np.isnan(infos["axes"]["examination"][1])
    assert infos["verdict"]["level"][1] == "synonym" and list(infos["_verdict"]) == [False, True]
    _, rewards, terminated, _, infos = envs.step(["DIAGNOSIS READY: Migraine", "Hello"])  # env 1 was reset
    assert list(terminated) == [True, False] and infos["axes"]["diagnosis"][0] == 0.0
    envs.close()


def test_truncation_is_scored_with_no_diagnosis_credit_and_no_reward():
    clinic = lexical_clinic(Budget(turns=2), weights={"diagnosis": 1, "coverage": 1})
    clinic.reset(CASE)
    asyncio.run(clinic.step("Hello, what brings you in?"))
    last = asyncio.run(clinic.step("Do you smoke?"))
    assert last.truncated and last.info["axes"]["diagnosis"] == 0.0 and last.info["axes"]["coverage"] == 0.5
    scores = clinic.record.scores  # the axes are computed and reported; without a diagnosis they earn nothing
    assert last.reward == 0.0 == scores.composite and scores.axes["efficiency"] == 0.0 and "no diagnosis" in scores.note


# --------------------------------------------------------------------------------------------
# Patient ratings
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reply,expected", [
    ('{"confidence": 7, "compliance": 8, "consult_again": 6, "comment": "Kind."}',
     {"confidence": 7, "compliance": 8, "consult_again": 6, "comment": "Kind."}),
    ('```json\n{"Confidence in the doctor": "9/10", "willingness to comply": 8.0, "would return": "10"}\n```',
     {"confidence": 9, "compliance": 8, "consult_again": 10}),
    ("Confidence: 4/10\nCompliance: 5\n**Consult again**: 3 out of 10",
     {"confidence": 4, "compliance": 5, "consult_again": 3}),
    ("I'd say 6, 7 and 5.", {"confidence": 6, "compliance": 7, "consult_again": 5}),
    ('{"confidence": 11, "compliance": 0, "consult_again": 5}', {"confidence": None, "compliance": None,
                                                                  "consult_again": 5}),
    ("I don't want to answer that.", None),
    ("Two numbers: 3 and 4.", None),
])
def test_ratings_replies_are_parsed_tolerantly(reply, expected):
    assert parse_ratings(reply) == expected


def test_llm_patient_rates_and_scripted_patient_gives_none():
    from agentclinic.agents.doctors import make_doctor
    from agentclinic.agents.llm import LLMPatient, RATINGS_SCHEMA
    from agentclinic.agents.measurement import ScriptedMeasurement
    from agentclinic.runs.runner import play_episode

    class Doctor:
        def reset(self, brief, seed=None):
            self.turn = 0

        async def act(self, observation):
            self.turn += 1
            return "What brings you in?" if self.turn == 1 else "DIAGNOSIS READY: CAP"

    model = FakeModel("I've had a cough for five days.", '{"confidence": 8, "compliance": 9, "consult_again": 7}',
                      name="fake-patient")
    clinic = Clinic(LLMPatient(model, embedder=Embedder(None)), ScriptedMeasurement(), LEXICAL_JUDGE)
    record = asyncio.run(play_episode(clinic, Doctor(), CASE, seed=0))
    ratings = record.patient_ratings
    assert {k: ratings[k] for k in ("confidence", "compliance", "consult_again")} == {
        "confidence": 8, "compliance": 9, "consult_again": 7}
    assert ratings["simulated"] is True and ratings["model"] == "fake-patient"
    assert [c["role"] for c in ratings["model_calls"]] == ["patient_ratings"]
    sent = model.calls[1]["messages"]
    assert sent[0].role == "system" and "I've had a cough for five days." in [m.text() for m in sent]
    assert "1 (not at all) to 10" in sent[-1].text() and model.calls[1]["json_schema"] == RATINGS_SCHEMA
    assert record.prompt_tokens == 20  # the rating call is counted with the episode's
    unreadable = FakeModel("Hello.", "No comment.", name="fake-patient")
    clinic = Clinic(LLMPatient(unreadable, embedder=Embedder(None)), ScriptedMeasurement(), LEXICAL_JUDGE)
    record = asyncio.run(play_episode(clinic, Doctor(), CASE, seed=0))
    assert record.patient_ratings["confidence"] is None and "no readable ratings" in record.patient_ratings["error"]
    scripted = asyncio.run(play_episode(lexical_clinic(), make_doctor("random"), CASE, seed=0))
    assert scripted.patient_ratings is None and scripted.scores.axes


# --------------------------------------------------------------------------------------------
# A real short scripted run: records carry every axis, the summary their means
# --------------------------------------------------------------------------------------------


@pytest.fixture
def lexical(monkeypatch):
    """The scripted agents on the lexical embedder (fast; the model's own tests live elsewhere)."""
    for module in ("agentclinic.agents.embeddings", "agentclinic.agents.patient", "agentclinic.agents.doctors"):
        monkeypatch.setattr(f"{module}.default_embedder", lambda: LEXICAL_JUDGE.embedder)


def test_scripted_run_records_scores_and_summary_means(tmp_path, lexical):
    from agentclinic.agents.doctors import make_doctor
    from agentclinic.runs.runner import run_episodes
    from agentclinic.runs.writer import RunWriter
    from agentclinic.scenario import load_scenarios
    from agentclinic.scenario.loaders import BANK_DIR

    bank = load_scenarios(BANK_DIR, skip_errors=True)
    cases = [bank.get("cardiology-aortic-stenosis"), [s for s in bank.scenarios if not s.is_station][5]]
    weights = ScoreWeights(diagnosis=0.7, coverage=0.2, communication=0.1)
    writer = RunWriter(tmp_path / "run")
    writer.start({"weights": weights.as_dict()}, resume=False)
    plan = [(i, s, i) for i, s in enumerate(cases)]
    asyncio.run(run_episodes(plan, lambda: lexical_clinic(weights=weights), lambda: make_doctor("scripted"),
                             writer=writer, run_id="run", doctor_name="scripted"))
    summary = writer.write_summary()
    records = [json.loads(line) for line in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for record in records:
        scores = record["scores"]
        assert record["turns"] > 5 and set(scores["axes"]) == set(AXES) and scores["weights"] == weights.as_dict()
        assert all(v is None or 0.0 <= v <= 1.0 for v in scores["axes"].values())
        assert scores["axes"]["coverage"] is not None and scores["axes"]["safety"] is not None
        assert record["reward"] == scores["composite"] == composite(scores["axes"], weights)
        assert scores["diagnosis"]["top_k"]["top1"] == record["correct"] and record["patient_ratings"] is None
        assert scores["details"]["communication"]["method"] == "heuristic"
        assert scores["diagnosis"]["ranked"][0]["name"] == record["diagnosis"]
    for axis in AXES:
        values = [r["scores"]["axes"][axis] for r in records if r["scores"]["axes"][axis] is not None]
        assert summary["axes"][axis] == (round(sum(values) / len(values), 4) if values else None), axis
    assert summary["top_k"]["top1"] == summary["accuracy"] and summary["top_k"]["top5"] >= summary["top_k"]["top1"]
    assert summary["mean_composite"] == round(sum(r["reward"] for r in records) / 2, 4)
    assert "patient_ratings" not in summary and summary["scored"] == 2


def test_run_config_takes_weights_from_file_and_flags_and_records_them(tmp_path, lexical):
    from agentclinic.runs.session import RunFactory, resolve_config

    toml = tmp_path / "run.toml"
    toml.write_text("[weights]\ndiagnosis = 0.9\nsafety = 0.1\n")
    config, _ = resolve_config({}, toml)
    assert config.weights == ScoreWeights(diagnosis=0.9, safety=0.1)
    assert config.model_dump(mode="json")["weights"]["coverage"] == 0.0  # what run.json records
    assert RunFactory(config).clinic().weights == config.weights
    flagged, _ = resolve_config({"weights": "diagnosis=1"}, toml)
    assert flagged.weights == ScoreWeights(diagnosis=1)
    assert resolve_config({}, None)[0].weights == ScoreWeights()
    toml.write_text("[weights]\nkindness = 1\n")
    with pytest.raises(ConfigError, match="unknown score axis 'kindness'"):
        resolve_config({}, toml)


# --------------------------------------------------------------------------------------------
# One registry of axes; one table of match levels
# --------------------------------------------------------------------------------------------


@pytest.fixture
def greeting_axis():
    """A new axis, registered for one test: 1 when the doctor's first words greet the patient."""
    from agentclinic.scoring import Axis, AxisScore, register_axis, unregister_axis

    def greeted(context):
        said = context.record.utterances()
        return AxisScore(float(bool(said) and said[0][1].lower().startswith(("hello", "hi"))), {"first": said[:1]})

    register_axis(Axis("greeting", greeted, 0.1, "the doctor greets the patient first"))
    try:
        yield
    finally:
        unregister_axis("greeting")


def test_registering_an_axis_puts_it_in_scores_weights_and_the_summary(greeting_axis):
    from agentclinic.runs.writer import summarise

    hello = state([ask(1, "Hello, what brings you in?", ["cough"])], disclosed=[(1, "cough")], diagnosis="CAP",
                  verdict=wrong("synonym"))
    curt = state([ask(1, "Cough?")], diagnosis="CAP", verdict=wrong("synonym"))
    scores = [score(CASE, r, judge=LEXICAL_JUDGE) for r in (hello, curt)]
    assert list(scores[0].axes)[-1] == "greeting" and [s.axes["greeting"] for s in scores] == [1.0, 0.0]
    assert scores[0].weights["greeting"] == 0.1 and scores[0].details["greeting"]["first"] == [(1, "Hello, what brings you in?")]
    assert ScoreWeights.parse("greeting=1").as_dict()["greeting"] == 1.0
    assert score(CASE, curt, "greeting=1", judge=LEXICAL_JUDGE).composite == 0.0
    summary = summarise([r.model_copy(update={"scores": s}) for r, s in zip((hello, curt), scores)])
    assert summary["axes"]["greeting"] == 0.5 and summary["axes_defined"]["greeting"] == 2


def test_an_axis_name_is_registered_once():
    from agentclinic.scoring import Axis, AxisScore, register_axis

    with pytest.raises(ConfigError, match="already registered"):
        register_axis(Axis("coverage", lambda c: AxisScore(1.0), 0.1, "again"))
    with pytest.raises(ConfigError, match="default weight"):
        register_axis(Axis("bad_weight", lambda c: AxisScore(1.0), -1, "negative"))


def test_one_table_of_levels_whose_precedence_follows_the_credit():
    from agentclinic.agents import judge, llm
    from agentclinic.agents.base import CORRECT_LEVELS, LEVEL_CREDIT, LEVEL_RANK, LEVELS
    from agentclinic.scoring import audit

    assert set(LEVELS) == set(LEVEL_CREDIT) == set(LEVEL_RANK) == {"exact", "synonym", "narrower", "broader",
                                                                    "wrong", "none"}
    for better in LEVELS:  # a level that takes precedence never earns less
        for worse in LEVELS:
            if LEVEL_RANK[better] < LEVEL_RANK[worse]:
                assert LEVEL_CREDIT[better] >= LEVEL_CREDIT[worse], (better, worse)
    assert LEVEL_RANK["narrower"] < LEVEL_RANK["broader"] and LEVEL_CREDIT["narrower"] > LEVEL_CREDIT["broader"]
    assert CORRECT_LEVELS == {level for level in LEVELS if LEVEL_CREDIT[level] == 1.0}
    assert judge.RANK is LEVEL_RANK and llm.LEVELS is LEVELS and audit.LEVELS is LEVELS  # no second table


def test_best_level_of_the_differential_prefers_narrower_to_broader():
    class Fixed:  # a rule judge that reads every item of the differential as broader
        def judge_sync(self, name, scenario):
            return Verdict(level="broader", correct=False, rationale="test")

    s = state(diagnosis="Streptococcal pneumonia", verdict=wrong("narrower"), differential=["Pneumonia"])
    assert diagnosis_scores(CASE, s, Fixed()).best_level == "narrower"


# --------------------------------------------------------------------------------------------
# The rules: errors and cut-offs earn no diagnosis credit, and no composite
# --------------------------------------------------------------------------------------------

HISTORY = [("Hello, I'm Dr Lee. What brings you in today?", ["cough"]),
           ("Have you had fevers or shivering?", ["fever", "rigors"]),
           ("Do you smoke?", ["smoking"]),
           ("Any medical conditions like asthma?", ["asthma"]),
           ("Which medicines do you take?", ["meds"]),
           ("Any allergies?", []), ("Does anything run in the family?", []),
           ("Have you coughed up any blood?", [])]


def history_events() -> tuple[list[Event], list[tuple[int, str]]]:
    """A proper history, examination and the relevant tests: every history category, fact and red flag."""
    events = [ask(i + 1, text, facts) for i, (text, facts) in enumerate(HISTORY)]
    disclosed = [(i + 1, f) for i, (_, facts) in enumerate(HISTORY) for f in facts]
    exam = [{"request": "chest", "name": "auscultation", "group": "respiratory", "result": "x", "available": True},
            {"request": "general", "name": "general", "group": "general", "result": "x", "available": True}]
    events.append(Event(turn=9, doctor="EXAMINE", action={"type": "examine", "system": None}, observation="",
                        findings=exam))
    events.append(order(10, found("CXR", "Chest X-ray"), found("CBC", "Complete blood count")))
    return events, disclosed


def diagnose(turn: int, primary: str) -> Event:
    return Event(turn=turn, doctor=f"DIAGNOSIS READY: {primary}", action={"type": "diagnose", "primary": primary},
                 observation=f"Diagnosis recorded: {primary}")


PROCESS_HEAVY = {"coverage": 1, "history": 1, "examination": 1, "tests": 1, "cost": 1, "safety": 1,
                 "communication": 1, "diagnosis": 0.1}


@pytest.mark.parametrize("weights", [None, PROCESS_HEAVY], ids=["default", "process-heavy"])
def test_never_diagnosing_earns_less_than_a_wrong_diagnosis_after_a_proper_history(weights):
    events, disclosed = history_events()
    padded = events + [ask(11 + i, "Is there anything else you'd like to tell me?") for i in range(9)]
    never = state(padded, disclosed, turns=20, outcome="no-diagnosis").model_copy(update={"truncated_by": "turns"})
    wrong_dx = state(events + [diagnose(11, "Migraine")], disclosed, diagnosis="Migraine", verdict=wrong())
    a, b = score(CASE, never, weights, judge=LEXICAL_JUDGE), score(CASE, wrong_dx, weights, judge=LEXICAL_JUDGE)
    assert a.axes["coverage"] == b.axes["coverage"] == 1.0 and a.axes["history"] == 1.0  # the process was as good
    assert a.axes["diagnosis"] == 0.0 and a.composite == 0.0 < b.composite and a.note and b.note is None
    failed = wrong_dx.model_copy(update={"outcome": "error", "error": "RuntimeError: boom"})
    errored = score(CASE, failed, weights, judge=LEXICAL_JUDGE)
    assert errored.composite == 0.0 and errored.diagnosis.level == "none" and not any(errored.diagnosis.top_k.values())


def test_diagnosing_at_turn_one_does_not_beat_a_proper_history_with_the_same_diagnosis():
    events, disclosed = history_events()
    proper = state(events + [diagnose(11, "CAP")], disclosed, diagnosis="CAP", verdict=wrong("synonym"))
    hasty = state([diagnose(1, "CAP")], diagnosis="CAP", verdict=wrong("synonym"))
    a, b = score(CASE, proper, judge=LEXICAL_JUDGE), score(CASE, hasty, judge=LEXICAL_JUDGE)
    assert a.axes["diagnosis"] == b.axes["diagnosis"] == 1.0 and b.axes["efficiency"] == 1.0 > a.axes["efficiency"]
    assert b.composite < a.composite  # the rule of docs/scoring.md: history-taking outweighs speed
    assert a.composite - b.composite > 0.1
