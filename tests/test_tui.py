"""The Textual TUI: whole sessions driven by the pilot, SVG snapshots of the main screens, and the real
``agentclinic tui`` in a terminal (tmux).

The app runs the real offline clinic (the scripted emotional patient, the rule grader) on two small
fixtures in tests/data/tui/: a station and a diagnostic case with one image. Time is a fake clock, so
the snapshots and the budget tests do not depend on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, RichLog, Select, Static

from agentclinic.conversation.transcript import read_transcript
from agentclinic.runs.record import EpisodeRecord
from agentclinic.runs.report import load_run, run_stats
from agentclinic.tui.app import make_app
from agentclinic.tui.conversation import ConversationScreen, HistoryInput
from agentclinic.tui.debrief import DebriefScreen
from agentclinic.tui.library import CaseRow, LibraryScreen
from agentclinic.tui.render import arc_chart, half_blocks

FIXTURES = Path(__file__).parent / "data" / "tui"
STATION = "conversation-tui-fixture-knee-news"
CASE = "tui-fixture-hearing"
SIZE = (120, 40)
READY_S = 600  # the first session loads the sentence embedder (slow on a busy machine)


class FakeClock:
    """Monotonic seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def app_for(tmp_path: Path, clock: FakeClock | None = None, **kwargs):
    return make_app([FIXTURES], out=tmp_path / "runs", run_id="tui-test", clock=clock or FakeClock(), **kwargs)


def records(tmp_path: Path) -> list[EpisodeRecord]:
    lines = (tmp_path / "runs" / "tui-test" / "episodes.jsonl").read_text().splitlines()
    return [EpisodeRecord.model_validate_json(line) for line in lines]


async def start(pilot, case_id: str) -> ConversationScreen:
    """Pick a case in the library, press Enter, wait until the patient is ready."""
    app = pilot.app
    table = app.screen.query_one("#cases", DataTable)
    table.move_cursor(row=table.get_row_index(case_id))
    await pilot.press("enter")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, ConversationScreen)
    deadline = time.monotonic() + READY_S
    while screen.session is None or screen.busy:
        assert time.monotonic() < deadline, "the session did not start"
        await asyncio.sleep(0.2)
    screen.query_one("#say", Input).cursor_blink = False
    return screen


@asynccontextmanager
async def playing(tmp_path: Path, case_id: str, clock: FakeClock | None = None, **kwargs):
    """The app on a case, started from the library: (app, pilot, screen)."""
    app = app_for(tmp_path, clock, **kwargs)
    async with app.run_test(size=SIZE) as pilot:
        yield app, pilot, await start(pilot, case_id)


