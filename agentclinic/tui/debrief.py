"""The debrief: the score, rubric items with the learner's own words as evidence, missed items, red
lines, the emotional arc, suggestions; export to Markdown and to the HTML report."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Static

from agentclinic.runs.record import EpisodeRecord
from agentclinic.tui.render import arc_chart, bar
from agentclinic.tui.session import TuiSession

STATUS = {"met": ("✓ met", "green"), "partly": ("◐ partly", "yellow"), "missed": ("✗ missed", "red")}


def _heading(text: str) -> Text:
    return Text(f"\n{text}", style="bold underline")


def _wrap_quote(quote: str, limit: int = 160) -> str:
    quote = " ".join(quote.split())
    return quote if len(quote) <= limit else quote[: limit - 1] + "…"


def score_line(record: EpisodeRecord, feedback: dict | None) -> Text:
    text = Text()
    if feedback:
        score = float(feedback.get("score") or 0.0)
        text.append(f"Overall {score:.2f}  ", style="bold")
        text.append(bar(round(score * 10), 10), style="cyan")
        rubrics = feedback.get("rubrics") or {}
        if rubrics:
            text.append("   " + "  ".join(f"{k} {float(v):.2f}" for k, v in rubrics.items()))
        if feedback.get("method") == "llm":
            text.append("   (graded by the model judge; rule grading kept beside it)", style="dim")
    elif record.scores is not None:
        text.append(f"Composite {record.scores.composite:.2f}", style="bold")
    text.append(f"\noutcome: {record.outcome} · turns: {record.turns}"
                f" · time: {int(record.seconds) // 60:02d}:{int(record.seconds) % 60:02d}")
    if record.error:
        text.append(f"\nerror: {record.error.splitlines()[0]}", style="bold red")
    return text


def items_table(feedback: dict) -> Group:
    """Every rubric item, per rubric: its status, what counts, and the learner's words that earned it."""
    tables: list[Table] = []
    rubric, table = None, None
    for item in feedback.get("items") or []:
        if item.get("rubric") != rubric or table is None:
            rubric = item.get("rubric")
            table = Table(title=str(rubric).upper(), title_justify="left", title_style="bold", box=None,
                          show_header=False, padding=(0, 1), expand=True)
            table.add_column(width=10, no_wrap=True)
            table.add_column(ratio=1)
            tables.append(table)
        label, style = STATUS.get(item.get("status"), (str(item.get("status")), ""))
        cell = Text(f"{item.get('title') or item.get('id')}", style="bold")
        if item.get("what"):
            cell.append(f"\n{item['what']}", style="dim")
        for evidence in item.get("evidence") or []:
            move = f" [{evidence['move']}]" if evidence.get("move") else ""
            cell.append(f"\nturn {evidence.get('turn')}{move}: ", style="cyan")
            cell.append(f"“{_wrap_quote(str(evidence.get('quote', '')))}”", style="italic")
        if item.get("note"):
            cell.append(f"\n{item['note']}", style="yellow")
        table.add_row(Text(label, style=style), cell)
    return Group(*[part for table in tables for part in (table, Text(""))])


def red_lines_text(feedback: dict) -> Text:
    hits = feedback.get("red_lines") or []
    if not hits:
        return Text("None crossed.", style="green")
    text = Text()
    for hit in hits:
        text.append(f"  ✗ {hit.get('id')}", style="bold red")
        if hit.get("text"):
            text.append(f" ({hit['text']})")
        text.append(f"\n    turn {hit.get('turn')}: ", style="cyan")
        text.append(f"“{_wrap_quote(str(hit.get('quote', '')))}”\n", style="italic")
    return text


def information_text(feedback: dict) -> Text:
    text = Text()
    for info in feedback.get("information") or []:
        turn = info.get("delivered_turn")
        status, style = (f"given at turn {turn}", "green") if turn is not None else ("never given", "red")
        text.append(f"  {info.get('id')}{' (essential)' if info.get('essential') else ''}: ", style="bold")
        text.append(status, style=style)
        if turn is not None:
            text.append(", in plain words" if info.get("plain") else ", not in plain words")
        if info.get("jargon"):
            text.append(f"; jargon: {', '.join(info['jargon'])}", style="yellow")
        text.append("\n")
    return text


