"""What the scorers read about one finished episode: events, disclosure log, ledger, diagnosis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentclinic.agents.base import Verdict
from agentclinic.runs.record import EpisodeRecord, Event

DEFAULT_TURN_BUDGET = 20  # AgentClinic's; used for efficiency when an episode had no turn budget


@dataclass(frozen=True)
class EpisodeState:
    """The scorers' view of an episode, built from a live clinic or from a saved record."""

    events: Sequence[Event]
    disclosed: Sequence[tuple[int, str]] = ()
    diagnosis: str | None = None
    differential: Sequence[str] = ()
    verdict: Verdict | None = None
    turns: int = 0
    max_turns: int | None = DEFAULT_TURN_BUDGET
    cost: float = 0.0
    price_table: str | None = None
    truncated_by: str | None = None

    @classmethod
    def from_clinic(cls, clinic: Any) -> EpisodeState:
        """The state of ``clinic``'s current episode (``agentclinic.env.clinic.Clinic``)."""
        ledger = clinic.ledger
        diagnosis = clinic.diagnosis
        return cls(events=list(clinic.events), disclosed=list(clinic.disclosed),
                   diagnosis=diagnosis.primary if diagnosis else None,
                   differential=list(diagnosis.differential) if diagnosis else [],
                   verdict=clinic.verdict, turns=ledger.turns, max_turns=ledger.budget.turns, cost=ledger.cost,
                   price_table=ledger.price_table or None, truncated_by=clinic.truncated_by)

    @classmethod
    def from_record(cls, record: EpisodeRecord, max_turns: int | None = DEFAULT_TURN_BUDGET) -> EpisodeState:
        """The state saved in an episode record (its turn budget is in run.json: pass it as ``max_turns``)."""
        verdict = Verdict.model_validate(record.verdict) if record.verdict else None
        return cls(events=list(record.events), disclosed=[tuple(d) for d in record.disclosed],
                   diagnosis=record.diagnosis, differential=list(record.differential), verdict=verdict,
                   turns=record.turns, max_turns=max_turns, cost=record.cost, truncated_by=record.truncated_by)

    # -- what the doctor did --------------------------------------------------------------

    def actions(self, kind: str) -> list[tuple[Event, dict]]:
        """(event, parsed action) for every action of type ``kind`` ('ask', 'examine', 'order_tests', ...)."""
        return [(e, e.action) for e in self.events if e.action and e.action.get("type") == kind]

    def utterances(self) -> list[tuple[int, str]]:
        """(turn, text) of everything the doctor said to the patient."""
        return [(e.turn, str(a.get("text") or "")) for e, a in self.actions("ask") if a.get("text")]

    def first_disclosure(self) -> dict[str, int]:
        """Fact id -> the turn it was first disclosed."""
        first: dict[str, int] = {}
        for turn, fact_id in self.disclosed:
            first.setdefault(fact_id, turn)
        return first
