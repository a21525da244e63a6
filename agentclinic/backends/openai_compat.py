"""The ``openai`` backend: any OpenAI-compatible chat-completions server, through the official client.

Spec: ``openai/<model>[@<base_url>][?option=value&...]``; without a base URL, OpenAI's own API.
Options (all optional):

- ``concurrency=N``  requests in flight at once to the endpoint (default: 1 local, 16 remote; see below)
- ``local=0|1``      treat the endpoint as a local server or not (default: from the host, see below)
- ``images=0``       the model takes no images (``supports_images`` is False)
- ``attempts=N``     attempts per request, retries included (default 4)
- ``backoff=S``      base delay of the exponential backoff in seconds (default 1.0)
- ``json=MODE``      structured output: ``auto`` (default: json_schema, falling back when the server
                     refuses it), ``schema``, ``object`` (json_object + schema, llama.cpp style) or
                     ``prompt`` (schema in the prompt, reply parsed tolerantly)
- ``key_env=NAME``   read the API key from this environment variable
- ``tool_choice=X``  with tools: ``auto`` (the server's default), ``none``, ``required`` or a function
                     name (that function is always called; llama.cpp's server supports this, not ``required``)

The API key comes from the environment only, never from the spec, and is never logged:
``OPENAI_API_KEY`` then ``AGENTCLINIC_API_KEY`` (a non-OpenAI base URL prefers ``AGENTCLINIC_API_KEY``),
else ``not-needed`` (local servers). Retries (exponential backoff with jitter) cover 408/409/429/5xx,
timeouts (remote endpoints only), connection errors, malformed and empty replies; 400/401/403/404/422 fail
at once. Every failure is a ``ModelError`` naming the model and base URL.

Local servers. An endpoint on ``localhost``, a loopback or a private address (or ``?local=1``) is taken
for a server of one's own, such as llama.cpp or Ollama, that answers one request (or a few) at a time.
Defaults there: one request in flight (the others wait in the client, not on the server), a 600 s timeout
(a slow request is not a dead one), and a timed-out request is not retried (the server may still be
working on it: a retry would queue the same work again). Remote endpoints: 16 in flight, 60 s, timeouts
retried. A multi-slot local server (vLLM, SGLang, ``llama-server -np 8``) wants ``?concurrency=N``.

The limit is per endpoint (base URL) and event loop, shared by every model and role that names the URL:
an explicit ``concurrency=N`` sets it (the smallest, when several models give one), else the endpoint's
default. Requests over the limit wait in the client, before they are sent, so only time on the server
counts towards the timeout. ``Settings.timeout_s`` overrides the timeout (None: the endpoint's default).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import random
import re
import time
import weakref
from collections import deque
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

import openai

from agentclinic.backends.base import (
    ChatResult, Message, ModelError, ModelSpec, Settings, TextPart, ToolCall, Usage, register_backend)
from agentclinic.errors import ConfigError

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_CONCURRENCY = 16  # requests in flight to a remote endpoint
LOCAL_CONCURRENCY = 1  # ... to a local one (llama.cpp, Ollama: one request at a time)
DEFAULT_TIMEOUT_S = 60.0  # seconds a request may take on a remote endpoint
LOCAL_TIMEOUT_S = 600.0  # ... on a local one (a small CPU, long replies)
DEFAULT_ATTEMPTS = 4
DEFAULT_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
JSON_MODES = ("auto", "schema", "object", "prompt")
OPTIONS = ("concurrency", "local", "images", "attempts", "backoff", "json", "key_env", "tool_choice")
RETRY_STATUS = {408, 409, 429}  # and every 5xx


class _Retryable(Exception):
    """One failed attempt that may succeed if tried again; ``cause`` says why in a few words."""

    def __init__(self, cause: str, retry_after: float | None = None, timed_out: bool = False):
        super().__init__(cause)
        self.cause, self.retry_after, self.timed_out = cause, retry_after, timed_out


def is_local_url(url: str) -> bool:
    """Whether a base URL names a server of one's own: ``localhost``, a loopback, private or link-local address."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