def bullets(items: list[Any], style: str = "") -> Text:
    text = Text()
    for item in items:
        text.append(f"  • {item}\n", style=style)
    return text


def diagnostic_text(record: EpisodeRecord) -> Text:
    """A diagnostic case: the diagnosis and its verdict, and every score axis as a bar."""
    text = Text()
    if record.diagnosis:
        level = record.verdict.level if record.verdict else "none"
        text.append(f"Your diagnosis: {record.diagnosis} ", style="bold")
        text.append(f"({level})\n", style="green" if record.correct else "red")
    else:
        text.append("No diagnosis was given.\n", style="yellow")
    text.append(f"tests: {record.tests} · cost: ${record.cost:.2f} · tool calls: {record.tool_calls}\n")
    if record.scores is not None:
        for axis, value in record.scores.axes.items():
            text.append(f"  {axis:<22}")
            text.append("  n/a\n" if value is None else f"{bar(round(value * 10), 10)} {value:.2f}\n")
    return text


class DebriefScreen(Screen):
    """What the learner did, with their own words as evidence."""

    BINDINGS = [Binding("m", "export_markdown", "Export Markdown"), Binding("h", "export_html", "Export HTML"),
                Binding("l,escape", "library", "Library"), Binding("q", "app.quit", "Quit"),
                Binding("ctrl+q,ctrl+c,ctrl+d", "app.quit", "Quit", show=False, priority=True)]

    def __init__(self, session: TuiSession):
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="debrief"):
            yield Static(id="debrief-body")
        with Horizontal(id="debrief-buttons"):
            yield Button("Export Markdown (m)", id="export-markdown")
            yield Button("Export HTML report (h)", id="export-html")
            yield Button("Back to the library (l)", id="library", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        self.title, self.sub_title = f"Debrief · {self.session.scenario.title}", self.session.scenario.id
        self.query_one("#debrief-body", Static).update(self.body())
        self.query_one("#debrief").focus()  # arrow keys and Page Up/Down scroll it

    def body(self) -> RenderableType:
        session = self.session
        record = session.record
        assert record is not None
        feedback = session.feedback()
        head = score_line(record, feedback)
        if session.error and session.error not in (record.error or ""):
            head.append(f"\n{session.error}", style="bold red")
        head.append(f"\nrecorded in {session.recorder.folder}/episodes.jsonl (episode {record.episode})",
                    style="dim")
        if not feedback:
            return Group(head, _heading("Result"), diagnostic_text(record))
        missed = feedback.get("missed") or []
        parts: list[RenderableType] = [
            head, _heading("Rubric items (your words as evidence)"), items_table(feedback),
            _heading("Missed"), bullets(missed, "red") if missed else Text("Nothing missed.", style="green"),
            _heading("Red lines"), red_lines_text(feedback),
            _heading("Emotional arc (0-4 per turn)"), arc_chart(feedback.get("arc") or [])]
        if feedback.get("information"):
            parts += [_heading("Information"), information_text(feedback)]
        if feedback.get("penalties"):
            parts += [_heading("Penalties"), bullets(feedback["penalties"], "yellow")]
        parts += [_heading("Suggestions"), bullets(feedback.get("suggestions") or ["None."])]
        return Group(*parts)

    def text(self) -> str:
        """The debrief as plain text (what the screen shows, for tests and logs)."""
        import io

        from rich.console import Console

        console = Console(width=116, file=io.StringIO(), color_system=None)
        console.print(self.body())
        return console.file.getvalue()

    @on(Button.Pressed, "#export-markdown")
    def action_export_markdown(self) -> None:
        from agentclinic.tui.export import export_markdown

        self._export(export_markdown)

    @on(Button.Pressed, "#export-html")
    def action_export_html(self) -> None:
        from agentclinic.tui.export import export_html

        self._export(export_html)

    def _export(self, export) -> None:
        try:
            path = export(self.session)
        except Exception as exc:  # noqa: BLE001 - say why; the record itself is already saved
            self.notify(f"Export failed: {exc}", severity="error")
            return
        self.exported = path
        self.notify(f"Written: {path}")

    @on(Button.Pressed, "#library")
    def action_library(self) -> None:
        self.app.show_library()
