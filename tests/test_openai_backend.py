"""The openai backend: against a real llama.cpp server (slow) and a small fake server for the faults."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentclinic.backends.base import (
    ChatResult, ImagePart, Message, ModelError, Settings, TextPart, ToolCall, load_model)
from agentclinic.backends.cache import CachedModel, ReplayCache
from agentclinic.backends.openai_compat import (
    DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_S, LOCAL_CONCURRENCY, LOCAL_TIMEOUT_S, OpenAIChatModel, endpoint_gate,
    is_local_url, parse_json_reply)
from agentclinic.env.actions import action_names, action_tools
from agentclinic.errors import ConfigError
from llama_server import free_port, llama_server  # noqa: F401

PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
       "RU5ErkJggg==")
SCHEMA = {"type": "object", "properties": {"diagnosis": {"type": "string"}}, "required": ["diagnosis"]}


def run(coro):
    return asyncio.run(coro)


def user(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def completion(content: str | None = "Hello.", tool_calls: list | None = None, model: str = "fake-model") -> dict:
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}


# ----------------------------------------------------------------------------------------------- fake server

class FakeServer:
    """An OpenAI-ish endpoint on 127.0.0.1: ``reply(n, request) -> (status, body, delay_s[, headers])``.

    Records each request (headers and JSON body) and the most requests ever in flight at once.
    Answers at most ``limit`` requests; later ones get HTTP 503, so no test can loop for ever.
    """

    def __init__(self, reply, limit: int = 50):
        self.reply, self.limit = reply, limit
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}, {})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with fake._lock:
                    n = len(fake.requests)
                    fake.requests.append(json.loads(raw or b"{}"))
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if n >= fake.limit:
                        status, body, delay, headers = 503, {"error": {"message": "request limit"}}, 0, {}
                    else:
                        answer = fake.reply(n, fake.requests[n])
                        status, body, delay = answer[:3]
                        headers = answer[3] if len(answer) > 3 else {}
                    if delay:
                        time.sleep(delay)
                    self._send(status, body, headers)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _send(self, status, body, headers):
                data = body if isinstance(body, bytes) else (
                    body.encode() if isinstance(body, str) else json.dumps(body).encode())
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def count(self) -> int:
        return len(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def fake_server():
    servers: list[FakeServer] = []

    def start(reply, limit: int = 50) -> FakeServer:
        server = FakeServer(reply, limit)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def fast_model(url: str, options: str = "", **kwargs) -> OpenAIChatModel:
    """A model with a short backoff so that retries cost milliseconds."""
    kwargs.setdefault("base_delay_s", 0.01)
    return OpenAIChatModel(f"openai/fake-model@{url}{'?' + options if options else ''}", **kwargs)


FAST = Settings(timeout_s=5)

# ----------------------------------------------------------------------------------------------- real server


@pytest.mark.slow
def test_real_server_plain_chat(llama_server):
    model = OpenAIChatModel(f"openai/smollm2@{llama_server}")
    result = run(model.chat(user("Say hello in five words."), Settings(max_tokens=16, timeout_s=120)))
    assert isinstance(result, ChatResult)
    assert result.text.strip()
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert result.latency_s > 0
    assert not result.cached


@pytest.mark.slow
def test_real_server_function_calling(llama_server):
    model = OpenAIChatModel(f"openai/smollm2@{llama_server}")
    messages = [Message(role="system", content="You are a doctor. Use one of the tools to act."),
                Message(role="user", content="I have had a cough and a fever for five days.")]
    try:
        result = run(model.chat(messages, Settings(max_tokens=48, timeout_s=180), tools=action_tools()))
    except ModelError as exc:  # a 135M model may produce nothing usable; the failure must still be clean
        assert "openai/smollm2@" in str(exc)
        return
    assert isinstance(result, ChatResult)
    assert result.text.strip() or result.tool_calls
    names = set(action_names())
    for call in result.tool_calls:
        assert isinstance(call, ToolCall) and call.name in names
        json.loads(call.arguments)


@pytest.mark.slow
def test_real_server_forced_tool_call(llama_server):
    """chatml-function-calling: a named tool_choice makes even SmolLM2-135M produce a real tool call."""
    model = OpenAIChatModel(f"openai/smollm2@{llama_server}?tool_choice=diagnose")
    tools = [t for t in action_tools() if t["function"]["name"] == "diagnose"]
    messages = [Message(role="system", content="You are a doctor."),
                Message(role="user", content="I have had a cough and a fever for five days.")]
    result = run(model.chat(messages, Settings(max_tokens=48, timeout_s=180), tools=tools))
    assert [c.name for c in result.tool_calls] == ["diagnose"]
    assert isinstance(json.loads(result.tool_calls[0].arguments), dict)


@pytest.mark.slow
def test_real_server_json_schema(llama_server):
    model = OpenAIChatModel(f"openai/smollm2@{llama_server}", max_attempts=2)
    try:
        result = run(model.chat(user("A patient has a cough and fever. What is the diagnosis?"),
                                Settings(max_tokens=40, timeout_s=180), json_schema=SCHEMA))
    except ModelError as exc:
        assert "openai/smollm2@http://127.0.0.1" in str(exc)
        return
    assert isinstance(json.loads(result.text), dict)
    assert model._json_fallback in ("object", "prompt")  # llama.cpp refuses json_schema


@pytest.mark.slow
def test_real_server_concurrent_requests(llama_server):
    model = OpenAIChatModel(f"openai/smollm2@{llama_server}")

    async def main():
        settings = Settings(max_tokens=8, timeout_s=240)
        return await asyncio.gather(*(model.chat(user(f"Say the number {i}."), settings) for i in range(8)))

    results = run(main())
    assert len(results) == 8
    assert all(r.text.strip() and r.usage.completion_tokens > 0 for r in results)


# ----------------------------------------------------------------------------------------------- requests


def test_request_shape_images_tools_and_settings(fake_server):
    server = fake_server(lambda n, req: (200, completion("ok"), 0))
    model = fast_model(server.url)
    assert model.supports_images
    messages = [Message(role="system", content="Be brief."),
                Message(role="user", content=[TextPart(text="What is this?"), ImagePart(url=PNG, source="x.png")]),
                Message(role="assistant", content="", tool_calls=[ToolCall(name="examine", arguments="{}")]),
                Message(role="tool", content="Chest clear."),
                Message(role="user", content="And now?")]
    settings = Settings(temperature=0.5, max_tokens=33, seed=7, top_p=0.9, timeout_s=5)
    result = run(model.chat(messages, settings, tools=action_tools()))
    assert result.text == "ok" and result.usage.prompt_tokens == 7 and result.usage.completion_tokens == 3
    body = server.requests[0]
    assert body["model"] == "fake-model"
    assert (body["temperature"], body["max_tokens"], body["seed"], body["top_p"]) == (0.5, 33, 7, 0.9)
    assert body["messages"][1]["content"] == [{"type": "text", "text": "What is this?"},
                                             {"type": "image_url", "image_url": {"url": PNG}}]
    call_id = body["messages"][2]["tool_calls"][0]["id"]
    assert body["messages"][3] == {"role": "tool", "content": "Chest clear.", "tool_call_id": call_id}
    assert [t["function"]["name"] for t in body["tools"]] == action_names()
    assert server.headers[0]["authorization"].startswith("Bearer ")


def test_tool_choice_option(fake_server):
    server = fake_server(lambda n, req: (200, completion(), 0))
    run(fast_model(server.url, "tool_choice=required").chat(user("hi"), FAST, tools=action_tools()))
    run(fast_model(server.url, "tool_choice=diagnose").chat(user("hi"), FAST, tools=action_tools()))
    run(fast_model(server.url, "tool_choice=diagnose").chat(user("hi"), FAST))  # no tools: no tool_choice
    assert [r.get("tool_choice") for r in server.requests] == [
        "required", {"type": "function", "function": {"name": "diagnose"}}, None]


def test_tool_calls_parsed(fake_server):
    calls = [{"id": "call_1", "type": "function",
              "function": {"name": "order_tests", "arguments": "{\"tests\": [\"CXR\"]}"}}]
    server = fake_server(lambda n, req: (200, completion(None, calls), 0))
    result = run(fast_model(server.url).chat(user("hi"), FAST, tools=action_tools()))
    assert result.text == ""
    assert result.tool_calls == [ToolCall(id="call_1", name="order_tests", arguments='{"tests": ["CXR"]}')]


def test_images_option_and_spec_options(fake_server):
    server = fake_server(lambda n, req: (200, completion(), 0))
    model = fast_model(server.url, "images=0&concurrency=3&attempts=2&backoff=0", base_delay_s=None)
    assert not model.supports_images
    assert (model.concurrency, model.max_attempts, model.base_delay_s) == (3, 2, 0.0)
    with pytest.raises(ModelError, match="takes no images"):
        run(model.chat([Message(role="user", content=[ImagePart(url=PNG, source="x.png")])], FAST))
    assert server.count == 0
    with pytest.raises(ConfigError, match="unknown option"):
        OpenAIChatModel(f"openai/m@{server.url}?colour=blue")
    with pytest.raises(ConfigError, match="concurrency"):
        OpenAIChatModel(f"openai/m@{server.url}?concurrency=0")


def test_load_model_registers_openai(fake_server):
    server = fake_server(lambda n, req: (200, completion("from load_model"), 0))
    model = load_model(f"openai/fake-model@{server.url}?backoff=0")
    assert isinstance(model, OpenAIChatModel)
    assert load_model(f"openai/fake-model@{server.url}?backoff=0") is model
    assert run(model.chat(user("hi"), FAST)).text == "from load_model"


def test_one_model_across_event_loops(fake_server):
    server = fake_server(lambda n, req: (200, completion(f"reply {n}"), 0))
    model = fast_model(server.url)
    assert run(model.chat(user("a"), FAST)).text == "reply 0"
    assert run(model.chat(user("b"), FAST)).text == "reply 1"  # a fresh loop: a fresh client and semaphore


def test_api_key_from_environment_and_never_in_errors(fake_server, monkeypatch):
    secret = "sk-test-SECRET-0123456789"
    monkeypatch.setenv("AGENTCLINIC_API_KEY", secret)
    server = fake_server(lambda n, req: (401, {"error": {"message": f"bad key {secret}"}}, 0))
    with pytest.raises(ModelError) as info:
        run(fast_model(server.url).chat(user("hi"), FAST))
    assert server.headers[0]["authorization"] == f"Bearer {secret}"
    assert secret not in str(info.value) and "HTTP 401" in str(info.value)
    assert server.count == 1  # 401 is not retried


def test_no_key_for_local_server(fake_server, monkeypatch):
    monkeypatch.delenv("AGENTCLINIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = fake_server(lambda n, req: (200, completion(), 0))
    run(fast_model(server.url).chat(user("hi"), FAST))
    assert server.headers[0]["authorization"] == "Bearer not-needed"
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        run(OpenAIChatModel("openai/gpt-4o-mini").chat(user("hi"), FAST))


def test_concurrency_limit(fake_server):
    server = fake_server(lambda n, req: (200, completion(), 0.15))
    model = fast_model(server.url, "concurrency=2")

    async def main():
        return await asyncio.gather(*(model.chat(user(str(i)), FAST) for i in range(6)))

    assert len(run(main())) == 6
    assert server.max_in_flight == 2


# ----------------------------------------------------------------------------------------------- faults


def test_retries_then_succeeds(fake_server):
    server = fake_server(lambda n, req: (500, {"error": {"message": "boom"}}, 0) if n < 2 else
                         (200, completion("third time"), 0))
    result = run(fast_model(server.url).chat(user("hi"), FAST))
    assert result.text == "third time"
    assert server.count == 3


def test_rate_limit_is_retried(fake_server):
    server = fake_server(lambda n, req: (429, {"error": {"message": "slow down"}}, 0, {"Retry-After": "0"})
                         if n == 0 else (200, completion(), 0))
    assert run(fast_model(server.url).chat(user("hi"), FAST)).text == "Hello."
    assert server.count == 2


def test_always_500_fails_after_n_attempts(fake_server):
    server = fake_server(lambda n, req: (500, {"error": {"message": "boom"}}, 0))
    with pytest.raises(ModelError) as info:
        run(fast_model(server.url, max_attempts=3).chat(user("hi"), FAST))
    message = str(info.value)
    assert f"openai/fake-model@{server.url}" in message
    assert "HTTP 500" in message and "after 3 attempts" in message
    assert server.count == 3


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_not_retried(fake_server, status):
    server = fake_server(lambda n, req: (status, {"error": {"message": "nope"}}, 0))
    with pytest.raises(ModelError, match=f"HTTP {status}.*not retried"):
        run(fast_model(server.url).chat(user("hi"), FAST))
    assert server.count == 1


def test_timeout(fake_server):
    """A remote endpoint's timeout is retried (local=0: the fake server stands for a remote one)."""
    server = fake_server(lambda n, req: (200, completion(), 1.5))
    started = time.perf_counter()
    with pytest.raises(ModelError, match=r"timed out after 0\.3s after 2 attempts"):
        run(fast_model(server.url, "local=0", max_attempts=2).chat(user("hi"), Settings(timeout_s=0.3)))
    assert time.perf_counter() - started < 3
    assert server.count == 2


