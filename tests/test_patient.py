"""The scripted patient: controlled disclosure, no leaks, determinism, both matchers."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import numpy as np
import pytest

# agents.base and the env import each other: importing the env first resolves the cycle.
from agentclinic.agents import patient as patient_module
from agentclinic.agents.embeddings import Embedder, default_embedder
from agentclinic.agents.patient import DENY, GREETED_AGAIN, NO_RESULTS, UNSURE, ScriptedPatient
from agentclinic.scenario import Scenario, load_scenarios
from agentclinic.scenario.loaders import ScenarioSet

BANK = Path(__file__).resolve().parents[1] / "scenarios"

EXTRA_FACTS = [
    {"id": "fever", "category": "hpi", "text": "I've had fevers up to 39 degrees.", "keywords": ["temperature"]},
    {"id": "smoking", "category": "social", "text": "I don't smoke and I hardly drink.", "keywords": ["cigarettes"]},
    {"id": "allergies", "category": "allergies", "text": "Penicillin gives me a rash."},
    {"id": "meds", "category": "medications", "text": "I only take the contraceptive pill."},
    {"id": "family", "category": "family", "text": "My mother has asthma and my father had a heart attack."},
    {"id": "previous", "category": "pmh",
     "text": "Two years ago my GP said I had community-acquired pneumonia and gave me antibiotics.",
     "keywords": ["before", "previous episodes", "ever had this"]},
    {"id": "dx-only", "category": "pmh", "text": "Community-acquired pneumonia.", "keywords": ["diagnosis"]},
    {"id": "xray-result", "category": "other", "text": "The X-ray showed right lower lobe consolidation.",
     "keywords": ["x-ray", "results", "scan"]},
    {"id": "pond", "category": "social", "disclosure": "hidden",
     "text": "I went swimming in a dirty pond last week and swallowed a lot of water.",
     "keywords": ["swimming", "pond", "water", "exposure"]},
]
HIDDEN_QUESTIONS = [
    "Did you go swimming in a pond?", "Have you been swimming recently?", "Did you swallow any pond water?",
    "Any unusual water exposure?", "Where did you go last week?", "Have you been in any lakes, rivers or ponds?",
    "I went swimming in a dirty pond last week and swallowed a lot of water.",
    "Did you go swimming in a dirty pond last week and swallow a lot of water?",
]


def case(scenario_data: dict, **changes) -> Scenario:
    data = {**scenario_data, **changes}
    data["facts"] = [scenario_data["facts"][0], *EXTRA_FACTS]
    return Scenario.model_validate(data)


def talk(patient: ScriptedPatient, *messages: str, start: int = 0):
    return [asyncio.run(patient.reply(m, start + i)) for i, m in enumerate(messages)]


@pytest.fixture(scope="module")
def model() -> Embedder:
    embedder = default_embedder()
    if not embedder.available:
        pytest.skip("all-MiniLM-L6-v2 is not installed; the lexical tests still run")
    return embedder


@pytest.fixture(params=["model", "lexical"])
def embedder(request) -> Embedder:
    return request.getfixturevalue("model") if request.param == "model" else Embedder(None)


@pytest.fixture(scope="module")
def bank():
    bank = load_scenarios(BANK)
    return ScenarioSet([s for s in bank if s.kind == "diagnostic"], bank.errors)  # stations: test_emotional_patient.py


# The model's checks over the bank use a few scenarios (embedding every case's facts takes a
# while on a small CPU); the lexical matcher checks every scenario of the bank.
MODEL_SUBSET = ("cardiology-inferior-stemi", "pulmonology-copd-exacerbation", "infectious-disease-lyme-facial-palsy",
                "psychiatry-anorexia-nervosa")


def scenarios_for(embedder: Embedder, bank) -> list[Scenario]:
    if not embedder.available:
        return list(bank)
    return [s for s in bank if s.id in MODEL_SUBSET]


def mentions_diagnosis(text: str, scenario: Scenario) -> list[str]:
    """Names of the diagnosis found in text (acronyms case-sensitively, the rest in any case)."""
    found = []
    for name in scenario.diagnosis.names():
        acronym = len(name) <= 5 and sum(c.isupper() for c in name) >= 2
        flags = 0 if acronym else re.IGNORECASE
        body = r"[\s-]+".join(re.escape(w) for w in re.split(r"[\s-]+", name))
        if re.search(rf"(?<![\w-]){body}(?![\w-])", text, flags):
            found.append(name)
    return found


# --- greeting and open questions -----------------------------------------------------------


@pytest.mark.parametrize("greeting", ["Hello, what brings you in today?", "Hi there.", "Good morning, doctor!",
                                      "How can I help?", "Tell me about it.", "What seems to be the problem?",
                                      "Hello, I'm Dr Jones. What brings you to the clinic today?"])
def test_greeting_or_open_question_gives_the_volunteer_facts_only(scenario_data, embedder, greeting):
    patient = ScriptedPatient(embedder)
    patient.reset(case(scenario_data), seed=0)
    reply = asyncio.run(patient.reply(greeting, 0))
    assert reply.disclosed == ["cough"]
    assert reply.text == "I've had a cough for five days."
    assert patient.disclosures == [(0, "cough")]


def test_a_later_greeting_gets_a_short_line_not_the_facts_again(scenario_data, embedder):
    patient = ScriptedPatient(embedder)
    patient.reset(case(scenario_data), seed=0)
    first, again = talk(patient, "Hello!", "Hello again.")
    assert first.disclosed == ["cough"]
    assert again.disclosed == [] and again.text in GREETED_AGAIN
    assert patient.disclosures == [(0, "cough")]


def test_a_greeting_with_a_question_answers_both(scenario_data, embedder):
    patient = ScriptedPatient(embedder)
    patient.reset(case(scenario_data), seed=0)
    reply = asyncio.run(patient.reply("Hi, do you smoke?", 0))
    assert reply.disclosed == ["cough", "smoking"]
    assert "I don't smoke" in reply.text and "cough for five days" in reply.text


def test_several_volunteer_facts_come_out_together(scenario_data, embedder):
    data = {**scenario_data, "facts": [*scenario_data["facts"]]}
    data["facts"][1] = {**data["facts"][1], "disclosure": "volunteer"}
    patient = ScriptedPatient(embedder)
    patient.reset(Scenario.model_validate(data))
    reply = asyncio.run(patient.reply("What brings you in?", 3))
    assert reply.disclosed == ["cough", "f2"]
    assert patient.disclosures == [(3, "cough"), (3, "f2")]


# --- on-ask facts ----------------------------------------------------------------------------


QUESTIONS = [("Do you smoke?", "smoking"), ("Any allergies?", "allergies"),
             ("Are you allergic to anything?", "allergies"),
             ("What medications do you take?", "meds"), ("Have you had a fever?", "fever"),
             ("Does anyone in your family have heart problems?", "family"),
             ("Have you had any previous episodes like this?", "previous")]


@pytest.mark.parametrize(("question", "fact"), QUESTIONS)
def test_an_on_ask_fact_is_said_when_asked_about_and_not_before(scenario_data, embedder, question, fact):
    patient = ScriptedPatient(embedder)
    patient.reset(case(scenario_data), seed=0)
    greeting, reply = talk(patient, "Hello, what brings you in?", question)
    assert fact not in greeting.disclosed
    assert reply.disclosed[0] == fact
    assert (1, fact) in patient.disclosures


def test_several_questions_in_one_message_are_each_answered(scenario_data, embedder):
    patient = ScriptedPatient(embedder)
    patient.reset(case(scenario_data), seed=0)
    reply = asyncio.run(patient.reply("Do you smoke? Any allergies? What medications do you take?", 2))
    assert reply.disclosed == ["smoking", "allergies", "meds"]
    assert reply.text == ("I don't smoke and I hardly drink. Penicillin gives me a rash. "
                          "I only take the contraceptive pill.")
    assert patient.disclosures == [(2, "smoking"), (2, "allergies"), (2, "meds")]


@pytest.mark.parametrize("question", ["Do you own a boat?", "Have you ever been to Japan?", "Do you play the piano?"])
def test_an_unrelated_yes_no_question_gets_a_first_person_no(scenario_data, embedder, question):
    patient = ScriptedPatient(embedder)
    patient.reset(case(scenario_data), seed=0)
    reply = asyncio.run(patient.reply(question, 1))
    assert reply.disclosed == []
    assert reply.text in DENY
    assert patient.disclosures == []


@pytest.mark.parametrize("question", ["What's your favourite colour?", "Which football team do you support?"])
def test_an_unrelated_open_question_gets_i_am_not_sure(scenario_data, embedder, question):
    patient = ScriptedPatient(embedder)
    patient.reset(case(scenario_data), seed=0)
    reply = asyncio.run(patient.reply(question, 1))
    assert reply.disclosed == [] and reply.text in UNSURE


def test_acknowledgements_and_statements_disclose_nothing(scenario_data, embedder):
    patient = ScriptedPatient(embedder)
    patient.reset(case(scenario_data), seed=0)
    for reply in talk(patient, "Okay, thank you.", "I'm going to listen to your heart now.", "I see."):
        assert reply.disclosed == [] and reply.text == "Okay."
    assert asyncio.run(patient.reply("   ", 9)).text.startswith("Sorry")


# --- things the patient never says -----------------------------------------------------------


def test_hidden_facts_never_leak_however_they_are_asked(scenario_data, embedder):
    patient = ScriptedPatient(embedder)
    patient.reset(case(scenario_data), seed=0)
    for turn, question in enumerate(HIDDEN_QUESTIONS):
        reply = asyncio.run(patient.reply(question, turn))
        assert "pond" not in reply.disclosed
        assert "pond" not in reply.text.lower() and "swimming" not in reply.text.lower()
    everything = asyncio.run(patient.reply(" ".join(f"{q}" for q in HIDDEN_QUESTIONS), 99))
    assert "pond" not in everything.disclosed
    assert all(fact != "pond" for _, fact in patient.disclosures)


def test_hidden_facts_of_bank_scenarios_never_leak_even_asked_verbatim(bank, embedder):
    patient = ScriptedPatient(embedder)
    checked = 0
    for scenario in bank:
        hidden = [f for f in scenario.facts if f.disclosure.value == "hidden"]
        if not hidden:
            continue
        patient.reset(scenario, seed=1)
        for fact in hidden:
            for turn, question in enumerate([fact.text, f"Is it true that {fact.text.rstrip('.')}?", *fact.keywords]):
                reply = asyncio.run(patient.reply(question, turn))
                assert fact.id not in reply.disclosed
                assert fact.text not in reply.text
            checked += 1
        assert not {f.id for f in hidden} & {fid for _, fid in patient.disclosures}
    assert checked >= 1


def test_the_diagnosis_is_never_said_even_when_a_fact_contains_it(scenario_data, embedder):
    scenario = case(scenario_data)
    patient = ScriptedPatient(embedder)
    patient.reset(scenario, seed=0)
    reply = asyncio.run(patient.reply("Have you had any previous episodes like this?", 0))
    assert reply.disclosed == ["previous"]
    assert reply.text == "Two years ago my GP said I had it and gave me antibiotics."
    questions = ["Do you have community-acquired pneumonia?", "What's your diagnosis?", "Is it CAP?",
                 "What did your GP say you had two years ago?", "Community-acquired pneumonia?",
                 "What do you think is wrong with you?", "Have you been told your diagnosis?"]
    for turn, question in enumerate(questions, 1):
        reply = asyncio.run(patient.reply(question, turn))
        assert not mentions_diagnosis(reply.text, scenario), (question, reply.text)
        assert "dx-only" not in reply.disclosed  # a fact that is only the diagnosis is never said


def test_the_patient_does_not_read_out_test_results(scenario_data, embedder):
    scenario = case(scenario_data)
    patient = ScriptedPatient(embedder)
    patient.reset(scenario, seed=0)
    for turn, question in enumerate(["What did the X-ray show?", "Have you had an X-ray?", "Any test results?",
                                     "The X-ray showed right lower lobe consolidation?"]):
        reply = asyncio.run(patient.reply(question, turn))
        assert "xray-result" not in reply.disclosed
        assert "consolidation" not in reply.text.lower()
    reply = asyncio.run(patient.reply("What did your chest X-ray show?", 9))
    assert reply.text in NO_RESULTS


def test_no_bank_scenario_names_its_diagnosis_whatever_is_asked(bank, embedder):
    patient = ScriptedPatient(embedder)
    questions = ["Hello, what brings you in?", "What do you think is going on?", "Have you had this before?",
                 "What is your diagnosis?", "What did your doctor say it was?", "Any past medical history?"]
    for scenario in scenarios_for(embedder, bank):
        patient.reset(scenario, seed=0)
        asked = questions + [scenario.diagnosis.name + "?"]
        if not embedder.available:  # every fact asked back verbatim (cheap without a model)
            asked += [f.text for f in scenario.facts]
        for turn, question in enumerate(asked):
            reply = asyncio.run(patient.reply(question, turn))
            assert not mentions_diagnosis(reply.text, scenario), (scenario.id, question, reply.text)


# --- the disclosure log and determinism -----------------------------------------------------


def test_disclosure_log_records_each_fact_once_at_its_first_turn(scenario_data, embedder):
    patient = ScriptedPatient(embedder)
    patient.reset(case(scenario_data), seed=0)
    replies = talk(patient, "Hello, what brings you in?", "Do you own a boat?", "Do you smoke?", "Do you smoke?",
                   "Have you had a fever? Any allergies?", "What brings you in?")
    assert patient.disclosures == [(0, "cough"), (2, "smoking"), (4, "fever"), (4, "allergies")]
    assert replies[3].disclosed == ["smoking"]  # said again, logged once
    assert replies[5].disclosed == []
    patient.reset(case(scenario_data), seed=0)
    assert patient.disclosures == []


def test_replies_are_deterministic_for_a_seed(scenario_data, embedder):
    messages = ["Do you own a boat?", "What's your favourite colour?", "Do you smoke?", "Any trouble sleeping?",
                "Do you like jazz?", "What's the weather like?"] * 4

    def run(seed: int) -> list[str]:
        patient = ScriptedPatient(embedder)
        patient.reset(case(scenario_data), seed=seed)
        return [r.text for r in talk(patient, *messages)]

    assert run(7) == run(7)
    assert run(7) != run(8)  # the no-match lines vary with the seed (and the turn)


def test_reply_before_reset_is_an_error():
    with pytest.raises(RuntimeError):
        asyncio.run(ScriptedPatient(Embedder(None)).reply("Hello", 0))


# --- the bank, with the real model and with the lexical fallback ----------------------------


BANK_QUESTIONS = {
    "cardiology-inferior-stemi": [("Do you smoke?", "smoking"), ("Any allergies?", "allergies"),
                                  ("What medications do you take?", "meds"),
                                  ("Does anyone in your family have heart problems?", "family"),
                                  ("Have you had a fever?", "ros-negatives"),
                                  ("Does the pain spread to your arm or jaw?", "radiation")],
    "pulmonology-copd-exacerbation": [("Do you smoke?", "smoking"), ("Any allergies?", "allergies"),
                                      ("What medications do you take?", "meds"),
                                      ("Have you had a fever?", "no-high-fever"),
                                      ("Any chest pain?", "no-pleuritic-pain")],
}
UNRELATED = ["Do you own a boat?", "Do you play the piano?", "Can you speak French?", "Do you collect stamps?",
             "Do you like jazz?", "What is the capital of France?"]


@pytest.mark.parametrize("scenario_id", sorted(BANK_QUESTIONS))
def test_bank_questions_reach_the_right_fact(bank, embedder, scenario_id):
    patient = ScriptedPatient(embedder)
    patient.reset(bank.get(scenario_id), seed=0)
    for turn, (question, fact) in enumerate(BANK_QUESTIONS[scenario_id]):
        reply = asyncio.run(patient.reply(question, turn))
        assert reply.disclosed and reply.disclosed[0] == fact, (question, reply.disclosed)


def test_unrelated_questions_disclose_nothing_in_any_bank_scenario(bank, embedder):
    patient = ScriptedPatient(embedder)
    for scenario in scenarios_for(embedder, bank):
        patient.reset(scenario, seed=0)
        for turn, question in enumerate(UNRELATED):
            reply = asyncio.run(patient.reply(question, turn))
            assert reply.disclosed == [], (scenario.id, question, reply.text)


def test_default_thresholds_depend_on_the_matcher(model):
    assert ScriptedPatient(model).threshold == patient_module.EMBEDDING_THRESHOLD
    assert ScriptedPatient(Embedder(None)).threshold == patient_module.LEXICAL_THRESHOLD
    assert ScriptedPatient(Embedder(None), threshold=0.9).threshold == 0.9


def test_imported_facts_are_said_in_the_first_person(medqa_file, embedder):
    scenario = load_scenarios(medqa_file).get("medqa-001")
    patient = ScriptedPatient(embedder)
    patient.reset(scenario, seed=0)
    hello, smoke, when = talk(patient, "Hello, what brings you in?", "Do you smoke?", "When did this start?")
    assert hello.text == "I've had drooping eyelids."
    assert "It's been going on for two months." in when.text  # onset is a fact of its own
    social = next(f for f in scenario.facts if f.category.value == "social")
    assert smoke.disclosed == [social.id] and smoke.text == social.text


# --- caching and speed -----------------------------------------------------------------------


class CountingModel:
    """A stand-in sentence model: deterministic vectors from a hash of the words, counting calls."""

    def __init__(self):
        self.texts: list[str] = []

    def encode(self, texts, **kwargs):
        self.texts += list(texts)
        vectors = []
        for text in texts:
            vector = np.zeros(384, np.float32)
            for word in re.findall(r"[a-z]+", text.lower()):
                vector[hash(word) % 384] += 1.0
            vectors.append(vector / (np.linalg.norm(vector) or 1.0))
        return np.stack(vectors)


def test_a_scenarios_facts_are_embedded_once(scenario_data, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTCLINIC_CACHE", str(tmp_path))  # an empty disk cache: the first patient embeds
    model = CountingModel()
    embedder = Embedder(model)
    scenario = case(scenario_data)
    patient = ScriptedPatient(embedder)
    patient.reset(scenario)
    first = len(model.texts)
    assert first > 0
    index = patient.index
    ScriptedPatient(embedder).reset(scenario)  # another patient on the same embedder shares the index
    patient.reset(case(scenario_data), seed=3)  # an equal scenario object: same index, no new embeddings
    assert len(model.texts) == first and patient.index is index
    asyncio.run(patient.reply("Do you smoke?", 0))
    asyncio.run(patient.reply("Do you smoke?", 1))
    assert model.texts[first:] == ["do you smoke"]  # the question once, then from the cache
    assert not any("pond" in t for t in model.texts)  # hidden facts are never even embedded


def test_replies_are_fast_after_warm_up(bank, embedder):
    patient = ScriptedPatient(embedder)
    patient.reset(bank.get("cardiology-inferior-stemi"), seed=0)
    messages = ["Hello, what brings you in today?", "Do you smoke? Any allergies?", "What medications do you take?",
                "Have you had a fever?", "Do you own a boat?"]
    talk(patient, *messages)
    start = time.perf_counter()
    for i in range(200):
        patient.respond(messages[i % len(messages)], i)
    per_reply = (time.perf_counter() - start) / 200
    assert per_reply < 0.005, f"{per_reply * 1000:.2f} ms per reply"
