"""The Textual app and its one factory, ``make_app``, used by ``agentclinic tui`` and the tests."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field
from rich.text import Text
from textual.app import App

from agentclinic.env.clinic import Clinic
from agentclinic.scenario.loaders import BANK_DIR, load_scenarios
from agentclinic.scenario.schema import Scenario, Strict
from agentclinic.tui.session import Clock, RunRecorder, TuiSession


class TuiSettings(Strict):
    """What ``agentclinic tui`` was started with (saved in the run's run.json)."""

    scenarios: list[str] = Field(default_factory=lambda: [str(BANK_DIR)])
    format: str | None = None
    out: str = "runs"
    run_id: str | None = None
    patient: str = "scripted"  # scripted (offline) or a model spec: openai/..., hf/...
    judge: str | None = None  # a model grader for stations (rule grading kept beside it); diagnosis judge otherwise
    doctor: str = "human"  # instructor mode: a model doctor the instructor plays the patient against
    instructor: bool = False
    play_patient: bool = False  # the instructor writes every reply of the person
    show_emotion: bool = False  # the person's emotional state on screen (an instructor setting)
    seed: int = 0
    max_turns: int | None = Field(None, ge=1)  # diagnostic cases (stations use their own budget)


class ClinicApp(App):
    """The educators' terminal UI: the case library, the conversation and the debrief."""

    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    TITLE = "agentclinic"

    def __init__(self, settings: TuiSettings, scenarios: Sequence[Scenario], errors: Sequence[str] = (),
                 clock: Clock | None = None):
        super().__init__()
        self.settings = settings
        self.scenarios = list(scenarios)
        self.errors = [str(e) for e in errors]
        self.clock = clock or time.monotonic
        self._clinics: dict[str, Clinic] = {}
        self.recorder = RunRecorder(settings.out, settings.run_id, self.run_config())
        self.sessions: list[TuiSession] = []

    def run_config(self) -> dict:
        s = self.settings
        return {"scenarios": s.scenarios, "format": s.format, "doctor": self.doctor_label(), "patient": s.patient,
                "judge": s.judge or "scripted", "seed": s.seed, "max_turns": s.max_turns, "episodes": None,
                "scenario_ids": [x.id for x in self.scenarios], "interface": "tui", "instructor": s.instructor,
                "play_patient": s.play_patient}

    def doctor_label(self) -> str:
        return "human:tui" if self.settings.doctor == "human" else self.settings.doctor

    def on_mount(self) -> None:
        from agentclinic.tui.library import LibraryScreen

        self.push_screen(LibraryScreen(self.scenarios, self.errors))

    # -- sessions ----------------------------------------------------------------------------------

    def clinic_for(self, scenario: Scenario) -> Clinic:
        """The clinic for a case's kind, built once (the embedding model loads the first time)."""
        kind = scenario.kind
        if kind not in self._clinics:
            s = self.settings
            if kind == "conversation":
                from agentclinic.conversation import station_clinic

                self._clinics[kind] = station_clinic(patient=s.patient, judge=s.judge, max_turns=None)
            else:
                from agentclinic.agents.llm_factory import build_clinic
                from agentclinic.env.ledger import Budget

                self._clinics[kind] = build_clinic(patient=s.patient, judge=s.judge or "scripted",
                                                   budget=Budget(turns=s.max_turns or 20))
        return self._clinics[kind]

    def new_session(self, scenario: Scenario, clinic: Clinic) -> TuiSession:
        session = TuiSession(scenario, clinic, self.recorder, seed=self.settings.seed + len(self.sessions),
                             doctor=self.doctor_label(), clock=self.clock)
        self.sessions.append(session)
        return session

    def make_doctor(self):
        from agentclinic.agents.doctors import make_doctor

        return make_doctor(self.settings.doctor)

    def start_station(self, scenario: Scenario) -> None:
        from agentclinic.tui.conversation import ConversationScreen

        self.push_screen(ConversationScreen(scenario))

    def show_debrief(self, session: TuiSession) -> None:
        from agentclinic.tui.debrief import DebriefScreen

        self.switch_screen(DebriefScreen(session))

    def show_library(self) -> None:
        self.pop_screen()

    def farewell(self, session: TuiSession) -> str:
        """What the terminal says after the app closes on a session."""
        record = session.record
        feedback = session.feedback()
        score = f"score {float(feedback['score']):.2f}" if feedback else f"outcome {record.outcome}"
        return (f"Session ended and graded ({score}); recorded in {session.recorder.folder}/episodes.jsonl, "
                f"episode {record.episode}." + (f" Note: {session.error}" if session.error else ""))

    # -- help text for the diagnostic dialogs ------------------------------------------------------

    def price_lines(self) -> Text:
        from agentclinic.scenario.prices import price_table

        table = price_table()
        text = Text(f"Prices ({table.currency}, {table.version}): ", style="bold")
        text.append(", ".join(f"{group} ${price:g}" for group, price in sorted(table.groups.items())))
        text.append(f"; anything else ${table.default:g}.")
        return text

    def tool_lines(self) -> Text:
        from agentclinic.tools.registry import TOOLS

        text = Text()
        for name in sorted(TOOLS):
            text.append(f"{name}", style="bold")
            text.append(f": {TOOLS[name].description.split('.')[0]}.\n")
        return text

    def on_unmount(self) -> None:
        self.recorder.close()


def make_app(scenarios: Sequence[str | Path] | None = None, *, out: str | Path = "runs", run_id: str | None = None,
             patient: str = "scripted", judge: str | None = None, doctor: str = "human", instructor: bool = False,
             play_patient: bool = False, show_emotion: bool | None = None, seed: int = 0,
             max_turns: int | None = None, format: str | None = None, clock: Clock | None = None) -> ClinicApp:
    """The app for these scenario folders, writing sessions to ``out/run_id`` (default: tui-<time>).

    ``show_emotion`` defaults to ``instructor``; ``clock`` (seconds, monotonic) is for frozen-time tests."""
    from agentclinic.errors import ConfigError

    if play_patient and not instructor:
        raise ConfigError("--play-patient is an instructor setting: add --instructor")
    if doctor != "human" and not instructor:
        raise ConfigError("a model doctor (--doctor) plays against an instructor: add --instructor")
    settings = TuiSettings(scenarios=[str(p) for p in scenarios] if scenarios else [str(BANK_DIR)], format=format,
                           out=str(out), run_id=run_id, patient=patient, judge=judge, doctor=doctor,
                           instructor=instructor, play_patient=play_patient or doctor != "human",
                           show_emotion=instructor if show_emotion is None else show_emotion, seed=seed,
                           max_turns=max_turns)
    loaded = load_scenarios(settings.scenarios, format=format, skip_errors=True)
    if not loaded.scenarios:
        raise ConfigError(f"no case could be loaded from {', '.join(settings.scenarios)}"
                          + (f" (first error: {loaded.errors[0]})" if loaded.errors else ""))
    if doctor != "human":
        from agentclinic.agents.llm_factory import parse_role_spec

        parse_role_spec("doctor", doctor)
    return ClinicApp(settings, loaded.scenarios, loaded.errors, clock=clock)
