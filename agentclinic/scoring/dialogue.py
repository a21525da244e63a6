"""Dialogue axes computed from the scenario and the episode: coverage, history, examination,
tests, cost, efficiency and safety. Each is a value in [0, 1], or None where the case leaves it
undefined, with the evidence behind it. The formulas are documented in ``docs/scoring.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from agentclinic.runs.record import EpisodeRecord
from agentclinic.scenario.prices import PriceTable, price_table
from agentclinic.scenario.schema import Disclosure, FactCategory, Scenario

DEFAULT_TURN_BUDGET = 20  # AgentClinic's; used for efficiency when an episode had no turn budget


@dataclass(frozen=True)
class AxisScore:
    """One axis: its value (None when undefined for the case) and the evidence."""

    value: float | None
    details: dict[str, Any] = field(default_factory=dict)


def _round(x: float) -> float:
    return round(min(1.0, max(0.0, x)), 4)


# --------------------------------------------------------------------------------------------
# Information coverage
# --------------------------------------------------------------------------------------------


def coverage(scenario: Scenario, record: EpisodeRecord) -> AxisScore:
    """Important facts disclosed / important facts the patient can say (hidden ones are left out)."""
    important = [f for f in scenario.facts if f.important and f.disclosure != Disclosure.HIDDEN]
    hidden = [f.id for f in scenario.facts if f.important and f.disclosure == Disclosure.HIDDEN]
    if not important:
        return AxisScore(None, {"reason": "the case marks no important fact the patient can say",
                                "hidden_important": hidden})
    first = record.first_disclosure()
    got = [{"fact": f.id, "turn": first[f.id]} for f in important if f.id in first]
    return AxisScore(_round(len(got) / len(important)),
                     {"important": len(important), "disclosed": got,
                      "missed": [f.id for f in important if f.id not in first], "hidden_important": hidden})


# --------------------------------------------------------------------------------------------
# History completeness
# --------------------------------------------------------------------------------------------

HISTORY_CATEGORIES: tuple[FactCategory, ...] = (
    FactCategory.HPI, FactCategory.PMH, FactCategory.MEDICATIONS, FactCategory.ALLERGIES, FactCategory.SOCIAL,
    FactCategory.FAMILY, FactCategory.ROS)

# What a question about each part of the history sounds like (matched case-insensitively).
CATEGORY_CUES: dict[FactCategory, re.Pattern[str]] = {c: re.compile(p, re.I) for c, p in {
    FactCategory.HPI: r"\b(what brings|brought you|tell me (more )?about|when did|how long|start(ed)?|began|"
                      r"come on|describe|where (exactly )?(is|was|does)|feel like|how (bad|severe)|"
                      r"better or worse|worse|spread|radiat|trigger|pain|symptom)",
    FactCategory.PMH: r"\b(medical (history|conditions?|problems?)|past (medical|history|illness)|conditions?\b|"
                      r"operations?|surger|hospital|ever (been )?(had|diagnosed)|health problems?|illnesses)",
    FactCategory.MEDICATIONS: r"\b(medicat|medicines?|tablets?|pills?|prescri|over the counter|inhalers?|"
                              r"supplements?|take any|taking any|drugs? (do )?you take)",
    FactCategory.ALLERGIES: r"\ballerg",
    FactCategory.SOCIAL: r"\b(smok|cigarette|tobacco|vap(e|ing)|alcohol|drink|recreational|drugs\b|work|job|"
                         r"occupation|live (with|alone)|who do you live|at home|travel|sexual|partner|diet|"
                         r"exercise|pets?)\b",
    FactCategory.FAMILY: r"\b(family|run(s)? in|mother|father|parents?|brothers?|sisters?|siblings?|relatives?|"
                         r"inherit)",
    FactCategory.ROS: r"\b(fevers?|chills|night sweats|weight|appetite|cough|breathless|short of breath|rash|"
                      r"urin|bowel|vomit|nausea|headache|dizz|any other symptoms|anything else)",
    FactCategory.OBSTETRIC: r"\b(pregnan|periods?|menstru|contracept|miscarr|gyn|last menstrual)",
}.items()}


def asked_categories(text: str) -> list[FactCategory]:
    """The parts of the history a doctor's utterance asks about."""
    return [c for c, cue in CATEGORY_CUES.items() if cue.search(text)]