def test_local_timeout_is_not_retried(fake_server):
    """A local server may still be working on a request that timed out: sending it again would queue the
    same work twice."""
    server = fake_server(lambda n, req: (200, completion(), 1.0))
    with pytest.raises(ModelError, match=r"timed out after 0\.3s; not retried: a local server may still be"):
        run(fast_model(server.url, max_attempts=3).chat(user("hi"), Settings(timeout_s=0.3)))
    assert server.count == 1


def test_local_and_remote_defaults():
    for url in ("http://127.0.0.1:8080/v1", "http://localhost:11434/v1", "http://[::1]:8000/v1",
                "http://192.168.1.20:8000/v1", "http://10.0.0.5/v1", "http://0.0.0.0:8000/v1"):
        model = OpenAIChatModel(f"openai/m@{url}")
        assert is_local_url(url) and model.local, url
        assert (model.concurrency, model.default_timeout_s) == (LOCAL_CONCURRENCY, LOCAL_TIMEOUT_S) == (1, 600.0)
    for url in ("https://api.example.com/v1", "http://8.8.8.8/v1", "https://localhost.example.com/v1"):
        model = OpenAIChatModel(f"openai/m@{url}")
        assert not is_local_url(url) and not model.local, url
        assert (model.concurrency, model.default_timeout_s) == (DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_S) == (16, 60.0)
    assert not OpenAIChatModel("openai/gpt-4o-mini").local
    assert not OpenAIChatModel("openai/m@http://127.0.0.1:8000/v1?local=0").local
    forced = OpenAIChatModel("openai/m@https://tunnel.example.com/v1?local=1&concurrency=4")
    assert forced.local and (forced.concurrency, forced.default_timeout_s) == (4, 600.0)
    assert Settings().timeout_s is None  # the endpoint's default


