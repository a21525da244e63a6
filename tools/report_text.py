"""Reading radiology reports: the error taxonomy, sections, sentences and finding mentions.

A report is split into sections (FINDINGS, IMPRESSION, ... or one free-text part) and sentences, in
which *mentions* of findings from ``report_vocab`` are found: each with its polarity (negation cues
before or after the term, "normal" phrasings such as "heart size is normal"), hedging, laterality,
severity words and measurements (normalised to mm). The rule checker (``report_check``) and the
error injector (``report_errors``) both work on what ``read_report`` returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property, lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel

from agentclinic.tools.report_vocab import (
    ANCHOR_RX, CHRONIC, CLAUSE_END, CONCEPT_RX, CONCEPTS, DESCRIPTIVE, EXPLAINS, GENERIC, HEDGE, HEDGE_AFTER, HEDGE_END,
    MEASURE_RX, NORMAL_RX, POST_NEG, PRE_NEG, PSEUDO_NEG, QUALIFIER_RX, SCOPE_END, SEVERITY_RX, SEVERITY_WORDS,
    SIDE_RX, STRONG_END, Concept, soft_ranks, unit_mm)


class ErrorType(StrEnum):
    """The kinds of report error the checker looks for and the injector plants."""

    NEGATION = "negation_flip"
    LATERALITY = "laterality_swap"
    MEASUREMENT = "measurement_change"
    ADDED = "added_finding"
    OMITTED = "omitted_finding"
    SEVERITY = "severity_change"
    REPETITION = "repetition"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


# --------------------------------------------------------------------------------------------
# Reading a report
# --------------------------------------------------------------------------------------------

_HEADER = re.compile(r"(?:^|(?<=\n))[ \t]*(?:\*\*)?(findings?|impressions?|conclusions?|opinion|summary|comparison|"
                     r"indications?|history|clinical (?:history|information|indication)|technique|examination|"
                     r"procedure)(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*|(?<![\w])(FINDINGS|IMPRESSION|CONCLUSION|COMPARISON|"
                     r"INDICATION|TECHNIQUE)[ \t]*:[ \t]*", re.I)
_SECTION_NAMES = {"finding": "findings", "findings": "findings", "impression": "impression",
                  "impressions": "impression", "conclusion": "impression", "conclusions": "impression",
                  "opinion": "impression", "summary": "impression"}


@dataclass
class Section:
    name: str  # findings | impression | text (no headers) | other header names
    start: int  # content start (after the header)
    end: int


@dataclass
class Sentence:
    section: str
    start: int
    end: int
    lead: int  # where the sentence begins with its list marker ("2. ")
    text: str


@dataclass
class Mention:
    """A finding named in a sentence, with what the sentence says about it."""

    concept: str
    start: int  # the finding term, in report coordinates
    end: int
    sentence: Sentence
    negated: bool = False
    hedged: bool = False
    normal: bool = False  # a "normal" phrasing ("lungs are clear") that denies the finding
    cue: tuple[int, int] | None = None  # negation cue span
    sides: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, word)
    severities: list[tuple[int, int, frozenset[int], str]] = field(default_factory=list)  # (start, end, ranks, text)
    measures: list[tuple[int, int, tuple[float, ...]]] = field(default_factory=list)  # (start, end, dims in mm)
    qualifiers: frozenset[str] = frozenset()
    explained: bool = False  # a descriptive finding the sentence explains as a minor one ("opacity, likely scarring")

    @property
    def info(self) -> Concept:
        return CONCEPTS[self.concept]

    @cached_property  # read once the sentence is read (``_attach`` fills ``sides``)
    def side(self) -> frozenset[str]:
        out: set[str] = set()
        for _, _, word in self.sides:
            word = word.lower()
            out |= {"left", "right"} if word.startswith(("bilateral", "both")) else {word.split("-")[0]}
        return frozenset(out)

    @cached_property
    def ranks(self) -> frozenset[int]:
        """The grades the mention is given; minimal/slight/trace and mild/small count as one."""
        return soft_ranks(r for _, _, ranks, _ in self.severities for r in ranks)

    @property
    def phrase(self) -> tuple[int, int]:
        """The span of the term with its cue and attached words."""
        points = [(self.start, self.end)] + ([self.cue] if self.cue else []) + [(s, e) for s, e, *_ in self.sides] \
            + [(s, e) for s, e, *_ in self.severities] + [(s, e) for s, e, _ in self.measures]
        return min(p[0] for p in points), max(p[1] for p in points)

    @property
    def generic(self) -> bool:
        return self.concept == GENERIC

    @property
    def positive(self) -> bool:
        return not self.negated and not self.hedged

    @property
    def chronic(self) -> bool:
        return bool(self.qualifiers & CHRONIC)

    @property
    def significant(self) -> bool:
        return self.info.significant and self.positive and not self.chronic and not self.explained

    @property
    def measure_key(self) -> str:
        return self.info.measure_key

    def compatible(self, other: Mention) -> bool:
        """Whether the two mentions can be on the same side (either has no side, or they share one)."""
        return not self.side or not other.side or bool(self.side & other.side)


@dataclass
class Anchor:
    """An organ word that carries measurements ("the spleen measures 15.2 cm")."""

    key: str
    start: int
    end: int
    sentence: Sentence
    measures: list[tuple[int, int, tuple[float, ...]]] = field(default_factory=list)

    @property
    def measure_key(self) -> str:
        return self.key


@dataclass
class ReadReport:
    """A report read into sections, sentences and mentions."""

    text: str
    sections: list[Section]
    sentences: list[Sentence]
    mentions: list[Mention]
    anchors: list[Anchor]

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def part(self, *names: str) -> tuple[list[Sentence], list[Mention], list[Anchor]]:
        """The sentences, mentions and anchors of the named sections."""
        keep = set(names)
        return ([s for s in self.sentences if s.section in keep],
                [m for m in self.mentions if m.sentence.section in keep],
                [a for a in self.anchors if a.sentence.section in keep])

    @property
    def has_findings_and_impression(self) -> bool:
        return self.section("findings") is not None and self.section("impression") is not None

    @property
    def body(self) -> tuple[str, ...]:
        """The sections that carry the report's content."""
        names = tuple(s.name for s in self.sections if s.name in ("findings", "impression", "text"))
        return names or ("text",)


