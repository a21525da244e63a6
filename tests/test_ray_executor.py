"""The Ray executor on a local Ray (2 CPUs, no dashboard): the same records as the local executor, and a
worker killed mid-run loses and doubles nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import ray  # the test extra installs it (agentclinic[ray])

from agentclinic.runs.ray_executor import failure_record, run_on_ray
from agentclinic.runs.session import RunConfig, RunFactory, run_session
from agentclinic.runs.writer import RunWriter
from agentclinic.scenario.loaders import BANK_DIR, load_scenarios

pytestmark = pytest.mark.slow
CASES = str(BANK_DIR / "cardiology")
TIMING = {"seconds", "doctor_seconds", "model_seconds", "started_at", "run_id", "env_ms", "doctor_ms", "latency_s"}


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def without_timing(value):
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def records(folder: Path) -> dict[int, dict]:
    lines = (folder / "episodes.jsonl").read_text().splitlines()
    return {r["episode"]: r for r in map(json.loads, lines)}


def test_a_run_through_ray_records_what_the_local_executor_records(local_ray, tmp_path):
    config = RunConfig(scenarios=[CASES], episodes=4, concurrency=2)
    local, _ = run_session(config, out=tmp_path, run_id="local")
    remote, summary = run_session(config.model_copy(update={"executor": "ray", "workers": 2}),
                                  out=tmp_path, run_id="ray")
    ours, theirs = records(local), records(remote)
    assert sorted(theirs) == [0, 1, 2, 3]
    assert {k: without_timing(v) for k, v in theirs.items()} == {k: without_timing(v) for k, v in ours.items()}
    assert summary["episodes"] == 4 and summary["errors"] == 0
    saved = json.loads((remote / "run.json").read_text())["config"]
    assert saved["executor"] == "ray" and saved["workers"] == 2


def worker_pids() -> list[int]:
    """Processes of the run's Ray actors (Ray titles them ``ray::EpisodeWorker...``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::EpisodeWorker"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_a_worker_killed_mid_run_loses_and_doubles_no_episode(local_ray, tmp_path):
    config = RunConfig(scenarios=[CASES], episodes=8, concurrency=4)
    scenarios = load_scenarios([CASES]).scenarios
    plan = [(i, scenarios[i % len(scenarios)], i) for i in range(8)]
    factory = RunFactory(config)
    killed: list[int] = []

    def kill_one(record) -> None:
        if not killed and (pids := worker_pids()):
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    with RunWriter(tmp_path / "killed") as writer:
        writer.start(config.model_dump(mode="json"), resume=False)
        stats = run_on_ray(plan, config.model_dump(mode="json"), writer=writer, run_id="killed", concurrency=4,
                           workers=2, on_done=kill_one,
                           failure=lambda item, cause: failure_record(factory, item, cause, "killed"))
    assert killed, "no Ray worker process was found to kill"
    assert stats.replaced == 1 and stats.failed == 0
    saved = [json.loads(line) for line in (tmp_path / "killed" / "episodes.jsonl").read_text().splitlines()]
    assert sorted(r["episode"] for r in saved) == list(range(8))  # each once: none lost, none doubled
    assert all(r["outcome"] in ("correct", "incorrect") for r in saved)


def test_importing_agentclinic_never_imports_ray():
    code = ("import sys, agentclinic, agentclinic.cli, agentclinic.runs.session, agentclinic.env.gym; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
