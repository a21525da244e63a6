"""The ``hf`` backend: transformers models run in-process, with requests from concurrent episodes batched.

Spec: ``hf/<path-or-name>[?option=value&...]``. The model part is a local folder saved with
``save_pretrained``, a path to a ``.gguf`` file (its folder and file name are used), or a name already in the
local Hugging Face cache (no hub is ever reached). Options (all optional):

- ``gguf=FILE``         a GGUF file in the folder (or an absolute path to one); loaded with ``gguf_file=``,
                        tokenizer and chat template included, weights dequantized
- ``max_batch=N``       requests gathered into one ``generate`` call at most (default 8)
- ``max_wait_ms=MS``    how long the first request of a batch waits for others (default 10)
- ``device=DEV``        ``cpu``, ``cuda``, ``cuda:1``... (default: ``cuda`` when available, else ``cpu``)
- ``dtype=T``           ``float32``, ``bfloat16``, ``float16`` (default: bfloat16 on CUDA, float32 on CPU)
- ``kind=K``            ``causal`` or ``image-text`` (default: from the model's config)
- ``attn=A``            attention kernel: ``eager``, ``sdpa`` or ``flash_attention_2`` (default: flash attention 2
                        on CUDA in bf16/fp16 when the ``flash-attn`` package is installed, else transformers'
                        default, SDPA where the architecture has it)

Two kinds of model: causal LMs (``AutoModelForCausalLM`` + ``AutoTokenizer`` and its chat template) and
image-text-to-text models (``AutoModelForImageTextToText`` + ``AutoProcessor`` and its chat template; images
are decoded from the messages' data URLs with PIL). One copy of the weights lives in the process however many
roles or specs name it: ``load_model`` keeps one instance per spec, and every spec that resolves to the same
path, GGUF file, device and dtype shares one :class:`_Weights`.

Batching: each event loop has a worker per model that gathers requests until ``max_batch`` are waiting or
``max_wait_ms`` has passed, groups those with the same generation settings, left-pads them into one
``generate`` call run in a worker thread (the event loop stays free), and splits the outputs. Every reply
carries its own usage (prompt tokens without padding, completion tokens up to, not counting, the end-of-turn
token) and latency (from the call to the reply, queueing included). Greedy decoding when temperature is 0;
otherwise sampling seeded by ``settings.seed`` (the same batch of requests samples the same replies; a
request's sample may depend on what it was batched with). ``timeout_s`` is not enforced: a ``generate`` call
cannot be interrupted.

Tools are passed to the chat template (``tools=``) when the template uses them, otherwise described in the
system prompt; tool calls are parsed from the reply when the model writes JSON function calls (plain JSON,
``<tool_call>`` tags, code fences; best effort), else the reply is plain text. A ``json_schema`` is put in
the system prompt and the first JSON object of the reply is returned when there is one.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import importlib.util
import io
import json
import logging
import re
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentclinic.backends.base import (
    ChatResult, Message, ModelError, ModelSpec, Settings, ToolCall, Usage, register_backend)
from agentclinic.errors import ConfigError

log = logging.getLogger(__name__)

OPTIONS = ("gguf", "max_batch", "max_wait_ms", "device", "dtype", "kind", "attn")
DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_WAIT_MS = 10.0
KINDS = ("causal", "image-text")
ATTENTION = ("eager", "sdpa", "flash_attention_2")
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16", "half": "float16"}
# End-of-turn tokens of common chat formats: generation stops at any of these that the vocabulary holds.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>")

# One weights object per resolved (path, gguf file, device, dtype, kind) in this process.
_WEIGHTS: dict[tuple, _Weights] = {}
_WEIGHTS_LOCK = threading.Lock()
LOADS: dict[tuple, int] = {}  # how many times each weights key was loaded (once, unless released)


# ---------------------------------------------------------------------------------------------- weights

def _resolve(spec: ModelSpec) -> tuple[str, str | None, bool]:
    """(folder or name, gguf file name or None, is_local_path) for a spec."""
    model = spec.model.strip()
    gguf = spec.options.get("gguf") or None
    candidates = [Path(model).expanduser()]
    if not model.startswith("/"):
        candidates.append(Path("/" + model))  # 'hf/work/models/x' meant /work/models/x
    path = next((c for c in candidates if c.exists()), None)
    if gguf and Path(gguf).is_absolute():
        gpath = Path(gguf)
        if not gpath.is_file():
            raise ModelError(f"hf model {spec}: no GGUF file {gguf}")
        return str(gpath.parent.resolve()), gpath.name, True
    if path is not None and path.is_file():
        if gguf:
            raise ModelError(f"hf model {spec}: the model is a file ({path}) and gguf={gguf} names another")
        if path.suffix.lower() != ".gguf":
            raise ModelError(f"hf model {spec}: {path} is a file but not a .gguf file; name its folder instead")
        return str(path.parent.resolve()), path.name, True
    if path is not None and path.is_dir():
        if gguf and not (path / gguf).is_file():
            raise ModelError(f"hf model {spec}: no GGUF file {gguf!r} in {path}")
        return str(path.resolve()), gguf, True
    looks_like_path = model.startswith(("/", ".", "~")) or model.endswith(".gguf") or model.count("/") > 1
    if looks_like_path or not model:
        raise ModelError(f"hf model {spec}: no such file or folder {model!r}")
    return model, gguf, False  # a hub name: only the local cache is tried (HF_HUB_OFFLINE)


def _device_and_dtype(spec: ModelSpec) -> tuple[str, str]:
    import torch
    device = spec.options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"hf model {spec}: device={device} but CUDA is not available")
    dtype = spec.options.get("dtype")
    if dtype is None:
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    elif dtype.lower() not in DTYPES:
        raise ConfigError(f"{spec}: dtype={dtype!r}; expected one of {', '.join(sorted(DTYPES))}")
    return device, DTYPES.get(dtype.lower(), dtype)


def _attention(key: tuple) -> str | None:
    """The attention kernel asked for (``attn=``), else flash attention 2 where it can run, else None
    (transformers' default)."""
    *_, device, dtype, _kind, attn = key
    if attn is not None:
        return attn
    if device.startswith("cuda") and dtype in ("bfloat16", "float16") and importlib.util.find_spec("flash_attn"):
        return "flash_attention_2"
    return None


def get_weights(spec: ModelSpec) -> _Weights:
    """The weights a spec names, loaded once per process and shared by every spec that resolves to them."""
    folder, gguf, local = _resolve(spec)
    device, dtype = _device_and_dtype(spec)
    kind = spec.options.get("kind")
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"{spec}: kind={kind!r}; expected one of {', '.join(KINDS)}")
    attn = spec.options.get("attn")
    if attn is not None and attn not in ATTENTION:
        raise ConfigError(f"{spec}: attn={attn!r}; expected one of {', '.join(ATTENTION)}")
    key = (folder, gguf, device, dtype, kind, attn)
    with _WEIGHTS_LOCK:
        weights = _WEIGHTS.get(key)
        if weights is None:
            weights = _Weights.load(key, local, label=str(spec))
            _WEIGHTS[key] = weights
            LOADS[key] = LOADS.get(key, 0) + 1
    return weights


