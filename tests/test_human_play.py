"""Human play in the terminal: ``agentclinic run --doctor human --scenario ID`` ends cleanly on end of input
(Ctrl-D) and on Ctrl-C, records and scores the episode, and never prints a traceback."""

import html
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

AGENTCLINIC = [str(Path(sys.executable).parent / "agentclinic")]
ENV = os.environ | {"HF_HUB_OFFLINE": "1", "AGENTCLINIC_EMBEDDINGS": "lexical", "PYTHONUNBUFFERED": "1"}


def run(tmp_path, scenario, stdin, run_id="h"):
    return subprocess.run([*AGENTCLINIC, "run", "--doctor", "human", "--scenario", scenario, "--out", str(tmp_path),
                           "--run-id", run_id], input=stdin, capture_output=True, text=True, env=ENV, timeout=300)


def record(tmp_path, run_id="h") -> dict:
    [line] = (tmp_path / run_id / "episodes.jsonl").read_text().splitlines()
    return json.loads(line)


def test_end_of_input_ends_a_station_cleanly_and_grades_it(tmp_path):
    done = run(tmp_path, "conversation-lung-cancer-news",
               "Hello Mr Price, I'm Dr Shah.\nHow are you feeling about all this?\n")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "Patient:" in done.stdout
    episode = record(tmp_path)
    assert episode["outcome"] == "completed" and episode["error"] is None and episode["turns"] == 3
    assert episode["scores"]["axes"]["conversation"] is not None and episode["extra"]["feedback"]["items"]
    assert [e["moves"] for e in episode["events"][:2]][1] == ["explore-emotion", "open-question"]
    assert "SPIKES" in done.stdout  # the feedback is shown to the person who played


def test_end_conversation_typed_ends_it_too(tmp_path):
    done = run(tmp_path, "conversation-lung-cancer-news", "Hello.\nEND CONVERSATION\nnever read\n")
    assert done.returncode == 0 and record(tmp_path)["outcome"] == "completed" and record(tmp_path)["turns"] == 2


def test_end_of_input_on_a_diagnostic_case_is_no_diagnosis_not_an_error(tmp_path):
    done = run(tmp_path, "cardiology-aortic-stenosis", "What brings you in?\n")
    assert done.returncode == 0, done.stderr
    episode = record(tmp_path)
    assert episode["outcome"] == "no-diagnosis" and episode["error"] is None and episode["scores"] is not None


def test_ctrl_c_ends_the_episode_cleanly(tmp_path):
    process = subprocess.Popen([*AGENTCLINIC, "run", "--doctor", "human", "--scenario", "conversation-lung-cancer-news",
                                "--out", str(tmp_path), "--run-id", "h"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        process.stdin.write("Hello Mr Price.\n")
        process.stdin.flush()
        deadline = time.time() + 240
        seen = ""
        while time.time() < deadline and "Patient:" not in seen:  # wait for the reply, then the next prompt
            seen += os.read(process.stdout.fileno(), 4096).decode()
        assert "Patient:" in seen
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in out + err
    assert record(tmp_path)["outcome"] == "completed"


def test_unknown_scenario_id_is_a_clear_error(tmp_path):
    done = run(tmp_path, "conversation-nope", "")
    assert done.returncode == 2 and "no scenario 'conversation-nope'" in done.stderr


@pytest.mark.slow
def test_a_language_model_plays_the_person_in_a_station(llama_server, tmp_path):  # noqa: F811
    """A real server (llama.cpp, SmolLM2) plays the person: its replies are the observations, its calls are in the
    record, and the state machine beside it still records moves, emotion and feedback."""
    news = "I'm afraid I have some serious news. The scan shows a cancer in your lung, and it has spread to your liver."
    done = subprocess.run([*AGENTCLINIC, "run", "--doctor", "human", "--scenario", "conversation-lung-cancer-news",
                           "--patient", f"openai/smollm2@{llama_server}", "--max-tokens", "48", "--out", str(tmp_path),
                           "--run-id", "llm"], input=f"Hello Mr Price, I'm Dr Shah.\n{news}\n",
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    played = record(tmp_path, "llm")
    assert played["outcome"] == "completed" and played["error"] is None
    said = [e for e in played["events"] if e["action"] and e["action"]["type"] == "ask"]
    calls = [c for e in said for c in e["model_calls"] if c["role"] == "patient"]
    assert len(said) == 2 and len(calls) == 2 and all(c["reply"] for c in calls)
    for event, call in zip(said, calls):  # the person's line is the model's reply (unescaped, on one line)
        assert event["observation"].startswith("Patient: ")
        assert " ".join(event["observation"].split()[1:6]) == " ".join(html.unescape(call["reply"]).split()[:5])
    assert "deliver-information" in said[1]["moves"] and said[1]["emotion"]["distress"] >= 3
    assert played["extra"]["feedback"]["items"]
