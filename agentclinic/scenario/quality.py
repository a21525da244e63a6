"""Quality gates: what makes a scenario unusable (errors) or suspicious (warnings).

Errors: schema violations, a missing diagnosis, the diagnosis leaked into what the
doctor is shown, the diagnosis in its own differential, model-refusal text, ICD-10-CM
codes that do not exist, unknown price codes, assets that are missing, unreadable, not
images, over the size limits, or outside the scenario's folder or package.
Warnings: near-duplicate cases, remote assets, no tests, a diagnosis without a code,
names that are mentioned in a patient fact, tests whose names collide.

Conversation stations skip the diagnostic gates and pass their own (``Checker.station``): errors for an
information item with no keywords or a plain version that repeats the clinical one, no concern with a cue,
fewer than two lines for a state, an unknown rubric, unclear provenance, refusal text in the person's lines;
warnings for a station with nothing to deliver, a concern without keywords, no escalating or settling moves.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import combinations
from pathlib import Path
from typing import Literal

import simple_icd_10_cm as icd
from pydantic import BaseModel

from agentclinic.errors import ScenarioError
from agentclinic.scenario.assets import check_asset, is_remote
from agentclinic.scenario.loaders import ScenarioSet, load_scenarios, source_of
from agentclinic.scenario.prices import PriceTable, price_table
from agentclinic.scenario.schema import Condition, Scenario

REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|as an ai\b|language model|i (cannot|can'?t|am unable to) (provide|assist|help|share)"
    r"|(does|do) not (include|contain|provide) (any )?(specific )?"
    r"(instrument readings|test results|numerical test results|information))", re.I)
MODEL_TALK = re.compile(r"\b(as an ai\b|language model|i (cannot|can'?t|am unable to) (provide|assist with|help with) "
                        r"(that|this|your) (request|question))", re.I)
"""Refusal text in a station's lines (a person may say sorry, so ``REFUSAL`` is too broad there)."""
QUALIFIERS = {"acute", "chronic", "primary", "secondary", "severe", "mild", "moderate", "early", "late", "new",
              "onset", "left", "right", "bilateral", "unilateral", "recurrent", "suspected", "probable", "with", "of"}
NEAR_DUPLICATE = 0.8


class Issue(BaseModel):
    severity: Literal["error", "warning"]
    code: str
    message: str
    scenario: str | None = None
    path: str | None = None
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = ":".join(str(x) for x in (self.path, self.line) if x is not None)
        target = " ".join(x for x in (self.scenario, f"[{self.field}]" if self.field else None) if x)
        return f"{where} {target}: {self.message}".strip()


class QualityReport(BaseModel):
    scenarios: int
    kinds: dict[str, int] = {}  # diagnostic cases and conversation stations
    specialties: dict[str, int]
    errors: list[Issue]
    warnings: list[Issue]

    @property
    def ok(self) -> bool:
        return not self.errors


def normalise(text: str) -> str:
    return " " + " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split()) + " "


