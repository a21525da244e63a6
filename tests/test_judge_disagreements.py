"""The count of episodes where the model judge and the rule judge kept beside it disagree on correctness:
in the run summary, the report's table and the HTML report."""

from __future__ import annotations

from pathlib import Path

from agentclinic.agents.base import Verdict
from agentclinic.runs.record import EpisodeRecord
from agentclinic.runs.report import Run, run_stats, summary_rows
from agentclinic.runs.report_html import episode_html, render_html
from agentclinic.runs.report_images import ImageEmbedder
from agentclinic.scoring.summary import judge_disagreements, judges_disagree, summarise_scores


def record(episode: int, level: str, correct: bool, rule_level: str | None, judge: str | None) -> EpisodeRecord:
    verdict = Verdict(level=level, correct=correct, rationale="r", rule_level=rule_level, judge=judge)
    return EpisodeRecord(episode=episode, scenario_id=f"case-{episode}", outcome="correct" if correct else "incorrect",
                         diagnosis="Pneumonia", verdict=verdict, correct=correct)


MODEL_RUN = [
    record(0, "synonym", True, "synonym", "openai/judge"),  # both correct (levels may differ: not counted)
    record(1, "synonym", True, "wrong", "openai/judge"),  # the model says correct, the rules wrong: counted
    record(2, "wrong", False, "exact", "openai/judge"),  # the model says wrong, the rules exact: counted
    record(3, "broader", False, "narrower", "openai/judge"),  # both incorrect
    record(4, "exact", True, "exact", "rule"),  # the model's reply was not understood: the rule verdict stood
]


def test_disagreements_are_counted_on_correctness():
    assert [judges_disagree(r.verdict) for r in MODEL_RUN] == [False, True, True, False, None]
    assert judge_disagreements(MODEL_RUN) == 2
    assert summarise_scores(MODEL_RUN)["judge_disagreements"] == 2
    rule_only = [record(0, "exact", True, None, None), record(1, "wrong", False, None, "rule")]
    assert judge_disagreements(rule_only) is None and summarise_scores(rule_only)["judge_disagreements"] is None


def test_report_table_and_html_show_the_count(tmp_path: Path):
    runs = [Run(name="model-judge", folder=tmp_path, records=MODEL_RUN),
            Run(name="rule-judge", folder=tmp_path, records=[record(0, "exact", True, None, "rule")])]
    stats = [run_stats(run) for run in runs]
    row = dict(summary_rows(stats))["judge disagreements (model vs rule)"]
    assert row == ["2", "-"]
    page = render_html(runs, stats)
    assert "judge disagreements (model vs rule)" in page
    embedder = ImageEmbedder()
    assert "model and rule judges differ" in episode_html(MODEL_RUN[1], embedder)
    assert "model and rule judges differ" not in episode_html(MODEL_RUN[0], embedder)
