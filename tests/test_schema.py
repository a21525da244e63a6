import pytest
from pydantic import ValidationError

from agentclinic.scenario import Disclosure, Scenario


def test_minimal_scenario_gets_default_ids_and_normalised_fields(scenario_data):
    scenario_data["images"] = [{"asset": "a.png", "modality": "X-ray"}]
    scenario_data["diagnosis"]["icd10"] = "j189"
    s = Scenario.model_validate(scenario_data)
    assert [f.id for f in s.facts] == ["cough", "f2", "f3"]
    assert s.images[0].id == "img1"
    assert s.specialty == "pulmonology"
    assert s.diagnosis.icd10 == "J18.9"
    assert s.facts[1].disclosure is Disclosure.ON_ASK
    assert s.unknown_tests == "not-available"
    assert s.patient.describe() == "40-year-old female"


@pytest.mark.parametrize("where", [(), ("patient",), ("facts", 0), ("tests", 0), ("diagnosis",)])
def test_unknown_keys_are_rejected_everywhere(scenario_data, where):
    target = scenario_data
    for key in where:
        target = target[key]
    target["colour"] = "blue"
    with pytest.raises(ValidationError, match="colour"):
        Scenario.model_validate(scenario_data)


def test_bad_values_are_rejected(scenario_data):
    scenario_data["facts"][0]["disclosure"] = "sometimes"
    scenario_data["diagnosis"]["icd10"] = "not-a-code"
    with pytest.raises(ValidationError) as info:
        Scenario.model_validate(scenario_data)
    fields = {tuple(e["loc"]) for e in info.value.errors()}
    assert ("facts", 0, "disclosure") in fields and ("diagnosis", "icd10") in fields


def test_references_and_duplicates_are_checked(scenario_data):
    scenario_data["red_flags"] = [{"text": "Haemoptysis", "facts": ["nope"]}]
    with pytest.raises(ValidationError, match="unknown facts"):
        Scenario.model_validate(scenario_data)
    scenario_data["red_flags"] = []
    scenario_data["facts"][1]["id"] = "cough"
    with pytest.raises(ValidationError, match="duplicate fact ids"):
        Scenario.model_validate(scenario_data)


def test_missing_diagnosis_is_an_error(scenario_data):
    del scenario_data["diagnosis"]
    with pytest.raises(ValidationError, match="diagnosis"):
        Scenario.model_validate(scenario_data)