def mentions(text: str, name: str) -> bool:
    """Whether ``name`` appears in ``text`` as whole words; short acronyms must match case."""
    if len(name) <= 4 and name.isupper():
        return re.search(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", text) is not None
    needle = normalise(name)
    return needle.strip() != "" and needle in normalise(text)


def core_name(name: str) -> str | None:
    """The diagnosis without qualifiers ('Acute appendicitis' -> 'appendicitis'), if it differs."""
    words = [w for w in normalise(name).split() if w not in QUALIFIERS]
    core = " ".join(words)
    return core if core and core != normalise(name).strip() and max(map(len, words)) >= 6 else None


def shown_to_doctor(s: Scenario) -> Iterator[tuple[tuple, str]]:
    """(field path, text) of everything the doctor can read without asking the patient."""
    yield ("title",), s.title
    yield ("doctor_brief",), s.doctor_brief
    for i, finding in enumerate(s.examination):
        yield ("examination", i, "result"), finding.result
    for i, test in enumerate(s.tests):
        yield ("tests", i, "result"), test.result
    for i, image in enumerate(s.images):
        if image.description:
            yield ("images", i, "description"), image.description


def known_code(code: str) -> bool:
    return icd.is_valid_item(code) or icd.is_valid_item(code.replace(".", ""))


class Checker:
    """Runs every gate over a set of scenarios and collects issues."""

    def __init__(self, prices: PriceTable | None = None):
        self.prices = prices or price_table()
        self.issues: list[Issue] = []

    def add(self, severity: str, code: str, message: str, s: Scenario | None = None, loc: tuple = ()) -> None:
        source = source_of(s) if s is not None else None
        self.issues.append(Issue(
            severity=severity, code=code, message=message, scenario=s.id if s else None,
            path=str(source.path) if source else None, line=source.line_of(loc) if source else None,
            field=".".join(map(str, loc)) or None))

    def scenario(self, s: Scenario) -> None:
        if s.is_station:
            self.station(s)
            return
        self.codes(s)
        self.leaks(s)
        self.refusals(s)
        self.assets(s)
        self.tests(s)
        if not s.facts:
            self.add("warning", "no-facts", "the patient has no facts to tell", s, ("facts",))
        elif not any(f.disclosure.value == "volunteer" for f in s.facts):
            self.add("warning", "nothing-volunteered", "no fact is volunteered: the patient says nothing when greeted",
                     s, ("facts",))

    def station(self, s: Scenario) -> None:
        """The gates of a conversation station (the diagnostic ones do not apply)."""
        from agentclinic.conversation.rubric import rubric_ids

        c = s.conversation
        for i, fact in enumerate(s.facts):
            if MODEL_TALK.search(fact.text):
                self.add("error", "refusal-text", f"model-refusal text instead of content: {fact.text[:80]!r}", s,
                         ("facts", i, "text"))
        p = s.provenance
        if not (p.synthetic and p.source == "synthetic") and not p.reference:
            self.add("error", "provenance", "a station that is not synthetic needs a reference to its source", s,
                     ("provenance",))
        if not c.information:
            self.add("warning", "no-information", "nothing to deliver: the knowledge items cannot be graded", s,
                     ("conversation", "information"))
        for i, item in enumerate(c.information):
            if not item.keywords:
                self.add("error", "no-keywords", f"information {item.id!r} has no keywords: its delivery cannot be "
                         "recognised", s, ("conversation", "information", i, "keywords"))
            if normalise(item.plain) == normalise(item.text):
                self.add("error", "plain-not-plain", f"information {item.id!r}: the plain version repeats the "
                         "clinical one", s, ("conversation", "information", i, "plain"))
        if not any(concern.cue for concern in c.concerns):
            self.add("error", "no-cue", "the person needs at least one concern with a cue to drop", s,
                     ("conversation", "concerns"))
        for i, concern in enumerate(c.concerns):
            if not concern.keywords:
                self.add("warning", "concern-keywords", f"concern {concern.id!r} has no keywords: only a general "
                         "invitation reveals it", s, ("conversation", "concerns", i, "keywords"))
        for state, lines in c.lines:
            if len(lines) < 2:
                self.add("error", "too-few-lines", f"the {state!r} state has {len(lines)} line; write at least 2",
                         s, ("conversation", "lines", state))
            for j, line in enumerate(lines):
                if MODEL_TALK.search(line):
                    self.add("error", "refusal-text", f"model-refusal text instead of a line: {line[:80]!r}", s,
                             ("conversation", "lines", state, j))
        known = rubric_ids()
        for i, rubric_id in enumerate(c.rubric):
            if rubric_id not in known:
                self.add("error", "unknown-rubric", f"unknown rubric {rubric_id!r}; the rubrics are: "
                         f"{', '.join(known)}", s, ("conversation", "rubric", i))
        if not c.emotion.escalates or not c.emotion.settles:
            self.add("warning", "flat-arc", "the emotional arc lists no escalating or no settling moves", s,
                     ("conversation", "emotion"))

    def codes(self, s: Scenario) -> None:
        if s.diagnosis.icd10 is None:
            self.add("warning", "no-icd10", f"diagnosis {s.diagnosis.name!r} has no ICD-10-CM code", s, ("diagnosis",))
        conditions: list[tuple[tuple, Condition]] = [(("diagnosis",), s.diagnosis)]
        conditions += [(("differential", i), c) for i, c in enumerate(s.differential)]
        for loc, condition in conditions:
            if condition.icd10 and not known_code(condition.icd10):
                self.add("error", "unknown-icd10", f"ICD-10-CM code {condition.icd10} does not exist", s, (*loc, "icd10"))
        names = {normalise(n) for n in s.diagnosis.names()}
        for i, condition in enumerate(s.differential):
            if {normalise(n) for n in condition.names()} & names:
                self.add("error", "diagnosis-in-differential",
                         f"the differential lists the diagnosis itself ({condition.name!r})", s, ("differential", i))

    def leaks(self, s: Scenario) -> None:
        names = s.diagnosis.names()
        cores = {c for c in map(core_name, names) if c}
        for loc, text in shown_to_doctor(s):
            leaked = [n for n in names if mentions(text, n)]
            if leaked:
                self.add("error", "diagnosis-leak", f"the diagnosis is given away: {leaked[0]!r} appears in {loc[0]}",
                         s, loc)
            elif partial := [c for c in cores if mentions(text, c)]:
                self.add("warning", "partial-leak", f"part of the diagnosis, {partial[0]!r}, appears in {loc[0]}", s, loc)
        for i, fact in enumerate(s.facts):
            if fact.disclosure.value != "hidden" and (leaked := [n for n in names if mentions(fact.text, n)]):
                self.add("warning", "fact-names-diagnosis", f"the patient can say the diagnosis ({leaked[0]!r})",
                         s, ("facts", i, "text"))

    def refusals(self, s: Scenario) -> None:
        texts = [(("facts", i, "text"), f.text) for i, f in enumerate(s.facts)]
        for loc, text in [*texts, *shown_to_doctor(s)]:
            if REFUSAL.search(text):
                self.add("error", "refusal-text", f"model-refusal text instead of content: {text[:80]!r}", s, loc)

    def assets(self, s: Scenario) -> None:
        source = source_of(s)
        base = source.path.parent if source else None
        for i, image in enumerate(s.images):
            for key, ref in (("asset", image.asset), ("mask", image.mask)):
                if ref is None:
                    continue
                if is_remote(ref):
                    self.add("warning", "remote-asset",
                             f"{ref} is remote: unavailable offline, so the case runs text-only", s, ("images", i, key))
                elif problem := check_asset(ref, base):
                    self.add("error", "bad-asset", problem, s, ("images", i, key))

    def tests(self, s: Scenario) -> None:
        if not s.tests:
            self.add("warning", "no-tests", "the case has no tests", s, ("tests",))
        owners: dict[str, int] = {}
        for i, test in enumerate(s.tests):
            if test.price_code and test.price_code not in self.prices.codes:
                self.add("error", "unknown-price-code", f"price code {test.price_code!r} is not in price table "
                         f"{self.prices.version}", s, ("tests", i, "price_code"))
            for name in {normalise(n) for n in (test.name, *test.synonyms)}:
                if owners.setdefault(name, i) != i:
                    self.add("warning", "test-name-clash", f"{name.strip()!r} names tests {owners[name]} and {i}",
                             s, ("tests", i))

    def near_duplicates(self, scenarios: list[Scenario]) -> None:
        shingles = [(s, _shingles(s)) for s in scenarios if not s.is_station]
        for (a, sa), (b, sb) in combinations(shingles, 2):
            if sa and sb and len(sa & sb) / len(sa | sb) >= NEAR_DUPLICATE:
                self.add("warning", "near-duplicate", f"nearly the same case as {b.id!r}", a)


def _shingles(s: Scenario) -> set[tuple[str, ...]]:
    text = " ".join([*(f.text for f in s.facts), *(e.result for e in s.examination), *(t.result for t in s.tests)])
    words = normalise(text).split()
    return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}


