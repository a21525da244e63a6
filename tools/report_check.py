"""The ``check_report`` tool: suspected errors in a radiology report, with their spans.

The rule checker (the default) reads the report with ``report_text.read_report`` and compares the
impression with the findings (and the report with reference findings, when given): a finding
stated in one and denied in the other (negation flip), the other side (laterality), other sizes
(measurement, normalised to mm), other grades (severity), a significant finding in the impression
that the findings do not support (added) or one in the findings the impression leaves out
(omitted), and repeated sentences. When the episode has a model for tools, a model reads the report
(and the image, when it takes images) and names the errors as JSON; a reply that cannot be
understood falls back to the rule checker, and the result says so.

A report (and the reference) may hold at most ``MAX_REPORT`` characters (64 KiB): a longer one is an invalid
argument. The rule checker is near-linear in the report's length (sentences are hashed, mentions indexed by
finding, near-repetition looked for among the ``NEAR_WINDOW`` sentences before) and runs in a worker thread,
never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import re
from bisect import bisect_left, insort
from difflib import SequenceMatcher
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from agentclinic.tools.base import ToolArguments, ToolContext, ToolError, ToolResult
from agentclinic.tools.registry import register_tool
from agentclinic.tools.report_text import (
    ErrorType, Mention, ReadReport, measure_values, normalise_sentence, read_report, same_value)
from agentclinic.tools.report_vocab import CHRONIC, CONTRAST

CONFIDENCE = {ErrorType.NEGATION: 0.8, ErrorType.LATERALITY: 0.85, ErrorType.MEASUREMENT: 0.8,
              ErrorType.SEVERITY: 0.7, ErrorType.ADDED: 0.6, ErrorType.OMITTED: 0.5, ErrorType.REPETITION: 0.9}


class SuspectedError(BaseModel):
    """One suspected error: its type, where it is (``start``/``end`` in the report, or in the reference
    for a finding the report leaves out; None when a model quoted text that is not there), the quoted
    text, why, and how sure the checker is."""

    type: ErrorType
    start: int | None
    end: int | None
    quote: str
    explanation: str
    confidence: float = Field(ge=0.0, le=1.0)
    where: Literal["report", "reference"] = "report"

    def overlaps(self, start: int, end: int) -> bool:
        if self.start is None or self.end is None:
            return False
        if start == end or self.start == self.end:
            return self.start <= start <= self.end or start <= self.start <= end
        return self.start < end and start < self.end


# --------------------------------------------------------------------------------------------
# The rule checker
# --------------------------------------------------------------------------------------------


def _error(kind: ErrorType, text: str, span: tuple[int, int], why: str, where: str = "report",
           confidence: float | None = None) -> SuspectedError:
    return SuspectedError(type=kind, start=span[0], end=span[1], quote=text[span[0]:span[1]], explanation=why,
                          confidence=CONFIDENCE[kind] if confidence is None else confidence, where=where)


def _comparable(m: Mention, e: Mention) -> bool:
    """Whether a statement and a denial of the same finding contradict each other ("no new nodule" does not
    contradict "stable nodule", "no acute fracture" does not contradict "old healed fracture"; "no large
    effusion" contradicts "large effusion", and a denial with the stated size contradicts the statement)."""
    for denied, stated in ((m, e), (e, m)):
        if denied.negated and not stated.negated:
            sizes = {d for _, _, dims in stated.measures for d in dims}
            same_size = any(d in sizes for _, _, dims in denied.measures for d in dims)
            if denied.qualifiers & CONTRAST and not denied.qualifiers & CONTRAST <= stated.qualifiers and not same_size:
                return False
            if "acute" in denied.qualifiers and stated.chronic:
                return False
    return m.compatible(e)


_ELSEWHERE = frozenset({"other", "new", "additional", "further"})
_COMPARED = CONTRAST | CHRONIC | _ELSEWHERE | {"acute"}  # the qualifiers the comparisons read
_NO_SUCH_SIDE = re.compile(r"\b(?:left\s+middle\s+lobe|right\s+lingula\w*|lingula\w*\s+of\s+the\s+right)\b", re.I)


def _given(value: float, known: list[float]) -> bool:
    """Whether ``value`` is (``same_value``) one of the sorted ``known`` values: its neighbours decide."""
    at = bisect_left(known, value)
    return any(same_value(value, known[i]) for i in (at - 1, at) if 0 <= i < len(known))


def _span_of(items: list[tuple]) -> tuple[int, int]:
    return min(i[0] for i in items), max(i[1] for i in items)


def _quote(text: str, mention: Mention) -> str:
    return " ".join(text[mention.sentence.start:mention.sentence.end].split())


class _Compare:
    """One comparison: the claim part (impression, or the whole report) against the evidence part
    (findings, or reference findings)."""

    def __init__(self, text: str, claim: ReadReport, claim_names: tuple[str, ...], evidence: ReadReport,
                 evidence_names: tuple[str, ...], claim_label: str, evidence_label: str,
                 evidence_where: Literal["report", "reference"]):
        self.text, self.evidence_text = text, evidence.text
        self.claim_sentences, self.claim, self.claim_anchors = claim.part(*claim_names)
        self.evidence_sentences, self.evidence, self.evidence_anchors = evidence.part(*evidence_names)
        self.claim_label, self.evidence_label, self.where = claim_label, evidence_label, evidence_where
        # indexes, so that each claim is compared with the evidence about its finding only, once per distinct
        # statement of it (the first; the checks read only what the signature holds): near-linear
        self.by_concept: dict[str, list[Mention]] = {}
        self.first_by_group: dict[str, int] = {}
        signatures: set[tuple] = set()
        for i, e in enumerate(self.evidence):
            signature = (e.concept, e.negated, e.hedged, e.side, e.qualifiers & _COMPARED, e.ranks,
                         frozenset(d for _, _, dims in e.measures for d in dims))
            if signature not in signatures:
                signatures.add(signature)
                self.by_concept.setdefault(e.concept, []).append(e)
            for group in e.info.groups:
                self.first_by_group.setdefault(group, i)
        self.stated_groups = {g for e in self.evidence if not e.negated for g in e.info.groups}
        self.any_significant = any(e.significant for e in self.evidence)

    def run(self) -> list[SuspectedError]:
        if not self.evidence_sentences:
            return []
        errors: list[SuspectedError] = []
        for m in self.claim:
            if m.hedged:
                continue
            if m.generic:
                errors += self._generic(m)
                continue
            contradiction = self._negation(m)
            if contradiction and not (m.positive and self._laterality(m)):
                errors.append(contradiction)
                continue
            if m.positive:
                errors += self._laterality(m) + self._severity(m) + self._added(m)
        errors += self._measurements() + self._omitted()
        return errors

    def _generic(self, m: Mention) -> list[SuspectedError]:
        if m.negated or self.any_significant:
            return []
        return [_error(ErrorType.NEGATION, self.text, m.phrase,
                       f"The {self.claim_label} states an abnormality, but the {self.evidence_label} report nothing "
                       "significant; a missing 'no'?", confidence=0.6)]

    def _negation(self, m: Mention) -> SuspectedError | None:
        same = [e for e in self.by_concept.get(m.concept, ()) if not e.hedged and m.compatible(e)
                and not (e.negated and e.qualifiers & _ELSEWHERE)]  # "no other calculi" says nothing of this one
        if not same or any(e.negated == m.negated for e in same) or not all(_comparable(m, e) for e in same):
            return None
        other = same[0]
        said = "denies" if m.negated else "reports"
        return _error(ErrorType.NEGATION, self.text, m.phrase,
                      f"The {self.claim_label} {said} {m.info.label}, but the {self.evidence_label} "
                      f"{'report' if m.negated else 'deny'} it: \"{_quote(self.evidence_text, other)}\".")

    def _stated(self, m: Mention) -> list[Mention]:
        return [e for e in self.by_concept.get(m.concept, ()) if e.positive]

    def _laterality(self, m: Mention) -> list[SuspectedError]:
        if not m.side:
            return []
        sizes = {d for _, _, dims in m.measures for d in dims}
        stated = self._stated(m)
        same_size = [e for e in stated if any(d in sizes for _, _, dims in e.measures for d in dims)]
        others = [e for e in (same_size or stated) if e.side]
        sides = [e.side for e in others]
        if not sides or (not same_size and len(sides) < len(stated)) or any(m.side & s for s in sides):
            return []
        found = sorted({w for s in sides for w in s})
        return [_error(ErrorType.LATERALITY, self.text, _span_of(m.sides),
                       f"The {self.claim_label} puts the {m.info.label} on the {'/'.join(sorted(m.side))}, the "
                       f"{self.evidence_label} on the {'/'.join(found)}: \"{_quote(self.evidence_text, others[0])}\".")]

    def _severity(self, m: Mention) -> list[SuspectedError]:
        graded = [e for e in self._stated(m) if m.compatible(e) and e.ranks]
        if not m.ranks or not graded or any(e.ranks & m.ranks for e in graded):
            return []
        return [_error(ErrorType.SEVERITY, self.text, _span_of(m.severities),
                       f"The {self.claim_label} grades the {m.info.label} as '{m.severities[0][3].lower()}', the "
                       f"{self.evidence_label} as '{graded[0].severities[0][3].lower()}'.")]

    def _added(self, m: Mention) -> list[SuspectedError]:
        if not m.significant or self.stated_groups & m.info.groups:
            return []
        denied = min((self.first_by_group[g] for g in m.info.groups if g in self.first_by_group), default=None)
        why = (f"The {self.claim_label} reports {m.info.label}, which the {self.evidence_label} do not mention"
               + (f" (they say \"{_quote(self.evidence_text, self.evidence[denied])}\")." if denied is not None
                  else "."))
        return [_error(ErrorType.ADDED, self.text, (m.sentence.start, m.sentence.end), why)]

    def _measurements(self) -> list[SuspectedError]:
        known = {key: sorted(values) for key, values in measure_values(self.evidence, self.evidence_anchors).items()}
        errors = []
        for item in [*(m for m in self.claim if not m.negated), *self.claim_anchors]:
            key = item.measure_key
            for start, end, dims in item.measures:
                if key in known and not all(_given(d, known[key]) for d in dims):
                    values = ", ".join(f"{v:g} mm" for v in known[key])
                    errors.append(_error(ErrorType.MEASUREMENT, self.text, (start, end),
                                         f"'{self.text[start:end]}' in the {self.claim_label} matches no size given "
                                         f"in the {self.evidence_label} ({values})."))
        return errors

    def _omitted(self) -> list[SuspectedError]:
        errors, seen = [], set()
        claimed = {g for m in self.claim if not m.negated for g in m.info.groups}
        denied: dict[str, list[Mention]] = {}
        for m in self.claim:
            if m.negated:
                denied.setdefault(m.concept, []).append(m)
        for e in self.evidence:
            if not e.significant or (e.sentence.start, frozenset(e.info.groups)) in seen:
                continue
            if claimed & e.info.groups:
                continue
            if any(_comparable(m, e) for m in denied.get(e.concept, ())):
                continue  # reported as a negation flip
            seen.add((e.sentence.start, frozenset(e.info.groups)))
            errors.append(_error(ErrorType.OMITTED, self.evidence_text, (e.sentence.start, e.sentence.end),
                                 f"The {self.evidence_label} report {e.info.label}, which the {self.claim_label} "
                                 "leaves out.", where=self.where))
        return errors


def _anatomy(read: ReadReport) -> list[SuspectedError]:
    """Sides that do not exist ("left middle lobe", "right lingula")."""
    return [_error(ErrorType.LATERALITY, read.text, (m.start(), m.end()),
                   f"There is no '{m.group(0).lower()}': the middle lobe is on the right, the lingula on the left.")
            for m in _NO_SUCH_SIDE.finditer(read.text)]


_WORD = re.compile(r"[A-Za-z0-9]+")
NEAR_WINDOW = 32  # a sentence is compared for near-repetition with this many sentences before it (exact: all)


def _echo(tokens: list[str]) -> tuple[int, int] | None:
    """The longest run of three or more tokens that repeats the run just before it (the first such, as token
    indices of the repeat); one pass per run length, vectorised."""
    if len(tokens) < 6:
        return None
    ids = np.unique(np.array(tokens), return_inverse=True)[1]
    for size in range(len(tokens) // 2, 2, -1):
        same = np.concatenate(([0], np.cumsum(ids[:-size] == ids[size:])))  # same[i]: matches before i
        hits = np.flatnonzero(same[size:len(tokens) - size + 1] - same[:len(tokens) - 2 * size + 1] == size)
        if hits.size:
            i = int(hits[0])
            return i + size, i + 2 * size
    return None


def _echoes(read: ReadReport) -> list[SuspectedError]:
    """A run of three or more words repeated at once inside a sentence ("no acute disease no acute disease")."""
    errors = []
    for sentence in read.sentences:
        words = list(_WORD.finditer(sentence.text))
        found = _echo([w.group(0).lower() for w in words])
        if found:
            start = sentence.start + words[found[0]].start()
            end = sentence.start + words[found[1] - 1].end()
            errors.append(_error(ErrorType.REPETITION, read.text, (start, end),
                                 "These words repeat the words just before them."))
    return errors


def _near(norm: str, other: str) -> bool:
    """Nearly the same sentence: both of five words or more and 92% alike (cheap bounds first)."""
    if min(norm.count(" "), other.count(" ")) < 4 or 2.0 * min(len(norm), len(other)) / (len(norm) + len(other)) < 0.92:
        return False
    matcher = SequenceMatcher(None, norm, other)
    return matcher.quick_ratio() >= 0.92 and matcher.ratio() >= 0.92


def _repetitions(read: ReadReport) -> list[SuspectedError]:
    """Sentences that repeat an earlier one of their section: the same anywhere before, or nearly the same
    among the ``NEAR_WINDOW`` sentences before (sentences hashed, so the check stays near-linear)."""
    errors = _echoes(read)
    for name in read.body:
        sentences = [s for s in read.sentences if s.section == name]
        norms = [normalise_sentence(s.text) for s in sentences]
        first: dict[str, int] = {}
        for j, (later, norm) in enumerate(zip(sentences, norms)):
            earliest = first.setdefault(norm, j)
            if norm.count(" ") < 1:
                continue
            match = next((i for i in range(max(0, j - NEAR_WINDOW), min(j, earliest if earliest < j else j))
                          if _near(norm, norms[i])), earliest if earliest < j else None)
            if match is not None:
                errors.append(_error(ErrorType.REPETITION, read.text, (later.start, later.end),
                                     f"This sentence repeats an earlier one in the {name}: "
                                     f"\"{' '.join(sentences[match].text.split())}\"."))
    return errors


def _dedupe(errors: list[SuspectedError]) -> list[SuspectedError]:
    """The most confident of the suspected errors of one type that overlap; kept spans are indexed by
    position, so each error is compared with its neighbours only."""
    kept: list[SuspectedError] = []
    spans: dict[tuple, list[tuple[int, int, int]]] = {}  # (type, where) -> sorted (start, end, i) of kept spans
    for error in sorted(errors, key=lambda e: -e.confidence):
        if error.start is not None:
            placed = spans.setdefault((error.type, error.where), [])
            at = bisect_left(placed, (error.end, float("inf")))  # kept spans starting at or before error.end
            # kept spans never overlap each other, so their ends rise with their starts: look back while they can
            i = at - 1
            while i >= 0 and placed[i][1] >= error.start and not kept[placed[i][2]].overlaps(error.start, error.end):
                i -= 1
            if i >= 0 and placed[i][1] >= error.start:
                continue
            insort(placed, (error.start, error.end, len(kept)))
        kept.append(error)
    return sorted(kept, key=lambda e: (e.where != "report", e.start if e.start is not None else -1, e.type.value))


def check_rules(report: str, reference: str | None = None) -> list[SuspectedError]:
    """Suspected errors in ``report`` found by rules: impression against findings, report against the
    ``reference`` findings when given, and repeated sentences."""
    read = read_report(report)
    errors: list[SuspectedError] = []
    if read.has_findings_and_impression:
        errors += _Compare(report, read, ("impression",), read, ("findings",), "impression", "findings",
                           "report").run()
    if reference is not None and reference.strip():
        ref = read_report(reference)
        errors += _Compare(report, read, read.body, ref, ref.body, "report", "reference findings", "reference").run()
    errors += _repetitions(read) + _anatomy(read)
    return _dedupe(errors)


# --------------------------------------------------------------------------------------------
# The model-backed checker
# --------------------------------------------------------------------------------------------

ERRORS_SCHEMA: dict[str, Any] = {
    "title": "report_errors", "type": "object", "required": ["errors"], "additionalProperties": False,
    "properties": {"errors": {"type": "array", "items": {
        "type": "object", "required": ["type", "quote", "explanation"], "additionalProperties": False,
        "properties": {"type": {"type": "string", "enum": [t.value for t in ErrorType]},
                       "quote": {"type": "string"}, "explanation": {"type": "string"},
                       "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}}},
}
TYPE_HELP = {
    ErrorType.NEGATION: "a finding stated where it should be denied, or denied where it should be stated",
    ErrorType.LATERALITY: "left and right (or bilateral) mixed up",
    ErrorType.MEASUREMENT: "a size, number or unit that is wrong (12 mm written 21 mm, mm written cm)",
    ErrorType.ADDED: "a finding in the conclusion (or report) that nothing else supports",
    ErrorType.OMITTED: "a significant finding left out of the conclusion (or report)",
    ErrorType.SEVERITY: "the wrong grade (mild written severe, small written large)",
    ErrorType.REPETITION: "a sentence or statement repeated",
}
_TYPE_WORDS = [(ErrorType.NEGATION, r"negat|polarity|contradict"), (ErrorType.LATERALITY, r"later|side|left|right"),
               (ErrorType.MEASUREMENT, r"measur|unit|size|number|dimension"),
               (ErrorType.OMITTED, r"omi|miss|drop|left out"),
               (ErrorType.ADDED, r"add|extra|hallucin|insert|unsupported|spurious"),
               (ErrorType.SEVERITY, r"sever|grade|degree"), (ErrorType.REPETITION, r"repet|repeat|duplic")]
_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n?(.*?)(?:```|$)", re.S | re.I)
_NO_ERRORS = re.compile(r"\bno\s+(?:suspected\s+|obvious\s+|apparent\s+)?(?:errors?|issues|inconsistenc(?:y|ies)|"
                        r"problems|mistakes)\b|^\s*(?:none|\[\s*\])\W*$", re.I)


def error_type(value: Any) -> ErrorType | None:
    """An error type from a model's wording ("Laterality error" -> laterality_swap); None if unknown."""
    text = str(value or "").strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return ErrorType(text)
    except ValueError:
        pass
    for kind, words in _TYPE_WORDS:
        if re.search(words, text.replace("_", " ")):
            return kind
    return None


def _json_values(text: str) -> list[Any]:
    """Every JSON value that starts at a '[' or '{' in the text or its code fences, outermost first."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    for candidate in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        pos, end = 0, len(candidate)
        while pos < end:
            starts = [i for i in (candidate.find("[", pos), candidate.find("{", pos)) if i != -1]
            if not starts:
                break
            start = min(starts)
            try:
                value, stop = decoder.raw_decode(candidate, start)
            except json.JSONDecodeError:
                pos = start + 1
                continue
            values.append(value)
            pos = stop
    return values


def _items(text: str) -> list[dict] | None:
    """The list of error objects in a model reply: a JSON list, ``{"errors": [...]}``, a single error
    object, or (a truncated reply) the complete objects that can be read; None if there is none."""
    values = _json_values(text)
    for value in values:
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            return value
        if isinstance(value, dict):
            for key in ("errors", "suspected_errors", "issues", "findings", "error_list"):
                if isinstance(value.get(key), list):
                    return [v for v in value[key] if isinstance(v, dict)]
    singles = [v for v in values if isinstance(v, dict) and "type" in v]
    return singles or None


def locate(quote: str, text: str) -> tuple[int, int] | None:
    """Where ``quote`` is in ``text``: exactly, ignoring case, then ignoring spacing and punctuation at the ends."""
    quote = quote.strip()
    if not quote:
        return None
    at = text.find(quote)
    if at != -1:
        return at, at + len(quote)
    words = re.findall(r"[\w.]+", quote)
    if not words:
        return None
    match = re.search(r"\W+".join(re.escape(w.strip(".")) for w in words if w.strip(".")), text, re.I)
    return (match.start(), match.end()) if match else None


def parse_model_errors(reply: str, report: str,
                       reference: str | None = None) -> tuple[list[SuspectedError] | None, int]:
    """Suspected errors from a model's reply, and how many of its items were dropped (unknown type);
    ``None`` when the reply cannot be understood. "No errors" (in words or as ``[]``) is an empty list."""
    items = _items(reply or "")
    if items is None:
        return ([], 0) if _NO_ERRORS.search(reply or "") else (None, 0)
    errors, dropped = [], 0
    for item in items:
        kind = error_type(item.get("type") or item.get("error_type") or item.get("category"))
        if kind is None:
            dropped += 1
            continue
        quote = str(item.get("quote") or item.get("text") or item.get("span") or item.get("evidence") or "")
        span, where = locate(quote, report), "report"
        if span is None and reference and (found := locate(quote, reference)):
            span, where = found, "reference"
        try:
            confidence = min(1.0, max(0.0, float(item.get("confidence", 0.5))))
        except (TypeError, ValueError):
            confidence = 0.5
        source = report if where == "report" else reference or ""
        errors.append(SuspectedError(
            type=kind, start=span[0] if span else None, end=span[1] if span else None,
            quote=source[span[0]:span[1]] if span else quote, where=where, confidence=confidence,
            explanation=str(item.get("explanation") or item.get("reason") or item.get("description") or "")))
    if items and not errors:
        return None, dropped
    return _dedupe(errors), dropped


async def check_with_model(model: Any, report: str, reference: str | None = None, image: Any = None,
                           settings: Any = None) -> tuple[list[SuspectedError] | None, str, int]:
    """Ask ``model`` for the errors in ``report`` (with the reference and an ``ImagePart`` when given):
    (errors or None when the reply is not understood, the reply text, items dropped)."""
    from agentclinic.agents.llm import render_prompt
    from agentclinic.backends.base import Message, Settings, TextPart, call_model

    types = "\n".join(f"- {t.value}: {TYPE_HELP[t]}" for t in ErrorType)
    system = render_prompt("report_check", error_types=types)
    body = f"Report to check:\n\"\"\"\n{report.strip()}\n\"\"\""
    if reference:
        body += f"\n\nReference findings:\n\"\"\"\n{reference.strip()}\n\"\"\""
    if image is not None:
        body += "\n\nThe image the report describes is attached."
    content: str | list = [TextPart(text=body), image] if image is not None else body
    messages = [Message(role="system", content=system), Message(role="user", content=content)]
    result = await call_model(model, messages, settings or Settings(max_tokens=800), role="tool",
                              json_schema=ERRORS_SCHEMA)
    errors, dropped = await asyncio.to_thread(parse_model_errors, result.text, report, reference)
    return errors, result.text, dropped


# --------------------------------------------------------------------------------------------
# The tool
# --------------------------------------------------------------------------------------------


MAX_REPORT = 65_536  # characters of a report or reference to check


class CheckReportArguments(ToolArguments):
    report: str | None = Field(None, max_length=MAX_REPORT, description=(
        f"The report text to check (give this or `test`); at most {MAX_REPORT} characters."))
    test: str | None = Field(None, max_length=200, description="The name of a test result received in this "
                                                               "episode whose report should be checked (give this "
                                                               "or `report`).")
    reference: str | None = Field(None, max_length=MAX_REPORT, description=(
        f"Reference findings to compare the report with (optional; at most {MAX_REPORT} characters)."))
    image_id: str | None = Field(None, max_length=200, description="The id of the case image the report "
                                                                   "describes; an image-capable checker model "
                                                                   "sees it (optional).")

    @model_validator(mode="after")
    def _one_source(self) -> CheckReportArguments:
        if (self.report is None) == (self.test is None):
            raise ValueError("give exactly one of `report` (the text) or `test` (the name of a received result)")
        return self


def _lookup(name: str, reports: dict[str, str]) -> tuple[str, str]:
    wanted = " ".join(name.split()).casefold()
    for key, text in reports.items():
        if " ".join(key.split()).casefold() == wanted:
            return key, text
    available = ", ".join(sorted(reports)) or "none received yet"
    raise ToolError(f"no received result named {name!r}; available: {available}")


def render(errors: list[SuspectedError], checker: str) -> str:
    """The result for the doctor: a short numbered list, or 'no suspected errors'."""
    if not errors:
        return f"No suspected errors ({checker} check)."
    lines = [f"{len(errors)} suspected error{'s' if len(errors) != 1 else ''} ({checker} check):"]
    for i, error in enumerate(errors, 1):
        where = " [in the reference]" if error.where == "reference" else ""
        quote = " ".join(error.quote.split())
        quote = quote if len(quote) <= 90 else quote[:87] + "..."
        lines.append(f"{i}. {error.type.label}{where}: \"{quote}\" - {error.explanation} "
                     f"(confidence {error.confidence:.2f})")
    return "\n".join(lines)


class CheckReportTool:
    name: ClassVar[str] = "check_report"
    description: ClassVar[str] = (
        "Check a radiology report for errors: findings negated or stated wrongly, left/right swaps, changed "
        "measurements or units, findings added to or left out of the impression, changed severity, repeated "
        "sentences. Give the report text or the name of a received test result; optionally reference findings "
        "and the image id. Returns the suspected errors with the quoted text.")
    Arguments: ClassVar[type[ToolArguments]] = CheckReportArguments

    async def run(self, arguments: CheckReportArguments, context: ToolContext) -> ToolResult:
        if arguments.test is not None:
            name, report = _lookup(arguments.test, context.reports)
            source = f"test:{name}"
            if len(report) > MAX_REPORT:
                raise ToolError(f"the result {name!r} has {len(report)} characters; check_report reads at most "
                                f"{MAX_REPORT}")
        else:
            report, source = arguments.report or "", "report"
        if not report.strip():
            raise ToolError("the report to check is empty")
        reference = arguments.reference if arguments.reference and arguments.reference.strip() else None
        data: dict[str, Any] = {"source": source, "reference": reference is not None}
        image = self._image(arguments.image_id, context, data)
        rule_errors = await asyncio.to_thread(check_rules, report, reference)
        errors, checker = rule_errors, "rule-based"
        data["checker"] = "rules"
        if context.model is not None:
            found, reply, dropped = await check_with_model(context.model, report, reference, image)
            data |= {"model": getattr(context.model, "name", str(context.model)), "model_reply": reply,
                     "rule_errors": [e.model_dump(mode="json") for e in rule_errors]}
            if dropped:
                data["dropped_items"] = dropped
            if found is None:
                snippet = " ".join((reply or "").split())[:120]
                data["fallback"] = f"the model's reply was not understood ({snippet!r}); rule-based check used"
            else:
                errors, checker, data["checker"] = found, "model", "model"
        data["errors"] = [e.model_dump(mode="json") for e in errors]
        return ToolResult(text=render(errors, checker), data=data)

    @staticmethod
    def _image(image_id: str | None, context: ToolContext, data: dict) -> Any:
        if image_id is None:
            return None
        info = context.images.get(image_id)
        if info is None:
            available = ", ".join(sorted(context.images)) or "none"
            raise ToolError(f"no image {image_id!r} in this case; available: {available}")
        if context.model is None:
            data["image"] = "not used: the rule-based checker reads text only"
            return None
        if not getattr(context.model, "supports_images", False):
            data["image"] = f"not sent: {getattr(context.model, 'name', 'the model')} takes no images"
            return None
        from agentclinic.agents.llm import image_part

        part = image_part(info["path"], source=image_id) if info.get("path") else None
        if part is None:
            data["image"] = f"not sent: image {image_id!r} is not available ({info.get('reason', 'no local file')})"
            return None
        data["image"] = f"sent: {image_id}"
        return part


register_tool(CheckReportTool())
