"""Feedback on a conversation: rubric items met, partly met or missed, each with the learner's words as
evidence (quote and turn), the red lines crossed, and an overall score in [0, 1].

Rule grading reads the moves the tracker recognised, in context, so stock phrases do not pay:
- order matters: an item marked ``before-news`` (an invitation, the person's perception) counts in full only
  before the first essential information; after it, it is "partly";
- empathy items marked ``responsive`` count only when the person showed an emotion or dropped a cue in the
  last two lines, not in a turn that also dismisses, blames, reassures falsely or gives news bluntly, and a
  phrase said before word for word counts once; empathy pasted at the start, or sprayed, is reported as
  missed with the turns where it was said; a bare stock phrase ("I understand how you feel") is "partly";
- the information must be delivered: the knowledge items need every essential item, in plain words, after a
  warning shot (news with no preparation is ``blunt-news``: partly at best, and a penalty);
- jargon left unexplained is a red line where the station lists it; each red line crossed costs
  ``RED_LINE_PENALTY``, and repeating a stock phrase costs ``REPEAT_PENALTY`` per repeat beyond the second.

``overall = 0.7 * mean(rubric scores) + 0.3 * essential information delivered - penalties`` (clamped to
[0, 1]; without information items, the rubric mean alone). A model grader (``grade_with_model``) grades the
same items when a judge model is configured; the rule grading is kept beside it (``Feedback.rules``).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentclinic.agents.embeddings import Embedder
from agentclinic.conversation.moves import STOCK, clean
from agentclinic.conversation.rubric import RubricItem, rubric
from agentclinic.conversation.tracker import Tracker, Turn, replay
from agentclinic.scenario.schema import Scenario

RED_LINE_PENALTY = 0.15
REPEAT_PENALTY = 0.05
BLUNT_PENALTY = 0.1
MAX_PENALTY = 0.6
EARLY_TURNS = 3
HARMFUL = ("dismissing-emotion", "blunt-news", "blaming", "false-reassurance")  # empathy beside these does not count
CREDIT = {"met": 1.0, "partly": 0.5, "missed": 0.0}

RED_LINE_MOVES = {"false-reassurance": "false-reassurance", "blaming": "blaming",
                  "dismissing-emotion": "dismissing-emotion", "jargon-unexplained": "jargon"}
RED_LINE_PATTERNS = {
    "coercion": re.compile(r"\b(you (have|need|must) to (have|take|do|accept|agree)|you don't have (a|any) choice|"
                           r"i won't let you|we('ll| will) (do it|give it) anyway|if you don't,? (we|i) (won't|will "
                           r"not|can't))\b"),
    "judgemental": re.compile(r"\b(that's (stupid|ridiculous|silly|irresponsible)|(you're|you are) (being )?"
                              r"(stupid|ridiculous|silly|irresponsible|selfish|difficult)|you should be ashamed|"
                              r"what were you thinking|people like you|drug[- ]seek|(that's|that is|it's) (far |way )?too "
                              r"much|your own fault|you('re| are) wasting|you should know better)"),
    "breach-confidentiality": re.compile(r"\b(i('ll| will) (have to )?(tell|call|ring|inform) your (mum|dad|"
                                         r"parents?|mother|father|husband|wife|partner|family|employer|school)|"
                                         r"your (mum|dad|parents?) (will|need to|have to) (know|be told))\b"),
    "talking-to-interpreter": re.compile(r"\b((can|could|would) you (ask|tell) (him|her|them)|(ask|tell) (him|her|"
                                         r"them) (that|if|whether|to)|does (he|she) (understand|know|want)|"
                                         r"what did (he|she) say)\b"),
}


class Evidence(BaseModel):
    turn: int | None
    quote: str
    move: str | None = None


class ItemResult(BaseModel):
    rubric: str
    id: str
    title: str
    status: Literal["met", "partly", "missed"]
    credit: float
    what: str
    evidence: list[Evidence] = Field(default_factory=list)
    note: str | None = None


class RedLineHit(BaseModel):
    id: str
    text: str | None = None
    turn: int | None = None
    quote: str = ""


class InfoDelivery(BaseModel):
    id: str
    essential: bool
    delivered_turn: int | None = None
    plain: bool = False
    jargon: list[str] = Field(default_factory=list)


class Feedback(BaseModel):
    """Structured feedback on one conversation (saved in ``record.extra["feedback"]``)."""

    station: str
    score: float
    method: Literal["rules", "llm"] = "rules"
    rubrics: dict[str, float] = Field(default_factory=dict)
    items: list[ItemResult] = Field(default_factory=list)
    missed: list[str] = Field(default_factory=list)
    red_lines: list[RedLineHit] = Field(default_factory=list)
    information: list[InfoDelivery] = Field(default_factory=list)
    arc: list[dict[str, int]] = Field(default_factory=list)
    moves: list[dict[str, Any]] = Field(default_factory=list)  # per learner turn: turn, moves
    penalties: list[str] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)
    grader: str | None = None  # the model that graded ``items`` (method "llm")
    rules: Feedback | None = None  # the rule grading, kept beside a model's


# -- reading a transcript ----------------------------------------------------------------------------------


def grade_transcript(scenario: Scenario, lines: list[tuple[str, str, int | None]],
                     embedder: Embedder | None = None) -> Feedback:
    """Rule grading of a transcript: (role, text, turn) in order; the learner's role is 'clinician'."""
    if scenario.conversation is None:
        raise ValueError(f"{scenario.id} is a diagnostic case, not a conversation station: nothing to grade")
    return grade(scenario, replay(scenario, lines, embedder))


