"""Paired transcripts (tests/data/transcripts/): the better learner scores higher, for the right reasons.

Each pair is the same station played twice: careful vs blunt, or empathic vs phrase-spraying (stock
empathy phrases pasted at the start or out of context, cues ignored, poor delivery). They are graded
through ``agentclinic grade --json``, the command an educator uses, and the better transcript must win
overall, on the rubric the pair is about, on the items that tell the two apart, and on red lines.
"""

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentclinic.cli import app
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR

TRANSCRIPTS = Path(__file__).parent / "data" / "transcripts"
STATIONS = {s.id: s for s in load_scenarios(Path(BANK_DIR) / "conversations")}
runner = CliRunner()


@dataclass(frozen=True)
class Pair:
    station: str                      # file stem of the station, without the 'conversation-' prefix
    better: str                       # transcript suffixes
    worse: str
    rubrics: tuple[str, ...]          # rubrics the better one must score higher on
    items: tuple[str, ...]            # "rubric/item" the better one must get more credit for
    red_lines: tuple[str, ...]        # red lines the worse one must be caught crossing (the better crosses none)
    information: tuple[str, ...] = field(default=())  # essential items only the better one delivers

    @property
    def id(self) -> str:
        return f"{self.station}:{self.better}-vs-{self.worse}"


PAIRS = [
    Pair("breast-cancer-biopsy", "careful", "blunt", ("spikes", "calgary-cambridge"),
         ("spikes/setting", "spikes/perception", "spikes/invitation", "spikes/knowledge", "spikes/emotions",
          "spikes/strategy", "calgary-cambridge/initiating", "calgary-cambridge/understanding"),
         ("jargon-unexplained", "false-reassurance", "dismissing-emotion")),
    Pair("breast-cancer-biopsy", "empathic", "phrase-spraying", ("nurse", "spikes"),
         ("nurse/name", "nurse/understand", "nurse/respect", "nurse/explore", "spikes/emotions"),
         ("jargon-unexplained", "false-reassurance")),
    Pair("sudden-death-relative", "careful", "blunt", ("spikes", "nurse", "calgary-cambridge"),
         ("spikes/setting", "spikes/perception", "spikes/knowledge", "spikes/emotions",
          "calgary-cambridge/initiating", "calgary-cambridge/relationship"),
         ("jargon-unexplained", "blaming", "dismissing-emotion")),
    Pair("angry-son-long-wait", "careful", "blunt", ("nurse", "calgary-cambridge"),
         ("nurse/name", "nurse/understand", "nurse/explore", "calgary-cambridge/initiating",
          "calgary-cambridge/relationship", "calgary-cambridge/explaining", "calgary-cambridge/closing"),
         ("dismissing-emotion", "blaming", "false-reassurance"), ("apology", "medicines-now")),
    Pair("angry-son-long-wait", "empathic", "phrase-spraying", ("nurse", "calgary-cambridge"),
         ("nurse/name", "nurse/understand", "nurse/respect", "nurse/explore"),
         ("false-reassurance", "jargon-unexplained"), ("apology", "medicines-now")),
    Pair("insulin-error-disclosure", "careful", "blunt", ("nurse", "calgary-cambridge"),
         ("nurse/explore", "calgary-cambridge/initiating", "calgary-cambridge/gathering",
          "calgary-cambridge/relationship", "calgary-cambridge/understanding"),
         ("blaming", "false-reassurance", "jargon-unexplained"), ("apology",)),
    Pair("suicide-risk-farmer", "careful", "blunt", ("nurse", "calgary-cambridge"),
         ("nurse/respect", "nurse/explore", "calgary-cambridge/gathering", "calgary-cambridge/closing",
          "calgary-cambridge/understanding"),
         ("ignoring-risk", "dismissing-emotion", "false-reassurance", "judgemental"),
         ("treatable", "means", "safety-plan")),
    Pair("suicide-risk-farmer", "empathic", "phrase-spraying", ("nurse", "calgary-cambridge"),
         ("nurse/name", "nurse/understand", "nurse/respect", "nurse/explore"),
         ("ignoring-risk", "dismissing-emotion", "false-reassurance"), ("means", "safety-plan")),
    Pair("antibiotics-chest-cold", "careful", "blunt", ("nurse", "calgary-cambridge"),
         ("nurse/understand", "nurse/explore", "calgary-cambridge/initiating", "calgary-cambridge/gathering",
          "calgary-cambridge/closing", "calgary-cambridge/understanding"),
         ("judgemental", "jargon-unexplained", "dismissing-emotion"), ("course",)),
]


