import json

import pytest
import yaml

from agentclinic.errors import ScenarioError
from agentclinic.scenario import load_scenarios, source_of
from agentclinic.scenario.loaders import detect_format
from conftest import SHARED_DATASETS


def test_native_yaml_single_list_json_and_jsonl(tmp_path, scenario_data, write_yaml):
    write_yaml(scenario_data, "a/one.yaml")
    second = {**scenario_data, "id": "two"}
    third = {**scenario_data, "id": "three"}
    write_yaml([second, third], "a/many.yml")
    (tmp_path / "a" / "four.json").write_text(json.dumps({**scenario_data, "id": "four"}))
    (tmp_path / "a" / "five.jsonl").write_text(json.dumps({**scenario_data, "id": "five"}) + "\n")
    (tmp_path / "a" / "_draft.yaml").write_text("not: [a scenario")
    loaded = load_scenarios(tmp_path / "a")
    assert sorted(loaded.ids()) == ["five", "four", "test-case", "three", "two"]
    assert source_of(loaded.get("three")).line > source_of(loaded.get("two")).line


def test_schema_error_names_file_line_and_field(scenario_data, write_yaml):
    scenario_data["facts"][1]["disclosure"] = "whenever"
    path = write_yaml(scenario_data)
    with pytest.raises(ScenarioError) as info:
        load_scenarios(path)
    error = info.value
    assert error.path == str(path) and error.field == "facts.1.disclosure"
    lines = path.read_text().splitlines()
    assert "whenever" in lines[error.line - 1]
    assert "volunteer" in error.message  # says what was expected


def test_unknown_key_and_missing_diagnosis_messages(scenario_data, write_yaml):
    scenario_data["patient"]["haircolour"] = "red"
    del scenario_data["diagnosis"]
    loaded = load_scenarios(write_yaml(scenario_data), skip_errors=True)
    by_field = {e.field: e for e in loaded.errors}
    assert "unknown key" in by_field["patient.haircolour"].message
    assert by_field["diagnosis"].code == "missing-diagnosis"


def test_one_bad_file_does_not_stop_the_others(tmp_path, scenario_data, write_yaml):
    write_yaml(scenario_data, "good.yaml")
    (tmp_path / "broken.yaml").write_text("id: [unclosed\n")
    write_yaml({**scenario_data, "id": "other", "patient": {"age": "old", "sex": "female"}}, "bad.yaml")
    loaded = load_scenarios(tmp_path, skip_errors=True)
    assert loaded.ids() == ["test-case"]
    assert {e.code for e in loaded.errors} == {"syntax", "schema"}
    with pytest.raises(ScenarioError):
        load_scenarios(tmp_path)


def test_duplicate_ids_across_files(tmp_path, scenario_data, write_yaml):
    write_yaml(scenario_data, "a.yaml")
    write_yaml(scenario_data, "b.yaml")
    loaded = load_scenarios(tmp_path, skip_errors=True)
    assert len(loaded) == 1 and loaded.errors[0].code == "duplicate-id"
    assert "a.yaml" in loaded.errors[0].message


def test_formats_are_detected_by_shape(medqa_file, nejm_file, tmp_path, scenario_data):
    native = tmp_path / "native.jsonl"
    native.write_text(json.dumps(scenario_data) + "\n")
    assert detect_format(medqa_file) == "agentclinic_medqa"
    assert detect_format(nejm_file) == "agentclinic_nejm"
    assert detect_format(native) == "native"
    with pytest.raises(ScenarioError, match="unknown scenario format"):
        load_scenarios(native, format="nope")