def grade(scenario: Scenario, tracker: Tracker) -> Feedback:
    """Rule grading of a conversation the tracker has read."""
    turns = tracker.turns
    news_turn = min((tracker.delivered[i] for i in tracker.recogniser.essential if i in tracker.delivered),
                    default=None) if tracker.recogniser.bad_news else None  # order is graded around bad news only
    items: list[ItemResult] = []
    rubric_scores: dict[str, float] = {}
    for rubric_id in scenario.conversation.rubric:
        spec = rubric(rubric_id)
        results = [_item(rubric_id, item, turns, tracker, news_turn) for item in spec.items]
        items += results
        rubric_scores[rubric_id] = round(sum(r.credit for r in results) / len(results), 3)
    information = _information(scenario, tracker)
    red_lines = _red_lines(scenario, tracker)
    penalties, penalty = _penalties(turns, red_lines)
    score = _overall(rubric_scores, information, penalty)
    missed = [f"{r.rubric}/{r.id}" for r in items if r.status == "missed"]
    suggestions = _suggestions(items, red_lines, information)
    return Feedback(station=scenario.id, score=score, rubrics=rubric_scores, items=items, missed=missed,
                    red_lines=red_lines, information=information, arc=tracker.arc(),
                    moves=[{"turn": t.turn, "moves": t.moves} for t in turns], penalties=penalties,
                    suggestions=suggestions)


def _overall(rubric_scores: dict[str, float], information: list[InfoDelivery], penalty: float) -> float:
    """0.7 * the rubric mean + 0.3 * the essential information delivered (the mean alone without information
    items), less ``penalty``, clamped to [0, 1]."""
    essential = [i for i in information if i.essential]
    mean = sum(rubric_scores.values()) / len(rubric_scores) if rubric_scores else 0.0
    if essential:
        delivered = sum(i.delivered_turn is not None for i in essential) / len(essential)
        mean = 0.7 * mean + 0.3 * delivered
    return round(min(1.0, max(0.0, mean - penalty)), 3)


def _valid(item: RubricItem, turn: Turn, news_turn: int | None, move: str) -> str | None:
    """Why a move at this turn does not count for the item (None: it counts)."""
    if item.when == "before-news" and news_turn is not None and (
            turn.turn > news_turn or (turn.turn == news_turn and move != "warning-shot")):
        return f"came after the news (turn {news_turn})"
    if item.when == "after-news" and news_turn is not None and turn.turn < news_turn:
        return "came before the news"
    if item.when == "early" and turn.turn > EARLY_TURNS:
        return f"not in the first {EARLY_TURNS} turns"
    if item.responsive and not turn.responsive:
        return "not in response to an emotion or cue"
    if item.responsive and turn.repeated:
        return "a phrase already used"
    if item.responsive and (harm := [m for m in HARMFUL if m in turn.moves]):
        return f"in the same turn as {harm[0]}"
    return None