def test_endpoint_limit_is_shared_by_every_model_naming_the_url(fake_server):
    """The doctor and the patient on one local server (two specs, two model objects) share its limit."""
    server = fake_server(lambda n, req: (200, completion(), 0.1))
    doctor, patient = fast_model(server.url, "tool_choice=diagnose"), fast_model(server.url)

    async def main(*models):
        return await asyncio.gather(*(m.chat(user(str(i)), FAST) for m in models for i in range(3)))

    assert len(run(main(doctor, patient))) == 6 and server.max_in_flight == 1
    server.max_in_flight = 0
    wider = fast_model(server.url, "concurrency=3")  # an explicit limit sets the endpoint's
    assert len(run(main(wider, patient, doctor))) == 9 and server.max_in_flight == 3


def test_endpoint_slots_go_first_come_first_served():
    """An episode that asks again as soon as its reply comes (a's second request) queues behind the requests
    already waiting: it does not take the freed slot from them."""
    order: list[str] = []

    async def main():
        gate = endpoint_gate("http://127.0.0.1:1/v1")

        async def ask(name: str, again: bool = False):
            async with gate.slot(1, False):
                order.append(name)
                await asyncio.sleep(0.02)
            if again:
                async with gate.slot(1, False):
                    order.append(name + "2")

        first = asyncio.create_task(ask("a", again=True))
        await asyncio.sleep(0)
        await asyncio.gather(first, ask("b"), ask("c"))

    run(main())
    assert order == ["a", "b", "c", "a2"]