@cache
def graded(path: Path, station: str) -> dict:
    """``agentclinic grade --json`` on one transcript file (once per file)."""
    result = runner.invoke(app, ["grade", "--scenario", station, "--transcript", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def feedback(pair: Pair, which: str) -> dict:
    return graded(TRANSCRIPTS / f"{pair.station}-{which}.json", f"conversation-{pair.station}")


def credit(fb: dict, key: str) -> float:
    rubric_id, item_id = key.split("/")
    [item] = [i for i in fb["items"] if i["rubric"] == rubric_id and i["id"] == item_id]
    return item["credit"]


def test_fixture_set():
    """At least five stations have a careful/blunt pair and three an empathic/sprayer pair, 8-20 turns each."""
    kinds = {(p.better, p.worse) for p in PAIRS}
    assert len({p.station for p in PAIRS if (p.better, p.worse) == ("careful", "blunt")}) >= 5
    assert len({p.station for p in PAIRS if (p.better, p.worse) == ("empathic", "phrase-spraying")}) >= 3
    assert kinds == {("careful", "blunt"), ("empathic", "phrase-spraying")}
    named = {TRANSCRIPTS / f"{p.station}-{w}.json" for p in PAIRS for w in (p.better, p.worse)}
    assert named == set(TRANSCRIPTS.glob("*.json")), "every fixture belongs to a pair"


@pytest.mark.parametrize("path", sorted(TRANSCRIPTS.glob("*.json")), ids=lambda p: p.stem)
def test_fixture_is_a_conversation_in_the_station_words(path):
    """Clinician and person alternate, 8-20 turns, and every line of the person is one the station wrote."""
    turns = json.loads(path.read_text())
    station = STATIONS[f"conversation-{path.stem.rsplit('-', 2 if path.stem.endswith('phrase-spraying') else 1)[0]}"]
    c = station.conversation
    said = {x for lines in c.lines.model_dump().values() for x in lines}
    said |= {r for i in c.information for r in i.reaction} | {x for k in c.concerns for x in (k.text, k.cue)}
    said |= {f.text for f in station.facts}
    speaker = c.participants[0].role
    assert 8 <= len(turns) <= 20
    for i, turn in enumerate(turns):
        assert set(turn) == {"role", "text"}
        assert turn["role"] == ("clinician" if i % 2 == 0 else speaker), (i, turn)
        if turn["role"] != "clinician":
            assert turn["text"] in said, f"turn {i}: not a line of {station.id}: {turn['text']!r}"


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.id)
def test_better_transcript_wins_for_the_right_reasons(pair):
    better, worse = feedback(pair, pair.better), feedback(pair, pair.worse)
    assert 0 <= worse["score"] < better["score"] <= 1, (better["score"], worse["score"])
    for rubric_id in pair.rubrics:
        assert better["rubrics"][rubric_id] > worse["rubrics"][rubric_id], (
            rubric_id, better["rubrics"], worse["rubrics"])
    lost = [k for k in pair.items if not credit(better, k) > credit(worse, k)]
    assert not lost, f"items the better transcript does not win: {lost}"
    assert better["red_lines"] == [], better["red_lines"]
    crossed = {hit["id"] for hit in worse["red_lines"]}
    assert set(pair.red_lines) <= crossed, f"red lines not caught: {set(pair.red_lines) - crossed}"
    delivered = {i["id"]: i["delivered_turn"] for i in better["information"]}
    missing = {i["id"] for i in worse["information"] if i["delivered_turn"] is None}
    assert all(delivered[i] is not None for i in pair.information), delivered
    assert set(pair.information) <= missing, f"the worse transcript delivered {set(pair.information) - missing}"


def test_evidence_quotes_the_learner():
    """Every piece of evidence quotes what the clinician said at the turn it names."""
    def norm(text: str) -> str:
        return " ".join(text.replace("\u2019", "'").casefold().split()).strip(" .…")

    for pair in PAIRS:
        turns = json.loads((TRANSCRIPTS / f"{pair.station}-{pair.better}.json").read_text())
        said = [norm(t["text"]) for t in turns if t["role"] == "clinician"]  # turn n = the n-th clinician line
        quoted = [e for item in feedback(pair, pair.better)["items"] for e in item["evidence"]]
        assert quoted, pair.id
        for e in quoted:
            assert norm(e["quote"]) in said[e["turn"] - 1], (pair.id, e)


def test_markdown_export_grades_like_the_json():
    """The Markdown the TUI exports (transcript, then '---' and feedback) reads back to the same grading."""
    station = "conversation-breast-cancer-biopsy"
    as_json = graded(TRANSCRIPTS / "breast-cancer-biopsy-careful.json", station)
    as_markdown = graded(TRANSCRIPTS / "breast-cancer-biopsy-careful.md", station)
    assert as_markdown["score"] == as_json["score"]
    assert as_markdown["items"] == as_json["items"]
