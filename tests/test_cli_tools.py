"""``agentclinic tool`` and ``agentclinic kb``: try a tool without an episode."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agentclinic.cli import app

REPO = Path(__file__).resolve().parents[1]
PHANTOM = REPO / "scenarios" / "radiology" / "assets" / "chest-ct-nodule.dcm"
cli = CliRunner()


def test_tool_segments_an_image_file_and_writes_its_overlay(tmp_path):
    result = cli.invoke(app, ["tool", "segment", "--image", str(PHANTOM), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    truth = json.loads((PHANTOM.parent / "phantoms.json").read_text())["phantoms"]["chest-ct-nodule"]["lesion"]
    assert printed["tool"] == "segment" and printed["arguments"]["image_id"] == "chest-ct-nodule"
    assert abs(printed["data"]["area_mm2"] - truth["area_mm2"]) / truth["area_mm2"] < 0.05
    assert printed["images"] and all(Path(p).parent == tmp_path and Path(p).read_bytes()[:4] == b"\x89PNG"
                                     for p in printed["images"])


def test_tool_uses_a_scenario_s_images_and_results():
    result = cli.invoke(app, ["tool", "check_report", "--scenario", "radiology-vestibular-schwannoma",
                              "--args", json.dumps({"test": "mri internal auditory meatus"})])
    assert result.exit_code == 0, result.output
    errors = json.loads(result.stdout)["data"]["errors"]
    assert "laterality_swap" in {e["type"] for e in errors}  # the case's planted left/right swap


def test_tool_errors_are_clear_and_exit_1():
    bad_json = cli.invoke(app, ["tool", "retrieve", "--args", "{query"])
    assert bad_json.exit_code == 1 and "not valid JSON" in bad_json.output
    unknown = cli.invoke(app, ["tool", "xray_vision"])
    assert unknown.exit_code == 1 and "unknown tool 'xray_vision'" in unknown.output and "segment" in unknown.output
    invalid = cli.invoke(app, ["tool", "retrieve", "--args", '{"query": "chest pain", "k": 0}'])
    assert invalid.exit_code == 1 and "invalid arguments for retrieve" in invalid.output
    missing = cli.invoke(app, ["tool", "segment", "--image", "/no/such/file.png"])
    assert missing.exit_code == 1 and "no such file" in missing.output
    no_case = cli.invoke(app, ["tool", "segment", "--scenario", "no-such-case"])
    assert no_case.exit_code == 1 and "no scenario 'no-such-case'" in no_case.output


def test_kb_build_and_search():
    built = cli.invoke(app, ["kb", "build"])
    assert built.exit_code == 0 and "passages from kb" in built.output, built.output
    found = cli.invoke(app, ["kb", "search", "crushing central chest pain, sweating, ST elevation", "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)
    assert hits and hits[0]["icd10"].startswith("I2")
    nonsense = cli.invoke(app, ["kb", "search", "qwzx vprtl jjkq", "--json"])
    assert nonsense.exit_code == 0 and json.loads(nonsense.stdout) == []