def test_one_at_a_time_server_is_not_thrashed(fake_server):
    """A server that answers one request at a time (llama.cpp, Ollama), 0.2 s each, and four requests from two
    models at once: they wait in the client, so none times out (0.35 s) and none is sent twice."""
    serial = threading.Lock()

    def reply(n, req):
        with serial:
            time.sleep(0.2)
        return 200, completion(f"reply {n}"), 0

    server = fake_server(reply)
    doctor, patient = fast_model(server.url, "tool_choice=diagnose"), fast_model(server.url)

    async def main():
        settings = Settings(timeout_s=0.35)
        return await asyncio.gather(*(m.chat(user(str(i)), settings) for m in (doctor, patient) for i in range(2)))

    assert len(run(main())) == 4 and server.count == 4 and server.max_in_flight == 1


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelError) as info:
        run(fast_model(url, max_attempts=2).chat(user("hi"), FAST))
    message = str(info.value)
    assert message.startswith(f"openai/fake-model@{url}: server unreachable (connection refused)")
    assert "after 2 attempts" in message


@pytest.mark.parametrize("body, cause", [
    ("{not json", "malformed response"),
    ("[1, 2]", "malformed response"),
    ({"object": "chat.completion", "choices": []}, "no choices"),
    ({"choices": [{"index": 0}]}, "no message"),
])
def test_malformed_bodies(fake_server, body, cause):
    server = fake_server(lambda n, req: (200, body, 0))
    with pytest.raises(ModelError, match=cause):
        run(fast_model(server.url, max_attempts=2).chat(user("hi"), FAST))
    assert server.count == 2


