"""Accuracy of a run over the bank, by split and by difficulty (with the difficulty's share of correct).

    .venv/bin/agentclinic run --doctor scripted --seed 0 --run-id bank-scripted
    .venv/bin/python benchmarks/bank_accuracy.py runs/bank-scripted [runs/bank-random ...]

Reads each run's records and the bank's scenarios (for the difficulty) and prints one Markdown table per
run: rows for each split (``agentclinic.scenario.splits``, seed 0) and each difficulty, with episodes,
correct and accuracy over all episodes.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from agentclinic.runs.writer import RunWriter
from agentclinic.scenario.loaders import BANK_DIR, load_scenarios
from agentclinic.scenario.splits import split_of


@lru_cache(maxsize=1)
def bank_difficulty() -> dict[str, str]:
    """Scenario id -> difficulty for the bank (read once for all the runs named)."""
    return {s.id: s.difficulty for s in load_scenarios(BANK_DIR)}


def table(folder: Path) -> str:
    difficulty = bank_difficulty()
    groups: dict[str, list[bool]] = defaultdict(list)
    for record in RunWriter(folder).records():
        for key in (f"split: {split_of(record.scenario_id)}", f"difficulty: {difficulty.get(record.scenario_id, '?')}",
                    "all"):
            groups[key].append(record.correct)
    order = ["split: train", "split: validation", "split: test", "difficulty: easy", "difficulty: medium",
             "difficulty: hard", "all"]
    lines = [f"{folder.name}", "", "| cases | episodes | correct | accuracy |", "| --- | ---: | ---: | ---: |"]
    for key in order:
        if key in groups:
            hits = groups[key]
            lines.append(f"| {key} | {len(hits)} | {sum(hits)} | {sum(hits) / len(hits):.1%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(table(Path(name)), end="\n\n")
