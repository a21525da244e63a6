"""AgentClinic's MedQA-Ext and NEJM-Ext shapes (fixtures of the same shape, written for this project)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentclinic.scenario.agentclinic_format import nejm_findings, second_to_first
from agentclinic.scenario.loaders import load_scenarios
from agentclinic.scenario.quality import validate_paths

DATA = Path(__file__).parent / "data"
MEDQA_EXT = DATA / "agentclinic_medqa_ext_sample.jsonl"
NEJM_EXT = DATA / "agentclinic_nejm_ext_sample.jsonl"


@pytest.fixture(scope="module")
def medqa():
    return load_scenarios(MEDQA_EXT)


@pytest.fixture(scope="module")
def nejm():
    return load_scenarios(NEJM_EXT)


def texts(scenario, category=None):
    return [f.text for f in scenario.facts if category is None or f.category.value == category]


def test_medqa_ext_nested_history_keeps_its_labels_and_categories(medqa):
    s = medqa.get("medqa-001")
    assert "I've had epilepsy, taking levetiracetam." in texts(s, "pmh")
    assert "I've had appendectomy at age 20." in texts(s, "pmh")
    assert texts(s, "medications") == ["I take levetiracetam 500 mg twice daily."]
    assert any("ten cigarettes a day" in t for t in texts(s, "social"))
    assert texts(s, "family") == ["Mother had a stroke at 70."]
    # "None reported" / "Not specified" say nothing: no fact
    assert not any("none reported" in t.lower() or "not specified" in t.lower() for t in texts(s))


def test_medqa_ext_tests_that_say_nothing_are_left_out_and_timing_is_found(medqa):
    s = medqa.get("medqa-001")
    assert [t.name for t in s.tests] == ["Lumbar puncture", "WBC", "Hemoglobin"]
    timing = {f.text: f.keywords for f in s.facts if f.keywords}
    assert "It started about 3 days ago." in timing and "when" in timing["It started about 3 days ago."]
    assert "It's severe." in timing


def test_medqa_ext_without_primary_symptom_still_volunteers_the_history(medqa):
    s = medqa.get("medqa-002")
    volunteered = [f.text for f in s.facts if f.disclosure.value == "volunteer"]
    assert volunteered == ["I've had a routine screening colonoscopy."]


def test_nejm_ext_brief_is_first_person_without_headers_or_stage_directions(nejm):
    s = nejm.get("nejm-001")
    said = texts(s)
    assert said[0] == "I am a 70-year-old woman." and s.facts[0].disclosure.value == "volunteer"
    assert "I've had a blotchy purple rash on my legs for the past 5 days." in said
    assert "The doctor told me it is not itchy." in said
    assert not any("**" in t or t.endswith(":") or "portrayal" in t or "character" in t for t in said)
    assert "It's been going on for 5 days." in said
    assert s.images[0].modality == "dermatology, physical"


def test_nejm_ext_findings_markdown_headers_and_unstated_results(nejm):
    s = nejm.get("nejm-001")
    assert {t.name: t.result for t in s.tests} == {
        "Skin Biopsy of the Leg": "Cholesterol clefts in small arterioles.",
        "Eosinophil count": "900 per microlitre", "Creatinine": "2.1 mg/dL",
        "Renal ultrasound": "Normal-sized kidneys"}
    assert nejm_findings("Tests for HIV: Negative Imaging results: - CT of the neck: Enlarged nodes") == [
        {"name": "Tests for HIV", "group": "Tests", "result": "Negative", "relevant": True},
        {"name": "CT of the neck", "group": "Tests", "result": "Enlarged nodes", "relevant": True}]


def test_nejm_ext_aliases_that_are_other_answer_options_are_dropped(nejm):
    s = nejm.get("nejm-001")
    options = {c.name.lower() for c in s.differential}
    assert options == {"cutis marmorata", "livedo racemosa", "erythema ab igne"}
    assert not options & {a.lower() for a in s.diagnosis.aliases}


@pytest.mark.parametrize("said, first", [
    ("You are a 45-year-old man.", "I am a 45-year-old man."),
    ("You've noticed that your arm is swollen.", "I've noticed that my arm is swollen."),
    ("You've been told you have anaemia.", "I've been told I have anaemia."),
    ("They gave you oxygen to help you breathe.", "They gave me oxygen to help me breathe."),
    ("It has not caused you any pain.", "It has not caused me any pain."),
    ("You were informed you had a fracture.", "I was informed I had a fracture."),
    ("Your symptoms started when you were 12.", "My symptoms started when I was 12."),
])
def test_second_to_first(said, first):
    assert second_to_first(said) == first


def test_validate_reports_leaks_and_refusals_with_record_line_and_field():
    _, report = validate_paths([MEDQA_EXT, NEJM_EXT])
    assert report.scenarios == 4
    found = {(i.code, i.scenario, i.line, i.field) for i in report.errors}
    assert found == {("diagnosis-leak", "medqa-001", 1, "tests.0.result"),
                     ("refusal-text", "nejm-002", 2, "examination.0.result")}
    assert not [i for i in report.errors if i.code == "diagnosis-in-differential"]