def release_weights() -> None:
    """Forget every loaded weights object (models already made keep theirs); for tests and long processes."""
    with _WEIGHTS_LOCK:
        _WEIGHTS.clear()


def _is_oom(exc: BaseException) -> bool:
    import torch
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def _template_text(template: Any) -> str:
    if isinstance(template, dict):
        return "\n".join(str(v) for v in template.values())
    return template or ""


@dataclass
class _Prompt:
    text: str
    images: list[Any] = field(default_factory=list)


@dataclass
class _Output:
    text: str
    prompt_tokens: int
    completion_tokens: int


class _Weights:
    """A loaded model with its tokenizer or processor; ``generate`` calls on it run one at a time."""

    def __init__(self, key: tuple, label: str, kind: str, model: Any, tokenizer: Any, processor: Any | None):
        import torch
        self.key, self.label, self.kind = key, label, kind
        self.model, self.tokenizer, self.processor = model, tokenizer, processor
        self.device = torch.device(key[2])
        self.dtype = model.dtype
        self.lock = threading.Lock()
        self.generate_calls = 0
        self.requests = 0
        self.batch_sizes: list[int] = []  # the size of every generate call, in order
        self.batchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> {options: _Batcher}
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is not None:
                tokenizer.pad_token = tokenizer.eos_token
            else:
                tokenizer.add_special_tokens({"pad_token": "<pad>"})
        source = processor if processor is not None and getattr(processor, "chat_template", None) else tokenizer
        self.template_owner = source if getattr(source, "chat_template", None) else None
        template = _template_text(getattr(self.template_owner, "chat_template", None))
        self.template_tools = "tools" in template
        self.template_tool_calls = "tool_calls" in template
        self.eos_ids = self._eos_ids()
        self.pad_id = tokenizer.pad_token_id

    # -- loading

    @classmethod
    def load(cls, key: tuple, local: bool, label: str) -> _Weights:
        folder, gguf, device, dtype_name, kind, _attn = key
        import torch
        dtype = getattr(torch, dtype_name)
        extra: dict[str, Any] = {} if local else {"local_files_only": True}
        model_extra = {"attn_implementation": attn} if (attn := _attention(key)) else {}
        started = time.perf_counter()
        try:
            from transformers import AutoConfig
            if gguf:
                weights = cls._load_gguf(key, label, dtype, extra)
            else:
                config = AutoConfig.from_pretrained(folder, **extra)
                if kind is None:
                    kind = "image-text" if _is_image_text(config) else "causal"
                if kind == "image-text":
                    from transformers import AutoModelForImageTextToText, AutoProcessor
                    processor = AutoProcessor.from_pretrained(folder, **extra)
                    tokenizer = getattr(processor, "tokenizer", None)
                    if tokenizer is None or getattr(processor, "image_processor", None) is None:
                        raise ModelError(f"hf model {label}: its processor has no tokenizer or image processor")
                    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype, **extra, **model_extra)
                    weights = cls(key, label, "image-text", model, tokenizer, processor)
                else:
                    from transformers import AutoModelForCausalLM, AutoTokenizer
                    tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
                    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **extra, **model_extra)
                    weights = cls(key, label, "causal", model, tokenizer, None)
            weights.model.to(device)
            weights.model.eval()
            weights.dtype = weights.model.dtype
        except ModelError:
            raise
        except Exception as exc:  # missing files, bad GGUF, unknown architecture, OOM...
            cause = "out of memory" if _is_oom(exc) else f"{type(exc).__name__}: {exc}"
            where = f"{folder}/{gguf}" if gguf else folder
            raise ModelError(f"hf model {label}: could not load {where}: {cause}") from exc
        log.info("hf: loaded %s (%s, %s on %s) in %.1fs", label, weights.kind, dtype_name, device,
                 time.perf_counter() - started)
        return weights

    @classmethod
    def _load_gguf(cls, key: tuple, label: str, dtype: Any, extra: dict) -> _Weights:
        folder, gguf, _device, _dtype, kind, _attn = key
        if kind == "image-text":
            raise ModelError(f"hf model {label}: GGUF files load as causal LMs only")
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf, **extra)
        if importlib.util.find_spec("accelerate") is not None:
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=dtype, **extra)
        else:
            model = cls._load_gguf_without_accelerate(folder, gguf, dtype, label, extra)
        return cls(key, label, "causal", model, tokenizer, None)

    @staticmethod
    def _load_gguf_without_accelerate(folder: str, gguf: str, dtype: Any, label: str, extra: dict) -> Any:
        """transformers' ``from_pretrained(gguf_file=)`` insists on ``accelerate``; without it, build the model
        from the GGUF's config and load its dequantized tensors with transformers' own GGUF reader."""
        from transformers import AutoConfig, AutoModelForCausalLM
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
        try:
            from transformers.initialization import no_init_weights  # every weight is overwritten below
        except ImportError:  # pragma: no cover  (older transformers)
            from contextlib import nullcontext as no_init_weights
        config = AutoConfig.from_pretrained(folder, gguf_file=gguf, **extra)
        with no_init_weights():
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        path = str(Path(folder) / gguf)
        tensors = load_gguf_checkpoint(path, return_tensors=True, model_to_load=model, torch_dtype=dtype)["tensors"]
        missing, _unexpected = model.load_state_dict(tensors, strict=False)
        model.tie_weights()
        tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
        missing = [k for k in missing if k not in tied]
        if missing:
            raise ModelError(f"hf model {label}: the GGUF file lacks {len(missing)} weights "
                             f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})")
        return model

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for value in (configured, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.append(value)
            elif isinstance(value, (list, tuple)):
                ids.extend(int(v) for v in value)
        vocab = self.tokenizer.get_vocab()
        ids.extend(vocab[token] for token in END_OF_TURN if token in vocab)
        return sorted(set(ids))

    # -- prompts

    def render(self, messages: list[Message], tools: list[dict] | None, schema: dict | None) -> _Prompt:
        """The prompt text (chat template applied) and the images it holds, in order."""
        instruction = "\n\n".join(x for x in (
            _tools_instruction(tools) if tools and not self.template_tools else "",
            _schema_instruction(schema) if schema is not None else "") if x)
        images = [_decode_image(part.url) for m in messages for part in m.images()]
        if self.template_owner is None:
            return _Prompt(_plain_prompt(messages, instruction, self._image_token()), images)
        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
        if tools and self.template_tools:
            kwargs["tools"] = tools
        try:
            chat = self._chat(messages, instruction, simple=False)
            return _Prompt(self.template_owner.apply_chat_template(chat, **kwargs), images)
        except Exception as first:  # templates that refuse system or tool turns: try a plainer conversation
            try:
                chat = self._chat(messages, instruction, simple=True)
                return _Prompt(self.template_owner.apply_chat_template(chat, **kwargs), images)
            except Exception:
                raise ModelError(f"hf model {self.label}: the chat template failed: {first}") from first

    def _chat(self, messages: list[Message], instruction: str, simple: bool) -> list[dict]:
        out: list[dict] = []
        multimodal = self.kind == "image-text"
        for i, message in enumerate(messages):
            role, text = message.role, message.text()
            item: dict[str, Any] = {"role": role}
            if message.role == "assistant" and message.tool_calls:
                if self.template_tool_calls and not simple:
                    item["tool_calls"] = [{"id": c.id or f"call_{i}_{j}", "type": "function",
                                           "function": {"name": c.name, "arguments": _arguments(c.arguments)}}
                                          for j, c in enumerate(message.tool_calls)]
                else:
                    calls = "\n".join(json.dumps({"name": c.name, "arguments": _arguments(c.arguments)})
                                      for c in message.tool_calls)
                    text = f"{text}\n{calls}".strip()
            if message.role == "tool":
                if simple:
                    role, text = "user", f"Tool result: {text}"
                    item["role"] = role
                elif message.tool_call_id:
                    item["tool_call_id"] = message.tool_call_id
            if simple and role == "system":
                item["role"] = role = "user"
            if multimodal:
                parts: list[dict] = []
                if isinstance(message.content, str):
                    parts.append({"type": "text", "text": text})
                else:
                    for part in message.content:
                        parts.append({"type": "image"} if part.type == "image" else {"type": "text", "text": part.text})
                    if message.tool_calls and text != message.text():
                        parts.append({"type": "text", "text": text[len(message.text()):].strip()})
                    if role == "user" and message.role == "tool":
                        parts.insert(0, {"type": "text", "text": "Tool result: "})
                item["content"] = parts
            else:
                item["content"] = text
            out.append(item)
        if instruction:
            system = next((m for m in out if m["role"] == "system"), None) if not simple else None
            if system is not None:
                if isinstance(system["content"], str):
                    system["content"] = f"{system['content']}\n\n{instruction}".strip()
                else:
                    system["content"].append({"type": "text", "text": "\n\n" + instruction})
            else:
                content: Any = [{"type": "text", "text": instruction}] if multimodal else instruction
                out.insert(0, {"role": "system" if not simple else "user", "content": content})
        if simple:  # merge consecutive turns of one role (templates that insist on alternation)
            merged: list[dict] = []
            for item in out:
                if merged and merged[-1]["role"] == item["role"] and "tool_calls" not in item:
                    prev = merged[-1]
                    if isinstance(prev["content"], str):
                        prev["content"] = f"{prev['content']}\n\n{item['content']}"
                    else:
                        prev["content"] = prev["content"] + [{"type": "text", "text": "\n\n"}] + item["content"]
                else:
                    merged.append(item)
            out = merged
        return out

    def _image_token(self) -> str:
        return getattr(self.processor, "image_token", None) or "<image>" if self.processor is not None else ""

    # -- generation

    def encode(self, prompts: list[_Prompt]) -> Any:
        import torch
        texts = [p.text for p in prompts]
        add_special = self.template_owner is None
        if self.processor is not None:
            images = [img for p in prompts for img in p.images]
            inputs = self.processor(text=texts, images=images or None, return_tensors="pt", padding=True,
                                    add_special_tokens=add_special)
        else:
            inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=add_special)
        inputs = inputs.to(self.device)
        for name, value in list(inputs.items()):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                inputs[name] = value.to(self.dtype)
        return inputs

    def generate(self, prompts: list[_Prompt], settings: Settings) -> list[_Output]:
        """One padded ``generate`` call for prompts that share settings (halved and retried on OOM)."""
        import torch
        try:
            with self.lock:
                inputs = self.encode(prompts)
                self.last_inputs = {k: tuple(v.shape) for k, v in inputs.items() if hasattr(v, "shape")}
                self.generate_calls += 1
                self.requests += len(prompts)
                self.batch_sizes.append(len(prompts))
                config = copy.deepcopy(self.model.generation_config)
                greedy = settings.temperature == 0
                config.update(max_new_tokens=settings.max_tokens, do_sample=not greedy,
                              temperature=None if greedy else settings.temperature,
                              top_p=None if greedy else settings.top_p, top_k=None if greedy else 0,
                              pad_token_id=self.pad_id, eos_token_id=self.eos_ids or None, max_length=None)
                # Seeded sampling leaves the process's global RNG as it found it.
                devices = [self.device.index or 0] if self.device.type == "cuda" else []
                with torch.random.fork_rng(devices=devices, enabled=not greedy), torch.inference_mode():
                    if not greedy and settings.seed is not None:
                        torch.manual_seed(settings.seed)
                    output = self.model.generate(**inputs, generation_config=config)
        except Exception as exc:
            if _is_oom(exc):
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if len(prompts) > 1:
                    half = len(prompts) // 2
                    log.warning("hf: %s ran out of memory on a batch of %d; halving it", self.label, len(prompts))
                    return self.generate(prompts[:half], settings) + self.generate(prompts[half:], settings)
                raise ModelError(f"hf model {self.label}: out of memory generating one reply") from exc
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"hf model {self.label}: generate failed: {type(exc).__name__}: {exc}") from exc
        sequences = output if isinstance(output, torch.Tensor) else output.sequences
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        new = sequences[:, inputs["input_ids"].shape[1]:].tolist()
        stop = set(self.eos_ids)
        outputs = []
        for row, prompt_tokens in zip(new, prompt_lengths):
            end = next((i for i, tok in enumerate(row) if tok in stop), len(row))
            text = self.tokenizer.decode(row[:end], skip_special_tokens=True)
            outputs.append(_Output(text=text.strip(), prompt_tokens=int(prompt_tokens), completion_tokens=end))
        return outputs


