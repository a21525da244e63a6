"""The scripted measurement agent: exact results by name, synonym, abbreviation, spelling, group."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

# agents.base and the env import each other: importing the env first resolves the cycle.
from agentclinic.agents.measurement import NORMAL_RESULT, ScriptedMeasurement
from agentclinic.scenario import Scenario, load_scenarios

BANK = Path(__file__).resolve().parents[1] / "scenarios"

TESTS = [
    {"name": "WBC", "group": "Complete blood count", "result": "14,200/mm3"},
    {"name": "Hemoglobin", "group": "Complete blood count", "result": "12.9 g/dL"},
    {"name": "Platelets", "group": "Complete blood count", "result": "310,000/mm3"},
    {"name": "Basic metabolic panel", "group": "Blood tests", "result": "Na 137, K 4.0, creatinine 0.8 mg/dL",
     "price_code": "bmp"},
    {"name": "12-lead ECG", "group": "Cardiac tests", "result": "Sinus tachycardia at 108/min.", "price_code": "ecg"},
    {"name": "C-reactive protein", "group": "Blood tests", "result": "148 mg/L", "price_code": "crp"},
    {"name": "Free T4", "group": "Thyroid function tests", "result": "1.2 ng/dL"},
    {"name": "Hepatitis B surface antigen", "group": "Serology", "result": "Negative"},
    {"name": "Chest CT", "group": "Imaging", "result": "No pulmonary embolism. Right lower lobe consolidation."},
    {"name": "Sputum culture", "group": "Microbiology", "synonyms": ["sputum MC&S"],
     "result": "Streptococcus pneumoniae, penicillin sensitive."},
]
EXAMINATION = [
    {"system": "General appearance", "result": "Flushed, breathing fast."},
    {"system": "Vital signs", "name": "Blood pressure", "result": "118/72 mmHg"},
    {"system": "Vital signs", "name": "Heart rate", "result": "108 bpm"},
    {"system": "Vital signs", "name": "Temperature", "result": "38.9 °C"},
    {"system": "Respiratory examination", "name": "Auscultation", "result": "Bronchial breathing at the right base."},
    {"system": "Cardiac examination", "result": "Tachycardic, heart sounds normal, no murmurs."},
    {"system": "Abdominal examination", "result": "Soft, non-tender."},
    {"system": "Neurologic examination", "result": "Alert and orientated, no focal deficit."},
    {"system": "Skin examination", "result": "No rash."},
    {"system": "Right knee examination", "result": "No effusion."},
]


@pytest.fixture
def scenario(scenario_data) -> Scenario:
    return Scenario.model_validate({**scenario_data, "tests": [*scenario_data["tests"], *TESTS],
                                    "examination": EXAMINATION})


@pytest.fixture
def agent(scenario) -> ScriptedMeasurement:
    agent = ScriptedMeasurement()
    agent.reset(scenario, seed=0)
    return agent


def order(agent: ScriptedMeasurement, test: str):
    return asyncio.run(agent.order(test))


def examine(agent: ScriptedMeasurement, system: str | None):
    return asyncio.run(agent.examine(system))


# --- tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("request_", ["Chest X-ray", "chest x-ray", "CHEST X RAY", "Chest X-ray.", "CXR", "cxr",
                                      "chest xray", "chest radiograph", "X-ray of the chest", "Chest Xray please"])
def test_a_test_by_name_synonym_or_catalogue_form_gives_exactly_its_result(agent, scenario, request_):
    finding = order(agent, request_)
    test = next(t for t in scenario.tests if t.name == "Chest X-ray")
    assert finding.available
    assert finding.request == request_.strip()
    assert (finding.name, finding.result, finding.price_code, finding.group) == (
        test.name, test.result, "chest-xray", "Imaging")


@pytest.mark.parametrize(("request_", "name"), [
    ("BMP", "Basic metabolic panel"), ("U&E", "Basic metabolic panel"), ("U&Es", "Basic metabolic panel"),
    ("urea and electrolytes", "Basic metabolic panel"), ("electrolytes", "Basic metabolic panel"),
    ("EKG", "12-lead ECG"), ("ECG", "12-lead ECG"), ("electrocardiogram", "12-lead ECG"),
    ("CRP", "C-reactive protein"), ("c reactive protein", "C-reactive protein"),
    ("CT chest", "Chest CT"), ("CT of the chest", "Chest CT"), ("chest CT scan", "Chest CT"),
    ("Sputum MC&S", "Sputum culture"), ("serum free T4 level", "Free T4"),
])
def test_abbreviations_and_synonyms_reach_the_canonical_test(agent, scenario, request_, name):
    finding = order(agent, request_)
    test = next(t for t in scenario.tests if t.name == name)
    assert finding.available and finding.name == name
    assert finding.result == test.result and finding.price_code == test.price_code and finding.group == test.group


@pytest.mark.parametrize(("request_", "name"), [
    ("Basic metabolic pannel", "Basic metabolic panel"), ("C-reactive protien", "C-reactive protein"),
    ("Sputum cultur", "Sputum culture"), ("Chest xary", "Chest X-ray"), ("haemoglobin", "Hemoglobin"),
    ("Hemoglobn", "Hemoglobin"), ("Platelet", "Platelets"),
])
def test_close_misspellings_are_accepted(agent, request_, name):
    finding = order(agent, request_)
    assert finding.available and finding.name == name


@pytest.mark.parametrize("request_", ["Free T3", "Hepatitis C antibody", "Hepatitis B core antibody", "TSH",
                                      "Troponin", "CT head", "MRI brain", "Blood cultures", "Urine culture", "Lipase"])
def test_close_but_different_tests_are_not_confused(agent, request_):
    finding = order(agent, request_)
    assert not finding.available and finding.name is None
    assert finding.result == "Not available for this patient."


@pytest.mark.parametrize("request_", ["Complete blood count", "complete blood count", "CBC", "FBC",
                                      "full blood count", "Complete blod count"])
def test_a_group_name_gives_every_test_of_the_group_in_one_finding(agent, request_):
    finding = order(agent, request_)
    assert finding.available
    assert finding.name == "Complete blood count" and finding.group == "Complete blood count"
    assert finding.result == "WBC: 14,200/mm3; Hemoglobin: 12.9 g/dL; Platelets: 310,000/mm3"


def test_one_member_of_a_group_can_be_ordered_alone(agent):
    finding = order(agent, "WBC")
    assert (finding.name, finding.result, finding.group) == ("WBC", "14,200/mm3", "Complete blood count")


@pytest.mark.parametrize("request_", ["Blood tests", "Imaging", "Tests"])
def test_broad_groups_name_no_test(agent, request_):
    assert not order(agent, request_).available


def test_an_unknown_test_is_not_available_unless_the_case_says_normal(scenario_data):
    agent = ScriptedMeasurement()
    agent.reset(Scenario.model_validate(scenario_data))
    finding = order(agent, "Serum zinc")
    assert finding.model_dump() == {"request": "Serum zinc", "name": None, "available": False, "price_code": None,
                                    "group": None, "result": "Not available for this patient.",
                                    "case_result": None}
    agent.reset(Scenario.model_validate({**scenario_data, "unknown_tests": "normal"}))
    finding = order(agent, "Serum zinc")
    assert finding.available and finding.result == NORMAL_RESULT == "Within normal limits."
    known = order(agent, "CXR")  # a test the case has still gives its own result
    assert known.result == "Right lower lobe consolidation."
    agent.reset(Scenario.model_validate({**scenario_data, "unknown_tests": "list-available"}))
    listed = order(agent, "Serum zinc")
    names = [t["name"] for t in scenario_data["tests"]]
    assert not listed.available and listed.result == f"Not available for this patient. Available: {', '.join(names)}."


def test_a_result_never_repeats_the_test_name(scenario_data):
    """Imported cases often write the name into the result; the environment prints the name already."""
    first = dict(scenario_data["tests"][0])
    data = {**scenario_data, "tests": [{**first, "result": f"{first['name']}: {first['result']}"}]}
    agent = ScriptedMeasurement()
    agent.reset(Scenario.model_validate(data))
    finding = order(agent, first["name"])
    assert finding.available and finding.result == first["result"]


def test_an_empty_request_is_not_available(agent):
    finding = order(agent, "  ")
    assert not finding.available


def test_order_before_reset_is_an_error():
    with pytest.raises(RuntimeError):
        asyncio.run(ScriptedMeasurement().order("CBC"))


def test_results_are_never_invented_across_many_requests(agent, scenario):
    results = {t.result for t in scenario.tests}
    requests = ["CBC", "cxr", "EKG", "TSH", "vitamin D", "CRP", "LFTs", "ABG", "urinalysis", "troponin", "MRI",
                "CT chest", "d-dimer", "blood film", "BMP", "sputum", "free t4", "free t3", "hep b", "ferritin"]
    for request_ in requests:
        finding = order(agent, request_)
        if finding.available:
            parts = finding.result.split("; ") if finding.name == "Complete blood count" else [finding.result]
            assert all(p.split(": ", 1)[-1] in results for p in parts), (request_, finding.result)
        else:
            assert finding.result == "Not available for this patient."


# --- examination ---------------------------------------------------------------------------


@pytest.mark.parametrize("system", [None, "", "all", "ALL", "general", "General examination", "full examination",
                                    "physical exam", "everything"])
def test_examine_everything(agent, system):
    findings = examine(agent, system)
    assert [f.result for f in findings] == [e["result"] for e in EXAMINATION]
    assert all(f.available for f in findings)
    assert findings[1].name == "Blood pressure" and findings[1].group == "Vital signs"


@pytest.mark.parametrize(("system", "results"), [
    ("heart", ["Tachycardic, heart sounds normal, no murmurs."]),
    ("cardiac", ["Tachycardic, heart sounds normal, no murmurs."]),
    ("cardiovascular", ["Tachycardic, heart sounds normal, no murmurs."]),
    ("CVS", ["Tachycardic, heart sounds normal, no murmurs."]),
    ("chest", ["Bronchial breathing at the right base."]),
    ("lungs", ["Bronchial breathing at the right base."]),
    ("Respiratory", ["Bronchial breathing at the right base."]),
    ("respiratory system", ["Bronchial breathing at the right base."]),
    ("abdomen", ["Soft, non-tender."]), ("belly", ["Soft, non-tender."]), ("Abdominal exam", ["Soft, non-tender."]),
    ("neuro", ["Alert and orientated, no focal deficit."]),
    ("neurological", ["Alert and orientated, no focal deficit."]),
    ("skin", ["No rash."]), ("dermatological", ["No rash."]),
    ("vitals", ["118/72 mmHg", "108 bpm", "38.9 °C"]), ("vital signs", ["118/72 mmHg", "108 bpm", "38.9 °C"]),
    ("blood pressure", ["118/72 mmHg"]), ("BP", ["118/72 mmHg"]), ("pulse", ["108 bpm"]),
    ("temperature", ["38.9 °C"]), ("auscultation", ["Bronchial breathing at the right base."]),
    ("knee", ["No effusion."]), ("right knee", ["No effusion."]),
    ("heart and lungs", ["Bronchial breathing at the right base.", "Tachycardic, heart sounds normal, no murmurs."]),
    ("respiritory", ["Bronchial breathing at the right base."]),
    ("cardiovasculr", ["Tachycardic, heart sounds normal, no murmurs."]),
    ("neurologcal", ["Alert and orientated, no focal deficit."]), ("abdomin", ["Soft, non-tender."]),
])
def test_examine_one_system_by_name_synonym_or_spelling(agent, system, results):
    findings = examine(agent, system)
    assert [f.result for f in findings] == results
    assert all(f.available and f.request == system for f in findings)


@pytest.mark.parametrize("system", ["eyes", "hair", "pelvic", "fundoscopy", "xyzzy"])
def test_an_unknown_or_unrecorded_system_says_so(agent, system):
    findings = examine(agent, system)
    assert len(findings) == 1
    assert not findings[0].available and findings[0].name is None
    assert findings[0].result == f"No examination findings recorded for {system}."


def test_a_case_without_findings(scenario_data):
    agent = ScriptedMeasurement()
    agent.reset(Scenario.model_validate({**scenario_data, "examination": []}))
    assert [f.available for f in examine(agent, None)] == [False]
    assert not examine(agent, "heart")[0].available


# --- real cases ------------------------------------------------------------------------------


def test_bank_scenario_results_by_abbreviation():
    scenario = load_scenarios(BANK).get("cardiology-inferior-stemi")
    agent = ScriptedMeasurement()
    agent.reset(scenario)
    for request_, name in [("EKG", "12-lead ECG"), ("trop", "High-sensitivity troponin T"),
                           ("FBC", "Complete blood count"), ("U&E", "Basic metabolic panel"),
                           ("Lipids", "Lipid panel"), ("d dimer", "D-dimer"), ("chest film", "Chest X-ray")]:
        finding = order(agent, request_)
        test = next(t for t in scenario.tests if t.name == name)
        assert (finding.name, finding.result, finding.price_code) == (name, test.result, test.price_code)
    assert not order(agent, "TSH").available
    assert [f.result for f in examine(agent, "heart")] == [
        next(e.result for e in scenario.examination if e.system == "cardiovascular")]
    assert len(examine(agent, "vitals")) == 5
    assert not examine(agent, "neuro")[0].available


def test_imported_medqa_case(medqa_file):
    scenario = load_scenarios(medqa_file).get("medqa-001")
    agent = ScriptedMeasurement()
    agent.reset(scenario)
    cbc = order(agent, "CBC")
    assert cbc.available and cbc.name == "Complete blood count"
    assert cbc.result == "WBC: 6,500/mm3; Hemoglobin: 13.1 g/dL"
    assert order(agent, "potassium").result == "4.2 mEq/L"
    assert order(agent, "Acetylcholine receptor antibodies").result == "Positive"
    assert order(agent, "CT chest").result == "Anterior mediastinal soft-tissue mass, 3 cm."
    assert [f.result for f in examine(agent, "neuro")] == ["Ptosis that worsens on sustained upgaze."]
    assert [f.name for f in examine(agent, "vitals")] == ["Heart rate", "Blood pressure"]
    assert [f.result for f in examine(agent, "pulse")] == ["70 bpm"]


def test_reset_switches_cases(scenario, scenario_data):
    agent = ScriptedMeasurement()
    agent.reset(scenario)
    assert order(agent, "CRP").available
    agent.reset(Scenario.model_validate(scenario_data))
    assert not order(agent, "CRP").available
    agent.reset(scenario)
    assert order(agent, "CRP").result == "148 mg/L"


def test_close_spellings_never_cross_numbers_or_short_words():
    from agentclinic.agents.measurement import close_match
    candidates = {"rubella igg": "IgG", "hepatitis b": "HBV", "free t4": "T4", "vitamin b12": "B12"}
    for request_ in ("rubella igm", "hepatitis c", "free t3", "vitamin b6"):
        assert close_match({request_}, candidates, 0.85) is None
    assert close_match({"rubela igg"}, candidates, 0.85) == "IgG"
    assert close_match({"hepatits b"}, candidates, 0.85) == "HBV"