async def say(pilot, text: str) -> None:
    await pilot.press(*text, "enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def chat_text(screen) -> str:
    return "\n".join(strip.text for strip in screen.query_one("#chat", RichLog).lines)


def run(coroutine):
    return asyncio.run(coroutine)


# ---------------------------------------------------------------------------------------------- drawings

def test_half_blocks_draw_two_pixel_rows_per_cell():
    import numpy as np

    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    pixels[:4] = 255  # white top half, black bottom half
    text = half_blocks(pixels, width=8)
    rows = text.plain.split("\n")
    assert len(rows) == 4 and all(row == "▀" * 8 for row in rows)
    styles = {str(span.style) for span in text.spans}
    assert "rgb(255,255,255) on rgb(255,255,255)" in styles and "rgb(0,0,0) on rgb(0,0,0)" in styles


def test_arc_chart_has_a_row_per_emotion_and_a_block_per_turn():
    arc = [{"turn": 0, "distress": 2, "anger": 0, "trust": 2, "understanding": 1},
           {"turn": 1, "distress": 4, "anger": 1, "trust": 1, "understanding": 1}]
    lines = arc_chart(arc).plain.splitlines()
    assert [line.split()[0] for line in lines[:4]] == ["distress", "anger", "trust", "understanding"]
    assert lines[0].rstrip().endswith("2→4") and "█" in lines[0]
    assert lines[4].strip().startswith("01")


def test_case_rows_filter_by_kind_specialty_difficulty_situation_and_words():
    from agentclinic.scenario.loaders import load_scenarios

    rows = {r.id: r for r in map(CaseRow.of, load_scenarios(FIXTURES))}
    station, case = rows[STATION], rows[CASE]
    assert (station.kind, station.situation) == ("conversation", "breaking-bad-news")
    assert (case.kind, case.situation) == ("diagnostic", "-")
    assert station.matches({"kind": "conversation", "situation": "breaking-bad-news"})
    assert not case.matches({"kind": "conversation"})
    assert case.matches({"specialty": "otolaryngology", "difficulty": "easy"}, "hearing ear")
    assert not case.matches({}, "knee")


def test_bad_settings_are_clear_errors_before_anything_starts(tmp_path):
    from agentclinic.errors import ConfigError

    with pytest.raises(ConfigError, match="--play-patient is an instructor setting"):
        make_app([FIXTURES], out=tmp_path, play_patient=True)
    with pytest.raises(ConfigError, match="model doctor"):
        make_app([FIXTURES], out=tmp_path, doctor="openai/some-model@http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match="no case could be loaded from .*nowhere"):
        make_app([tmp_path / "nowhere"], out=tmp_path)
    assert not (tmp_path / "runs").exists()  # nothing is written before a session starts


# ---------------------------------------------------------------------------------------------- sessions

def test_library_filters_and_shows_the_brief(tmp_path):
    async def scenario():
        app = app_for(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, LibraryScreen)
            table = screen.query_one("#cases", DataTable)
            assert table.row_count == 2
            screen.query_one("#filter-kind", Select).value = "conversation"
            await pilot.pause()
            assert table.row_count == 1
            brief = screen.query_one("#brief").source
            assert "Tell her the MRI shows a bone tumour" in brief and "12 turns" in brief
            screen.query_one("#filter-kind", Select).value = Select.NULL
            await pilot.press("slash", *"hearing")
            await pilot.pause()
            assert table.row_count == 1
            assert "lost hearing in his left ear" in screen.query_one("#brief").source

    run(scenario())


def test_a_whole_station_session_ends_in_a_debrief_that_quotes_the_learner(tmp_path):
    clock = FakeClock()
    words = ["Hello Ms Okafor, I'm Dr Patel, one of the bone doctors. Is now a good time to talk?",
             "What have you been told about why we did the scan?",
             "I'm afraid it's not the news we hoped for. The scan shows a lump growing in the bone above your "
             "knee, and it could be a tumour."]

    async def scenario():
        async with playing(tmp_path, STATION, clock) as (app, pilot, screen):
            assert "Tell her, respond to how she feels" in chat_text(screen)
            for text in words:
                await say(pilot, text)
            clock.now += 65
            screen.tick()
            await pilot.pause()
            assert str(screen.query_one("#clock", Static).content).startswith("time 01:05 / 10:00")
            assert str(screen.query_one("#turns", Static).content) == "turn 3 / 12"
            shown = chat_text(screen)
            assert "Dr Patel" in shown and "Patient:" in shown
            assert not screen.query_one("#emotion").display  # the learner does not see the state by default
            await pilot.press("ctrl+e")
            await settle(pilot)
            debrief = app.screen
            assert isinstance(debrief, DebriefScreen)
            body = debrief.text()
            for heading in ("SPIKES", "NURSE", "CALGARY-CAMBRIDGE", "Missed", "Red lines", "Emotional arc",
                            "Suggestions"):
                assert heading in body
            assert "“What have you been told about why we did the scan?”" in body  # the learner's words, quoted
            assert "turn 3" in body

    run(scenario())
    [record] = records(tmp_path)
    assert record.outcome == "completed" and record.turns == 3 and record.extra["interface"] == "tui"
    assert record.seconds == 65 and record.doctor == "human:tui"
    assert all(event.emotion for event in record.events) and "introduction" in record.events[0].moves
    feedback = record.extra["feedback"]
    assert 0 <= feedback["score"] <= 1 and feedback["arc"][0]["turn"] == 0
    run_json = json.loads((tmp_path / "runs" / "tui-test" / "run.json").read_text())
    assert run_json["config"]["interface"] == "tui" and run_json["config"]["scenario_ids"]
    stats = run_stats(load_run(tmp_path / "runs" / "tui-test"))  # what `agentclinic report` reads
    assert stats.episodes == 1 and stats.axes["conversation"].mean == pytest.approx(feedback["score"], abs=1e-3)


def test_ctrl_d_ends_the_session_and_it_is_recorded_and_graded(tmp_path):
    async def scenario():
        async with playing(tmp_path, STATION) as (app, pilot, _):
            await say(pilot, "Hello, I'm Dr Patel. What do you know about the scan so far?")
            await pilot.press("ctrl+d")
            await settle(pilot)
            assert isinstance(app.screen, DebriefScreen)

    run(scenario())
    [record] = records(tmp_path)
    assert record.outcome == "completed" and record.turns == 1 and record.scores is not None
    assert record.extra["feedback"]["items"]


def test_ctrl_c_ends_records_and_quits_with_where_it_went(tmp_path):
    async def scenario():
        async with playing(tmp_path, STATION) as (app, pilot, screen):
            await say(pilot, "Hello, I'm Dr Patel.")
            await pilot.press("ctrl+n", *"she mentioned her class")
            assert screen.query_one("#notes").text == "she mentioned her class"
            await pilot.press("ctrl+n", *"ok")  # back to what you say: typing no longer lands in the notes
            assert screen.query_one("#say").value == "ok" and screen.query_one("#notes").text == "she mentioned her class"
            await pilot.press("ctrl+c")
            await settle(pilot)
        return app.return_value

    message = run(scenario())
    assert "recorded in" in message and "episodes.jsonl" in message
    [record] = records(tmp_path)
    assert record.outcome == "completed" and record.extra["notes"] == "she mentioned her class"


def test_input_history_recalls_what_was_said(tmp_path):
    async def scenario():
        async with playing(tmp_path, STATION) as (app, pilot, screen):
            await say(pilot, "Hello, I'm Dr Patel.")
            await say(pilot, "How are you feeling today?")
            say_box = screen.query_one("#say", HistoryInput)
            await pilot.press("up")
            assert say_box.value == "How are you feeling today?"
            await pilot.press("up")
            assert say_box.value == "Hello, I'm Dr Patel."
            await pilot.press("down", "down")
            assert say_box.value == ""
            await pilot.press("ctrl+e")
            await settle(pilot)

    run(scenario())


def test_typing_ahead_while_a_reply_is_coming_sends_each_message_in_turn(tmp_path):
    first, second = "Hello, I'm Dr Patel.", "What do you know about the scan so far?"

    async def scenario():
        async with playing(tmp_path, STATION) as (app, pilot, screen):
            await pilot.press(*first, "enter", *second, "enter")  # the second is typed before the first reply
            deadline = time.monotonic() + READY_S
            while screen.busy or screen.queued:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            await settle(pilot)
            said = [line.text for line in screen.session.lines if line.role == "clinician"]
            assert said == [first, second] and screen.session.turn == 2
            await pilot.press("ctrl+e")
            await settle(pilot)

    run(scenario())


def test_instructor_takes_over_the_next_reply_and_sees_the_state(tmp_path):
    reply = "Just tell me. Is it cancer?"

    async def scenario():
        async with playing(tmp_path, STATION, instructor=True) as (app, pilot, screen):
            assert screen.query_one("#emotion").display
            assert "distress" in str(screen.query_one("#emotion", Static).content)
            await pilot.press("ctrl+t")
            await say(pilot, "Hello, I'm Dr Patel. What do you know so far?")
            assert "instructor" in str(screen.query_one("#mode", Static).content)
            assert screen.session.turn == 0  # held until the instructor replies
            await say(pilot, reply)
            lines = screen.session.lines
            assert (lines[-1].role, lines[-1].text, lines[-1].instructor) == ("patient", reply, True)
            assert chat_text(screen).count("Hello, I'm Dr Patel") == 1
            await say(pilot, "I'm sorry, it is not good news.")  # not taken over: the scripted person answers
            assert screen.session.lines[-1].text != reply and not screen.session.lines[-1].instructor
            await pilot.press("ctrl+e")
            await settle(pilot)

    run(scenario())
    [record] = records(tmp_path)
    assert record.extra["instructor_turns"] == [1]
    assert record.events[0].observation.endswith(reply) and record.events[0].emotion


def test_pause_stops_the_clock_and_the_time_budget_ends_the_station(tmp_path):
    clock = FakeClock()

    async def scenario():
        async with playing(tmp_path, STATION, clock) as (app, pilot, screen):
            await say(pilot, "Hello, I'm Dr Patel.")
            clock.now += 30
            await pilot.press("ctrl+p")
            assert screen.session.paused and screen.query_one("#say").disabled
            clock.now += 3600  # an hour's pause does not count
            screen.tick()
            assert screen.session.elapsed() == 30 and not screen.session.finished
            await pilot.press("ctrl+p")
            assert not screen.session.paused and not screen.query_one("#say").disabled
            clock.now += 10 * 60  # past the station's 10 minutes
            screen.tick()
            await settle(pilot)
            assert isinstance(app.screen, DebriefScreen)

    run(scenario())
    [record] = records(tmp_path)
    assert record.outcome == "ended-by-budget" and record.seconds == 630


def test_diagnostic_case_examines_orders_with_prices_draws_the_image_and_diagnoses(tmp_path):
    async def scenario():
        async with playing(tmp_path, CASE) as (app, pilot, screen):
            await say(pilot, "What has been happening to your hearing?")
            await pilot.click("#do-examine")
            await pilot.pause()
            await pilot.press(*"ENT", "enter")
            await settle(pilot)
            await pilot.click("#do-tests")
            await pilot.pause()
            assert "bedside tests $5" in str(app.screen.query_one("#dialog-help", Static).content)
            await pilot.press(*"audiogram", "enter")
            await settle(pilot)
            assert "cost $5" in str(screen.query_one("#turns", Static).content)
            await pilot.click("#do-images")
            await settle(pilot)
            shown = chat_text(screen)
            assert "Weber lateralises to the right" in shown and "high-frequency sensorineural" in shown
            assert "Image mri-iam (MR)" in shown and "▀▀▀▀" in shown  # drawn in half blocks
            await pilot.click("#do-diagnose")
            await pilot.pause()
            await pilot.press(*"acoustic neuroma", "enter")
            await settle(pilot)
            assert isinstance(app.screen, DebriefScreen)
            assert "Your diagnosis: acoustic neuroma" in app.screen.text()

    run(scenario())
    [record] = records(tmp_path)
    assert record.outcome == "correct" and record.tests == 1 and record.cost == 5


def test_exports_markdown_that_grade_reads_and_the_html_report(tmp_path):
    async def scenario():
        async with playing(tmp_path, STATION) as (app, pilot, _):
            await say(pilot, "Hello, I'm Dr Patel. What do you understand about the scan?")
            await say(pilot, "The scan shows a lump in the bone above your knee that could be a tumour.")
            await pilot.press("ctrl+e")
            await settle(pilot)
            await pilot.press("m", "h")
            await settle(pilot)
            return app.screen.session

    session = run(scenario())
    folder = tmp_path / "runs" / "tui-test"
    markdown = folder / "artifacts" / "episode-00000" / "session.md"
    utterances = read_transcript(markdown)
    assert [(u[0], u[1]) for u in utterances] == [(line.role, line.text) for line in session.lines]
    text = markdown.read_text()
    assert "\n---\n" in text and "SPIKES" in text.split("\n---\n", 1)[1].upper()
    assert STATION in (folder / "report.html").read_text()


def test_a_failing_patient_is_recorded_as_an_error_not_lost(tmp_path):
    async def scenario():
        async with playing(tmp_path, STATION) as (app, pilot, screen):
            await say(pilot, "Hello, I'm Dr Patel.")

            async def broken(*args, **kwargs):
                raise ConnectionError("the patient's model server went away")

            screen.session.clinic.active_patient.reply = broken  # the station's person
            await say(pilot, "What do you know about the scan?")
            await settle(pilot)
            assert isinstance(app.screen, DebriefScreen)
            assert "the patient's model server went away" in app.screen.text()

    run(scenario())
    [record] = records(tmp_path)
    assert record.outcome == "error" and "went away" in record.error and record.turns >= 1


# ---------------------------------------------------------------------------------------------- snapshots

def _frozen_app(tmp_path, monkeypatch, **kwargs):
    monkeypatch.chdir(tmp_path)  # the debrief names the run folder: keep it the same on every machine
    return make_app([FIXTURES], out="runs", run_id="snapshot", clock=FakeClock(), **kwargs)


def test_snapshot_library(snap_compare, tmp_path, monkeypatch):
    assert snap_compare(_frozen_app(tmp_path, monkeypatch), terminal_size=SIZE)


def test_snapshot_conversation(snap_compare, tmp_path, monkeypatch):
    async def play(pilot):
        await start(pilot, STATION)
        await say(pilot, "Hello Ms Okafor, I'm Dr Patel. Is now a good time to talk?")
        await say(pilot, "What have you been told about the scan?")

    assert snap_compare(_frozen_app(tmp_path, monkeypatch, instructor=True), terminal_size=SIZE, run_before=play)


def test_snapshot_debrief(snap_compare, tmp_path, monkeypatch):
    async def play(pilot):
        await start(pilot, STATION)
        await say(pilot, "Hello Ms Okafor, I'm Dr Patel. Is now a good time to talk?")
        await say(pilot, "I'm afraid it's not good news. The scan shows a lump in the bone that could be a tumour.")
        await say(pilot, "I can see this is a shock. What is worrying you most?")
        await pilot.press("ctrl+e")
        await settle(pilot)

    assert snap_compare(_frozen_app(tmp_path, monkeypatch), terminal_size=SIZE, run_before=play)


# ---------------------------------------------------------------------------------------------- a real terminal

@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
def test_the_real_command_in_tmux(tmp_path):
    """``agentclinic tui`` in a 120x40 tmux pane: start the station, type two turns, Ctrl+D, read the debrief."""
    name = f"agentclinic-tui-{os.getpid()}"
    lines = ["Hello Ms Okafor, I'm Dr Patel.", "What do you know about the scan so far?"]
    command = (f"{sys.executable} -m agentclinic.cli tui --scenarios {FIXTURES} --out {tmp_path / 'runs'} "
               f"--run-id tmux; echo EXITED; sleep 60")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40", command], check=True, env=env)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-t", name, "-p"], capture_output=True, text=True).stdout

    def wait_for(text: str, seconds: float = READY_S) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            shown = screen()
            if text in shown:
                return shown
            time.sleep(0.5)
        raise AssertionError(f"{text!r} never appeared; the screen:\n{screen()}")

    def keys(*sent: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", name, *sent], check=True)

    try:
        wait_for("case library")
        wait_for("2 of 2 cases")
        keys("/")  # search (the keys are sent apart: focus moves between them)
        time.sleep(1)
        keys("knee")
        wait_for("1 of 2 cases")
        keys("Enter")  # from the search to the one row left
        time.sleep(1)
        keys("Enter")
        wait_for("Speak to Ms Ruth Okafor")
        keys(lines[0], "Enter", lines[1], "Enter")  # the second typed before the first reply: two turns
        wait_for("turn 2 / 12")
        keys("C-d")
        shown = wait_for("Rubric items")
        assert "Debrief" in shown and "SPIKES" in shown
        keys("q")
        shown = wait_for("EXITED", 60)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    [line] = (tmp_path / "runs" / "tmux" / "episodes.jsonl").read_text().splitlines()
    record = EpisodeRecord.model_validate_json(line)
    assert record.scenario_id == STATION and record.outcome == "completed" and record.turns == 2
    assert [event.doctor for event in record.events] == lines


@pytest.mark.parametrize("line, spoken", [("How are you feeling about all this?", True),
                                          ("DIAGNOSIS READY: inferior STEMI", False), ("END CONVERSATION", False),
                                          ("REQUEST TEST: ECG", False)])
def test_only_speech_waits_for_the_instructors_reply(line, spoken):
    from agentclinic.tui.conversation import said_to_the_person

    assert said_to_the_person(line) is spoken