def _is_image_text(config: Any) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    return getattr(config, "model_type", None) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def _decode_image(url: str) -> Any:
    from PIL import Image
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        raw = base64.b64decode(data) if ";base64" in header else data.encode()
        image = Image.open(io.BytesIO(raw))
    elif url.startswith(("http://", "https://")):
        raise ModelError(f"hf models take images as data URLs or local files, not {url[:60]!r}")
    else:
        image = Image.open(url.removeprefix("file://"))
    image.load()
    return image.convert("RGB")


def _plain_prompt(messages: list[Message], instruction: str, image_token: str) -> str:
    """A prompt for models without a chat template."""
    lines = [f"System: {instruction}"] if instruction else []
    for message in messages:
        text = message.text()
        if image_token and message.images():
            text = " ".join([image_token] * len(message.images()) + [text])
        for call in message.tool_calls:
            text += "\n" + json.dumps({"name": call.name, "arguments": _arguments(call.arguments)})
        lines.append(f"{message.role.capitalize()}: {text}")
    return "\n\n".join(lines) + "\n\nAssistant:"


# ---------------------------------------------------------------------------------------------- tools and JSON

def _arguments(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments else {}
    except (TypeError, json.JSONDecodeError):
        return arguments


def _tool_function(tool: dict) -> dict:
    return tool.get("function", tool) if isinstance(tool, dict) else {}


def _tools_instruction(tools: list[dict]) -> str:
    specs = "\n".join(json.dumps(_tool_function(t), separators=(",", ":")) for t in tools)
    return ("You can call these tools (one JSON schema per line):\n" + specs + "\n\nTo call a tool, reply with "
            'only a JSON object: {"name": "<tool name>", "arguments": {<arguments>}}. Otherwise reply in plain text.')


def _schema_instruction(schema: dict) -> str:
    return ("Reply with one JSON object that follows this JSON schema, and nothing else (no prose, no code "
            f"fences):\n{json.dumps(schema, separators=(',', ':'))}")


_TAGS = re.compile(r"</?tool_call>|<\|python_tag\|>|\[TOOL_CALLS\]|<\|tool_call\|>|```(?:json|JSON)?")


def _json_values(text: str) -> list[tuple[int, int, Any]]:
    """Every top-level JSON object or array in ``text``: (start, end, value), left to right."""
    decoder, found, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            found.append((i, end, value))
            i = end
        else:
            i += 1
    return found


def _as_call(value: Any, names: set[str]) -> tuple[str, str] | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str) or (names and name not in names):
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        return name, arguments or "{}"
    if not isinstance(arguments, dict):
        return None
    return name, json.dumps(arguments, ensure_ascii=False)