def split_sections(text: str) -> list[Section]:
    """Sections by their headers ("FINDINGS:", "Impression:"); a report without the usual headers is one
    section named ``text``."""
    headers = list(_HEADER.finditer(text))
    if not headers:
        return [Section("text", 0, len(text))]
    sections = []
    if text[: headers[0].start()].strip():
        sections.append(Section("text", 0, headers[0].start()))
    for i, match in enumerate(headers):
        word = (match.group(1) or match.group(2)).lower()
        name = _SECTION_NAMES.get(word, word)
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        sections.append(Section(name, match.end(), end))
    return sections


_SENT_END = re.compile(r"(?<!\b[Ee]\.g)(?<!\b[Ii]\.e)(?<!\bvs)(?<!\bDr)(?<!\bapprox)[.!?](?=\s|$)|\n\s*\n|\n(?=\s*"
                       r"(?:\d{1,2}[.)]|[-•*])\s)")
_LIST_MARK = re.compile(r"\s*(?:\d{1,2}[.)]|[-•*])\s+|\s+")
_INLINE_ITEM = re.compile(r"(?<=[^\s.!?])\s+(\d{1,2})[.)]\s+(?=[A-Z])")
_NUMBERED = re.compile(r"(\d{1,2})[.)]\s")
MAX_SENTENCE = 1000  # characters: a longer run without a sentence end is cut at a space (keeps reading linear)


