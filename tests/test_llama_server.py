"""The real-server fixture's own guards: a dead server fails with its exit code and log tail, a failed warm-up
fails (it is not skipped), and a missing server is a failure where the test extras are required."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llama_server import ServerProcess, _skip_or_fail, free_port, warm_up


def dead_server(tmp_path, code: int = 139) -> ServerProcess:
    log = tmp_path / "server.log"
    script = f"import sys; print('ggml_compute_forward: crashing in amx kernel'); sys.exit({code})"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=out, stderr=subprocess.STDOUT)
    proc.wait(timeout=30)
    return ServerProcess(proc, f"http://127.0.0.1:{free_port()}/v1", log)


def test_a_dead_server_fails_the_test_with_its_exit_code_and_log_tail(tmp_path):
    server = dead_server(tmp_path)
    with pytest.raises(pytest.fail.Exception) as failed:
        server.check()
    assert "exited with code 139" in str(failed.value)
    assert "crashing in amx kernel" in str(failed.value)


def test_a_running_server_passes_the_check(tmp_path):
    log = tmp_path / "server.log"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        server = ServerProcess(proc, "http://127.0.0.1:1/v1", log)
        assert server.dead() is None
        server.check()
    finally:
        proc.kill()
        proc.wait()


def test_a_failed_warm_up_chat_is_a_failure_with_the_log_not_a_skip(tmp_path):
    server = dead_server(tmp_path)
    with pytest.raises(pytest.fail.Exception) as failed:
        warm_up(server)
    message = str(failed.value)
    assert "warm-up chat" in message and "crashing in amx kernel" in message


def test_a_missing_server_fails_when_the_test_extras_are_required(monkeypatch):
    monkeypatch.setenv("AGENTCLINIC_REQUIRE_LLAMA", "1")
    with pytest.raises(pytest.fail.Exception, match="must run"):
        _skip_or_fail("llama-cpp-python is not importable")
    monkeypatch.delenv("AGENTCLINIC_REQUIRE_LLAMA")
    with pytest.raises(pytest.skip.Exception):
        _skip_or_fail("llama-cpp-python is not importable")
