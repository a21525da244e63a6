"""A run folder is never mixed, doubled or silently truncated: the lock, run ids, resume, damaged files,
short and failed writes, and the exit status of a run with failed episodes."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentclinic.cli import app
from agentclinic.runs import writer as writer_module
from agentclinic.runs.record import EpisodeRecord
from agentclinic.runs.report import ReportError, load_run
from agentclinic.runs.writer import RunFolderError, RunWriter, check_run_id
from conftest import MINIMAL

cli = CliRunner()


@pytest.fixture(autouse=True)
def lexical(monkeypatch):
    monkeypatch.setenv("AGENTCLINIC_EMBEDDINGS", "lexical")


@pytest.fixture
def cases(tmp_path) -> Path:
    folder = tmp_path / "cases"
    folder.mkdir()
    (folder / "case.yaml").write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")
    return folder


def run(cases: Path, out: Path, *args: str, input: str | None = None):
    return cli.invoke(app, ["run", "--scenarios", str(cases), "--doctor", "random", "--out", str(out), *args],
                      input=input)


def record(episode: int, outcome: str = "incorrect") -> EpisodeRecord:
    return EpisodeRecord(run_id="r", episode=episode, scenario_id="test-case", doctor="random", outcome=outcome,
                         error="RuntimeError: boom" if outcome == "error" else None)


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------------------ the lock

def test_a_second_process_cannot_use_a_run_folder_in_use(tmp_path, cases):
    """Two real processes: the first holds the run (its human doctor waits for input); the second,
    started with --resume meanwhile, must refuse and name the first; the first then finishes alone."""
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "agentclinic.cli", "run", "--scenarios", str(cases), "--doctor", "human",
               "--episodes", "3", "--out", str(out), "--run-id", "x"]
    env = {**os.environ, "AGENTCLINIC_EMBEDDINGS": "lexical"}
    first = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        lock, run_json = out / "x" / ".lock", out / "x" / "run.json"
        deadline = time.monotonic() + 300  # a wait for the first process to start, not a timed assertion
        while not (run_json.exists() and lock.exists() and lock.read_text()) and first.poll() is None:
            assert time.monotonic() < deadline, "the first run never took its folder"
            time.sleep(0.05)
        assert f"pid {first.pid} on " in lock.read_text()
        second = subprocess.run([*command, "--resume"], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "is in use by another run" in second.stderr and f"pid {first.pid}" in second.stderr
        output, _ = first.communicate("DIAGNOSIS READY: Community-acquired pneumonia\n" * 3, timeout=300)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0, output
    records = lines_of(out / "x" / "episodes.jsonl")
    assert sorted(r["episode"] for r in records) == [0, 1, 2]  # each episode exactly once
    assert all(r["outcome"] == "correct" for r in records)
    assert lock.read_text() == ""  # released: the holder's line is cleared


def test_the_lock_names_its_holder_and_is_released_on_close(tmp_path):
    with RunWriter(tmp_path / "run") as holder:
        holder.start({"x": 1}, resume=False)
        with pytest.raises(RunFolderError, match=rf"in use by another run \(pid {os.getpid()} on .*, started "):
            RunWriter(tmp_path / "run").start({"x": 1}, resume=True)
    with RunWriter(tmp_path / "run") as again:  # closed: the next run may take it
        assert again.start({"x": 1}, resume=True) == set()
    with pytest.raises(RunFolderError, match="settings differ"):
        RunWriter(tmp_path / "run").start({"x": 2}, resume=True)  # a run that cannot start holds nothing
    assert RunWriter(tmp_path / "run").start({"x": 1}, resume=True) == set()


# ------------------------------------------------------------------------------- what a folder may hold

def test_records_without_run_json_are_not_adopted(tmp_path, cases):
    folder = tmp_path / "runs" / "orphan"
    folder.mkdir(parents=True)
    (folder / "episodes.jsonl").write_text(record(0).model_dump_json() + "\n")
    result = run(cases, tmp_path / "runs", "--run-id", "orphan")
    assert result.exit_code == 2 and "not adopted" in result.output and "run.json" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["episodes.jsonl"]  # nothing written


def test_resuming_a_run_that_does_not_exist_is_refused(tmp_path, cases):
    result = run(cases, tmp_path / "runs", "--run-id", "never", "--resume")
    assert result.exit_code == 2 and "no run there" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "a\\b", "/tmp/abs", ".hidden", "..", "a..b", "sp ace",
                                    "", "x" * 129, "naïve"])
def test_bad_run_ids_are_rejected_before_anything_is_written(tmp_path, cases, run_id):
    before = sorted(tmp_path.rglob("*"))
    result = run(cases, tmp_path / "runs", "--run-id", run_id)
    assert result.exit_code == 2 and "invalid run id" in result.output
    assert sorted(tmp_path.rglob("*")) == before
    with pytest.raises(RunFolderError):
        check_run_id(run_id)


def test_plain_run_ids_are_accepted():
    for run_id in ("r1", "2024-05-01_gpt-4o", "Qwen2.5-7B", "_x"):
        assert check_run_id(run_id) == run_id


# ------------------------------------------------------------------------------------------ damaged files

def test_a_corrupt_middle_line_is_named_on_resume_and_in_report(tmp_path, cases):
    out = tmp_path / "runs"
    assert run(cases, out, "--episodes", "3", "--run-id", "r").exit_code == 0
    episodes = out / "r" / "episodes.jsonl"
    lines = episodes.read_text().splitlines(keepends=True)
    lines[1] = lines[1][: len(lines[1]) // 2] + "\n"
    episodes.write_text("".join(lines))
    damaged = episodes.read_bytes()
    resumed = run(cases, out, "--episodes", "3", "--run-id", "r", "--resume")
    assert resumed.exit_code == 2 and resumed.exception.__class__ is SystemExit, resumed.output
    assert f"{episodes}:2: unreadable episode record" in resumed.output.replace("\n", "")
    assert "delete or fix line 2" in resumed.output.replace("\n", "")
    assert episodes.read_bytes() == damaged  # not "repaired"
    with pytest.raises(ReportError, match=rf"{episodes}:2: .*delete or fix line 2"):
        load_run(out / "r")
    report = cli.invoke(app, ["report", str(out / "r"), "--no-html"])
    assert report.exit_code == 1 and "delete or fix line 2" in report.output.replace("\n", "")


def test_only_a_torn_last_line_is_cut_off(tmp_path):
    writer = RunWriter(tmp_path / "run")
    with writer:
        writer.start({"x": 1}, resume=False)
        writer.append(record(0))
    with writer.episodes_path.open("a") as handle:
        handle.write('{"run_id": "r", "epis')  # no newline: a kill in mid-write
    with RunWriter(tmp_path / "run") as again:
        assert again.start({"x": 1}, resume=True) == {0}
    assert writer.episodes_path.read_text() == record(0).model_dump_json() + "\n"
    with writer.episodes_path.open("a") as handle:
        handle.write('{"run_id": "r", "epis\n')  # with its newline: not torn, damaged
    with RunWriter(tmp_path / "run") as again, pytest.raises(RunFolderError, match=":2: .*delete or fix line 2"):
        again.start({"x": 1}, resume=True)


@pytest.mark.parametrize("content", ["", '{"config": {"seed": 0', "[1, 2]", '{"versions": {}}', '{"config": 3}'])
def test_an_unreadable_run_json_is_a_clear_error(tmp_path, cases, content):
    out = tmp_path / "runs"
    assert run(cases, out, "--run-id", "r").exit_code == 0
    (out / "r" / "run.json").write_text(content)
    resumed = run(cases, out, "--run-id", "r", "--resume")
    assert resumed.exit_code == 2 and resumed.exception.__class__ is SystemExit
    assert f"{out / 'r' / 'run.json'}: " in resumed.output.replace("\n", "") and "Traceback" not in resumed.output


# ---------------------------------------------------------------------------------- short and failed writes

def test_short_writes_are_continued(tmp_path, monkeypatch):
    real_write, sizes = os.write, []

    def half(fd, data):
        data = bytes(data)
        sizes.append(len(data))
        return real_write(fd, data[: max(1, len(data) // 2)])

    with RunWriter(tmp_path / "run") as writer:
        writer.start({"x": 1}, resume=False)
        monkeypatch.setattr(writer_module.os, "write", half)
        writer.append(record(0))
        writer.append(record(1))
        monkeypatch.undo()
        assert [r.episode for r in writer.records()] == [0, 1]
    assert len(sizes) > 4  # each record took several writes
    assert writer.episodes_path.read_text() == record(0).model_dump_json() + "\n" + record(1).model_dump_json() + "\n"


def test_a_record_that_cannot_be_appended_goes_to_a_fallback_file(tmp_path, monkeypatch):
    real_write, calls = os.write, []

    def full_after_half(fd, data):  # writes half the line, then the disk is full
        if os.readlink(f"/proc/self/fd/{fd}").endswith("episodes.jsonl"):
            calls.append(fd)
            if len(calls) > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            data = bytes(data)
            return real_write(fd, data[: len(data) // 2])
        return real_write(fd, data)

    with RunWriter(tmp_path / "run") as writer:
        writer.start({"x": 1}, resume=False)
        writer.append(record(0))
        monkeypatch.setattr(writer_module.os, "write", full_after_half)
        with pytest.raises(RunFolderError) as error:
            writer.append(record(1, "correct"))
        monkeypatch.undo()
    fallback = tmp_path / "run" / f"episodes.unsaved-{os.getpid()}.jsonl"
    message = str(error.value)
    assert "could not append episode 1" in message and "No space left on device" in message
    assert str(fallback) in message
    assert EpisodeRecord.model_validate_json(fallback.read_text()) == record(1, "correct")  # not lost
    assert len(calls) == 2  # half the line was written before the disk filled
    assert writer.episodes_path.read_text() == record(0).model_dump_json() + "\n"  # no torn line left


def test_the_fallback_goes_to_the_temp_dir_when_the_run_folder_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    real_write = os.write

    def full_in_run(fd, data):
        if "/run/" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    with RunWriter(tmp_path / "run") as writer:
        writer.start({"x": 1}, resume=False)
        monkeypatch.setattr(writer_module.os, "write", full_in_run)
        with pytest.raises(RunFolderError) as error:
            writer.append(record(0))
        monkeypatch.undo()
    [saved] = (tmp_path / "tmp").iterdir()
    assert saved.name == f"agentclinic-run-episodes.unsaved-{os.getpid()}.jsonl" and str(saved) in str(error.value)
    assert EpisodeRecord.model_validate_json(saved.read_text()).episode == 0
    assert not (tmp_path / "run" / f"episodes.unsaved-{os.getpid()}.jsonl").exists()  # no empty file left there


def test_an_out_folder_that_cannot_be_written_is_refused_before_any_episode(tmp_path, cases):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run(cases, blocker / "runs", "--run-id", "r")
    assert result.exit_code == 2 and "cannot write to" in result.output.replace("\n", "")


def test_a_failed_probe_stops_the_run_before_it_plays(tmp_path, monkeypatch):
    def no_space(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writer_module.os, "write", no_space)
    with pytest.raises(RunFolderError, match="cannot write to .*No space left on device"):
        RunWriter(tmp_path / "run").start({"x": 1}, resume=False)
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []  # the probe is gone too


# ------------------------------------------------------------------------------------------- exit status

def test_failed_episodes_give_exit_status_3_unless_allowed(tmp_path, cases):
    out = tmp_path / "runs"
    dead = "openai/x@http://127.0.0.1:9/v1?attempts=1"  # nothing listens on port 9: every doctor call fails
    failed = cli.invoke(app, ["run", "--scenarios", str(cases), "--doctor", dead, "--episodes", "2",
                              "--out", str(out), "--run-id", "f"])
    assert failed.exit_code == 3, failed.output
    assert "2 episodes, 2 failed" in failed.output.strip().splitlines()[-1]
    assert [r["outcome"] for r in lines_of(out / "f" / "episodes.jsonl")] == ["error", "error"]
    allowed = cli.invoke(app, ["run", "--scenarios", str(cases), "--doctor", dead, "--episodes", "2",
                               "--out", str(out), "--run-id", "g", "--allow-errors"])
    assert allowed.exit_code == 0 and "2 episodes, 2 failed" in allowed.output
    run_json = out / "f" / "run.json"  # the endpoint is back (here: the doctor is replaced by a person)
    saved = json.loads(run_json.read_text())
    saved["config"]["doctor"] = "human"
    run_json.write_text(json.dumps(saved))
    fixed = cli.invoke(app, ["run", "--scenarios", str(cases), "--doctor", "human", "--episodes", "2",
                             "--out", str(out), "--run-id", "f", "--resume"],
                       input="DIAGNOSIS READY: Community-acquired pneumonia\n" * 2)
    assert fixed.exit_code == 0 and "2 episodes, 0 failed" in fixed.output  # the replays superseded the errors


# ------------------------------------------------------------------------------- hostile variations

@pytest.mark.parametrize("run_id", ["-x", "--resume", "-"])
def test_a_run_id_may_not_look_like_an_option(tmp_path, cases, run_id):
    """A folder named '-x' is read as an option by the next command that names it (report, rm, ls)."""
    result = run(cases, tmp_path / "runs", f"--run-id={run_id}")
    assert result.exit_code == 2 and "invalid run id" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("edit", ["doctor", "scenario_ids", "all"])
def test_a_run_json_stripped_of_its_settings_does_not_adopt_another_run(tmp_path, cases, edit):
    """Settings that every run has recorded since the first version decide what its episodes are: a run.json
    without them (edited or damaged) would let a resume with another doctor or other cases mix two runs."""
    out = tmp_path / "runs"
    assert run(cases, out, "--episodes", "3", "--run-id", "r").exit_code == 0
    episodes = out / "r" / "episodes.jsonl"
    episodes.write_text("".join(episodes.read_text().splitlines(keepends=True)[:1]))
    saved = json.loads((out / "r" / "run.json").read_text())
    saved["config"] = {} if edit == "all" else {k: v for k, v in saved["config"].items() if k != edit}
    (out / "r" / "run.json").write_text(json.dumps(saved))
    before = episodes.read_bytes()
    resumed = cli.invoke(app, ["run", "--scenarios", str(cases), "--doctor", "scripted", "--episodes", "3",
                               "--out", str(out), "--run-id", "r", "--resume"])
    assert resumed.exit_code == 2 and resumed.exception.__class__ is SystemExit, resumed.output
    text = " ".join(resumed.output.split())
    assert f"{out / 'r' / 'run.json'}" in text.replace(" ", "") or str(out / "r" / "run.json") in text
    assert "does not record" in text and (edit == "all" or edit in text)
    assert episodes.read_bytes() == before


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path):
    """A record written in full but for its newline (a kill between the two) is a played episode: resuming
    completes the line instead of cutting the record off and playing the episode again."""
    with RunWriter(tmp_path / "run") as writer:
        writer.start({"x": 1}, resume=False)
        writer.append(record(0))
        writer.append(record(1, "correct"))
    writer.episodes_path.write_bytes(writer.episodes_path.read_bytes()[:-1])
    assert [r.episode for r in RunWriter(tmp_path / "run").records()] == [0, 1]  # report sees it too
    with RunWriter(tmp_path / "run") as again:
        assert again.start({"x": 1}, resume=True) == {0, 1}
    assert writer.episodes_path.read_text() == record(0).model_dump_json() + "\n" + record(
        1, "correct").model_dump_json() + "\n"


def test_a_null_config_in_run_json_is_not_called_empty(tmp_path, cases):
    out = tmp_path / "runs"
    assert run(cases, out, "--run-id", "r").exit_code == 0
    (out / "r" / "run.json").write_text('{"config": null}')
    resumed = run(cases, out, "--run-id", "r", "--resume")
    assert resumed.exit_code == 2 and "no config object" in resumed.output and "empty" not in resumed.output
