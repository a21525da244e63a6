"""Re-grade a recorded run without replaying it: a new judge, new weights, new axes.

``rescore_run(RUN)`` reads ``RUN/run.json`` and ``RUN/episodes.jsonl``, loads the run's scenarios
(checking each is unchanged since the run, by the hash its record carries), scores every record again
with ``agentclinic.scoring.score_episode`` (the one scoring path) and writes a new run folder
(``RUN-rescored-N`` beside it, or ``out``) with the new records, ``summary.json`` and a ``run.json``
whose config says it was rescored, from which run, with which judge, weights and embedder.

Without a judge, each primary diagnosis keeps its recorded verdict and model-graded axes keep their
recorded grades; everything else (differential, dialogue axes, composite) is computed afresh, so
rescoring a run with its own settings reproduces its scores. With a judge (``judge="scripted"`` or a
model spec), every primary diagnosis is judged again, and a model judge grades the model-graded axes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agentclinic.backends.base import CALL_LOG, Settings
from agentclinic.errors import ConfigError
from agentclinic.runs.record import EpisodeRecord
from agentclinic.runs.writer import RunFolderError, RunWriter
from agentclinic.scenario.loaders import load_scenarios
from agentclinic.scenario.schema import Scenario
from agentclinic.scoring.diagnosis import rule_judge_for
from agentclinic.scoring.rewards import ScoreWeights, recorded_grades, score_episode


def default_out(folder: Path) -> Path:
    """``<folder>-rescored-N`` beside the run, with the first N not taken."""
    n = 1
    while (candidate := folder.with_name(f"{folder.name}-rescored-{n}")).exists():
        n += 1
    return candidate


def _scenarios(records: Sequence[EpisodeRecord], paths: Sequence[str], fmt: str | None,
               allow_changed: bool) -> tuple[dict[str, Scenario], list[str]]:
    """The run's scenarios by id, and the ids of those that changed since the run (an error unless allowed)."""
    from agentclinic.env.clinic import scenario_hash

    loaded = load_scenarios(list(paths), format=fmt, skip_errors=True)
    by_id = {s.id: s for s in loaded}
    missing = sorted({r.scenario_id for r in records} - set(by_id))
    if missing:
        raise ConfigError(f"the run's scenarios {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} are not "
                          f"in {', '.join(map(str, paths))}; point --scenarios at the files the run played")
    changed = sorted({r.scenario_id for r in records
                      if r.scenario_hash and r.scenario_hash != scenario_hash(by_id[r.scenario_id])})
    if changed and not allow_changed:
        raise ConfigError(f"scenarios changed since the run: {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}"
                          "; their scores would not be comparable (pass --allow-changed-scenarios to rescore "
                          "against the current files, which run.json then records)")
    return by_id, changed


async def rescore_records(records: Sequence[EpisodeRecord], scenarios: dict[str, Scenario],
                          weights: ScoreWeights, *, judge: Any = None, max_turns: int | None = None,
                          run_id: str = "", concurrency: int = 4) -> list[EpisodeRecord]:
    """The records scored again (see the module doc); ``judge`` None keeps the recorded verdicts and model
    grades. ``max_turns`` fills in the turn budget of records written before it was recorded."""
    grader = getattr(judge, "model", None)
    settings = getattr(judge, "settings", None)
    rule = rule_judge_for(judge)
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(record: EpisodeRecord) -> EpisodeRecord:
        scenario = scenarios[record.scenario_id]
        update: dict[str, Any] = {"run_id": run_id}
        if record.max_turns is None and max_turns is not None:
            update["max_turns"] = max_turns
        calls: list[dict] = []
        async with limit:
            token = CALL_LOG.set(calls)
            try:
                if judge is not None and record.diagnosed:
                    verdict = await judge.judge(record.diagnosis, scenario)
                    update |= {"verdict": verdict, "correct": verdict.correct,
                               "outcome": "correct" if verdict.correct else "incorrect"}
                draft = record.model_copy(update=update)
                scores = await score_episode(scenario, draft, weights, judge=rule, grader=grader,
                                             grader_settings=settings,
                                             graded=recorded_grades(record) if judge is None else None)
            finally:
                CALL_LOG.reset(token)
        extra = dict(record.extra)
        if calls:
            extra["rescore_model_calls"] = calls
        return draft.model_copy(update={"scores": scores, "reward": scores.composite, "extra": extra})

    return list(await asyncio.gather(*(one(r) for r in records)))


def rescore_run(folder: str | Path, *, judge: str | None = None, weights: ScoreWeights | dict | str | None = None,
                out: str | Path | None = None, scenarios: Sequence[str] | None = None, cache: str | None = None,
                allow_changed_scenarios: bool = False, concurrency: int = 4) -> tuple[Path, dict, list[str]]:
    """Rescore the run in ``folder`` into a new run folder; returns the folder, its summary and warnings."""
    from agentclinic.agents.llm_factory import make_judge

    source = RunWriter(folder)
    if not source.run_json.exists():
        raise RunFolderError(f"{source.folder}: not a run folder (no run.json)")
    config = source.saved_config()
    records = sorted(source.records(), key=lambda r: r.episode)
    if not records:
        raise RunFolderError(f"{source.episodes_path}: no episode records to rescore")
    paths = list(scenarios or config.get("scenarios") or [])
    by_id, changed = _scenarios(records, paths, config.get("format"), allow_changed_scenarios)
    new_weights = ScoreWeights.parse(weights if weights is not None else config.get("weights"))
    model_judge = None
    if judge is not None:
        saved = (config.get("settings") or {}).get("judge")
        model_judge = make_judge(judge, Settings.model_validate(saved) if saved else None,
                                 cache=cache or config.get("cache"))
    embedder = rule_judge_for(model_judge).embedder.name
    warnings = []
    recorded = sorted({r.embedder for r in records if r.embedder and r.embedder != embedder})
    if recorded:
        warnings.append(f"the run's agents used the embedder {', '.join(recorded)}; the differential is judged "
                        f"again with {embedder} now (recorded in run.json)")
    target = Path(out) if out is not None else default_out(source.folder)
    rescored = asyncio.run(rescore_records(records, by_id, new_weights, judge=model_judge,
                                           max_turns=config.get("max_turns"), run_id=target.name,
                                           concurrency=concurrency))
    new_config = config | {"weights": new_weights.as_dict(), "judge": judge or config.get("judge"),
                           "rescored_from": {
                               "run": str(source.folder.resolve()), "judge": judge,
                               "verdicts": "judged again" if judge else "kept from the run",
                               "weights": new_weights.as_dict(), "scenarios": paths, "embedder": embedder,
                               "changed_scenarios": changed,
                               "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}}
    with RunWriter(target) as writer:
        writer.start(new_config, resume=False)
        for record in rescored:
            writer.append(record)
        summary = writer.write_summary()
    return writer.folder, summary, warnings