def parse_tool_calls(text: str, tools: list[dict]) -> tuple[str, list[ToolCall]]:
    """The JSON function calls in a reply (for tools by the given names) and the text left around them."""
    names = {n for n in (_tool_function(t).get("name") for t in tools) if isinstance(n, str)}
    calls: list[ToolCall] = []
    spans: list[tuple[int, int]] = []
    for start, end, value in _json_values(text):
        items = value if isinstance(value, list) else [value]
        parsed = [_as_call(item, names) for item in items]
        if items and all(parsed):
            spans.append((start, end))
            for name, arguments in parsed:
                digest = hashlib.sha256(f"{len(calls)}:{name}:{arguments}".encode()).hexdigest()[:12]
                calls.append(ToolCall(id=f"call_{digest}", name=name, arguments=arguments))
    if not calls:
        return text, []
    rest, last = [], 0
    for start, end in spans:
        rest.append(text[last:start])
        last = end
    rest.append(text[last:])
    return _TAGS.sub("", "".join(rest)).strip(), calls


def _first_json_object(text: str) -> str | None:
    for _start, _end, value in _json_values(text):
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False)
    return None


# ---------------------------------------------------------------------------------------------- batching

@dataclass
class _Request:
    messages: list[Message]
    tools: list[dict] | None
    schema: dict | None
    settings: Settings
    key: tuple
    future: asyncio.Future