def history(scenario: Scenario, record: EpisodeRecord) -> AxisScore:
    """Share of the history's parts (HPI, past history, medications, allergies, social, family,
    review of systems; obstetric when the case has such facts) asked about or elicited."""
    expected = list(HISTORY_CATEGORIES)
    if any(f.category == FactCategory.OBSTETRIC for f in scenario.facts):
        expected.append(FactCategory.OBSTETRIC)
    by_id = {f.id: f for f in scenario.facts}
    detail: dict[str, dict[str, Any]] = {
        c.value: {"asked": [], "elicited": [], "in_case": sum(f.category == c for f in scenario.facts)}
        for c in expected}
    for turn, text in record.utterances():
        for category in asked_categories(text):
            if category.value in detail:
                detail[category.value]["asked"].append(turn)
    for fact_id in record.first_disclosure():
        fact = by_id.get(fact_id)
        if fact is not None and fact.category.value in detail:
            detail[fact.category.value]["elicited"].append(fact_id)
    covered = [c for c, d in detail.items() if d["asked"] or d["elicited"]]
    for c, d in detail.items():
        d["covered"] = c in covered
    return AxisScore(_round(len(covered) / len(expected)),
                     {"covered": covered, "missed": [c for c in detail if c not in covered], "categories": detail})


# --------------------------------------------------------------------------------------------
# Examination and tests
# --------------------------------------------------------------------------------------------


def examination(scenario: Scenario, record: EpisodeRecord) -> AxisScore:
    """Abnormal examination findings seen / abnormal findings in the case (any examination, when the
    case flags none as abnormal). None when the case records no examination."""
    if not scenario.examination:
        return AxisScore(None, {"reason": "the case records no examination findings"})
    seen: set[tuple[str, str]] = set()
    turns: list[int] = []
    for event, _ in record.actions("examine"):
        found = [f for f in event.findings if f.available]
        if found:
            turns.append(event.turn)
        seen |= {(f.group or "", f.name or "") for f in found}
    abnormal = [(f.system, f.name or f.system) for f in scenario.examination if f.abnormal]
    details: dict[str, Any] = {"examined": bool(turns), "turns": turns}
    if not abnormal:
        return AxisScore(1.0 if turns else 0.0, details | {"abnormal": 0})
    hit = [a for a in abnormal if a in seen]
    return AxisScore(_round(len(hit) / len(abnormal)),
                     details | {"abnormal": len(abnormal), "abnormal_seen": [f"{s}: {n}" for s, n in hit],
                                "abnormal_missed": [f"{s}: {n}" for s, n in abnormal if (s, n) not in hit]})


def ordered_tests(record: EpisodeRecord) -> list[dict[str, Any]]:
    """Each distinct test ordered: the case's name when it exists (else the request), turn, availability."""
    out: dict[str, dict[str, Any]] = {}
    for event, _ in record.actions("order_tests"):
        for finding in event.findings:
            name = finding.name if finding.available else None
            key = name or finding.request.strip().lower()
            if key and key not in out:
                out[key] = {"name": name or finding.request, "turn": event.turn, "available": bool(name)}
    return list(out.values())


def tests(scenario: Scenario, record: EpisodeRecord) -> AxisScore:
    """F1 of precision (relevant ordered / distinct tests ordered, unavailable requests included) and
    recall (relevant ordered / the case's relevant tests). None when the case marks no test relevant."""
    ordered = ordered_tests(record)
    relevant = [t.name for t in scenario.tests if t.relevant]
    names = {o["name"] for o in ordered if o["available"]}
    hit = [n for n in relevant if n in names]
    precision = len(hit) / len(ordered) if ordered else None
    details: dict[str, Any] = {
        "ordered": [o["name"] for o in ordered], "relevant_ordered": hit,
        "relevant_missed": [n for n in relevant if n not in names],
        "not_relevant": [o["name"] for o in ordered if o["name"] not in relevant],
        "unavailable": [o["name"] for o in ordered if not o["available"]],
        "precision": None if precision is None else round(precision, 4)}
    if not relevant:
        return AxisScore(None, details | {"reason": "the case marks no test as relevant"})
    recall = len(hit) / len(relevant)
    details["recall"] = round(recall, 4)
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    return AxisScore(_round(f1), details)


# --------------------------------------------------------------------------------------------
# Cost and turns
# --------------------------------------------------------------------------------------------


def reference_cost(scenario: Scenario, prices: PriceTable) -> float:
    """What the case's relevant tests cost, at least the price table's default price."""
    return max(sum(prices.price(t) for t in scenario.tests if t.relevant), prices.default)