class _Gate:
    """The requests in flight to one endpoint from every model that names it, on one event loop. First come,
    first served: a freed slot goes to the request that waited longest, never to one that just arrived (an
    episode asking again at once would otherwise run ahead of the others, and a server that reuses the
    prompt prefix of the request before loses that: the doctors' requests no longer follow each other)."""

    def __init__(self) -> None:
        self.explicit: int | None = None  # the smallest concurrency=N given by a model
        self.default: int | None = None  # the smallest default among the models
        self.busy = 0
        self._waiting: deque[asyncio.Future] = deque()

    @property
    def limit(self) -> int:
        return self.explicit or self.default or 1

    def _hand_over(self) -> None:
        while self._waiting and self.busy < self.limit:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self.busy += 1  # the slot passes straight to the waiter: nobody can take it in between
                waiter.set_result(None)

    @asynccontextmanager
    async def slot(self, limit: int, explicit: bool) -> AsyncIterator[None]:
        if explicit:
            self.explicit = min(self.explicit or limit, limit)
        else:
            self.default = min(self.default or limit, limit)
        if self.busy < self.limit and not self._waiting:
            self.busy += 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            self._hand_over()  # the limit may have grown
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed a slot, then cancelled: give it back
                    self.busy -= 1
                    self._hand_over()
                raise
        try:
            yield
        finally:
            self.busy -= 1
            self._hand_over()


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Gate]] = weakref.WeakKeyDictionary()


def endpoint_gate(base_url: str) -> _Gate:
    """The running loop's gate for ``base_url`` (made on first use)."""
    gates = _GATES.setdefault(asyncio.get_running_loop(), {})
    if base_url not in gates:
        gates[base_url] = _Gate()
    return gates[base_url]


class _Unsupported(Exception):
    """The server refused a structured-output mode (``response_format``)."""


