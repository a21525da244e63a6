"""The case library: browse and filter stations and cases, read the learner's brief, start one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Markdown, Select, Static

from agentclinic.scenario.schema import Scenario
from agentclinic.tui.session import situation_of

FILTERS = ("kind", "specialty", "difficulty", "situation")


@dataclass(frozen=True)
class CaseRow:
    """What the library shows of a case, and filters on."""

    id: str
    title: str
    kind: str
    specialty: str
    difficulty: str
    situation: str  # '-' for a diagnostic case

    @classmethod
    def of(cls, scenario: Scenario) -> CaseRow:
        return cls(scenario.id, scenario.title, scenario.kind, scenario.specialty, scenario.difficulty,
                   situation_of(scenario) or "-")

    def matches(self, filters: dict[str, str | None], search: str = "") -> bool:
        if any(value and getattr(self, name) != value for name, value in filters.items()):
            return False
        words = search.lower().split()
        haystack = f"{self.id} {self.title} {self.specialty} {self.situation}".lower()
        return all(word in haystack for word in words)


def brief_markdown(scenario: Scenario) -> str:
    """The learner's view of a case before starting: the brief, and for a station the setting and task."""
    row = CaseRow.of(scenario)
    lines = [f"# {scenario.title}", "",
             f"**{row.kind}** · {row.specialty} · {row.difficulty}"
             + (f" · {row.situation}" if row.situation != "-" else ""), "", scenario.doctor_brief.strip()]
    conversation = scenario.conversation
    if conversation is not None:
        people = ", ".join(f"{p.name} ({p.role})" for p in conversation.participants)
        lines += ["", f"**Setting.** {conversation.setting}", "", f"**Your task.** {conversation.task}", "",
                  f"**In the room.** {people}"]
        budget = conversation.budget
        limits = [f"{budget.turns} turns" if budget.turns else "", f"{budget.minutes:g} minutes"
                  if budget.minutes else ""]
        if any(limits):
            lines += ["", f"**Budget.** {' · '.join(x for x in limits if x)}"]
    else:
        lines += ["", f"**Patient.** {scenario.patient.describe()}."]
        if scenario.images:
            lines += ["", f"**Images.** {len(scenario.images)}, on request."]
    lines += ["", "_Press Enter to begin._"]
    return "\n".join(lines)


class LibraryScreen(Screen):
    """Every case in the scenario folders, filterable; the highlighted case's brief on the right."""

    BINDINGS = [Binding("slash", "search", "Search"), Binding("ctrl+q", "app.quit", "Quit", priority=True),
                Binding("ctrl+c,ctrl+d", "app.quit", "Quit", show=False, priority=True)]

    def __init__(self, scenarios: Sequence[Scenario], errors: Sequence[str] = ()):
        super().__init__()
        self.scenarios = {s.id: s for s in scenarios}
        self.rows = [CaseRow.of(s) for s in scenarios]
        self.errors = list(errors)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filters"):
            for name in FILTERS:
                values = sorted({getattr(r, name) for r in self.rows} - {"-"})
                yield Select([(v, v) for v in values], prompt=f"any {name}", id=f"filter-{name}")
            yield Input(placeholder="search", id="search")
        yield DataTable(id="cases", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="preview"):
            yield Markdown(id="brief")
        yield Static(id="library-status")
        yield Footer()

    def on_mount(self) -> None:
        self.title, self.sub_title = "agentclinic", "case library"
        table = self.query_one("#cases", DataTable)
        for label, width in (("kind", 12), ("case", 50), ("specialty", 18), ("level", 6), ("situation", 24)):
            table.add_column(label, width=width, key=label)
        self.refresh_rows()
        table.focus()

    def filters(self) -> dict[str, str | None]:
        values = {}
        for name in FILTERS:
            value = self.query_one(f"#filter-{name}", Select).value
            values[name] = None if value is Select.NULL else str(value)
        return values

    def visible(self) -> list[CaseRow]:
        search = self.query_one("#search", Input).value
        return [r for r in self.rows if r.matches(self.filters(), search)]

    def refresh_rows(self) -> None:
        table = self.query_one("#cases", DataTable)
        table.clear()
        rows = self.visible()
        for row in rows:
            table.add_row(row.kind, escape(row.title), row.specialty, row.difficulty, row.situation, key=row.id)
        status = f"{len(rows)} of {len(self.rows)} cases · Enter: start · /: search · Tab: filters · Ctrl+Q: quit"
        if self.errors:
            status += f" · {len(self.errors)} files skipped (first: {self.errors[0][:120]})"
        self.query_one("#library-status", Static).update(escape(status))
        self.show_brief(rows[0].id if rows else None)

    def show_brief(self, case_id: str | None) -> None:
        text = brief_markdown(self.scenarios[case_id]) if case_id else "_No case matches the filters._"
        self.query_one("#brief", Markdown).update(text)

    @on(Select.Changed)
    @on(Input.Changed, "#search")
    def _filter(self) -> None:
        self.refresh_rows()

    @on(Input.Submitted, "#search")
    def _search_done(self) -> None:
        self.query_one("#cases", DataTable).focus()

    @on(DataTable.RowHighlighted, "#cases")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_brief(event.row_key.value if event.row_key else None)

    @on(DataTable.RowSelected, "#cases")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.app.start_station(self.scenarios[event.row_key.value])

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_start(self) -> None:
        table = self.query_one("#cases", DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            self.app.start_station(self.scenarios[key.value])
