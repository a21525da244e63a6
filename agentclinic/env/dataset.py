"""A dataset view of the scenarios for LLM trainers: one row per scenario.

Each row holds the first turn's prompt (``prompt``: the chat messages a ``messages``-mode ``ClinicEnv``
returns at reset: the doctor's action protocol as the system message, then the case brief with the turn
counter), and what a reward function or rollout needs to play the case: ``scenario_id`` (for
``env.reset(options={"scenario": scenario_id})``), ``split``, ``specialty``, ``difficulty``, ``max_turns``.
Never the diagnosis, the facts or the results. Diagnostic cases only (conversation stations have no
diagnosis to reward). ``scenario_rows`` gives a list of dicts; ``scenario_dataset`` a ``datasets.Dataset``
(``pip install agentclinic[rl]``; imported only then).
"""

from __future__ import annotations

from pathlib import Path

from agentclinic.env.clinic import case_brief  # the brief Clinic.reset opens with (on-request images)
from agentclinic.env.gym import first_messages
from agentclinic.scenario.loaders import BANK_DIR, ScenarioSet, load_scenarios
from agentclinic.scenario.schema import Scenario
from agentclinic.scenario.splits import Split, assign_splits


def scenario_rows(scenarios: str | Path | list[Scenario] | ScenarioSet | None = None,
                  split: str | Split | None = None, *, max_turns: int = 20) -> list[dict]:
    """One row per diagnostic scenario (of ``split`` when given; every row names its split either way,
    cut by the split's settings or the defaults)."""
    if isinstance(scenarios, (str, Path)) or scenarios is None:
        scenarios = load_scenarios(scenarios or BANK_DIR)
    cases = [s for s in scenarios if s.kind == "diagnostic"]
    spec = Split.parse(split) or Split(name="train")
    assignment = assign_splits(cases, spec.seed, spec.fractions, spec.method)
    return [{"prompt": first_messages(case_brief(s), max_turns), "scenario_id": s.id, "split": assignment[s.id],
             "specialty": s.specialty, "difficulty": s.difficulty, "max_turns": max_turns}
            for s in cases if split is None or assignment[s.id] == spec.name]


def scenario_dataset(scenarios: str | Path | list[Scenario] | ScenarioSet | None = None,
                     split: str | Split | None = None, *, max_turns: int = 20):
    """``scenario_rows`` as a ``datasets.Dataset``."""
    try:
        from datasets import Dataset
    except ImportError as exc:
        raise ImportError("scenario_dataset needs the datasets package: pip install 'agentclinic[rl]'") from exc
    return Dataset.from_list(scenario_rows(scenarios, split, max_turns=max_turns))