@pytest.mark.parametrize("content", ["", None, "   "])
def test_empty_reply(fake_server, content):
    server = fake_server(lambda n, req: (200, completion(content), 0))
    with pytest.raises(ModelError, match="empty reply.*after 2 attempts"):
        run(fast_model(server.url, max_attempts=2).chat(user("hi"), FAST))


def test_empty_reply_then_good_one(fake_server):
    server = fake_server(lambda n, req: (200, completion("" if n == 0 else "fine"), 0))
    assert run(fast_model(server.url).chat(user("hi"), FAST)).text == "fine"
    assert server.count == 2


# ----------------------------------------------------------------------------------------------- structured output


def test_json_schema_supported(fake_server):
    server = fake_server(lambda n, req: (200, completion('{"diagnosis": "Pneumonia"}'), 0))
    model = fast_model(server.url)
    result = run(model.chat(user("dx?"), FAST, json_schema=SCHEMA))
    assert json.loads(result.text) == {"diagnosis": "Pneumonia"}
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == SCHEMA


def test_json_schema_refused_falls_back(fake_server):
    def reply(n, req):
        fmt = req.get("response_format", {}).get("type")
        if fmt in ("json_schema", "json_object"):  # llama.cpp answers 500 for json_schema
            return 500, {"error": {"message": f"Input should be 'text' ... response_format: {fmt}"}}, 0
        return 200, completion('Sure!\n```json\n{"diagnosis": "Asthma",}\n```'), 0

    server = fake_server(reply)
    model = fast_model(server.url)
    result = run(model.chat(user("dx?"), FAST, json_schema=SCHEMA))
    assert json.loads(result.text) == {"diagnosis": "Asthma"}
    assert [r.get("response_format", {}).get("type") for r in server.requests] == ["json_schema", "json_object", None]
    assert "JSON schema" in server.requests[-1]["messages"][0]["content"]  # the schema went into the prompt
    assert model._json_fallback == "prompt"
    run(model.chat(user("again"), FAST, json_schema=SCHEMA))  # remembered: no more refused attempts
    assert server.count == 4


def test_json_reply_unparseable(fake_server):
    server = fake_server(lambda n, req: (200, completion("I think it is asthma."), 0))
    with pytest.raises(ModelError, match="not the JSON asked for.*after 2 attempts"):
        run(fast_model(server.url, max_attempts=2).chat(user("dx?"), FAST, json_schema=SCHEMA))


def test_json_mode_forced_refusal_is_clean(fake_server):
    server = fake_server(lambda n, req: (400, {"error": {"message": "response_format json_schema unsupported"}}, 0))
    with pytest.raises(ModelError, match="refused response_format"):
        run(fast_model(server.url, "json=schema").chat(user("dx?"), FAST, json_schema=SCHEMA))
    assert server.count == 1


def test_parse_json_reply():
    assert parse_json_reply('{"a": 1}') == {"a": 1}
    assert parse_json_reply('```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    assert parse_json_reply('```\n{"a": 1}\n```\nDone.') == {"a": 1}
    assert parse_json_reply('Here you go: {"a": {"b": "}"}} and more text {"c": 2}') == {"a": {"b": "}"}}
    assert parse_json_reply('{"a": 1,}') == {"a": 1}
    assert parse_json_reply('prefix {broken {"ok": true} suffix') == {"ok": True}
    assert parse_json_reply('  {"unicode": "fièvre"}  ') == {"unicode": "fièvre"}
    for bad in ["", "   ", "no json here", "[1, 2, 3]", '{"a": ', "```json\n```"]:
        with pytest.raises(ValueError):
            parse_json_reply(bad)


# ----------------------------------------------------------------------------------------------- replay cache


def test_replay_cache_hits_server_once(fake_server, tmp_path):
    server = fake_server(lambda n, req: (200, completion(f"reply {n}"), 0))
    cache = ReplayCache(tmp_path / "replay.sqlite")
    model = CachedModel(fast_model(server.url), cache)
    try:
        first = run(model.chat(user("hi"), Settings(timeout_s=5)))
        second = run(model.chat(user("hi"), Settings(timeout_s=9)))  # the timeout is not part of the key
        assert server.count == 1
        assert (first.text, first.cached) == ("reply 0", False)
        assert (second.text, second.cached) == ("reply 0", True)
        assert second.usage == first.usage
        other = run(model.chat(user("hi"), Settings(temperature=0.7, timeout_s=5)))
        assert server.count == 2 and other.text == "reply 1" and not other.cached
        assert len(cache) == 2
    finally:
        cache.close()
