"""A run folder: ``run.json`` (config), ``episodes.jsonl`` (append-only), ``summary.json``.

Each finished episode is appended as one line with a single ``write`` and an fsync, so a
run killed at any moment (SIGKILL included) leaves whole lines plus at most one partial
line, which resuming cuts off before carrying on.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from agentclinic.errors import ConfigError
from agentclinic.runs.record import EpisodeRecord
from agentclinic.scoring.summary import summarise_scores


class RunWriter:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.episodes_path = self.folder / "episodes.jsonl"

    def start(self, config: dict, *, resume: bool) -> set[int]:
        """Create the run (or check it matches ``config`` on resume); the episodes already done
        (failed ones are not: a resumed run plays them again, and the new record supersedes the old)."""
        run_json = self.folder / "run.json"
        if run_json.exists():
            if not resume:
                raise ConfigError(f"{self.folder} already holds a run: pass --resume to continue it, "
                                  "or choose another --run-id")
            saved = json.loads(run_json.read_text())["config"]
            # settings an older version did not record (absent from run.json) are not compared
            different = {k for k in config if k != "concurrency" and k in saved and saved[k] != config[k]}
            if different:
                raise ConfigError(f"cannot resume {self.folder}: settings differ from the saved run "
                                  f"({', '.join(sorted(different))})")
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(run_json, json.dumps({"config": config, **environment()}, indent=2))
        return {r.episode for r in self.records(repair=True) if r.outcome != "error"}

    def append(self, record: EpisodeRecord) -> None:
        line = (record.model_dump_json() + "\n").encode()
        fd = os.open(self.episodes_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self, repair: bool = False) -> list[EpisodeRecord]:
        """The complete records, the latest per episode; with ``repair``, a torn last line is cut off."""
        if not self.episodes_path.exists():
            return []
        data = self.episodes_path.read_bytes()
        end = data.rfind(b"\n") + 1
        if repair and end < len(data):
            with self.episodes_path.open("r+b") as handle:
                handle.truncate(end)
        latest: dict[int, EpisodeRecord] = {}  # a replayed episode (after an error) supersedes its record
        for line in data[:end].splitlines():
            if line.strip():
                record = EpisodeRecord.model_validate_json(line)
                latest[record.episode] = record
        return list(latest.values())

    def write_summary(self) -> dict:
        summary = summarise(self.records())
        _write_atomic(self.folder / "summary.json", json.dumps(summary, indent=2))
        return summary


def summarise(records: list[EpisodeRecord]) -> dict:
    """Run-level figures over the finished episodes."""
    n = len(records)
    ok = [r for r in records if r.outcome != "error"]
    mean = lambda xs: round(statistics.fmean(xs), 4) if xs else None  # noqa: E731
    by_specialty: dict[str, list[bool]] = {}
    for r in ok:
        by_specialty.setdefault(r.specialty or "unknown", []).append(r.correct)
    return {
        "episodes": n,
        "accuracy": mean([float(r.correct) for r in ok]),
        "correct": sum(r.correct for r in records),
        "incorrect": sum(r.outcome == "incorrect" for r in records),
        "no_diagnosis": sum(r.outcome == "no-diagnosis" for r in records),
        "errors": sum(r.outcome == "error" for r in records),
        "mean_turns": mean([r.turns for r in ok]),
        "mean_tests": mean([r.tests for r in ok]),
        "mean_cost": mean([r.cost for r in ok]),
        "mean_seconds": mean([r.seconds for r in records]),
        "accuracy_by_specialty": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_specialty.items())},
        "match_levels": _count((r.verdict or {}).get("level", "none") for r in ok),
        **summarise_tools(ok),
        **summarise_scores(ok),  # axes means, top-k accuracy, mean composite, patient ratings
    }


def summarise_tools(records: list[EpisodeRecord]) -> dict:
    """Tool use over a run: mean calls per episode, calls per tool, invalid arguments, errors, and the
    share of episodes that used the tools their case calls for (over the cases that name some)."""
    metrics = [r.tool_metrics for r in records if r.tool_metrics]
    calls: dict[str, int] = {}
    for m in metrics:
        for name, n in m.get("calls", {}).items():
            calls[name] = calls.get(name, 0) + n
    relevant = [m["relevant_used"] for m in metrics if m.get("relevant_used") is not None]
    return {"mean_tool_calls": round(statistics.fmean(r.tool_calls for r in records), 4) if records else None,
            "tool_calls": dict(sorted(calls.items())),
            "tool_invalid_arguments": sum(m.get("invalid_arguments", 0) for m in metrics),
            "tool_errors": sum(m.get("errors", 0) for m in metrics),
            "relevant_tools_used": round(statistics.fmean(relevant), 4) if relevant else None}


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return dict(sorted(counts.items()))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def environment() -> dict:
    """Package versions and the git commit, for run.json."""
    from importlib.metadata import PackageNotFoundError, version
    import platform
    import subprocess

    versions = {}
    for name in ("agentclinic", "pydantic", "gymnasium", "numpy", "torch", "sentence-transformers", "transformers"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"versions": versions, "python": platform.python_version(), "git_commit": commit}
