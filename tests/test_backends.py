"""The backend-independent pieces: specs, the call log and the replay cache."""

import asyncio

import pytest

from agentclinic.backends import (
    CALL_LOG, CachedModel, ChatResult, ImagePart, Message, ModelSpec, ReplayCache, Settings, TextPart, Usage,
    call_model)
from agentclinic.errors import ConfigError


class CountingModel:
    """A unit-test neighbour: answers with a counter, and counts calls."""

    name = "counting"
    supports_images = True

    def __init__(self):
        self.calls = 0

    async def chat(self, messages, settings, *, tools=None, json_schema=None):
        self.calls += 1
        return ChatResult(text=f"reply {self.calls}", usage=Usage(prompt_tokens=7, completion_tokens=2), model=self.name)


@pytest.mark.parametrize("spec, expected", [
    ("scripted", ("scripted", "", None, {})),
    ("openai/gpt-4o", ("openai", "gpt-4o", None, {})),
    ("openai/Qwen2.5-7B-Instruct@http://localhost:8000/v1", ("openai", "Qwen2.5-7B-Instruct", "http://localhost:8000/v1", {})),
    ("hf//models/smol?gguf=smol.gguf&max_batch=4", ("hf", "/models/smol", None, {"gguf": "smol.gguf", "max_batch": "4"})),
])
def test_model_specs(spec, expected):
    parsed = ModelSpec.parse(spec)
    assert (parsed.backend, parsed.model, parsed.base_url, parsed.options) == expected
    assert ModelSpec.parse(str(parsed)) == parsed


@pytest.mark.parametrize("bad", ["gpt-4o", "openai/", "hf/x@http://host", "vllm/x"])
def test_bad_specs_are_config_errors(bad):
    with pytest.raises(ConfigError, match="model spec|no @url"):
        ModelSpec.parse(bad)


def test_call_model_logs_messages_tokens_and_latency(tmp_path):
    image = tmp_path / "x.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 16)
    messages = [Message(role="system", content="You are a patient."),
                Message(role="user", content=[TextPart(text="Look"), ImagePart.from_file(image, source="img1")])]
    log: list[dict] = []
    token = CALL_LOG.set(log)
    try:
        result = asyncio.run(call_model(CountingModel(), messages, Settings(), role="doctor"))
    finally:
        CALL_LOG.reset(token)
    assert result.text == "reply 1"
    [entry] = log
    assert entry["role"] == "doctor" and entry["usage"] == {"prompt_tokens": 7, "completion_tokens": 2}
    assert entry["latency_s"] >= 0 and entry["messages"][1]["content"][1] == {"type": "image", "source": "img1"}
    assert "base64" not in str(entry)


def test_replay_cache_replays_the_same_request(tmp_path):
    model = CountingModel()
    cached = CachedModel(model, ReplayCache(tmp_path / "cache.sqlite"))
    messages = [Message(role="user", content="Hello")]
    first = asyncio.run(cached.chat(messages, Settings()))
    again = asyncio.run(cached.chat(messages, Settings()))
    other = asyncio.run(cached.chat(messages, Settings(temperature=0.7)))
    assert (first.text, again.text, other.text) == ("reply 1", "reply 1", "reply 2")
    assert again.cached and not first.cached and model.calls == 2
    reopened = CachedModel(CountingModel(), ReplayCache(tmp_path / "cache.sqlite"))
    assert asyncio.run(reopened.chat(messages, Settings())).text == "reply 1"
    assert len(reopened.cache) == 2