def _settings_key(settings: Settings) -> tuple:
    """Requests that may share one generate call: greedy ones differ only in max_tokens."""
    if settings.temperature == 0:
        return (settings.max_tokens, 0.0)
    return (settings.max_tokens, settings.temperature, settings.top_p, settings.seed)


class _Batcher:
    """Gathers one event loop's requests for one weights object into padded generate calls."""

    def __init__(self, weights: _Weights, max_batch: int, max_wait_s: float):
        self.weights, self.max_batch, self.max_wait_s = weights, max_batch, max_wait_s
        self.pending: list[_Request] = []
        self.wake = asyncio.Event()
        self.full = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"hf-batcher:{weights.label}")

    def submit(self, request: _Request) -> None:
        self.pending.append(request)
        self.wake.set()
        if len(self.pending) >= self.max_batch:
            self.full.set()

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            if len(self.pending) < self.max_batch and self.max_wait_s > 0:
                try:
                    await asyncio.wait_for(self.full.wait(), self.max_wait_s)
                except TimeoutError:
                    pass
            batch = self._take()
            if not self.pending:
                self.wake.clear()
            if len(self.pending) < self.max_batch:
                self.full.clear()
            if batch:
                await self._serve(batch)

    def _take(self) -> list[_Request]:
        """The oldest live request and up to max_batch - 1 more with the same settings, in arrival order."""
        self.pending = [r for r in self.pending if not r.future.done()]
        if not self.pending:
            return []
        key = self.pending[0].key
        batch, rest = [], []
        for request in self.pending:
            (batch if request.key == key and len(batch) < self.max_batch else rest).append(request)
        self.pending = rest
        return batch

    async def _serve(self, batch: list[_Request]) -> None:
        try:
            results = await asyncio.to_thread(self._work, batch)
        except Exception as exc:  # noqa: BLE001  (every request of the batch fails alike)
            error = exc if isinstance(exc, ModelError) else ModelError(
                f"hf model {self.weights.label}: {type(exc).__name__}: {exc}")
            results = [error] * len(batch)
        for request, result in zip(batch, results):
            if request.future.done():
                continue
            if isinstance(result, BaseException):
                request.future.set_exception(result)
            else:
                request.future.set_result(result)

    def _work(self, batch: list[_Request]) -> list[ChatResult | BaseException]:
        """In a worker thread: render each prompt, generate once for all, and build each reply."""
        results: list[ChatResult | BaseException | None] = [None] * len(batch)
        prompts, where = [], []
        for i, request in enumerate(batch):
            try:
                prompts.append(self.weights.render(request.messages, request.tools, request.schema))
                where.append(i)
            except Exception as exc:  # noqa: BLE001  (one bad request fails alone)
                results[i] = exc if isinstance(exc, ModelError) else ModelError(
                    f"hf model {self.weights.label}: {type(exc).__name__}: {exc}")
        if prompts:
            outputs = self.weights.generate(prompts, batch[where[0]].settings)
            for i, output in zip(where, outputs):
                results[i] = _reply(output, batch[i], self.weights.label)
        return results  # type: ignore[return-value]


