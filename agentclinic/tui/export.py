"""Exports of a TUI session: Markdown (the format ``agentclinic grade`` reads) and the run's HTML report.

The Markdown is a title block, the transcript as ``**Clinician:** ...`` / ``**Patient:** ...`` lines
(``agentclinic.conversation.transcript.transcript_markdown``), then ``---`` and the feedback and the
learner's notes; ``grade`` ignores everything before the first utterance and after the ``---``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agentclinic.runs.record import EpisodeRecord

if TYPE_CHECKING:
    from agentclinic.tui.session import TuiSession


def _transcript(record: EpisodeRecord) -> str:
    from agentclinic.conversation.transcript import transcript_markdown

    return transcript_markdown(record).strip()


def diagnostic_markdown(record: EpisodeRecord) -> str:
    """A diagnostic episode's result: the diagnosis, the judge's verdict and every score axis."""
    lines = ["## Result", "", f"- outcome: {record.outcome or 'in progress'}"]
    if record.diagnosis:
        level = record.verdict.level if record.verdict else "none"
        lines.append(f"- diagnosis: {record.diagnosis} (match: {level})")
    lines.append(f"- turns: {record.turns}, tests: {record.tests}, cost: ${record.cost:.2f}")
    if record.scores is not None:
        lines += ["", "| axis | score |", "|---|---|"]
        lines += [f"| {axis} | {'n/a' if value is None else f'{value:.2f}'} |"
                  for axis, value in record.scores.axes.items()]
        lines.append(f"\ncomposite: {record.scores.composite:.2f}")
    actions = [e for e in record.events if e.kind not in ("ask", None)]
    if actions:
        lines += ["", "## Examinations, tests, images and tools", ""]
        for event in actions:
            lines += [f"**Turn {event.turn}** ({event.kind}): {event.observation.strip()}", ""]
    return "\n".join(lines).rstrip()


def feedback_section(record: EpisodeRecord) -> str:
    """The feedback part: the station's rubric feedback, or a diagnostic case's result."""
    feedback = record.extra.get("feedback")
    if feedback:
        from agentclinic.conversation.grading import Feedback, feedback_markdown

        return feedback_markdown(Feedback.model_validate(feedback)).strip()
    return diagnostic_markdown(record)


def record_markdown(record: EpisodeRecord, title: str, notes: str = "") -> str:
    """A whole session: title block, transcript, then ``---``, the feedback and the notes."""
    head = [f"# {title}", "", f"station: {record.scenario_id} · run: {record.run_id or '-'} · "
            f"episode: {record.episode} · outcome: {record.outcome or 'in progress'}", ""]
    parts = ["\n".join(head), _transcript(record) or "_(no turns)_", "---"]
    if record.outcome is not None:
        parts.append(feedback_section(record))
    if notes.strip():
        parts.append("## Learner's notes\n\n" + notes.strip())
    return "\n\n".join(parts) + "\n"


def session_markdown(session: TuiSession) -> str:
    """The session as it stands (finished or not)."""
    record = session.record or session.clinic.record
    return record_markdown(record, session.scenario.title, session.notes)


def export_markdown(session: TuiSession) -> Path:
    """Write ``<run>/artifacts/episode-N/session.md``; returns the path."""
    return session.recorder.save_draft(session.episode, "session.md", session_markdown(session))


def export_html(session: TuiSession) -> Path:
    """Write the run's HTML report (``agentclinic report``'s page) to ``<run>/report.html``."""
    from agentclinic.runs.report import load_run, run_stats
    from agentclinic.runs.report_html import write_html

    run = load_run(session.recorder.folder)
    return write_html([run], [run_stats(run)], session.recorder.folder / "report.html")