def _item(rubric_id: str, item: RubricItem, turns: list[Turn], tracker: Tracker,
          news_turn: int | None) -> ItemResult:
    counted: list[Evidence] = []
    ignored: list[tuple[Evidence, str]] = []
    for turn in turns:
        for move in turn.moves:
            if move in item.moves:
                evidence = Evidence(turn=turn.turn, quote=turn.quotes.get(move, turn.text), move=move)
                why = _valid(item, turn, news_turn, move)
                (ignored.append((evidence, why)) if why else counted.append(evidence))
    distinct = len({e.move for e in counted})
    note = None
    stock_only = item.responsive and counted and all(STOCK.match(clean(e.quote)) for e in counted)
    if item.check == "information":
        status, note = _knowledge(tracker, counted)
    elif stock_only:
        status, note = "partly", "only stock phrases (say what you see and why it makes sense)"
    elif distinct >= item.need:
        status = "met"
    elif counted:
        status, note = "partly", f"{distinct} of the {item.need} expected kinds of move"
    elif ignored and not item.responsive:
        status = "partly"
    else:
        status = "missed"
    if ignored and status != "met":
        reasons = "; ".join(f"turn {e.turn}: {why}" for e, why in ignored[:3])
        note = f"{note + '; ' if note else ''}not counted: {reasons}"
    shown = counted or ([e for e, _ in ignored] if status != "met" else [])
    return ItemResult(rubric=rubric_id, id=item.id, title=item.title, status=status, credit=CREDIT[status],
                      what=item.what, evidence=_first_per_move(shown)[:4], note=note)


def _first_per_move(evidence: list[Evidence]) -> list[Evidence]:
    seen, out = set(), []
    for e in evidence:
        if (e.move, e.quote) not in seen:
            seen.add((e.move, e.quote))
            out.append(e)
    return out


def _knowledge(tracker: Tracker, counted: list[Evidence]) -> tuple[str, str | None]:
    essential = tracker.recogniser.essential
    if not essential:
        return ("met", None) if counted else ("missed", "nothing was explained")
    delivered = [i for i in essential if i in tracker.delivered]
    blunt = any("blunt-news" in t.moves for t in tracker.turns)
    jargon = sorted({w for t in tracker.turns if "jargon" in t.moves for w in t.jargon})
    problems = []
    if len(delivered) < len(essential):
        problems.append(f"not delivered: {', '.join(i for i in essential if i not in delivered)}")
    if blunt:
        problems.append("the news came bluntly (no warning shot or invitation, or in harsh words)")
    if jargon:
        problems.append(f"unexplained jargon: {', '.join(jargon)}")
    if not delivered:
        return "missed", "; ".join(problems)
    return ("met", None) if not problems else ("partly", "; ".join(problems))


def _information(scenario: Scenario, tracker: Tracker) -> list[InfoDelivery]:
    out = []
    for item in scenario.conversation.information:
        turn = tracker.delivered.get(item.id)
        at = next((t for t in tracker.turns if t.turn == turn), None)
        out.append(InfoDelivery(id=item.id, essential=item.essential, delivered_turn=turn,
                                plain=bool(at and "plain-language" in at.moves),
                                jargon=list(at.jargon) if at and "jargon" in at.moves else []))
    return out


def _red_lines(scenario: Scenario, tracker: Tracker) -> list[RedLineHit]:
    hits = []
    moves_made = {m for t in tracker.turns for m in t.moves}
    for line in scenario.conversation.red_lines:
        hit = None
        if line.id in RED_LINE_MOVES:
            move = RED_LINE_MOVES[line.id]
            turn = next((t for t in tracker.turns if move in t.moves), None)
            if turn:
                hit = RedLineHit(id=line.id, text=line.text, turn=turn.turn, quote=turn.quotes.get(move, turn.text))
        elif line.id in RED_LINE_PATTERNS:
            for turn in tracker.turns:
                if m := RED_LINE_PATTERNS[line.id].search(turn.text.lower().replace("\u2019", "'")):
                    hit = RedLineHit(id=line.id, text=line.text, turn=turn.turn, quote=_sentence_around(turn.text, m))
                    break
        elif line.id == "withholding-error":
            essential = tracker.recogniser.essential
            if "apologise" not in moves_made or any(i not in tracker.delivered for i in essential):
                hit = RedLineHit(id=line.id, text=line.text, quote="(the error was not fully disclosed with an apology)")
        elif line.id == "ignoring-risk" and "risk-question" not in moves_made:
            hit = RedLineHit(id=line.id, text=line.text, quote="(no question about risk or safety was asked)")
        if hit:
            hits.append(hit)
    return hits