def test_medqa_case_becomes_facts_findings_and_flat_tests(medqa_file):
    loaded = load_scenarios(medqa_file)
    assert loaded.ids() == ["medqa-001", "medqa-002"]
    s = loaded.get("medqa-001")
    assert (s.patient.age, s.patient.sex) == (41, "female")
    assert s.diagnosis.name == "Myasthenia gravis" and s.provenance.synthetic is False
    volunteered = [f.text for f in s.facts if f.disclosure.value == "volunteer"]
    assert volunteered == ["I've had drooping eyelids."]  # in the patient's words (agentclinic.scenario.first_person)
    said = {f.text: f for f in s.facts}
    assert {"I have had drooping eyelids for two months.", "I've had tired jaw when chewing.", "I've had hypothyroidism.",
            "I take levothyroxine 50 mcg.", "I haven't had any shortness of breath."} <= set(said)
    onset = said["It's been going on for two months."]  # the onset is a fact of its own
    assert "when" in onset.keywords and "how long" in onset.keywords
    categories = {f.category.value for f in s.facts}
    assert {"hpi", "pmh", "social", "ros", "medications"} <= categories
    tests = {t.name: t for t in s.tests}
    ach = tests["Acetylcholine receptor antibodies"]
    assert ach.group == "Blood tests" and "Blood_Tests.Acetylcholine_Receptor_Antibodies" in ach.synonyms
    assert tests["Chest CT"].group == "Imaging" and tests["Chest CT"].result.startswith("Anterior mediastinal")
    assert tests["Complete blood count"].result == "WBC: 6,500/mm3; Hemoglobin: 13.1 g/dL"
    assert (tests["Serum potassium"].value, tests["Serum potassium"].unit) == (4.2, "mEq/L")
    exam = {(e.system, e.name): e.result for e in s.examination}
    assert exam[("Vital signs", "Heart rate")] == "70 bpm"
    newborn = loaded.get("medqa-002")
    assert (newborn.patient.age, newborn.patient.age_unit, newborn.patient.sex) == (0, "days", "male")
    assert newborn.tests[0].name == "Wrist xray" and newborn.examination[0].system == "Wrist"


def test_nejm_case_has_diagnosis_differential_and_remote_image(nejm_file):
    s = load_scenarios(nejm_file).get("nejm-001")
    assert s.diagnosis.name == "Scabies"
    assert [c.name for c in s.differential] == ["Contact dermatitis", "Psoriasis"]
    assert s.images[0].remote and "text-only" in s.provenance.notes
    assert [t.name for t in s.tests] == ["Skin scraping", "Complete blood count"]
    assert s.facts[0].text == "I am a 60-year-old man." and s.facts[0].disclosure.value == "volunteer"
    assert "most likely diagnosis" not in s.doctor_brief


def test_bad_jsonl_rows_are_reported_by_line(tmp_path):
    path = tmp_path / "medqa.jsonl"
    good = {"OSCE_Examination": {"Objective_for_Doctor": "x", "Patient_Actor": {"Demographics": "30-year-old man"},
                                 "Physical_Examination_Findings": {}, "Test_Results": {}, "Correct_Diagnosis": "Gout"}}
    empty = json.loads(json.dumps(good))
    empty["OSCE_Examination"]["Correct_Diagnosis"] = ""
    path.write_text("\n".join([json.dumps(good), "{not json", json.dumps(empty)]) + "\n")
    loaded = load_scenarios(path, skip_errors=True)
    assert loaded.ids() == ["medqa-001"]
    assert [(e.line, e.code) for e in loaded.errors] == [(2, "syntax"), (3, "missing-diagnosis")]


@pytest.mark.skipif(not SHARED_DATASETS.exists(), reason="the AgentClinic case files are not beside the checkout")
def test_every_agentclinic_case_loads():
    medqa = load_scenarios(SHARED_DATASETS / "agentclinic_medqa.jsonl")
    nejm = load_scenarios(SHARED_DATASETS / "agentclinic_nejm.jsonl")
    assert len(medqa) == 107 and len(nejm) == 15
    assert all(s.diagnosis.name for s in [*medqa, *nejm])
    assert all(s.images and s.images[0].remote for s in nejm)
    assert sum(len(s.tests) for s in medqa) > 300


def test_yaml_round_trip_of_a_loaded_scenario(medqa_file, tmp_path):
    s = load_scenarios(medqa_file).get("medqa-001")
    path = tmp_path / "out.yaml"
    path.write_text(yaml.safe_dump(s.model_dump(mode="json", exclude_none=True)))
    assert load_scenarios(path).get("medqa-001").model_dump() == s.model_dump()
