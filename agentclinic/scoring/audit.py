"""Audit a diagnosis judge against hand-labelled (predicted, reference) pairs.

``load_pairs`` reads ``judge_audit.yaml`` (its header states the labelling conventions), or a flat
file whose pairs each carry a bare reference name (``{reference, predicted, label, correct, category,
note}``, ``label`` being the match level, as in the bare-name sets);
``audit(judge, pairs)`` asks the judge about every pair and returns an ``AuditResult``:
accuracy and Cohen's kappa on correct/incorrect, agreement on the match level (strict, and with
exact and synonym merged), confusion matrices, per-category figures and the disagreements.

Cohen's kappa for two raters over the same n items:
    p_o = (1/n) Σ_i [a_i = b_i]                      observed agreement
    p_e = Σ_c (n_a(c)/n) · (n_b(c)/n)                agreement expected by chance
    κ   = (p_o − p_e) / (1 − p_e)
κ is undefined when p_e = 1 (both raters gave one and the same label to every item); it is
then reported as None.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any, Hashable, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentclinic.agents.base import CORRECT_LEVELS, LEVELS  # the one table of match levels
from agentclinic.errors import ConfigError

AUDIT_FILE = Path(__file__).with_name("judge_audit.yaml")
CATEGORIES = ("exact", "synonym", "abbreviation", "spelling", "broader", "narrower", "near-miss", "wrong", "hedged",
              "extra-words")

_SCENARIO_BASE: dict[str, Any] = {
    "title": "Judge audit", "specialty": "audit",
    "provenance": {"source": "synthetic", "synthetic": True, "licence": "CC-BY-4.0"},
    "doctor_brief": "A case built only to hold a reference diagnosis for the judge audit.",
    "patient": {"age": 50, "sex": "unknown"},
}


class Reference(BaseModel):
    """A reference diagnosis as a scenario gives it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    aliases: list[str] = Field(default_factory=list)
    icd10: str | None = None


class AuditPair(BaseModel):
    """One labelled pair; ``correct`` must follow the convention (exact or synonym)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    category: str
    ref: str
    reference: Reference
    predicted: str
    level: str
    correct: bool
    note: str | None = None

    @model_validator(mode="after")
    def _check(self) -> AuditPair:
        if not self.category.strip():
            raise ValueError(f"{self.id}: empty category")
        if self.level not in LEVELS:
            raise ValueError(f"{self.id}: unknown level {self.level!r}")
        if self.correct != (self.level in CORRECT_LEVELS):
            raise ValueError(f"{self.id}: correct={self.correct} contradicts level {self.level!r} "
                             "(correct means exact or synonym)")
        return self


def load_pairs(path: str | Path = AUDIT_FILE) -> list[AuditPair]:
    """The labelled pairs, each with its reference filled in and an id ``<category>-<n>``.

    Two layouts: named ``references`` (name, aliases, ICD-10-CM code) that pairs point at with
    ``ref``, their categories from ``CATEGORIES``; or flat pairs (a list, or under ``pairs``) whose
    ``reference`` is a bare name and whose ``label`` is the match level, any category.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        items = data if isinstance(data, list) else data["pairs"]
        references = {} if isinstance(data, list) else {
            key: Reference.model_validate(value) for key, value in (data.get("references") or {}).items()}
        pairs, counts = [], Counter()
        for number, item in enumerate(items, 1):
            category = item.get("category")
            counts[category] += 1
            pair_id = item.get("id") or f"{category}-{counts[category]:02d}"
            if isinstance(item.get("reference"), str):  # flat: a bare reference name, the level as label
                fields = {k: v for k, v in item.items() if k not in ("reference", "label", "id")}
                pairs.append(AuditPair.model_validate({
                    "id": pair_id, "ref": item["reference"], **fields, "level": item.get("label", item.get("level")),
                    "reference": Reference(name=item["reference"])}))
                continue
            if category not in CATEGORIES:
                raise ValueError(f"pair {number} ({pair_id}): unknown category {category!r} "
                                 f"(known: {', '.join(CATEGORIES)})")
            ref = item.get("ref")
            if ref not in references:
                raise ValueError(f"pair {number} ({pair_id}): unknown ref {ref!r}")
            pairs.append(AuditPair.model_validate({"id": pair_id, **item, "reference": references[ref]}))
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{path}: not a judge audit file ({exc})") from exc
    return pairs


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two label sequences (see the module doc); None when undefined."""
    if len(a) != len(b):
        raise ValueError("the two raters must label the same items")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[c] * cb[c] for c in ca) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


class Judged(BaseModel):
    """A pair with the judge's answer."""

    pair: AuditPair
    level: str
    correct: bool
    rationale: str = ""

    @property
    def agrees(self) -> bool:
        return self.correct == self.pair.correct


