"""One protocol for every model: async chat over role-tagged messages.

A model is named by a spec string: ``scripted``, ``openai/<model>[@<base_url>]``,
``hf/<path-or-name>[?gguf=<file>]``. Decoding settings are the same for every model
unless set otherwise, and recorded with the run. API keys come from the environment only.
"""

from __future__ import annotations

import base64
import mimetypes
import re
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from agentclinic.errors import AgentClinicError, ConfigError
from agentclinic.scenario.schema import Strict


class ModelError(AgentClinicError):
    """A model call that failed after its retries: names the backend, model and cause."""


class TextPart(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    """An image as a data URL (``data:image/png;base64,...``), with where it came from."""

    type: Literal["image"] = "image"
    url: str
    source: str | None = None

    @classmethod
    def from_file(cls, path: str | Path, source: str | None = None) -> ImagePart:
        path = Path(path)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = base64.b64encode(path.read_bytes()).decode()
        return cls(url=f"data:{mime};base64,{data}", source=source or str(path))


class ToolCall(BaseModel):
    id: str | None = None
    name: str
    arguments: str  # JSON text, as the model produced it


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[TextPart | ImagePart] = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    def images(self) -> list[ImagePart]:
        return [] if isinstance(self.content, str) else [p for p in self.content if isinstance(p, ImagePart)]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatResult(BaseModel):
    """A model's reply with its cost: tokens and seconds."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    model: str = ""
    cached: bool = False


class Settings(Strict):
    """Decoding settings; the defaults are the same for every model and role."""

    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(256, ge=1)
    seed: int | None = 0
    top_p: float = Field(1.0, gt=0, le=1)
    # seconds one request may take; None: the backend's default (openai: 600 s local, 60 s remote)
    timeout_s: float | None = Field(None, gt=0)


@runtime_checkable
class ChatModel(Protocol):
    """Anything that answers a conversation."""

    name: str
    supports_images: bool

    async def chat(self, messages: list[Message], settings: Settings, *, tools: list[dict] | None = None,
                   json_schema: dict | None = None) -> ChatResult: ...


class ModelSpec(Strict):
    """A parsed spec string: backend, model and options."""

    backend: Literal["scripted", "openai", "hf"]
    model: str = ""
    base_url: str | None = None
    options: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> ModelSpec:
        spec = spec.strip()
        if spec == "scripted":
            return cls(backend="scripted")
        match = re.fullmatch(r"(openai|hf)/([^@?]+)(?:@([^?]+))?(?:\?(.*))?", spec)
        if not match:
            raise ConfigError(f"unknown model spec {spec!r}: expected 'scripted', 'openai/<model>[@<base_url>]' "
                              "or 'hf/<path-or-name>[?gguf=<file>]'")
        backend, model, url, query = match.groups()
        options = dict(item.split("=", 1) for item in query.split("&") if "=" in item) if query else {}
        if backend == "hf" and url:
            raise ConfigError(f"{spec!r}: hf models run in-process and take no @url")
        return cls(backend=backend, model=model, base_url=url, options=options)

    def __str__(self) -> str:
        text = self.backend if self.backend == "scripted" else f"{self.backend}/{self.model}"
        if self.base_url:
            text += f"@{self.base_url}"
        if self.options:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.options.items())
        return text


_MODELS: dict[str, ChatModel] = {}
BACKENDS: dict[str, Any] = {}  # backend name -> factory(ModelSpec) -> ChatModel


def register_backend(name: str, factory) -> None:
    BACKENDS[name] = factory


def load_model(spec: str | ModelSpec) -> ChatModel:
    """The model for a spec, one instance per process however many roles name it."""
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    key = str(spec)
    if key not in _MODELS:
        if spec.backend == "openai":
            import agentclinic.backends.openai_compat  # noqa: F401  (registers)
        elif spec.backend == "hf":
            import agentclinic.backends.hf  # noqa: F401  (registers)
        if spec.backend not in BACKENDS:
            raise ConfigError(f"no backend {spec.backend!r} for model spec {key!r}")
        _MODELS[key] = BACKENDS[spec.backend](spec)
    return _MODELS[key]


# Every model call made while an episode step runs is logged here (the record keeps it).
CALL_LOG: ContextVar[list[dict] | None] = ContextVar("agentclinic_call_log", default=None)


async def call_model(model: ChatModel, messages: list[Message], settings: Settings, *, role: str,
                     tools: list[dict] | None = None, json_schema: dict | None = None) -> ChatResult:
    """Call ``model`` and log the call (role, messages sent, reply, tokens, latency) for the record."""
    started = time.perf_counter()
    result = await model.chat(messages, settings, tools=tools, json_schema=json_schema)
    if not result.latency_s:
        result.latency_s = time.perf_counter() - started
    log = CALL_LOG.get()
    if log is not None:
        log.append({"role": role, "model": model.name, "settings": settings.model_dump(),
                    "messages": [_loggable(m) for m in messages], "reply": result.text,
                    "tools": [t["function"]["name"] for t in tools or ()],
                    "tool_calls": [c.model_dump() for c in result.tool_calls], "usage": result.usage.model_dump(),
                    "latency_s": round(result.latency_s, 4), "cached": result.cached})
    return result


def _loggable(message: Message) -> dict:
    """A message for the record: images are named by source, not inlined as base64."""
    data = message.model_dump(exclude_defaults=True)
    if not isinstance(message.content, str):
        data["content"] = [p.model_dump() if isinstance(p, TextPart) else {"type": "image", "source": p.source}
                           for p in message.content]
    return data