# ---------------------------------------------------------------------------------------------- JSON replies

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def parse_json_reply(text: str) -> dict:
    """The JSON object in a model's reply, tolerantly: code fences stripped, then the first ``{...}``
    that parses (text around it ignored; trailing commas forgiven). Raises ``ValueError`` if none."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty reply: expected a JSON object")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        candidate = candidate.strip()
        for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
            try:
                value = json.loads(attempt)
            except json.JSONDecodeError:
                pass
            else:
                if isinstance(value, dict):
                    return value
            start, tries = attempt.find("{"), 0
            while start != -1 and tries < 200:  # bounded: each '{' is a possible start of the object
                try:
                    value, _ = decoder.raw_decode(attempt, start)
                except json.JSONDecodeError:
                    pass
                else:
                    if isinstance(value, dict):
                        return value
                start, tries = attempt.find("{", start + 1), tries + 1
    snippet = text.strip().replace("\n", " ")
    raise ValueError(f"no JSON object in the reply: {snippet[:120]!r}{'...' if len(snippet) > 120 else ''}")


def _schema_instruction(schema: dict) -> str:
    return ("Reply with one JSON object that follows this JSON schema, and nothing else (no prose, no code "
            f"fences):\n{json.dumps(schema, separators=(',', ':'))}")


def _schema_name(schema: dict) -> str:
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", str(schema.get("title") or "reply"))[:64]
    return name or "reply"


# ---------------------------------------------------------------------------------------------- the model

class OpenAIChatModel:
    """A ChatModel served by an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(self, spec: ModelSpec | str, *, concurrency: int | None = None, max_attempts: int | None = None,
                 base_delay_s: float | None = None, max_delay_s: float = MAX_BACKOFF_S, json_mode: str | None = None):
        spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
        if spec.backend != "openai":
            raise ConfigError(f"{spec}: not an openai model spec")
        if not spec.model.strip():
            raise ConfigError(f"{spec}: no model name")
        unknown = sorted(set(spec.options) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"{spec}: unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
        opts = spec.options
        self.spec = spec
        self.name = str(spec)
        self.model = spec.model
        self.base_url = (spec.base_url or OPENAI_BASE_URL).rstrip("/")
        self.label = f"openai/{self.model}@{self.base_url}"  # what every error names
        self.supports_images = not _false(opts.get("images", "1"))
        self.local = is_local_url(self.base_url) if "local" not in opts else not _false(opts["local"])
        self._explicit_concurrency = bool(concurrency or "concurrency" in opts)
        self.concurrency = concurrency or self._int_option(
            "concurrency", LOCAL_CONCURRENCY if self.local else DEFAULT_CONCURRENCY)
        self.default_timeout_s = LOCAL_TIMEOUT_S if self.local else DEFAULT_TIMEOUT_S
        self.max_attempts = max_attempts or self._int_option("attempts", DEFAULT_ATTEMPTS)
        self.base_delay_s = base_delay_s if base_delay_s is not None else self._float_option("backoff",
                                                                                             DEFAULT_BACKOFF_S)
        self.max_delay_s = max_delay_s
        self.json_mode = json_mode or opts.get("json", "auto")
        if self.json_mode not in JSON_MODES:
            raise ConfigError(f"{spec}: json={self.json_mode!r}; expected one of {', '.join(JSON_MODES)}")
        self._json_fallback: str | None = None  # the mode 'auto' settled on after a refusal
        self._key_env = opts.get("key_env")
        self.tool_choice = opts.get("tool_choice", "").strip() or None
        self._is_openai = self.base_url == OPENAI_BASE_URL
        # One client per event loop: it binds to the loop it is first used in (so does the endpoint's gate).
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"OpenAIChatModel({self.label!r}, concurrency={self.concurrency}, local={self.local})"

    # -- options and key -----------------------------------------------------------------------------------

    def _int_option(self, key: str, default: int) -> int:
        raw = self.spec.options.get(key)
        try:
            value = int(raw) if raw is not None else default
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(f"{self.spec}: option {key}={raw!r} must be a whole number >= 1")
        return value

    def _float_option(self, key: str, default: float) -> float:
        raw = self.spec.options.get(key)
        try:
            value = float(raw) if raw is not None else default
        except ValueError:
            value = -1.0
        if value < 0:
            raise ConfigError(f"{self.spec}: option {key}={raw!r} must be a number >= 0")
        return value

    def _api_key(self) -> str:
        if self._key_env:
            names = [self._key_env]
        elif self._is_openai:
            names = ["OPENAI_API_KEY", "AGENTCLINIC_API_KEY"]
        else:
            names = ["AGENTCLINIC_API_KEY", "OPENAI_API_KEY"]
        for name in names:
            if os.environ.get(name, "").strip():
                return os.environ[name].strip()
        if self._is_openai or self._key_env:
            raise ModelError(f"{self.label}: no API key: set {' or '.join(names)} in the environment")
        return "not-needed"

    def _scrub(self, text: str) -> str:
        """``text`` with any API key we know of masked (server error bodies may echo it)."""
        for name in (self._key_env, "OPENAI_API_KEY", "AGENTCLINIC_API_KEY"):
            key = os.environ.get(name or "", "").strip()
            if len(key) >= 8:
                text = text.replace(key, "***")
        return text

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._per_loop.get(loop)
        if client is None:
            client = openai.AsyncOpenAI(api_key=self._api_key(), base_url=self.base_url, max_retries=0)
            self._per_loop[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the HTTP client of the running event loop (a later call opens a new one)."""
        client = self._per_loop.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    # -- requests ------------------------------------------------------------------------------------------

    def _messages(self, messages: list[Message], instruction: str | None) -> list[dict]:
        out: list[dict] = []
        pending_ids: list[str] = []
        for i, message in enumerate(messages):
            if isinstance(message.content, str):
                content: Any = message.content
            else:
                parts = []
                for part in message.content:
                    if isinstance(part, TextPart):
                        parts.append({"type": "text", "text": part.text})
                    elif not self.supports_images:
                        raise ModelError(f"{self.label}: this model takes no images (images=0), but message "
                                         f"{i} holds one ({part.source or 'unnamed'})")
                    else:
                        parts.append({"type": "image_url", "image_url": {"url": part.url}})
                content = parts
            item: dict[str, Any] = {"role": message.role, "content": content}
            if message.role == "assistant" and message.tool_calls:
                calls = []
                for j, call in enumerate(message.tool_calls):
                    call_id = call.id or f"call_{i}_{j}"
                    pending_ids.append(call_id)
                    calls.append({"id": call_id, "type": "function",
                                  "function": {"name": call.name, "arguments": call.arguments or "{}"}})
                item["tool_calls"] = calls  # content stays "" (llama.cpp's server rejects null content)
            if message.role == "tool":
                call_id = message.tool_call_id or (pending_ids[0] if pending_ids else f"call_{i}")
                if call_id in pending_ids:
                    pending_ids.remove(call_id)
                item["tool_call_id"] = call_id
            out.append(item)
        if instruction:
            system = next((m for m in out if m["role"] == "system" and isinstance(m["content"], str)), None)
            if system is not None:
                system["content"] = f"{system['content']}\n\n{instruction}".strip()
            else:
                out.insert(0, {"role": "system", "content": instruction})
        return out

    def _request(self, messages: list[Message], settings: Settings, tools: list[dict] | None,
                 schema: dict | None, mode: str | None) -> dict:
        instruction = _schema_instruction(schema) if schema is not None and mode in ("object", "prompt") else None
        body: dict[str, Any] = {"model": self.model, "messages": self._messages(messages, instruction),
                                "temperature": settings.temperature, "top_p": settings.top_p}
        body["max_completion_tokens" if self._is_openai else "max_tokens"] = settings.max_tokens
        if settings.seed is not None:
            body["seed"] = settings.seed
        if tools:
            body["tools"] = tools
            if self.tool_choice in ("auto", "none", "required"):
                body["tool_choice"] = self.tool_choice
            elif self.tool_choice:
                body["tool_choice"] = {"type": "function", "function": {"name": self.tool_choice}}
        if schema is not None and mode == "schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": _schema_name(schema), "schema": schema}}
        elif schema is not None and mode == "object":
            # OpenAI and vLLM take plain json_object; llama.cpp's server also constrains to "schema".
            body["response_format"] = {"type": "json_object"} if self._is_openai else {
                "type": "json_object", "schema": schema}
        return body

    async def chat(self, messages: list[Message], settings: Settings, *, tools: list[dict] | None = None,
                   json_schema: dict | None = None) -> ChatResult:
        schema = json_schema
        if schema is not None and "schema" in schema and "type" not in schema:  # {"name":..., "schema":...}
            schema = schema["schema"]
        mode = None
        if schema is not None:
            mode = self._json_fallback or ("schema" if self.json_mode == "auto" else self.json_mode)
        while True:
            try:
                return await self._chat_with_retries(messages, settings, tools, schema, mode)
            except _Unsupported as exc:
                next_mode = {"schema": "object", "object": "prompt"}.get(mode or "")
                if self.json_mode != "auto" or next_mode is None:
                    raise ModelError(f"{self.label}: the server refused response_format for json={mode}: "
                                     f"{exc}") from None
                log.info("%s: response_format %s refused; falling back to json=%s", self.label, mode, next_mode)
                self._json_fallback = mode = next_mode

    async def _chat_with_retries(self, messages: list[Message], settings: Settings, tools: list[dict] | None,
                                 schema: dict | None, mode: str | None) -> ChatResult:
        body = self._request(messages, settings, tools, schema, mode)
        client, gate = self._client(), endpoint_gate(self.base_url)
        timeout_s = settings.timeout_s or self.default_timeout_s
        cause = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            retry_after = None
            try:
                async with gate.slot(self.concurrency, self._explicit_concurrency):
                    started = time.perf_counter()
                    data = await self._post(client, body, timeout_s)
                    latency = time.perf_counter() - started
                return self._result(data, latency, schema)
            except _Retryable as exc:
                cause, retry_after = exc.cause, exc.retry_after
                if exc.timed_out and self.local:
                    raise ModelError(f"{self.label}: {cause}; not retried: a local server may still be working on "
                                     "the request (raise timeout_s, or lower the concurrency)") from None
            if attempt < self.max_attempts:
                delay = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
                if retry_after is not None:
                    delay = max(delay, min(retry_after, self.max_delay_s))
                log.warning("%s: %s (attempt %d of %d); retrying in %.2fs", self.label, cause, attempt,
                            self.max_attempts, delay)
                await asyncio.sleep(delay)
        plural = "s" if self.max_attempts != 1 else ""
        raise ModelError(f"{self.label}: {cause} after {self.max_attempts} attempt{plural}")

    async def _post(self, client: Any, body: dict, timeout_s: float) -> dict:
        """One HTTP attempt: the response body as a dict, or _Retryable / _Unsupported / ModelError."""
        try:
            raw = await asyncio.wait_for(
                client.chat.completions.with_raw_response.create(**body, timeout=timeout_s), timeout=timeout_s + 1)
            text = raw.text
        except (asyncio.TimeoutError, openai.APITimeoutError):
            raise _Retryable(f"timed out after {timeout_s:g}s", timed_out=True) from None
        except openai.APIConnectionError as exc:
            raise _Retryable(f"server unreachable ({self._connection_cause(exc)})") from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc, body) from None
        except openai.OpenAIError as exc:  # anything else the client raises
            raise _Retryable(f"malformed response ({self._scrub(str(exc))[:200]})") from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            snippet = (text or "").strip().replace("\n", " ")[:80]
            raise _Retryable(f"malformed response (not JSON: {snippet!r})") from None
        if not isinstance(data, dict):
            raise _Retryable(f"malformed response (a JSON {type(data).__name__}, not an object)")
        if isinstance(data.get("error"), dict | str) and not data.get("choices"):
            error = data["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise _Retryable(f"server error in a 200 reply: {self._scrub(str(message))[:200]}")
        return data

    @staticmethod
    def _connection_cause(exc: Exception) -> str:
        chain, seen = [], exc
        for _ in range(6):  # bounded walk down the cause chain
            if seen is None:
                break
            chain.append(f"{type(seen).__name__}: {seen}")
            seen = seen.__cause__ or seen.__context__
        text = " | ".join(chain).lower()
        if "refused" in text or "errno 111" in text:
            return "connection refused"
        if "name or service" in text or "nodename" in text or "getaddrinfo" in text or "name resolution" in text:
            return "host name not resolved"
        if "ssl" in text or "certificate" in text:
            return "TLS error"
        if "reset" in text or "disconnected" in text or "remoteprotocolerror" in text:
            return "connection closed by the server"
        return str(exc) or type(exc).__name__

    def _status_error(self, exc: openai.APIStatusError, body: dict) -> Exception:
        status = exc.status_code
        message = self._scrub(_error_message(exc))
        if "response_format" in body and status in (400, 422, 500, 501) and re.search(
                r"response_format|json_schema|json_object|grammar", message, re.I):
            return _Unsupported(f"HTTP {status}: {message[:200]}")
        if status in RETRY_STATUS or status >= 500:
            return _Retryable(f"HTTP {status} ({message[:200]})", _retry_after(exc))
        hint = {401: "authentication failed; set OPENAI_API_KEY or AGENTCLINIC_API_KEY",
                403: "permission denied", 404: f"model {self.model!r} or endpoint not found"}.get(status, "")
        return ModelError(f"{self.label}: HTTP {status}{': ' + hint if hint else ''} ({message[:300]}); not retried")

    def _result(self, data: dict, latency: float, schema: dict | None) -> ChatResult:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _Retryable("malformed response (no choices)")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise _Retryable("malformed response (no message in the first choice)")
        text = _content_text(message.get("content"))
        calls = []
        raw_calls = message.get("tool_calls") or []
        if not raw_calls and isinstance(message.get("function_call"), dict):  # the legacy single call
            raw_calls = [{"function": message["function_call"]}]
        for raw in raw_calls if isinstance(raw_calls, list) else []:
            function = raw.get("function") if isinstance(raw, dict) else None
            if not isinstance(function, dict) or not function.get("name"):
                raise _Retryable("malformed response (a tool call without a function name)")
            arguments = function.get("arguments", "{}")
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            calls.append(ToolCall(id=raw.get("id"), name=str(function["name"]), arguments=arguments or "{}"))
        if not text.strip() and not calls:
            finish = choices[0].get("finish_reason")
            raise _Retryable(f"empty reply (finish_reason={finish})")
        if schema is not None and not calls:
            try:
                text = json.dumps(parse_json_reply(text), ensure_ascii=False)
            except ValueError as exc:
                raise _Retryable(f"reply is not the JSON asked for: {exc}") from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return ChatResult(text=text, tool_calls=calls, latency_s=latency, model=str(data.get("model") or self.model),
                          usage=Usage(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                                      completion_tokens=int(usage.get("completion_tokens") or 0)))


def _false(value: str) -> bool:
    return value.strip().lower() in ("0", "false", "no", "off")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if body.get("detail"):
            return str(body["detail"])
    try:
        text = exc.response.text
    except Exception:  # noqa: BLE001  (a streamed or closed response)
        text = ""
    return (text or str(exc)).strip().replace("\n", " ")


def _retry_after(exc: openai.APIStatusError) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (ValueError, AttributeError):
        return None


register_backend("openai", lambda spec: OpenAIChatModel(spec))
