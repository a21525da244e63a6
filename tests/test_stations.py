"""The bank of communication stations (scenarios/conversations/): size, coverage, structure and clean gates."""

from collections import Counter
from pathlib import Path

import pytest

from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR
from agentclinic.scenario.quality import validate_paths
from agentclinic.scenario.schema import SITUATIONS

STATIONS_DIR = Path(BANK_DIR) / "conversations"
STATIONS = load_scenarios(STATIONS_DIR)
BAD_NEWS = {"breaking-bad-news", "pregnancy-loss", "dementia-diagnosis", "goals-of-care", "uncertain-result"}
"""Situations whose core is telling someone news they do not want: graded against SPIKES as well."""


def test_bank_size_and_coverage():
    assert len(STATIONS) >= 15
    assert all(s.kind == "conversation" for s in STATIONS)
    situations = Counter(s.conversation.situation for s in STATIONS)
    assert set(SITUATIONS) - {"other"} <= set(situations), set(SITUATIONS) - set(situations)
    assert max(situations.values()) <= 3, situations  # breadth: no situation dominates the bank
    # "Each a different situation": two stations of one situation differ in setting and specialty.
    pairs = Counter((s.conversation.situation, s.specialty) for s in STATIONS)
    assert max(pairs.values()) == 1, pairs
    assert {"easy", "medium", "hard"} <= {s.difficulty for s in STATIONS}
    assert {"female", "male"} <= {s.patient.sex for s in STATIONS}
    assert {"relative", "interpreter"} <= {p.role for s in STATIONS for p in s.conversation.participants}


def test_every_station_passes_every_gate_without_warnings():
    _, report = validate_paths([STATIONS_DIR])
    assert report.errors == [], "\n".join(map(str, report.errors))
    assert report.warnings == [], "\n".join(map(str, report.warnings))


def test_ids_titles_and_files_are_distinct():
    assert len({s.id for s in STATIONS}) == len({s.title for s in STATIONS}) == len(STATIONS)
    for s in STATIONS:
        assert s.id == f"conversation-{s._source.path.stem}", s._source.path


@pytest.mark.parametrize("station", STATIONS.scenarios, ids=STATIONS.ids())
def test_each_station_is_complete(station):
    s, c = station, station.conversation
    assert s.diagnosis is None
    assert s.provenance.synthetic and s.provenance.source == "synthetic"
    assert "synthetic, written for this project" in (s.provenance.notes or "")
    assert c.setting and c.task and c.participants
    assert c.participants[0].role in {"patient", "relative"}
    assert (c.participants[0].role == "relative") == (s.patient.informant is not None)

    assert 2 <= len(c.information) <= 4 and any(i.essential for i in c.information)
    for item in c.information:
        assert item.plain != item.text and item.keywords and item.reaction, item.id
    assert 1 <= len(c.concerns) <= 4 and all(k.cue and k.keywords for k in c.concerns)
    assert len({x.id for x in [*c.information, *c.concerns]}) == len(c.information) + len(c.concerns)

    lines = c.lines.model_dump()
    assert all(len(lines[state]) >= 2 for state in lines), {k: len(v) for k, v in lines.items()}
    everything = [x for v in lines.values() for x in v]
    assert len(set(everything)) == len(everything), "a line is written twice"

    arc = c.emotion
    assert arc.escalates and arc.settles and not set(arc.escalates) & set(arc.settles)
    assert c.red_lines and c.budget.turns > 0 and c.budget.minutes > 0

    assert "calgary-cambridge" in c.rubric
    if arc.start.distress or arc.start.anger:
        assert "nurse" in c.rubric
    if c.situation in {"breaking-bad-news", "pregnancy-loss"}:
        assert "spikes" in c.rubric
    if "spikes" in c.rubric:
        assert c.situation in BAD_NEWS
    if c.situation == "interpreter":
        assert any(p.role == "interpreter" for p in c.participants)
        assert "talking-to-interpreter" in {r.id for r in c.red_lines}
