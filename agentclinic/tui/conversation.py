"""The conversation screen: chat, input with history, clock and turns, notes, the person's state
(instructor setting), and for diagnostic cases the examination, tests, images and tools."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Header, Input, Label, RichLog, Static, TextArea

from agentclinic.scenario.schema import Scenario
from agentclinic.tui.render import emotion_bars, image_text
from agentclinic.tui.session import Line, TuiSession

if TYPE_CHECKING:
    from agentclinic.tui.app import ClinicApp

ROLE_STYLES = {"clinician": ("You", "bold cyan"), "patient": ("Patient", "bold yellow"),
               "relative": ("Relative", "bold yellow"), "interpreter": ("Interpreter", "bold magenta"),
               "clinic": ("Clinic", "bold green"), "note": ("", "dim italic")}
EXAM_SYSTEMS = "general, cardiovascular, respiratory, abdominal, neurological, skin, musculoskeletal, ENT, eyes"


class HistoryInput(Input):
    """A one-line input that recalls earlier entries with Up and Down."""

    BINDINGS = [Binding("up", "older", "Previous", show=False), Binding("down", "newer", "Next", show=False)]

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.history: list[str] = []
        self._index = 0

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":  # here, in order with the typed characters (a binding's action runs later,
            event.stop()          # after keys typed ahead were inserted: two messages would be glued together)
            event.prevent_default()
            value, self.value = self.value, ""
            self.post_message(self.Submitted(self, value))
            return
        await super()._on_key(event)

    async def action_submit(self) -> None:
        """Enter is handled in ``_on_key``."""

    def remember(self, text: str) -> None:
        if text and (not self.history or self.history[-1] != text):
            self.history.append(text)
        self._index = len(self.history)

    def action_older(self) -> None:
        if self.history and self._index > 0:
            self._index -= 1
            self.value = self.history[self._index]
            self.cursor_position = len(self.value)

    def action_newer(self) -> None:
        if self._index < len(self.history) - 1:
            self._index += 1
            self.value = self.history[self._index]
        else:
            self._index, self.value = len(self.history), ""
        self.cursor_position = len(self.value)


class AskDialog(ModalScreen[str | None]):
    """A small dialog: a title, help text, one input; returns the text, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, help_text: str | Text, placeholder: str = ""):
        super().__init__()
        self.heading, self.help_text, self.placeholder = title, help_text, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.heading, id="dialog-title")
            yield Static(self.help_text, id="dialog-help")
            yield Input(placeholder=self.placeholder, id="dialog-input")
            with Horizontal(id="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss(self.query_one(Input).value.strip())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def chat_text(line: Line) -> Text:
    label, style = ROLE_STYLES.get(line.role, (line.role.title(), "bold"))
    text = Text()
    if label:
        text.append(f"{label}{' (instructor)' if line.instructor else ''}: ", style=style)
    text.append(line.text, style="dim italic" if line.role == "note" else "")
    return text


class ConversationScreen(Screen):
    """One station in play. The session is created (the clinic built, off the event loop) on mount."""

    BINDINGS = [
        Binding("ctrl+e", "end", "End", priority=True),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+p", "pause", "Pause", priority=True),
        Binding("ctrl+d", "end", "End", show=False, priority=True),
        Binding("ctrl+c", "end_and_quit", "End and quit", show=False, priority=True),
        Binding("ctrl+q", "end_and_quit", "Quit", priority=True),
        Binding("ctrl+n", "notes", "Notes"),
        Binding("ctrl+t", "take_over", "Take over reply", show=False),
        Binding("f2", "toggle_emotion", "State", show=False),
    ]

    def __init__(self, scenario: Scenario):
        super().__init__()
        self.scenario = scenario
        self.session: TuiSession | None = None
        self.busy = True
        self.take_over_next = False
        self.pending: Any = None  # the clinician's message awaiting the instructor's patient reply
        self.queued: list[str] = []  # what the learner typed ahead while a reply was coming
        self.doctor = None  # a model doctor the instructor plays against

    @property
    def clinic_app(self) -> ClinicApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        diagnostic = self.scenario.kind == "diagnostic"
        yield Header()
        with Horizontal(id="status-bar"):
            yield Static("", id="clock")
            yield Static("", id="turns")
            yield Static("", id="mode")
        with Horizontal(id="conversation-body"):
            with Vertical(id="chat-column"):
                yield RichLog(id="chat", wrap=True, markup=False, auto_scroll=True)
                yield HistoryInput(placeholder="Preparing the patient...", id="say", disabled=True)
                if diagnostic:
                    with Horizontal(id="actions"):
                        images = ("Images",) if self.scenario.images else ()  # no button that can only fail
                        for name in ("Examine", "Tests", *images, "Tools", "Diagnose"):
                            yield Button(name, id=f"do-{name.lower()}", disabled=True)
            with Vertical(id="side"):
                yield Label("Person's state (instructor)", id="emotion-title")
                yield Static("", id="emotion")
                yield Label("Notes (Ctrl+N)", id="notes-title")
                yield TextArea(id="notes")
        yield Footer()

    def on_mount(self) -> None:
        self.title, self.sub_title = self.scenario.title, self.scenario.id
        self.show_emotion(self.clinic_app.settings.show_emotion)
        self.set_interval(1.0, self.tick)
        self.begin()

    # -- starting ----------------------------------------------------------------------------------

    @work(group="turn")  # never cancelled: a half-played turn would be lost
    async def begin(self) -> None:
        app = self.clinic_app
        chat = self.query_one("#chat", RichLog)
        chat.write(Text("Preparing the patient (the first case loads the language model: up to a minute)...",
                        style="dim italic"))
        try:
            clinic = await asyncio.to_thread(app.clinic_for, self.scenario)
            session = app.new_session(self.scenario, clinic)
            brief = await asyncio.to_thread(session.start)
            self.session = session
        except Exception as exc:  # noqa: BLE001 - shown to the learner, nothing was played
            chat.write(Text(f"Cannot start this case: {type(exc).__name__}: {exc}", style="bold red"))
            return
        chat.clear()
        chat.write(Text("Brief: ", style="bold green") + Text(brief))
        chat.write(Text("Type to speak; Up/Down recall what you said. Ctrl+E ends, Ctrl+S saves, Ctrl+P pauses"
                        + (", Ctrl+T takes over the next reply." if app.settings.instructor else "."),
                        style="dim italic"))
        if app.settings.doctor != "human":
            self.doctor = await asyncio.to_thread(app.make_doctor)
            self.doctor.reset(brief, session.seed)
        self.set_busy(False)
        self.refresh_status()
        if self.doctor is not None:
            await self.doctor_turn(brief)

    # -- the status bar and side panel -------------------------------------------------------------

    def tick(self) -> None:
        session = self.session
        if session is None or session.finished:
            return
        self.refresh_status()
        if session.time_up and not self.busy:
            self.finish(reason="time")

    def refresh_status(self) -> None:
        session = self.session
        if session is None:
            return
        elapsed = int(session.elapsed())
        clock = f"time {elapsed // 60:02d}:{elapsed % 60:02d}"
        if session.minutes:
            limit = int(session.minutes * 60)
            clock += f" / {limit // 60:02d}:{limit % 60:02d}"
        self.query_one("#clock", Static).update(clock)
        turns = f"turn {session.turn}" + (f" / {session.max_turns}" if session.max_turns else "")
        if session.kind == "diagnostic":
            ledger = session.clinic.ledger
            turns += f" · tests {ledger.tests} · cost ${ledger.cost:,.0f}"
        self.query_one("#turns", Static).update(turns)
        mode = "PAUSED (Ctrl+P resumes)" if session.paused else ""
        if self.pending is not None:
            mode = "instructor: type the person's reply (empty: the patient answers)"
        elif self.take_over_next or self.clinic_app.settings.play_patient:
            mode = mode or "instructor takes over the next reply"
        if self.queued:
            mode = f"{len(self.queued)} typed ahead, said after the reply" + (f" · {mode}" if mode else "")
        self.query_one("#mode", Static).update(mode)
        if self.query_one("#emotion").display:
            self.query_one("#emotion", Static).update(emotion_bars(session.emotion()))

    def show_emotion(self, visible: bool) -> None:
        for widget in ("#emotion", "#emotion-title"):
            self.query_one(widget).display = visible

    def set_busy(self, busy: bool) -> None:
        """While a turn is played the learner may type ahead (Enter queues it); a pause locks the input."""
        self.busy = busy
        paused = self.session is not None and self.session.paused
        say = self.query_one("#say", HistoryInput)
        say.disabled = self.session is None or paused
        for button in self.query("#actions Button"):
            button.disabled = busy or paused or self.pending is not None
        if self.pending is not None:
            say.placeholder = "Instructor: the person's reply (Enter with nothing lets the patient answer)"
        elif paused:
            say.placeholder = "Paused"
        elif busy:
            say.placeholder = "(the reply is coming: you can type ahead)"
        else:
            say.placeholder = f"Speak to {self.person}..."
        if not say.disabled and not self.query_one("#notes", TextArea).has_focus:
            say.focus()

    @property
    def person(self) -> str:
        """Who the learner talks to: the station's first participant, else 'the patient'."""
        conversation = self.scenario.conversation
        return conversation.participants[0].name if conversation and conversation.participants else "the patient"

    def write_lines(self, lines: list[Line]) -> None:
        chat = self.query_one("#chat", RichLog)
        for line in lines:
            chat.write(chat_text(line))

    # -- playing -----------------------------------------------------------------------------------

    @on(Input.Submitted, "#say")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        say = self.query_one("#say", HistoryInput)
        if self.session is None or self.session.finished or self.session.paused:
            return
        if self.pending is not None and not self.busy:  # the instructor's reply to the message on screen
            say.value = ""
            (message, shown), self.pending = self.pending, None
            if text:
                self.session.take_over(text)
            self.play(message, shown=shown, echoed=True)
            return
        if not text:
            return
        say.remember(text)
        say.value = ""
        if self.busy or self.pending is not None:
            self.queued.append(text)  # typed ahead: said once the reply is in
            self.refresh_status()
            return
        self.speak(text)

    def speak(self, text: str) -> None:
        """The learner's words: to the clinic, or held for the instructor's reply when they are said to the
        person (a diagnosis, an order or END CONVERSATION goes to the clinic; a take-over waits for speech)."""
        if (self.take_over_next or self.clinic_app.settings.play_patient) and said_to_the_person(text):
            self.take_over_next = False
            self.hold_for_instructor(text)
        else:
            self.play(text)

    def hold_for_instructor(self, message: Any, shown: str | None = None) -> None:
        """Show the clinician's message and wait for the instructor to write the person's reply."""
        shown = shown or str(message)
        self.pending = (message, shown)
        self.write_lines([Line("clinician", shown, (self.session.turn if self.session else 0) + 1)])
        self.set_busy(False)
        self.refresh_status()

    def play(self, message: Any, shown: str | None = None, echoed: bool = False) -> None:
        """Play one turn (busy from now, so a second Enter is queued, never played alongside)."""
        self.set_busy(True)
        self._play_turn(message, shown, echoed)

    @work(group="turn")  # never cancelled: a half-played turn would be lost
    async def _play_turn(self, message: Any, shown: str | None, echoed: bool) -> None:
        """Send one turn to the clinic and show what came back (images drawn in the chat); ``echoed``: the
        clinician's line is already on screen."""
        session = self.session
        assert session is not None
        before = len(session.lines)
        result = await session.send(message, shown=shown)
        self.write_lines(session.lines[before + (1 if echoed else 0):])
        if result is not None:
            for image in result.info.get("images") or []:
                self.show_image(image)
        else:
            self.query_one("#chat", RichLog).write(Text(f"The session failed: {session.error}", style="bold red"))
        self.refresh_status()
        if session.finished:
            self.clinic_app.show_debrief(session)
            return
        self.set_busy(False)
        if self.doctor is not None:
            await self.doctor_turn(result.observation)
        elif self.queued and self.pending is None:
            self.speak(self.queued.pop(0))

    async def doctor_turn(self, observation: str) -> None:
        """A model doctor's next message, held for the instructor's reply."""
        from agentclinic.env.actions import raw_output

        self.set_busy(True)
        try:
            action = await self.doctor.act(observation)
        except Exception as exc:  # noqa: BLE001 - the doctor failed: end and record
            self.query_one("#chat", RichLog).write(Text(f"The doctor failed: {exc}", style="bold red"))
            self.finish()
            return
        shown = raw_output(action)
        self.hold_for_instructor(action, shown=shown if isinstance(shown, str) else str(shown))

    def show_image(self, image: dict) -> None:
        chat = self.query_one("#chat", RichLog)
        title = f"Image {image.get('id')} ({image.get('modality')})"
        if image.get("path"):
            chat.write(Text(title, style="bold green"))
            chat.write(image_text(image["path"], width=min(48, max(16, chat.size.width - 4))))
        else:
            chat.write(Text(f"{title}: {image.get('reason') or 'unavailable'}", style="italic"))

    # -- diagnostic actions ------------------------------------------------------------------------

    @on(Button.Pressed, "#actions Button")
    def _action(self, event: Button.Pressed) -> None:
        name = (event.button.id or "").removeprefix("do-")
        if name == "images":
            self.play({"type": "request_image"}, shown="(requests the images)")
            return
        prices = self.clinic_app.price_lines()
        dialogs = {
            "examine": ("Examine", f"A body system, or nothing for a full examination ({EXAM_SYSTEMS}).",
                        "e.g. cardiovascular", lambda t: ({"type": "examine", "system": t or None},
                                                          f"(examines {t or 'everything'})")),
            "tests": ("Order tests", prices, "test names, comma-separated",
                      lambda t: ({"type": "order_tests", "tests": [x.strip() for x in t.split(",") if x.strip()]},
                                 f"(orders {t})") if t else None),
            "tools": ("Call a tool", self.clinic_app.tool_lines(), 'name {"argument": ...}',
                      lambda t: (f"CALL TOOL: {t}", f"(calls {t})") if t else None),
            "diagnose": ("Diagnosis", "Your diagnosis ends the case.", "e.g. aortic stenosis",
                         lambda t: ({"type": "diagnose", "primary": t}, f"(diagnosis: {t})") if t else None),
        }
        title, help_text, placeholder, build = dialogs[name]

        def done(text: str | None) -> None:
            if text is None:
                return
            built = build(text)
            if built is not None:
                self.play(built[0], shown=built[1])

        self.app.push_screen(AskDialog(title, help_text, placeholder), done)

    # -- pause, save, end --------------------------------------------------------------------------

    def action_pause(self) -> None:
        session = self.session
        if session is None or session.finished:
            return
        session.resume() if session.paused else session.pause()
        self.set_busy(self.busy)
        self.refresh_status()

    def action_save(self) -> None:
        if self.session is None:
            return
        self.session.notes = self.query_one("#notes", TextArea).text
        try:
            path = self.session.save()
        except Exception as exc:  # noqa: BLE001 - tell the learner; the record is still written at the end
            self.notify(f"Not saved: {exc}", severity="error")
            return
        self.notify(f"Saved to {path}")

    def action_notes(self) -> None:
        """Ctrl+N goes to the notes, and from the notes back to what you say (typing must not land in the notes)."""
        notes = self.query_one("#notes", TextArea)
        (self.query_one("#say", HistoryInput) if notes.has_focus else notes).focus()

    def action_take_over(self) -> None:
        if self.clinic_app.settings.instructor:
            self.take_over_next = not self.take_over_next
            self.refresh_status()

    def action_toggle_emotion(self) -> None:
        if self.clinic_app.settings.instructor:
            widget = self.query_one("#emotion")
            self.show_emotion(not widget.display)
            self.refresh_status()

    def action_end(self) -> None:
        self.finish()

    def action_end_and_quit(self) -> None:
        self.finish(quit_after=True)

    @work(exclusive=True, group="end")
    async def finish(self, reason: str | None = None, quit_after: bool = False) -> None:
        """End the session (graded and recorded), then the debrief, or quit."""
        app = self.clinic_app
        session = self.session
        if session is None:  # nothing was played
            if quit_after:
                app.exit()
            return
        self.set_busy(True)
        self.query_one("#mode", Static).update("ending: grading and saving...")
        await self.workers_done()
        session.notes = self.query_one("#notes", TextArea).text
        await session.end(reason=reason)
        if quit_after:
            app.exit(app.farewell(session))
        else:
            app.show_debrief(session)

    async def workers_done(self) -> None:
        """Wait for a turn in flight (never cancelled: a half-played turn would be lost)."""
        turn_workers = [w for w in self.workers if w.group == "turn" and not w.is_finished]
        for worker in turn_workers:
            await worker.wait()


def said_to_the_person(text: str) -> bool:
    """Whether the learner's line is speech the person answers (an ``ask``), not a command to the clinic."""
    from agentclinic.env.actions import ActionError, Ask, parse_action

    try:
        return isinstance(parse_action(text), Ask)
    except ActionError:
        return False