class Figures(BaseModel):
    n: int
    accuracy: float  # agreement on correct / incorrect
    kappa: float | None  # Cohen's kappa on correct / incorrect
    level_agreement: float  # same match level
    coarse_level_agreement: float  # same level once exact and synonym are merged
    level_kappa: float | None


class Disagreement(BaseModel):
    id: str
    category: str
    reference: str
    predicted: str
    expected_level: str
    expected_correct: bool
    judged_level: str
    judged_correct: bool
    rationale: str


class AuditResult(BaseModel):
    judge: str
    overall: Figures
    per_category: dict[str, Figures]
    confusion: dict[str, dict[str, int]]  # expected label -> judged label -> count
    level_confusion: dict[str, dict[str, int]]  # expected level -> judged level -> count
    disagreements: list[Disagreement]  # on correct / incorrect
    level_disagreements: list[Disagreement]  # same correct / incorrect, other level


def _coarse(level: str) -> str:
    return "exact|synonym" if level in CORRECT_LEVELS else level


def figures(items: Sequence[Judged]) -> Figures:
    n = len(items)
    expected = [j.pair.correct for j in items]
    judged = [j.correct for j in items]
    return Figures(
        n=n,
        accuracy=sum(x == y for x, y in zip(expected, judged)) / n if n else 0.0,
        kappa=cohen_kappa(expected, judged),
        level_agreement=sum(j.level == j.pair.level for j in items) / n if n else 0.0,
        coarse_level_agreement=sum(_coarse(j.level) == _coarse(j.pair.level) for j in items) / n if n else 0.0,
        level_kappa=cohen_kappa([j.pair.level for j in items], [j.level for j in items]),
    )


def _label(correct: bool) -> str:
    return "correct" if correct else "incorrect"


def _disagreement(j: Judged) -> Disagreement:
    return Disagreement(id=j.pair.id, category=j.pair.category, reference=j.pair.reference.name,
                        predicted=j.pair.predicted, expected_level=j.pair.level, expected_correct=j.pair.correct,
                        judged_level=j.level, judged_correct=j.correct, rationale=j.rationale)


def summarise(items: Sequence[Judged], judge_name: str) -> AuditResult:
    """The audit figures for judged pairs."""
    confusion = {_label(e): {_label(g): 0 for g in (True, False)} for e in (True, False)}
    used_levels = [lv for lv in LEVELS if any(lv in (j.level, j.pair.level) for j in items)]
    level_confusion = {e: {g: 0 for g in used_levels} for e in used_levels}
    for j in items:
        confusion[_label(j.pair.correct)][_label(j.correct)] += 1
        level_confusion[j.pair.level][j.level] += 1
    categories = list(dict.fromkeys([c for c in CATEGORIES if any(j.pair.category == c for j in items)]
                                    + [j.pair.category for j in items]))
    return AuditResult(
        judge=judge_name,
        overall=figures(items),
        per_category={c: figures([j for j in items if j.pair.category == c]) for c in categories},
        confusion=confusion,
        level_confusion=level_confusion,
        disagreements=[_disagreement(j) for j in items if not j.agrees],
        level_disagreements=[_disagreement(j) for j in items if j.agrees and j.level != j.pair.level],
    )