def cost(scenario: Scenario, record: EpisodeRecord, prices: PriceTable | None = None) -> AxisScore:
    """1 while spending stays within the reference (the relevant tests' cost), then reference / spent."""
    table = prices or price_table()
    reference = reference_cost(scenario, table)
    spent = float(record.cost)
    value = 1.0 if spent <= reference else reference / spent
    details: dict[str, Any] = {"spent": round(spent, 2), "reference": round(reference, 2),
                               "currency": table.currency, "price_table": table.version}
    if record.price_table and record.price_table != table.version:
        details["note"] = f"the episode was priced with {record.price_table}, the reference with {table.version}"
    return AxisScore(_round(value), details)


def efficiency(scenario: Scenario, record: EpisodeRecord) -> AxisScore:
    """0 without a diagnosis; else 1 - (turns - 1) / (budget - 1): a diagnosis at the first turn scores 1,
    at the last turn of the budget 0 (budget: the turn budget, else 20)."""
    budget = record.max_turns or DEFAULT_TURN_BUDGET
    details = {"turns": record.turns, "budget": budget, "diagnosed": record.diagnosed}
    if not record.diagnosed:
        return AxisScore(0.0, details)
    if budget <= 1:
        return AxisScore(1.0, details)
    return AxisScore(_round(1 - (record.turns - 1) / (budget - 1)), details)


# --------------------------------------------------------------------------------------------
# Safety
# --------------------------------------------------------------------------------------------

HARM_PENALTY = 0.5  # taken off the safety value for each harmful test ordered
# Words of red-flag texts too general to show, alone, that a question is about that flag.
GENERIC_FLAG_WORDS = (
    "suggest suggesting suggests risk symptom symptoms severe onset involvement cause causes caused new previous "
    "previously persistent upper lower point syndrome use rapid indicate indicating without disease feature "
    "features episode episodes more late right left low high increase increased change reduce reduced poor ill "
    "rest short night recurrent transient ongoing difficulty disturbance threaten threatening pain known recent "
    "recently sign signs history possible despite after before during")


def _flag_vocabulary(scenario: Scenario) -> list[tuple[frozenset[str], frozenset[str]]]:
    """Per red flag: the specific stems of its own text, and the stems of its text plus its facts' keywords."""
    from agentclinic.agents.patient import lexical_tokens

    generic = lexical_tokens(GENERIC_FLAG_WORDS)
    out = []
    for flag in scenario.red_flags:
        own = lexical_tokens(flag.text) - generic
        words = set(lexical_tokens(flag.text))
        for fact_id in flag.facts:
            for keyword in scenario.fact(fact_id).keywords:
                words |= lexical_tokens(keyword)
        out.append((own, frozenset(words)))
    return out


def question_matches_flag(question: frozenset[str], own: frozenset[str], words: frozenset[str]) -> list[str]:
    """The stems by which a question asks about a red flag: one specific word of the flag's text, or
    two words of its text and its facts' keywords; empty when it does not."""
    shared = question & words
    if question & own or len(shared) >= 2:
        return sorted(shared)
    return []


def safety(scenario: Scenario, record: EpisodeRecord) -> AxisScore:
    """Red flags covered / red flags (1 when the case has none), minus 0.5 per harmful test ordered,
    floored at 0. A red flag is covered when one of its facts was disclosed or a question of the
    doctor's asks about it. None when the case has neither red flags nor harmful tests."""
    harmful = {t.name: t.harmful for t in scenario.tests if t.harmful}
    if not scenario.red_flags and not harmful:
        return AxisScore(None, {"reason": "the case has no red flags and no harmful tests"})
    from agentclinic.agents.patient import lexical_tokens

    first = record.first_disclosure()
    questions = [(turn, text, lexical_tokens(text)) for turn, text in record.utterances()]
    flags: list[dict[str, Any]] = []
    for flag, (own, words) in zip(scenario.red_flags, _flag_vocabulary(scenario)):
        entry: dict[str, Any] = {"flag": flag.text, "covered": False}
        facts = [{"fact": f, "turn": first[f]} for f in flag.facts if f in first]
        if facts:
            entry |= {"covered": True, "disclosed": facts}
        for turn, text, stems in questions:
            matched = question_matches_flag(stems, own, words)
            if matched:
                entry |= {"covered": True, "asked": {"turn": turn, "question": text, "matched": matched}}
                break
        flags.append(entry)
    covered = sum(f["covered"] for f in flags)
    base = covered / len(flags) if flags else 1.0
    ordered = {o["name"] for o in ordered_tests(record) if o["available"]}
    harms = [{"test": name, "why": why} for name, why in harmful.items() if name in ordered]
    return AxisScore(_round(base - HARM_PENALTY * len(harms)),
                     {"red_flags": flags, "covered": covered, "total": len(flags), "harmful_orders": harms})
