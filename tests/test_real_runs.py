"""Whole runs against real models (slow): the hf doctor beside a server patient, and a server killed mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentclinic.cli import app
from llama_server import free_port, llama_server, smollm2_gguf, start_server, stop_server  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
CASES = [REPO / "scenarios" / "cardiology" / "inferior-stemi.yaml",
         REPO / "scenarios" / "pulmonology" / "spontaneous-pneumothorax.yaml"]


def records_of(folder: Path) -> list[dict]:
    path = folder / "episodes.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.mark.slow
def test_hf_doctor_and_server_patient_play_whole_episodes(llama_server, tmp_path):  # noqa: F811
    """The doctor runs in-process (transformers reading SmolLM2's GGUF), the patient over HTTP."""
    gguf = smollm2_gguf()
    doctor, patient = f"hf/{gguf.parent}?gguf={gguf.name}", f"openai/smollm2@{llama_server}"
    args = ["run", "--doctor", doctor, "--patient", patient, "--measurement", "scripted", "--episodes", "2",
            "--max-turns", "3", "--max-tokens", "24", "--out", str(tmp_path), "--run-id", "hf"]
    for case in CASES:
        args += ["--scenarios", str(case)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = records_of(tmp_path / "hf")
    assert sorted(r["episode"] for r in records) == [0, 1]
    for record in records:
        assert record["error"] is None and record["outcome"] in ("correct", "incorrect", "no-diagnosis")
        calls = [c for e in record["events"] for c in e["model_calls"]]
        doctor_calls = [c for c in calls if c["role"] == "doctor"]
        assert len(doctor_calls) == record["turns"] and all(c["model"] == doctor for c in doctor_calls)
        assert all(c["usage"]["prompt_tokens"] > 0 and c["latency_s"] > 0 for c in calls)
        assert doctor_calls[0]["messages"][0]["role"] == "system"
        assert "Case brief" in json.dumps(doctor_calls[0]["messages"])
        patient_calls = [c for c in calls if c["role"] == "patient"]
        assert all(c["model"] == patient for c in patient_calls)


@pytest.mark.slow
def test_a_server_killed_mid_run_leaves_error_records_and_resume_finishes(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log = tmp_path / "server.log"
    spec = f"openai/smollm2@{url}?attempts=2&backoff=0.1"
    config = tmp_path / "slow.toml"
    config.write_text("timeout_s = 600\n", encoding="utf-8")  # only the kill may fail a call, not a slow CPU
    command = [sys.executable, "-m", "agentclinic.cli", "run", "--config", str(config), "--doctor", spec, "--patient", spec,
               "--measurement", "scripted", "--episodes", "6", "--concurrency", "1", "--max-turns", "2",
               "--max-tokens", "8", "--out", str(tmp_path), "--run-id", "killed"]
    for case in CASES:
        command += ["--scenarios", str(case)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    folder = tmp_path / "killed"

    server = start_server(port, log)
    try:
        run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 300
        while len(records_of(folder)) < 2 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        stop_server(server, kill=True)
        output, _ = run.communicate(timeout=300)
    finally:
        stop_server(server, kill=True)
    assert run.returncode == 3, output  # the run survives its server, and its exit status says episodes failed
    assert "episodes, " in output and " failed (exit status 3" in output
    first = records_of(folder)
    assert len(first) == 6
    failed = [r for r in first if r["outcome"] == "error"]
    assert 1 <= len(failed) <= 4 and all(url in r["error"] for r in failed)
    assert json.loads((folder / "summary.json").read_text())["errors"] == len(failed)

    server = start_server(port, log)
    try:
        again = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    finally:
        stop_server(server)
    assert again.returncode == 0, again.stdout + again.stderr
    lines = records_of(folder)
    assert len(lines) == 6 + len(failed)  # nothing recorded is lost: the failed records stay in the file
    latest = {r["episode"]: r for r in lines}
    assert sorted(latest) == list(range(6)) and all(r["outcome"] != "error" for r in latest.values())
    replayed = {r["episode"] for r in failed}
    assert {r["episode"] for r in lines[6:]} == replayed
    assert json.loads((folder / "summary.json").read_text())["errors"] == 0