def reference_scenario(reference: Reference):
    """A minimal valid scenario that carries ``reference`` as its diagnosis (judges take scenarios)."""
    from agentclinic.scenario.schema import Scenario

    return Scenario.model_validate({**_SCENARIO_BASE, "id": "judge-audit",
                                    "diagnosis": reference.model_dump(exclude_none=True)})


async def judge_pairs(judge: Any, pairs: Sequence[AuditPair], concurrency: int = 4) -> list[Judged]:
    """Ask ``judge`` (anything with ``async judge(proposed, scenario) -> Verdict``) about every pair."""
    scenarios: dict[str, Any] = {}
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(pair: AuditPair) -> Judged:
        if pair.ref not in scenarios:
            scenarios[pair.ref] = reference_scenario(pair.reference)
        async with gate:
            verdict = await judge.judge(pair.predicted, scenarios[pair.ref])
        return Judged(pair=pair, level=verdict.level, correct=bool(verdict.correct),
                      rationale=verdict.rationale or "")

    return list(await asyncio.gather(*(one(p) for p in pairs)))


def audit(judge: Any, pairs: Sequence[AuditPair] | None = None, *, name: str | None = None,
          concurrency: int = 4) -> AuditResult:
    """Run ``judge`` over ``pairs`` (default: the bundled file) and summarise the agreement."""
    pairs = load_pairs() if pairs is None else pairs
    judged = asyncio.run(judge_pairs(judge, pairs, concurrency))
    return summarise(judged, name or getattr(judge, "name", None) or type(judge).__name__)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_audit(result: AuditResult, console) -> None:
    """Rich tables: overall and per-category figures, the confusion matrix, the disagreements."""
    from rich.table import Table

    table = Table(title=f"Judge audit: {result.judge} ({result.overall.n} pairs)", title_justify="left")
    for column in ("category", "n", "accuracy", "kappa", "level agreement", "level (exact=synonym)"):
        table.add_column(column, justify="left" if column == "category" else "right")
    rows = list(result.per_category.items()) + [("overall", result.overall)]
    for name, f in rows:
        table.add_row(name, str(f.n), _pct(f.accuracy), _pct(f.kappa), _pct(f.level_agreement),
                      _pct(f.coarse_level_agreement), style="bold" if name == "overall" else None)
    console.print(table)
    console.print(f"kappa on the match level: {_pct(result.overall.level_kappa)}; kappa is n/a where both "
                  "sides used one label only (most categories hold one expected label)")
    matrix = Table(title="Correct / incorrect (rows: expected, columns: judge)", title_justify="left")
    matrix.add_column("")
    for label in ("correct", "incorrect"):
        matrix.add_column(label, justify="right")
    for expected, row in result.confusion.items():
        matrix.add_row(expected, *(str(row[g]) for g in ("correct", "incorrect")))
    console.print(matrix)
    for title, items in (("Disagreements on correct / incorrect", result.disagreements),
                         ("Same correct / incorrect, other match level", result.level_disagreements)):
        if not items:
            console.print(f"{title}: none")
            continue
        table = Table(title=f"{title} ({len(items)})", title_justify="left", show_lines=True)
        for column in ("id", "reference", "predicted", "expected", "judge", "judge's rationale"):
            table.add_column(column, overflow="fold")
        for d in items:
            table.add_row(d.id, d.reference, d.predicted, d.expected_level, d.judged_level, d.rationale)
        console.print(table)


__all__ = ["print_audit", "AUDIT_FILE", "CATEGORIES", "LEVELS", "Reference", "AuditPair", "Judged", "Figures",
           "Disagreement", "AuditResult", "load_pairs", "cohen_kappa", "figures", "summarise", "reference_scenario",
           "judge_pairs", "audit"]
