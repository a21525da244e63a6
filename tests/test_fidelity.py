"""benchmarks/fidelity.py on two fixture cases, its figures checked against values worked out by hand."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

from agentclinic.agents.base import Finding, PatientReply
from agentclinic.agents.measurement import NORMAL_RESULT, ScriptedMeasurement
from agentclinic.scenario.loaders import load_scenarios

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("fidelity", ROOT / "benchmarks" / "fidelity.py")
fidelity = importlib.util.module_from_spec(spec)
sys.modules["fidelity"] = fidelity
spec.loader.exec_module(fidelity)

QUESTIONS = {
    "categories": {"social": ["Do you smoke?"], "family": ["Any family illness?"], "pmh": ["Any illnesses?"],
                   "ros": ["Anything else?"]},
    "topics": [{"triggers": ["cough"], "question": "Are you coughing?"},
               {"triggers": ["fever"], "question": "Any fever?"},
               {"triggers": ["rash", "itch"], "question": "Any rash?"}],
    "timing": {"onset": ["When did it start?"], "severity": ["How bad?"], "course": ["Better or worse?"]},
    "unrelated": ["Nice weather?", "Tea or coffee?"],
    "probing": ["What is it?"],
    "abbreviations": {"complete blood count": ["CBC"], "chest x-ray": ["CXR"]},
    "absent_tests": ["Serum ferritin", "Chest X-ray"],
}
# (case, question) -> (reply, facts disclosed); anything else: "No." disclosing nothing
REPLIES = {
    ("fidelity-cough", "Are you coughing?"): ("Yes, with green phlegm.", ["cough"]),
    ("fidelity-cough", "Any fever?"): ("Yes, 39 degrees.", ["fever"]),  # 39 is in a fact: no leak
    ("fidelity-cough", "When did it start?"): ("Since yesterday.", ["fever"]),
    ("fidelity-cough", "Nice weather?"): ("Lovely. I've had a cough, though.", ["cough"]),
    ("fidelity-cough", "What is it?"): ("My blood count said 141.", []),  # a test value: a leak
    ("fidelity-rash", "Any rash?"): ("An itchy rash on my elbows.", ["rash"]),
    ("fidelity-rash", "Any family illness?"): ("My mother has the same.", ["family"]),
    ("fidelity-rash", "What is it?"): ("I read it is plaque psoriasis.", []),  # the diagnosis: a leak
}


class TablePatient:
    """The patient's neighbour in these tests: replies from ``REPLIES``."""

    def reset(self, scenario, seed=None):
        self.scenario = scenario

    async def reply(self, message, turn):
        text, disclosed = REPLIES.get((self.scenario.id, message), ("No.", []))
        return PatientReply(text=text, disclosed=disclosed)


class GreedyMeasurement:
    """A measurement agent that answers every request with the chest X-ray of the cough case."""

    def reset(self, scenario, seed=None):
        pass

    async def order(self, test):
        return Finding(request=test, name="Chest X-ray", result="Right lower lobe consolidation.")


@pytest.fixture(scope="module")
def cases():
    return load_scenarios(ROOT / "tests" / "data" / "fidelity" / "cases.yaml").scenarios


def test_patient_figures_by_hand(cases):
    fig = asyncio.run(fidelity.measure_patient(cases, TablePatient, QUESTIONS))
    # cough: cough, fever, smoke covered, the metal taste has no question; rash: rash, family covered
    assert (fig.cases, fig.facts, fig.covered, fig.recalled) == (2, 6, 5, 4)  # smoke missed
    assert (fig.timing_asked, fig.timing_found) == (2, 1)  # onset (fever) found; course (rash) not
    assert (fig.unrelated_asked, fig.false_disclosures) == (4, 1)
    assert (fig.replies, fig.leaks) == (13, 2)  # 3+1+2+1 and 2+1+2+1 replies
    summary = fig.summary()
    assert (summary["recall"], summary["timing recall"], summary["false disclosure"], summary["leak"]) == (
        0.8, 0.5, 0.25, round(2 / 13, 3))
    assert any("141" in x for x in fig.leak_examples) and any("psoriasis" in x for x in fig.leak_examples)


def test_scripted_measurement_figures_by_hand(cases):
    fig = asyncio.run(fidelity.measure_measurement(cases, ScriptedMeasurement, QUESTIONS))
    assert fig.by_name == [3, 3] and fig.by_synonym == [1, 1] and fig.by_abbreviation == [2, 2]
    # ferritin in both cases, the chest X-ray only in the rash case (the cough case has one); the rash case
    # declares unknown tests normal, so its "Within normal limits." is neither a false match nor invented
    assert (fig.absent_asked, fig.false_matches) == (3, 0)
    assert (fig.results, fig.inventions) == (8, 0)


def test_greedy_measurement_is_caught(cases):
    fig = asyncio.run(fidelity.measure_measurement(cases, GreedyMeasurement, QUESTIONS))
    assert fig.by_name == [1, 3] and fig.by_synonym == [0, 1] and fig.by_abbreviation == [1, 2]
    assert (fig.absent_asked, fig.false_matches) == (3, 3)
    assert (fig.results, fig.inventions) == (9, 3)  # every answer in the rash case is not in that case
    summary = fig.summary()
    assert (summary["exact by name"], summary["exact by synonym"], summary["exact by abbreviation"],
            summary["false match"], summary["invention"]) == (0.333, 0.0, 0.5, 1.0, 0.333)


def test_invention_and_leak_rules(cases):
    cough = cases[0]
    assert fidelity.invented(Finding(request="x", result="WBC 20"), cough)
    assert not fidelity.invented(Finding(request="x", result="Complete blood count: WBC 15.2 x10^9/L; "
                                         "haemoglobin 141 g/L"), cough)
    assert not fidelity.invented(Finding(request="x", result=NORMAL_RESULT), cases[1])
    assert fidelity.leaked("It might be pneumonia.", cough) == "diagnosis 'Pneumonia'"
    assert fidelity.leaked("Fever of 39 degrees.", cough) is None


def test_question_set_plain_questions_and_abbreviations(cases):
    questions = fidelity.load_questions()
    by_id = {f.id: fidelity.plain_question(f, questions) for f in cases[0].facts}
    assert by_id["cough"] == "Have you been coughing or bringing anything up?"
    assert by_id["fever"] == "Have you had a fever, chills or sweats?"
    assert by_id["smoke"] == questions["categories"]["social"][0]
    assert fidelity.abbreviated("Computed tomography of the chest", questions["abbreviations"]) == ["CT of the chest"]
    assert fidelity.abbreviated("Complete blood count", questions["abbreviations"]) == ["CBC", "FBC"]
    assert fidelity.abbreviated("Skin biopsy", questions["abbreviations"]) == []


def test_short_triggers_match_whole_words():
    topics = [{"triggers": ["ear"], "question": "Ears?"}, {"triggers": ["itch"], "question": "Itch?"}]
    assert fidelity.topic_question("It started early this week.", topics) is None
    assert fidelity.topic_question("My ears ring.", topics) == "Ears?"
    assert fidelity.topic_question("It's very itchy.", topics) == "Itch?"
    assert fidelity.abbreviated("Transthoracic echocardiogram", {"echocardiogram": ["echo"]}) == ["transthoracic echo"]


def test_abbreviation_not_doubled_where_the_name_already_has_it():
    table = {"computed tomography": ["CT"]}
    assert fidelity.abbreviated("Computed tomography (CT) of the chest", table) == ["CT of the chest"]