def _reply(output: _Output, request: _Request, label: str) -> ChatResult:
    text, calls = output.text, []
    if request.tools:
        text, calls = parse_tool_calls(text, request.tools)
    if request.schema is not None and not calls:
        text = _first_json_object(text) or text
    return ChatResult(text=text, tool_calls=calls, model=label,
                      usage=Usage(prompt_tokens=output.prompt_tokens, completion_tokens=output.completion_tokens))


# ---------------------------------------------------------------------------------------------- the model

class HFChatModel:
    """A ChatModel run in-process by transformers, its requests batched across concurrent episodes."""

    def __init__(self, spec: ModelSpec | str, *, max_batch: int | None = None, max_wait_ms: float | None = None):
        spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
        if spec.backend != "hf":
            raise ConfigError(f"{spec}: not an hf model spec")
        unknown = sorted(set(spec.options) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"{spec}: unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
        self.spec = spec
        self.name = str(spec)
        self.max_batch = max_batch or self._number("max_batch", DEFAULT_MAX_BATCH, int)
        self.max_wait_ms = max_wait_ms if max_wait_ms is not None else self._number(
            "max_wait_ms", DEFAULT_MAX_WAIT_MS, float)
        if self.max_batch < 1 or self.max_wait_ms < 0:
            raise ConfigError(f"{spec}: max_batch must be at least 1 and max_wait_ms at least 0")
        self.weights = get_weights(spec)
        self.kind = self.weights.kind
        self.supports_images = self.kind == "image-text"

    def __repr__(self) -> str:
        return f"HFChatModel({self.name!r}, kind={self.kind}, max_batch={self.max_batch})"

    def _number(self, key: str, default: Any, cast: Any) -> Any:
        value = self.spec.options.get(key)
        if value is None:
            return default
        try:
            return cast(value)
        except ValueError:
            raise ConfigError(f"{self.spec}: {key}={value!r} is not a number") from None

    @property
    def generate_calls(self) -> int:
        """``generate`` calls made on this model's weights (shared by every spec that names them)."""
        return self.weights.generate_calls

    def _batcher(self) -> _Batcher:
        loop = asyncio.get_running_loop()
        batchers = self.weights.batchers
        for stale in [other for other in list(batchers.keys()) if other.is_closed()]:
            batchers.pop(stale, None)  # its worker task keeps the closed loop alive otherwise
        per_loop = batchers.setdefault(loop, {})
        options = (self.max_batch, self.max_wait_ms)
        batcher = per_loop.get(options)
        if batcher is None or batcher.task.done():
            batcher = per_loop[options] = _Batcher(self.weights, self.max_batch, self.max_wait_ms / 1000)
        return batcher

    async def chat(self, messages: list[Message], settings: Settings, *, tools: list[dict] | None = None,
                   json_schema: dict | None = None) -> ChatResult:
        started = time.perf_counter()
        schema = json_schema
        if schema is not None and "schema" in schema and "type" not in schema:  # {"name":..., "schema":...}
            schema = schema["schema"]
        if not self.supports_images:
            for i, message in enumerate(messages):
                if message.images():
                    raise ModelError(f"hf model {self.name}: this model takes no images, but message {i} holds "
                                     f"one ({message.images()[0].source or 'unnamed'})")
        future = asyncio.get_running_loop().create_future()
        self._batcher().submit(_Request(list(messages), tools or None, schema, settings, _settings_key(settings),
                                        future))
        result = await future
        result.latency_s = time.perf_counter() - started
        result.model = self.name
        return result


register_backend("hf", lambda spec: HFChatModel(spec))