def _sentence_around(text: str, match: re.Match) -> str:
    start = max(text.rfind(".", 0, match.start()), text.rfind("?", 0, match.start()), text.rfind("!", 0, match.start()))
    end = min((i for i in (text.find(c, match.end()) for c in ".?!") if i >= 0), default=len(text))
    return text[start + 1:end + 1].strip()


def _penalties(turns: list[Turn], red_lines: list[RedLineHit]) -> tuple[list[str], float]:
    notes, total = [], 0.0
    for hit in red_lines:
        total += RED_LINE_PENALTY
        notes.append(f"red line {hit.id}" + (f" (turn {hit.turn})" if hit.turn else ""))
    phrases = Counter((m, t.quotes[m]) for t in turns for m in t.moves
                      if m in ("empathy-statement", "understanding-statement", "naming-emotion", "support-statement",
                               "respect-statement", "explore-emotion"))
    for (move, quote), n in phrases.items():
        if n >= 3:  # twice can be right ("I'm so sorry" at news of a death); three times is a habit
            where = ", ".join(str(t.turn) for t in turns if t.quotes.get(move) == quote)
            total += REPEAT_PENALTY * (n - 2)
            notes.append(f"repeated stock phrase {quote!r} x{n} (turns {where})")
    if any("blunt-news" in t.moves for t in turns):
        total += BLUNT_PENALTY
        notes.append("bad news given bluntly, with no warning shot or invitation")
    return notes, min(total, MAX_PENALTY)


def _suggestions(items: list[ItemResult], red_lines: list[RedLineHit], information: list[InfoDelivery]) -> list[str]:
    out = []
    for hit in red_lines:
        out.append(f"Avoid {hit.id.replace('-', ' ')}" + (f": {hit.text}" if hit.text else "") + ".")
    for info in information:
        if info.essential and info.delivered_turn is None:
            out.append(f"Make sure you get across: {info.id.replace('-', ' ')}.")
    for result in items:
        if result.status == "met":
            continue
        spec = next(i for i in rubric(result.rubric).items if i.id == result.id)
        if spec.check == "information":  # say what was wrong, not the textbook
            advice = f"{result.title}: {result.note}." if result.note else None
        else:
            advice = spec.advice
        if advice and advice not in out:
            out.append(advice)
    return out


# -- a model grader ----------------------------------------------------------------------------------------


def transcript_text(tracker: Tracker) -> str:
    lines = []
    for t in tracker.turns:
        lines.append(f"[turn {t.turn}] Clinician: {t.text}")
        if t.reply:
            lines.append(f"Patient: {t.reply}")
    return "\n".join(lines)


