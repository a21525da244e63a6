"""``agentclinic grade``: JSON and Markdown transcripts, --json output, and clear errors for bad input."""

import json

import pytest
from typer.testing import CliRunner

from agentclinic.cli import app

runner = CliRunner()
STATION = "conversation-lung-cancer-news"
TURNS = [
    {"role": "clinician", "text": "Hello Mr Price, I'm Dr Shah. What have you been told so far about the scan?"},
    {"role": "patient", "text": "Just that there was a shadow."},
    {"role": "clinician", "text": "I'm afraid it's not good news. The scan shows a cancer in your lung."},
    {"role": "patient", "text": "Cancer. Right. I don't know how I'm going to tell Jean..."},
    {"role": "doctor", "text": "(pauses) This must be a shock. What worries you most about Jean?"},
]


def grade(*args):
    return runner.invoke(app, ["grade", "--scenario", STATION, *args])


def test_json_transcript_gives_items_with_evidence_and_a_score(tmp_path):
    path = tmp_path / "session.json"
    path.write_text(json.dumps(TURNS))
    result = grade("--transcript", str(path), "--json")
    assert result.exit_code == 0, result.output
    feedback = json.loads(result.output)
    assert 0 <= feedback["score"] <= 1 and feedback["station"] == STATION and feedback["method"] == "rules"
    perception = next(i for i in feedback["items"] if i["rubric"] == "spikes" and i["id"] == "perception")
    assert perception["status"] == "met" and perception["evidence"][0]["turn"] == 1
    assert "What have you been told so far about the scan?" in perception["evidence"][0]["quote"]


def test_markdown_transcript_grades_like_json_and_prints_readable_feedback(tmp_path):
    md = tmp_path / "session.md"
    md.write_text("# Practice session\n\n" + "\n".join(
        f"**{'Clinician' if t['role'] in ('clinician', 'doctor') else 'Patient'}:** {t['text']}" for t in TURNS)
        + "\n\n---\n\n## Feedback\n**Patient:** not part of the transcript\n")
    js = tmp_path / "session.json"
    js.write_text(json.dumps(TURNS))
    as_md, as_js = grade("--transcript", str(md), "--json"), grade("--transcript", str(js), "--json")
    assert json.loads(as_md.output) == json.loads(as_js.output)
    readable = grade("--transcript", str(md))
    assert readable.exit_code == 0 and "SPIKES" in readable.output and "Overall score" in readable.output


@pytest.mark.parametrize("content, message", [
    ("[{\"role\": \"clinician\"", "not valid JSON"),
    ("{\"role\": \"clinician\", \"text\": \"hi\"}", "expected a JSON list"),
    ("[{\"role\": \"surgeon\", \"text\": \"hi\"}]", "utterance 0.role"),
    ("[{\"role\": \"clinician\", \"text\": 3}]", "utterance 0.text"),
    ("[{\"role\": \"patient\", \"text\": \"hello\"}]", "no clinician utterance"),
    ("**Nurse:** hello", "unknown speaker"),
])
def test_bad_transcripts_are_clear_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = grade("--transcript", str(path))
    assert result.exit_code == 2 and message in result.output and "bad.json" in result.output
    assert "Traceback" not in result.output


def test_unknown_station_diagnostic_case_and_missing_file(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(TURNS))
    unknown = runner.invoke(app, ["grade", "--scenario", "conversation-nope", "--transcript", str(path)])
    assert unknown.exit_code == 2 and "no scenario 'conversation-nope'" in unknown.output
    diagnostic = runner.invoke(app, ["grade", "--scenario", "cardiology-aortic-stenosis", "--transcript", str(path)])
    assert diagnostic.exit_code == 2 and "diagnostic case" in diagnostic.output
    missing = grade("--transcript", str(tmp_path / "absent.json"))
    assert missing.exit_code == 2 and "cannot read the transcript" in missing.output


@pytest.mark.slow
def test_a_model_grader_on_a_real_server_keeps_the_rule_grading_beside_it(llama_server, tmp_path):
    """--judge with a real server (llama.cpp, SmolLM2-135M: too small to follow the grading format reliably):
    whatever it answers, the output is graded items with quotes the learner really said, and the rule grading
    is kept in 'rules' or, when the model's reply is not understood, used and the reason noted."""
    path = tmp_path / "session.json"
    path.write_text(json.dumps(TURNS))
    result = grade("--transcript", str(path), "--json", "--judge", f"openai/smollm2@{llama_server}")
    assert result.exit_code == 0, result.output
    feedback = json.loads(result.output)
    said = {turn["text"].lower() for turn in TURNS}
    quotes = [e["quote"].lower() for item in feedback["items"] for e in item["evidence"]]
    assert all(any(q in s for s in said) for q in quotes)  # no invented quote survives
    if feedback["method"] == "llm":
        assert feedback["grader"] and feedback["rules"]["method"] != "llm"
    else:
        assert any("model grader" in p for p in feedback["penalties"])
    assert 0.0 <= feedback["score"] <= 1.0
