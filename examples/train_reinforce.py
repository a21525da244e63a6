"""REINFORCE over the action menu: a small policy learns *what to do next* on the train split and is judged on
the test split before and after training.

The environment is ``ActionMenu(ClinicEnv(split="train"))`` (``agentclinic/env/menu.py``): 25 menu actions
(history questions by topic, examination, test panels for the leading hypotheses, images, retrieval, diagnose the
leader or the runner-up) and a feature vector that describes the consultation's state, never the case, so what
is learned can carry over to unseen cases. The policy is a masked softmax over a linear function of the features
(torch), trained with REINFORCE on the terminal reward (the composite of the scoring axes; 0 without a diagnosis):
each case is played ``--group`` times in a row and the group's mean return is the baseline, advantages are
normalised over the batch, Adam updates the weights.

Evaluation plays every test scenario once per seed (``agentclinic.env.evaluation.evaluate``) with the sampling
policy, the same (scenario, seed) plan before and after training; the held-out improvement is the paired
difference with a 95 % bootstrap interval over scenarios. Writes to ``<out>/<run-id>/``: ``results.json``,
``learning_curve.png``, ``policy.pt``, and the two evaluations as run folders (``eval-before``, ``eval-after``)
that ``agentclinic report`` reads.

    .venv/bin/python examples/train_reinforce.py --episodes 400 --seeds 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scenarios", nargs="*", default=None, help="scenario files or folders (default: the bank)")
    p.add_argument("--episodes", type=int, default=400, help="training episodes (train split)")
    p.add_argument("--batch", type=int, default=8, help="episodes per policy update")
    p.add_argument("--group", type=int, default=2, help="episodes per case in a row (the baseline is their mean)")
    p.add_argument("--lr", type=float, default=0.1, help="Adam learning rate")
    p.add_argument("--entropy", type=float, default=0.01, help="entropy bonus weight")
    p.add_argument("--seeds", type=int, default=2, help="evaluation seeds per test scenario")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N test scenarios only")
    p.add_argument("--max-turns", type=int, default=20, help="the consultation's turn budget")
    p.add_argument("--embedder", choices=("minilm", "lexical"), default="minilm",
                   help="what the patient, judge and the menu's ranking match text with")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these small models)")
    p.add_argument("--out", default="runs", help="folder for the run")
    p.add_argument("--run-id", default=None)
    return p.parse_args(argv)


class LinearPolicy:
    """A masked softmax over ``W x`` (actions x features); zero weights start as uniform over allowed actions."""

    def __init__(self, n_features: int, n_actions: int, seed: int):
        import torch

        self.torch = torch
        self.weights = torch.zeros(n_actions, n_features, requires_grad=True)
        self.rng = torch.Generator().manual_seed(seed)

    def distribution(self, features, mask):
        torch = self.torch
        logits = self.weights @ torch.as_tensor(features, dtype=torch.float32)
        logits = logits.masked_fill(torch.as_tensor(mask) == 0, float("-inf"))
        return torch.distributions.Categorical(logits=logits)

    def act(self, features, mask) -> int:
        with self.torch.no_grad():
            probs = self.distribution(features, mask).probs
        return int(self.torch.multinomial(probs, 1, generator=self.rng))

    def __call__(self, observation, info) -> int:  # an evaluation policy: sample
        return self.act(observation, info["action_mask"])


def play_episode(env, policy: LinearPolicy, scenario, seed: int) -> dict:
    """One training episode: the trajectory (features, masks, actions) and its return."""
    observation, info = env.reset(seed=seed, options={"scenario": scenario})
    steps, total = [], 0.0
    while True:
        mask = info["action_mask"]
        action = policy.act(observation, mask)
        steps.append((observation, mask, action))
        observation, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if terminated or truncated:
            return {"scenario": scenario.id, "steps": steps, "return": total,
                    "correct": info.get("outcome") == "correct", "turns": len(steps)}


def update(policy: LinearPolicy, optimiser, batch: list[dict], entropy_weight: float) -> float:
    """One REINFORCE step on a batch of episodes. The baseline is the mean return of the episodes of the same
    group (the same case, played ``--group`` times: how hard a case is cancels out; the batch's mean with
    ``--group 1``), then advantages are normalised over the batch."""
    torch = policy.torch
    returns = torch.tensor([e["return"] for e in batch])
    groups = [[r["return"] for r in batch if r["group"] == e["group"]] for e in batch]
    baseline = torch.tensor([float(np.mean(g if len(g) > 1 else returns.tolist())) for g in groups])
    advantages = returns - baseline
    if advantages.std() > 1e-8:
        advantages = advantages / advantages.std()
    loss = torch.zeros(())
    count = sum(len(e["steps"]) for e in batch)
    for episode, advantage in zip(batch, advantages):
        for features, mask, action in episode["steps"]:
            dist = policy.distribution(features, mask)
            loss = loss - advantage * dist.log_prob(torch.tensor(action)) - entropy_weight * dist.entropy()
    loss = loss / count
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return float(loss.detach())


def plot(curve: list[dict], before: dict, after: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [c["episodes"] for c in curve]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, [c["mean_return"] for c in curve], marker="o", ms=3, label="train: batch mean return")
    ax.plot(x, [c["accuracy"] for c in curve], marker=".", ms=3, alpha=0.6, label="train: batch accuracy")
    for summary, name, style in ((before, "test before", ":"), (after, "test after", "--")):
        ax.axhline(summary["mean_return"], ls=style, color="k", label=f"{name}: mean return "
                   f"{summary['mean_return']:.3f}")
    ax.set_xlabel("training episodes")
    ax.set_ylabel("return (composite) / accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("REINFORCE over the action menu (train split), evaluated on the test split")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.group < 1 or args.batch % args.group:
        raise SystemExit("--batch must be a multiple of --group (>= 1)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from agentclinic.agents.embeddings import embedder_named
    from agentclinic.env.evaluation import compare, evaluate, summarise
    from agentclinic.env.gym import ClinicEnv
    from agentclinic.env.menu import MENU, ActionMenu, feature_names
    from agentclinic.env.wrappers import RecordEpisodes
    from agentclinic.scenario.loaders import BANK_DIR, load_scenarios
    from agentclinic.scenario.splits import split_scenarios

    run_id = args.run_id or "reinforce-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    folder = Path(args.out) / run_id
    folder.mkdir(parents=True, exist_ok=False)
    scenarios = load_scenarios(args.scenarios or BANK_DIR).scenarios
    embedder = embedder_named(args.embedder)

    def make_env(split: str, record: str | None = None):
        env = ClinicEnv(scenarios, max_turns=args.max_turns, split=split, embedder=embedder,
                        torch_threads=args.threads)
        if record:
            env = RecordEpisodes(env, out=folder, run_id=record, doctor="reinforce-menu")
        return ActionMenu(env, embedder=embedder)

    train_env = make_env("train")
    train_cases = list(train_env.unwrapped.scenarios)
    test_env_cases = split_scenarios(train_env.unwrapped.pool, "test")  # the test split as make_env("test") cuts it
    test_cases = test_env_cases[: args.eval_limit] if args.eval_limit else test_env_cases
    if not train_cases or not test_cases:
        raise SystemExit(f"need train and test scenarios; got {len(train_cases)} train, {len(test_cases)} test")
    policy = LinearPolicy(len(feature_names()), len(MENU), args.seed)
    optimiser = torch.optim.Adam([policy.weights], lr=args.lr)

    def evaluation(name: str) -> list[dict]:
        env = make_env("test", record=name)
        try:
            return evaluate(policy, env, split="test", seeds=args.seeds, base_seed=10_000,
                            scenarios=test_cases)
        finally:
            env.close()

    started = time.perf_counter()
    print(f"{len(train_cases)} train / {len(test_cases)} test scenarios; evaluating before training ...", flush=True)
    before = evaluation("eval-before")
    rng = np.random.default_rng(args.seed)
    curve, played, batch, order = [], [], [], []
    for n in range(args.episodes):
        if n % args.group == 0:
            if not order:
                order = list(rng.permutation(len(train_cases)))
            scenario = train_cases[order.pop()]
        episode = play_episode(train_env, policy, scenario, seed=args.seed * 1_000_003 + n)
        episode["group"] = n // args.group
        played.append(scenario.id)
        batch.append(episode)
        if len(batch) == args.batch or n == args.episodes - 1:
            loss = update(policy, optimiser, batch, args.entropy)
            point = {"episodes": n + 1, "mean_return": float(np.mean([e["return"] for e in batch])),
                     "accuracy": float(np.mean([e["correct"] for e in batch])),
                     "mean_turns": float(np.mean([e["turns"] for e in batch])), "loss": loss}
            curve.append(point)
            print(f"episodes {n + 1:4d}  return {point['mean_return']:.3f}  accuracy {point['accuracy']:.2f}  "
                  f"turns {point['mean_turns']:.1f}  loss {loss:+.4f}", flush=True)
            batch = []
    print("evaluating after training ...", flush=True)
    after = evaluation("eval-after")
    summary_before, summary_after = summarise(before), summarise(after)
    result = {
        "run_id": run_id, "config": vars(args), "menu": [item.name for item in MENU], "features": feature_names(),
        "train_scenarios": sorted(set(played)), "test_scenarios": [s.id for s in test_cases],
        "before": summary_before, "after": summary_after,
        "improvement_return": compare(before, after, "return"),
        "improvement_accuracy": compare(before, after, "correct"),
        "mean_turns": {"before": float(np.mean([r["turns"] for r in before])),
                       "after": float(np.mean([r["turns"] for r in after]))},
        "curve": curve, "seconds": round(time.perf_counter() - started, 1),
    }
    torch.save({"weights": policy.weights.detach(), "menu": result["menu"], "features": result["features"]},
               folder / "policy.pt")
    (folder / "results.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    plot(curve, summary_before, summary_after, folder / "learning_curve.png")
    gain = result["improvement_return"]
    low, high = gain["difference_ci"]
    print(f"test split, {len(test_cases)} scenarios x {args.seeds} seeds: mean return {gain['before']:.3f} -> "
          f"{gain['after']:.3f}, difference {gain['difference']:+.3f} (95% CI {low:+.3f} to {high:+.3f}); "
          f"accuracy {summary_before['accuracy']:.3f} -> {summary_after['accuracy']:.3f}")
    print(f"written to {folder}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
