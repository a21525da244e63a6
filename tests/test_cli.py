import json

import yaml
from typer.testing import CliRunner

from agentclinic.cli import app

runner = CliRunner()


def test_validate_json_and_exit_status(tmp_path, write_yaml, scenario_data):
    good = write_yaml(scenario_data, "good/case.yaml")
    result = runner.invoke(app, ["scenarios", "validate", str(good.parent), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["scenarios"] == 1 and report["errors"] == []
    scenario_data["tests"][0]["result"] = "Community-acquired pneumonia."
    bad = write_yaml(scenario_data, "bad/case.yaml")
    result = runner.invoke(app, ["scenarios", "validate", str(bad)])
    assert result.exit_code == 1
    assert "diagnosis-leak" in result.output and "1 errors" in result.output


def test_list_and_show(write_yaml, scenario_data, medqa_file):
    folder = write_yaml(scenario_data, "bank/case.yaml").parent
    listed = json.loads(runner.invoke(app, ["scenarios", "list", str(folder), str(medqa_file), "--json"]).output)
    assert [row["id"] for row in listed["scenarios"]] == ["test-case", "medqa-001", "medqa-002"]
    shown = runner.invoke(app, ["scenarios", "show", "medqa-001", "--from", str(medqa_file)])
    assert shown.exit_code == 0 and yaml.safe_load(shown.output)["diagnosis"]["name"] == "Myasthenia gravis"
    missing = runner.invoke(app, ["scenarios", "show", "nope", "--from", str(folder)])
    assert missing.exit_code == 2 and "no scenario with id 'nope'" in missing.output


def test_import_writes_native_files_that_load(tmp_path, nejm_file):
    out = tmp_path / "imported"
    result = runner.invoke(app, ["scenarios", "import", str(nejm_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "nejm-001.yaml").exists()
    report = json.loads(runner.invoke(app, ["scenarios", "validate", str(out), "--json"]).output)
    assert report["scenarios"] == 1 and any(w["code"] == "remote-asset" for w in report["warnings"])


def test_missing_path_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["scenarios", "list", str(tmp_path / "nowhere"), "--no-skip-errors"])
    assert result.exit_code == 2 and "no such file or folder" in result.output
