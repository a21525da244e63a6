import json

import pytest

from agentclinic.scenario.quality import mentions, validate_paths
from conftest import SHARED_DATASETS


def codes(report, severity="errors"):
    return sorted(i.code for i in getattr(report, severity))


def test_clean_case_passes(write_yaml, scenario_data):
    _, report = validate_paths([write_yaml(scenario_data)])
    assert report.ok and report.scenarios == 1 and report.specialties == {"pulmonology": 1}
    assert report.warnings == []


def test_leaked_diagnosis_is_an_error_with_line_and_field(write_yaml, scenario_data):
    scenario_data["tests"][0]["result"] = "Consolidation in keeping with community-acquired pneumonia."
    path = write_yaml(scenario_data)
    _, report = validate_paths([path])
    [issue] = report.errors
    assert issue.code == "diagnosis-leak" and issue.field == "tests.0.result" and issue.scenario == "test-case"
    assert "community-acquired pneumonia" in path.read_text().splitlines()[issue.line - 1].lower()


def test_alias_leak_and_partial_leak(write_yaml, scenario_data):
    scenario_data["diagnosis"]["name"] = "Acute lobar pneumonia"
    scenario_data["examination"][0]["result"] = "Findings typical of CAP."
    scenario_data["tests"][0]["result"] = "Lobar pneumonia pattern on the right."
    _, report = validate_paths([write_yaml(scenario_data)])
    assert codes(report) == ["diagnosis-leak"] and codes(report, "warnings") == ["partial-leak"]


def test_short_acronyms_match_case_sensitively():
    assert mentions("QRS 90 ms, PR 160 ms", "MS") is False
    assert mentions("History of MS.", "MS") is True
    assert mentions("Acute-on-chronic failure", "chronic failure") is True


def test_refusal_icd_differential_price_and_assets(write_yaml, scenario_data, tmp_path):
    scenario_data["examination"][0]["result"] = "I'm sorry, but I cannot provide examination findings."
    scenario_data["diagnosis"]["icd10"] = "J18.99"
    scenario_data["differential"].append({"name": "CAP"})
    scenario_data["tests"][0]["price_code"] = "gold-plated-scan"
    (tmp_path / "fake.png").write_bytes(b"not a png at all")
    scenario_data["images"] = [{"asset": "fake.png", "modality": "X-ray"}, {"asset": "missing.dcm", "modality": "CT"},
                               {"asset": "package:no_such_package_xyz/a.png", "modality": "CT"},
                               {"asset": "https://example.org/a.png", "modality": "photo"}]
    _, report = validate_paths([write_yaml(scenario_data)])
    assert codes(report) == ["bad-asset", "bad-asset", "bad-asset", "diagnosis-in-differential",
                             "refusal-text", "unknown-icd10", "unknown-price-code"]
    assert "remote-asset" in codes(report, "warnings")


def test_package_assets_resolve_and_must_be_images(write_yaml, scenario_data):
    scenario_data["images"] = [{"asset": "package:pydicom/data/test_files/CT_small.dcm", "modality": "CT"},
                               {"asset": "package:skimage/data/retina.jpg", "modality": "fundus photo"}]
    _, report = validate_paths([write_yaml(scenario_data)])
    assert report.ok
    scenario_data["images"] = [{"asset": "package:agentclinic/scenario/prices-us-2024.yaml", "modality": "table"}]
    _, report = validate_paths([write_yaml(scenario_data)])
    [issue] = report.errors
    assert issue.field == "images.0.asset" and "is not an image" in issue.message


def test_near_duplicates_are_warned(write_yaml, scenario_data):
    write_yaml(scenario_data, "a.yaml")
    write_yaml({**scenario_data, "id": "copy"}, "b.yaml")
    _, report = validate_paths([write_yaml(scenario_data, "a.yaml").parent])
    assert "near-duplicate" in codes(report, "warnings")


def test_schema_errors_are_listed_with_the_rest(tmp_path, write_yaml, scenario_data):
    write_yaml(scenario_data, "good.yaml")
    write_yaml({**scenario_data, "id": "bad", "difficulty": "impossible"}, "bad.yaml")
    _, report = validate_paths([tmp_path])
    assert report.scenarios == 1 and [(i.code, i.field) for i in report.errors] == [("schema", "difficulty")]


@pytest.mark.skipif(not SHARED_DATASETS.exists(), reason="the AgentClinic case files are not beside the checkout")
def test_agentclinic_defects_are_listed_not_crashed_on():
    _, report = validate_paths([SHARED_DATASETS])
    assert report.scenarios == 122
    leaks = [i for i in report.errors if i.code == "diagnosis-leak"]
    assert len(leaks) >= 10 and all(i.scenario.startswith("medqa-") for i in leaks)
    assert {i.scenario for i in report.errors if i.code == "refusal-text"} >= {"nejm-008", "nejm-009", "nejm-011"}
    assert sum(i.code == "remote-asset" for i in report.warnings) == 15
    json.loads(report.model_dump_json())