async def grade_with_model(scenario: Scenario, tracker: Tracker, model: Any, settings: Any = None) -> Feedback:
    """The same rubric items graded by ``model`` (a ChatModel); the rule grading kept in ``rules``. A quote the
    learner never said is dropped, and an item the model leaves out or a reply that is not understood keeps the
    rule result (noted)."""
    from agentclinic.agents.llm import render_prompt
    from agentclinic.backends.base import Message, Settings, call_model

    rules = grade(scenario, tracker)
    listing = "\n".join(f"- {r.rubric}/{r.id}: {r.title}: {r.what}" for r in rules.items)
    prompt = render_prompt("conversation_grader", task=scenario.conversation.task, items=listing,
                           transcript=transcript_text(tracker))
    settings = settings or Settings()
    if settings.max_tokens < 1024:
        settings = settings.model_copy(update={"max_tokens": 1024})
    name = getattr(model, "name", str(model))
    try:
        result = await call_model(model, [Message(role="user", content=prompt)], settings, role="rubric")
    except Exception as exc:  # noqa: BLE001 - a failed grading call keeps the rule grading
        return rules.model_copy(update={"penalties": rules.penalties + [
            f"the model grader {name} failed ({type(exc).__name__}: {exc}); rule grading kept"]})
    said = {t.turn: " ".join(t.text.lower().split()) for t in tracker.turns}
    graded = _parse_grades(result.text or "")
    if not graded:
        snippet = " ".join((result.text or "").split())[:160]
        return rules.model_copy(update={"penalties": rules.penalties + [
            f"the model grader's reply was not understood ({snippet!r}); rule grading kept"]})
    items, notes = [], []
    for r in rules.items:
        got = graded.get(f"{r.rubric}/{r.id}")
        if got is None or got.get("status") not in CREDIT:
            items.append(r.model_copy(update={"note": ((r.note + "; ") if r.note else "") + "model gave no grade: rule"}))
            continue
        evidence = []
        for e in got.get("evidence") or []:
            quote, turn = str(e.get("quote", "")).strip(), e.get("turn")
            if quote and isinstance(turn, int) and " ".join(quote.lower().split()) in said.get(turn, ""):
                evidence.append(Evidence(turn=turn, quote=quote))
            elif quote:
                notes.append(f"{r.rubric}/{r.id}: dropped a quote not in turn {turn}")
        items.append(r.model_copy(update={"status": got["status"], "credit": CREDIT[got["status"]],
                                          "evidence": evidence, "note": got.get("note")}))
    scores = {}
    for rubric_id in scenario.conversation.rubric:
        own = [i.credit for i in items if i.rubric == rubric_id]
        scores[rubric_id] = round(sum(own) / len(own), 3) if own else 0.0
    penalty = min(MAX_PENALTY, RED_LINE_PENALTY * len(rules.red_lines)
                  + sum(p.startswith("repeated") for p in rules.penalties) * REPEAT_PENALTY)
    return rules.model_copy(update={
        "method": "llm", "grader": name, "items": items, "rubrics": scores,
        "score": _overall(scores, rules.information, penalty), "missed": [f"{i.rubric}/{i.id}" for i in items
                                                                          if i.status == "missed"],
        "penalties": rules.penalties + notes, "rules": rules})


def _parse_grades(text: str) -> dict[str, dict]:
    """{"rubric/item": {"status", "evidence": [{"turn", "quote"}], "note"}} from the model's JSON reply."""
    from agentclinic.agents.llm import json_object

    data = json_object(text)
    items = data.get("items") if data else None
    out = {}
    for entry in items if isinstance(items, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("item"), str):
            out[entry["item"]] = entry
    return out


# -- rendering ---------------------------------------------------------------------------------------------


def feedback_markdown(feedback: Feedback) -> str:
    """The feedback as Markdown (the TUI's export, ``agentclinic grade`` without --json)."""
    out = [f"## Feedback: {feedback.station}", "", f"Overall score: **{feedback.score:.2f}** ({feedback.method})", ""]
    for rubric_id, value in feedback.rubrics.items():
        out += [f"### {rubric(rubric_id).title}: {value:.2f}", ""]
        for item in (i for i in feedback.items if i.rubric == rubric_id):
            mark = {"met": "[x]", "partly": "[~]", "missed": "[ ]"}[item.status]
            out.append(f"- {mark} **{item.title}** ({item.status}): {item.what}")
            for turn, quote in dict.fromkeys((e.turn, e.quote) for e in item.evidence):  # a quote once per item
                out.append(f"  - turn {turn}: \"{quote}\"")
            if item.note:
                out.append(f"  - note: {item.note}")
        out.append("")
    if feedback.red_lines:
        out += ["### Red lines crossed", ""]
        out += [f"- **{h.id}**" + (f" (turn {h.turn})" if h.turn else "") + f": \"{h.quote}\"" for h in feedback.red_lines]
        out.append("")
    if feedback.penalties:
        out += ["### Penalties", "", *(f"- {p}" for p in feedback.penalties), ""]
    if feedback.suggestions:
        out += ["### Suggestions", "", *(f"- {s}" for s in feedback.suggestions), ""]
    return "\n".join(out).rstrip() + "\n"