def check_scenarios(scenarios: Iterable[Scenario], prices: PriceTable | None = None) -> list[Issue]:
    """Every issue found in already-loaded scenarios."""
    scenarios = list(scenarios)
    checker = Checker(prices)
    for s in scenarios:
        checker.scenario(s)
    checker.near_duplicates(scenarios)
    return checker.issues


def validate_paths(paths: Iterable[str | Path], *, format: str | None = None,
                   prices: PriceTable | None = None) -> tuple[ScenarioSet, QualityReport]:
    """Load everything under ``paths`` (bad records included as errors) and run every gate."""
    try:
        loaded = load_scenarios(list(paths), format=format, skip_errors=True)
    except ScenarioError as exc:  # an unknown format name
        loaded = ScenarioSet(errors=[exc])
    issues = [Issue(severity="error", code=e.code, message=e.message, path=e.path, line=e.line, field=e.field)
              for e in loaded.errors]
    issues += check_scenarios(loaded.scenarios, prices)
    report = QualityReport(
        scenarios=len(loaded.scenarios),
        kinds=dict(sorted(Counter(s.kind for s in loaded.scenarios).items())),
        specialties=dict(sorted(Counter(s.specialty for s in loaded.scenarios).items())),
        errors=[i for i in issues if i.severity == "error"],
        warnings=[i for i in issues if i.severity == "warning"])
    return loaded, report