def _long_cuts(text: str, start: int, end: int) -> list[int]:
    """Where to cut ``text[start:end]`` so that no piece is longer than ``MAX_SENTENCE`` (at a space when
    there is one in the second half of the piece)."""
    cuts = []
    while end - start > MAX_SENTENCE:
        space = text.rfind(" ", start + MAX_SENTENCE // 2, start + MAX_SENTENCE)
        start = space + 1 if space != -1 else start + MAX_SENTENCE
        cuts.append(start)
    return cuts


def _earlier_numbers(text: str, section: Section) -> dict[str, int]:
    """Each list number written in the section at its start or after a space ("2." / "2)" and a space),
    with where its first such writing ends."""
    first: dict[str, int] = {}
    for match in _NUMBERED.finditer(text, section.start, section.end):
        if match.start() == section.start or text[match.start() - 1].isspace():
            first.setdefault(match.group(1), match.end())
    return first


def _marker_before(text: str, lo: int, hi: int) -> int | None:
    """Where a list number ("2." / "3)") that ends ``text[lo:hi]`` (spaces aside) starts, when it follows
    ``lo``, a sentence end and a space, or a line break."""
    j = hi
    while j > lo and text[j - 1].isspace():
        j -= 1
    if j - lo < 2 or text[j - 1] not in ".)":
        return None
    d = j - 1
    while d > lo and d > j - 4 and text[d - 1].isdecimal():
        d -= 1
    if d == j - 1 or j - 1 - d > 2:
        return None
    if d == lo:
        return d
    w = d
    while w > lo and text[w - 1].isspace():
        w -= 1
    if w == d:
        return None
    if "\n" in text[w:d] or (w > lo and text[w - 1] in ".!?"):
        return d
    return None


def split_sentences(text: str, section: Section) -> list[Sentence]:
    """The sentences of a section, with offsets in the report; list markers ("1.") are not sentences.
    A run of more than ``MAX_SENTENCE`` characters without a sentence end is cut into pieces."""
    out: list[Sentence] = []
    pos = section.start
    chunk_ends = [m.end() for m in _SENT_END.finditer(text, section.start, section.end)] + [section.end]
    numbers = _earlier_numbers(text, section)
    for match in _INLINE_ITEM.finditer(text, section.start, section.end):  # "1. Cardiomegaly 2. Effusion"
        number = int(match.group(1))
        if number >= 2 and numbers.get(str(number - 1), section.end + 1) <= match.start():
            chunk_ends.append(match.start())
    chunk_ends.sort()
    chunk_ends = [cut for a, b in zip([section.start, *chunk_ends], chunk_ends) for cut in (*_long_cuts(text, a, b), b)]
    for end in chunk_ends:
        if end <= pos:
            continue
        lead = pos
        while lead < end and text[lead].isspace():
            lead += 1
        start = lead
        while True:  # skip list markers, including a marker that stands alone ("1." before the sentence)
            marker = _LIST_MARK.match(text, start, end)
            if not marker or marker.end() == start:
                break
            start = marker.end()
        if re.fullmatch(r"\s*\d{1,2}[.)]\s*", text[start:end]):
            continue  # a list number cut off as its own piece: it belongs to the next sentence
        stop = end
        while stop > start and text[stop - 1].isspace():
            stop -= 1
        if stop > start and re.search(r"\w", text[start:stop]):
            out.append(Sentence(section.name, start, stop, lead, text[start:stop]))
        pos = end
    # a list number that ended a chunk ("1.") leaves its sentence's lead at the number: recover it
    for sentence in out:
        marker = _marker_before(text, section.start, sentence.start)
        if marker is not None:
            sentence.lead = marker
    return out


_Span = tuple[int, int, str, bool]  # start, end, concept, a "normal" phrasing


def _select(spans: list[_Span]) -> list[_Span]:
    """Longest non-overlapping matches."""
    chosen: list[_Span] = []
    for span in sorted(spans, key=lambda s: (-(s[1] - s[0]), s[0])):
        if all(span[1] <= c[0] or span[0] >= c[1] for c in chosen):
            chosen.append(span)
    return sorted(chosen)


def _clause_bounds(text: str, sentence: Sentence) -> list[tuple[int, int]]:
    bounds, pos = [], sentence.start
    for match in CLAUSE_END.finditer(text, sentence.start, sentence.end):
        bounds.append((pos, match.start()))
        pos = match.end()
    bounds.append((pos, sentence.end))
    return bounds


def _read_sentence(text: str, sentence: Sentence) -> tuple[list[Mention], list[Anchor]]:
    s0 = sentence.start
    body = text[s0:sentence.end]
    spans: list[_Span] = []
    for normal, table in ((False, CONCEPT_RX), (True, NORMAL_RX)):
        for name, rx in table:
            spans += [(s0 + m.start(), s0 + m.end(), name, normal) for m in rx.finditer(body)]
    mentions = [Mention(name, s, e, sentence, negated=normal, normal=normal) for s, e, name, normal in _select(spans)]
    taken = [(m.start, m.end) for m in mentions]
    anchors = [Anchor(key, s0 + m.start(), s0 + m.end(), sentence) for key, rx in ANCHOR_RX for m in rx.finditer(body)
               if all(s0 + m.end() <= a or s0 + m.start() >= b for a, b in taken)]
    for mention in mentions:
        if not mention.normal:
            _negation(text, sentence, mention)
        elif re.search(r"\b(?:no|not|non)\s*-?\s*$", text[sentence.start:mention.start], re.I):
            mention.negated = False  # "not normal in size", "no normal ..." deny the normal phrase
        mention.hedged = _hedged(text, sentence, mention)
    _attach(text, sentence, mentions, anchors)
    for i, mention in enumerate(mentions):
        mention.explained = mention.concept in DESCRIPTIVE and (any(
            not later.info.significant and not later.generic for later in mentions[i + 1:])
            or bool(EXPLAINS.search(text, mention.end, sentence.end)))
    return mentions, anchors


_JOINED = re.compile(r"\b(?:and|but|with)\b")  # a cue after the term that belongs to another clause


def _hedged(text: str, sentence: Sentence, mention: Mention) -> bool:
    """A finding named as a possibility ("may represent X", "X versus Y", "X cannot be excluded")."""
    if sentence.text.rstrip().endswith("?"):
        return True
    before = text[sentence.start:mention.start]
    cues = list(HEDGE.finditer(before))
    if cues:
        gap = before[cues[-1].end():]
        if len(gap.split()) <= 12 and not HEDGE_END.search(gap):
            return True
    if HEDGE.search(text[mention.start:mention.end]) or text[mention.start - 1:mention.start] == "/":
        return True
    after = HEDGE_AFTER.match(text, mention.end, sentence.end)
    return bool(after and not _JOINED.search(after.group(0)))


def _negation(text: str, sentence: Sentence, mention: Mention) -> None:
    before = text[sentence.start:mention.start]
    pseudo = [(p.start(), p.end()) for p in PSEUDO_NEG.finditer(before)]
    cues = [c for c in PRE_NEG.finditer(before) if not any(a <= c.start() < b for a, b in pseudo)]
    if cues:
        cue = cues[-1]
        gap = before[cue.end():]
        if len(gap.split()) <= 10 and not SCOPE_END.search(gap):
            mention.negated = True
            mention.cue = (sentence.start + cue.start(), sentence.start + cue.end())
            return
    post = POST_NEG.match(text, mention.end, sentence.end)
    if post and not _JOINED.search(post.group(0)):
        mention.negated = True
        mention.cue = (post.start(), post.end())


def _attach(text: str, sentence: Sentence, mentions: list[Mention], anchors: list[Anchor]) -> None:
    """Give each side word, severity word and measurement to the finding it describes: inside the term,
    else the next finding in its clause, else the previous one in its clause, else the nearest in the sentence."""
    clauses = _clause_bounds(text, sentence)
    spans = [(m.start, m.end) for m in mentions]

    def owner(start: int, end: int) -> Mention | None:
        for m in mentions:
            if m.start <= start and end <= m.end:
                return m
        if any(a <= start < b for a, b in spans):
            return None
        clause = next(((a, b) for a, b in clauses if a <= start < b), (sentence.start, sentence.end))
        after = [m for m in mentions if m.start >= end and m.start < clause[1]]
        if after:
            return after[0]
        before = [m for m in mentions if m.end <= start and m.end > clause[0]]
        if before:
            return before[-1]
        return None

    def nearest(start: int) -> Mention | None:
        return min(mentions, key=lambda m: abs(m.start - start), default=None)

    for match in SIDE_RX.finditer(text, sentence.start, sentence.end):
        target = owner(match.start(), match.end())
        if target is None and not any(a <= match.start() < b for a, b in spans):
            earlier = [m for m in mentions if m.end <= match.start()]
            target = earlier[-1] if earlier else nearest(match.start())
        if target is not None:
            target.sides.append((match.start(), match.end(), match.group(1)))
    for match in SEVERITY_RX.finditer(text, sentence.start, sentence.end):
        words = [w.lower() for w in match.groups() if w]
        scales = {SEVERITY_WORDS[w] for w in words}
        low, high = min(r for _, r in scales), max(r for _, r in scales)
        target = owner(match.start(), match.end())
        if target is not None:
            target.severities.append((match.start(), match.end(), frozenset(range(low, high + 1)), match.group(0)))
    for match in MEASURE_RX.finditer(text, sentence.start, sentence.end):
        unit = unit_mm(match.group(4))
        dims = tuple(round(float(g) * unit, 3) for g in match.groups()[:3] if g)
        target = owner(match.start(), match.end())
        if target is None:
            anchor = min(anchors, key=lambda a: abs(a.start - match.start()), default=None)
            if anchor is not None:
                anchor.measures.append((match.start(), match.end(), dims))
                continue
            target = nearest(match.start())
        if target is not None:
            target.measures.append((match.start(), match.end(), dims))
    for mention in mentions:
        head = sentence.start
        for match in STRONG_END.finditer(text, sentence.start, mention.start):
            head = match.end()
        words = QUALIFIER_RX.findall(text[head:mention.end])
        mention.qualifiers = frozenset(w.lower() for w in words)


@lru_cache(maxsize=4096)
def read_report(text: str) -> ReadReport:
    """Read a report: sections, sentences, finding mentions and organ anchors (cached by text)."""
    sections = split_sections(text)
    sentences = [s for section in sections for s in split_sentences(text, section)]
    mentions: list[Mention] = []
    anchors: list[Anchor] = []
    for sentence in sentences:
        found, held = _read_sentence(text, sentence)
        mentions += found
        anchors += held
    return ReadReport(text, sections, sentences, mentions, anchors)


def normalise_sentence(text: str) -> str:
    """Lower case, punctuation as spaces, spacing folded: for comparing sentences."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def measure_values(mentions: list[Mention], anchors: list[Anchor]) -> dict[str, set[float]]:
    """Every measured dimension (mm) by measurement key (the finding's group or the organ)."""
    out: dict[str, set[float]] = {}
    for item in [*mentions, *anchors]:
        for _, _, dims in item.measures:
            out.setdefault(item.measure_key, set()).update(dims)
    return out


def same_value(a: float, b: float) -> bool:
    return abs(a - b) <= 0.01 + 1e-6 * max(a, b)


# --------------------------------------------------------------------------------------------
# Writing reports, and our own clean ones
# --------------------------------------------------------------------------------------------


def compose_report(findings: str, impression: str) -> str:
    """A report text from its two main sections."""
    return f"FINDINGS: {findings.strip()}\n\nIMPRESSION: {impression.strip()}"


class TwoSections:
    """Mixin for a report held as ``findings`` and ``impression`` attributes: its ``text``."""

    @property
    def text(self) -> str:
        return compose_report(self.findings, self.impression)  # type: ignore[attr-defined]


REPORTS_FILE = Path(__file__).with_name("data") / "reports.yaml"


class SampleReport(TwoSections, BaseModel):
    """One of the clean reports in ``tools/data/reports.yaml``."""

    id: str
    modality: str
    findings: str
    impression: str


def sample_reports(path: Path | None = None) -> list[SampleReport]:
    """The clean radiology reports written for this project (``tools/data/reports.yaml``)."""
    data = yaml.safe_load((path or REPORTS_FILE).read_text(encoding="utf-8"))
    return [SampleReport.model_validate(item) for item in data["reports"]]
