"""A clinic for playing stations (the TUI and scripts): the station patient and, optionally, a model grader."""

from __future__ import annotations

from agentclinic.env.clinic import Clinic


def station_clinic(patient: str = "scripted", judge: str | None = None, max_turns: int | None = None,
                   settings=None, cache=None) -> Clinic:
    """A clinic whose patient plays stations: ``patient`` "scripted" (the offline emotional patient) or a model
    spec (an LLM patient, the state machine beside it); ``judge`` a model spec to grade the conversation with a
    model too (rule grading is always kept), or None; ``max_turns`` caps a station's own turn budget.
    Diagnostic cases play through it as through any clinic."""
    from agentclinic.agents.llm_factory import build_clinic

    clinic = build_clinic(patient=patient, judge=judge or "scripted", settings=settings, cache=cache)
    clinic.station_turns = max_turns
    return clinic
