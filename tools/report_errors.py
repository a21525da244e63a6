"""A seeded error injector for radiology reports.

``inject_error`` plants one error of a given type (``report_text.ErrorType``) where a comparison
can reveal it: the impression made to contradict the findings, or the report made to contradict
reference findings. It reads reports with ``report_text.read_report``, as the rule checker
(``report_check``) does.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from agentclinic.tools.report_text import (
    Anchor, ErrorType, Mention, ReadReport, Section, Sentence, measure_values, read_report, same_value)
from agentclinic.tools.report_vocab import (
    CONCEPTS, CONTRAST, GENERIC, MEASURE_RX, NORMAL_POSITIVE, SEVERITY_WORDS, soft_ranks, unit_mm)


class InjectionError(ValueError):
    """No place in this report where an error of the asked type could be planted detectably."""


class PlantedError(BaseModel):
    """One planted error: its type, where it shows (``start``/``end`` in the new report, or in the
    reference for an omission judged against one), and the edit (``original`` -> ``new``)."""

    type: ErrorType
    start: int
    end: int
    original: str
    new: str
    where: Literal["report", "reference"] = "report"
    edit_at: int = Field(description="where the edit was made in the new report text")
    note: str = ""


class Injection(BaseModel):
    text: str
    error: PlantedError


@dataclass
class _Parts:
    """What the injection edits (the claim) and what it must contradict (the evidence)."""

    claim: tuple[list[Sentence], list[Mention], list[Anchor]]
    evidence: tuple[list[Sentence], list[Mention], list[Anchor]]
    evidence_text: str
    where: Literal["report", "reference"]


def _parts(report: ReadReport, reference: str | None) -> _Parts | None:
    if reference is not None:
        ref = read_report(reference)
        return _Parts(report.part(*report.body), ref.part(*ref.body), reference, "reference")
    if report.has_findings_and_impression:
        return _Parts(report.part("impression"), report.part("findings"), report.text, "report")
    return None


def _case_like(old: str, new: str) -> str:
    if old.isupper() and len(old) > 1:
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


_NP_STOP = frozenset("is are was were be there with and or of in on at to by the a an some no not which that but from "
                     "for as has have had shows show demonstrates contains containing seen noted".split())


def _np_start(text: str, floor: int, start: int) -> int:
    """Where the noun phrase ending in the term begins: back over its modifiers ("acute displaced")."""
    while True:
        match = re.search(r"([\w-]+)\s+$", text[floor:start])
        if not match or match.group(1).lower() in _NP_STOP:
            return start
        start = floor + match.start()


def _negate(text: str, m: Mention) -> tuple[int, int, str] | None:
    """The edit (start, end, replacement) that turns a mention's polarity around, or None."""
    start, end = m.phrase
    at_start = not text[m.sentence.start:min(start, m.cue[0] if m.cue else start)].strip()
    if m.normal:  # "Heart size is normal" -> "The heart is enlarged"; "Normal chest" -> "Abnormal chest"
        old = text[m.start:m.end]
        if m.concept == GENERIC:
            return m.start, m.end, re.sub(r"\b(?:normal|negative|unremarkable)\b",
                                          lambda w: _case_like(w.group(0), "abnormal"), old, count=1, flags=re.I)
        positive = NORMAL_POSITIVE[m.concept]
        return m.start, m.end, _capital(positive) if m.start == m.sentence.start else positive
    if m.negated and m.cue:
        cs, ce = m.cue
        old = text[cs:ce]
        if cs >= m.end:  # a cue after the term ("... is not seen", "has resolved")
            new = re.sub(r"(?i)\bno\s+longer\b", "still", re.sub(r"(?i)\bnot\s+", "", old))
            new = re.sub(r"(?i)\b(?:absent|excluded)\b", "present", re.sub(r"(?i)\bresolved\b", "persisted", new))
            return cs, ce, new
        for pattern, word in ((r"without", "with"), (r"negative\s+for", "positive for"), (r"free\s+of", "with"),
                              (r"absence\s+of", "presence of"), (r"resolution\s+of", "persistence of"),
                              (r"resolved", "persistent")):
            found = re.match(pattern, old, re.I)
            if found:
                return cs, cs + found.end(), _case_like(found.group(0), word)
        if at_start:  # "No pneumothorax." -> "Pneumothorax."
            rest = text[ce:end].lstrip()
            return cs, end, _capital(rest)
        return cs, ce + (1 if text[ce:ce + 1] == " " else 0), ""  # "... with no effusion" -> "... with effusion"
    if m.negated or m.hedged:
        return None
    verb = re.search(r"\b(?:is|are|appears|remains)\s+", text[m.start:m.end])
    if verb and start == m.start:  # "the heart is enlarged" -> "the heart is not enlarged"
        return m.start + verb.end(), m.start + verb.end(), "not "
    start = _np_start(text, m.sentence.start, start)
    before = text[m.sentence.start:start]
    there = re.search(r"\bthere\s+(?:is|are)\b(\s+(?:an?|some)\b)?\s*$", before, re.I)
    if there:  # "There is a small effusion" -> "There is no small effusion"
        cut = m.sentence.start + there.start(1) if there.group(1) else start
        return cut, start, " no " if there.group(1) else "no "
    article = re.search(r"\b(?:an?|some)\s+$", before, re.I)
    cut = m.sentence.start + article.start() if article else start
    if not text[m.sentence.start:cut].strip():  # "Small left effusion." -> "No small left effusion."
        word = re.match(r"[\w-]+", text[start:end]).group(0)
        return cut, start + len(word), "No " + (word if word.isupper() and len(word) > 1 else word.lower())
    return cut, start, "no "


def _pick(rng: random.Random, items: list):
    return items[rng.randrange(len(items))] if items else None


def _apply(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


def _inject_negation(text: str, parts: _Parts, rng: random.Random) -> tuple[str, PlantedError]:
    claim, evidence = parts.claim[1], parts.evidence[1]
    candidates = []
    for m in claim:
        if m.generic or m.hedged or (m.negated and m.qualifiers & CONTRAST):
            continue
        same = [e for e in evidence if e.concept == m.concept and not e.hedged and e.compatible(m)]
        if same and all(e.negated == m.negated for e in same) and _negate(text, m):
            candidates.append(m)
    if not candidates and not any(e.significant for e in evidence):
        # a normal impression ("No acute disease") over findings with nothing significant
        candidates = [m for m in claim if m.generic and m.negated and not m.hedged]
    target = _pick(rng, candidates)
    if target is None:
        raise InjectionError("no finding stated in both parts (or normal impression over normal findings) to negate")
    start, end, new = _negate(text, target)
    shift = len(new) - (end - start)
    term_end = target.end + shift if target.end >= end else target.end
    return _apply(text, start, end, new), PlantedError(
        type=ErrorType.NEGATION, start=min(start, target.start), end=max(start + len(new), term_end),
        original=text[start:end], new=new, edit_at=start,
        note=f"{target.info.label}: {'denied' if target.negated else 'stated'} -> "
             f"{'stated' if target.negated else 'denied'}")


def _inject_laterality(text: str, parts: _Parts, rng: random.Random) -> tuple[str, PlantedError]:
    candidates = []
    for m in parts.claim[1]:
        if not m.positive or len(m.sides) != 1 or m.side not in ({"left"}, {"right"}):
            continue
        sides = [e.side for e in parts.evidence[1] if e.concept == m.concept and e.positive]
        if sides and all(s == m.side for s in sides):
            candidates.append(m)
    target = _pick(rng, candidates)
    if target is None:
        raise InjectionError("no left- or right-sided finding stated in both parts")
    start, end, _ = target.sides[0]
    old = text[start:end]
    new = re.sub(r"(?i)left|right", lambda w: _case_like(w.group(0), "right" if w.group(0).lower() == "left"
                                                                 else "left"), old)
    return _apply(text, start, end, new), PlantedError(
        type=ErrorType.LATERALITY, start=start, end=start + len(new), original=old, new=new, edit_at=start,
        note=f"{target.info.label}: {old.lower()} -> {new.lower()}")


def _measure_edits(old: str, known: set[float]) -> list[str]:
    match = MEASURE_RX.fullmatch(old)
    if not match:
        return []
    number, unit = match.group(1), match.group(4)
    scale = unit_mm(unit)
    options = []
    swapped = {"mm": "cm", "cm": "mm"}.get(unit.lower())
    if swapped:
        options.append(old[:match.start(4)] + _case_like(unit, swapped) + old[match.end(4):])
    digits = number.replace(".", "")
    if len(set(digits)) > 1:
        flipped = number[::-1].lstrip("0") or "0"
        if flipped.startswith("."):
            flipped = "0" + flipped
        flipped = flipped.removesuffix(".")
        options.append(flipped + old[match.end(1):])
    whole = float(number)
    doubled = f"{whole * 2:g}" if whole < 50 else f"{whole / 2:g}"
    options.append(doubled + old[match.end(1):])
    good = []
    for option in options:
        new = MEASURE_RX.fullmatch(option)
        if not new:
            continue
        value = float(new.group(1)) * unit_mm(new.group(4))
        if not any(same_value(value, k) for k in known) and not same_value(value, whole * scale):
            good.append(option)
    return good


def _inject_measurement(text: str, parts: _Parts, rng: random.Random) -> tuple[str, PlantedError]:
    known = measure_values(parts.evidence[1], parts.evidence[2])
    candidates = []
    for item in [*parts.claim[1], *parts.claim[2]]:
        key = item.measure_key
        for s, e, dims in item.measures:
            if key in known and all(any(same_value(d, k) for k in known[key]) for d in dims):
                edits = _measure_edits(text[s:e], known[key])
                candidates += [(s, e, new) for new in edits]
    choice = _pick(rng, candidates)
    if choice is None:
        raise InjectionError("no measurement stated in both parts")
    start, end, new = choice
    return _apply(text, start, end, new), PlantedError(
        type=ErrorType.MEASUREMENT, start=start, end=start + len(new), original=text[start:end], new=new,
        edit_at=start, note=f"{text[start:end]} -> {new}")


def _inject_severity(text: str, parts: _Parts, rng: random.Random) -> tuple[str, PlantedError]:
    candidates = []
    for m in parts.claim[1]:
        if not m.positive or len(m.severities) != 1 or len(m.severities[0][2]) != 1:
            continue
        s, e, _, word = m.severities[0]
        scale, rank = SEVERITY_WORDS[word.lower()]
        others = [x for x in parts.evidence[1] if x.concept == m.concept and x.positive and x.compatible(m)]
        graded = [x for x in others if x.ranks]
        if not graded or not all(x.ranks <= m.ranks for x in graded):
            continue
        adverb = word.lower().endswith("ly")
        usable = [(w, r) for w, (sc, r) in SEVERITY_WORDS.items() if sc == scale and w.endswith("ly") == adverb
                  and w not in ("extensive", "slight", "slightly") and not soft_ranks({r}) & soft_ranks({rank})]
        words = [w for w, r in usable if abs(r - rank) >= 2] or [w for w, _ in usable]
        candidates += [(s, e, _case_like(word, w), m) for w in words]
    choice = _pick(rng, candidates)
    if choice is None:
        raise InjectionError("no severity word on a finding graded in both parts")
    start, end, new, m = choice
    return _apply(text, start, end, new), PlantedError(
        type=ErrorType.SEVERITY, start=start, end=start + len(new), original=text[start:end], new=new, edit_at=start,
        note=f"{m.info.label}: {text[start:end].lower()} -> {new.lower()}")


# Sentences the injector can add, by body region: (concept, sentence). Written for this project.
ADDED_SENTENCES: dict[str, list[tuple[str, str]]] = {
    "chest": [("pneumothorax", "Small right apical pneumothorax."),
              ("pleural_effusion", "Moderate left pleural effusion."),
              ("consolidation", "Dense consolidation in the right lower lobe."),
              ("fracture", "Acute displaced fracture of the left seventh rib."),
              ("mass", "A 3.1 cm spiculated mass in the left upper lobe."),
              ("edema", "Interstitial pulmonary edema."),
              ("pericardial_effusion", "Small pericardial effusion."),
              ("lymphadenopathy", "Enlarged right hilar lymph nodes.")],
    "abdomen": [("free_air", "Free intraperitoneal air under the right hemidiaphragm."),
                ("hydronephrosis", "Moderate left hydronephrosis."),
                ("ascites", "Small volume ascites in the pelvis."),
                ("gallstones", "Multiple gallstones in the gallbladder."),
                ("appendicitis", "Dilated appendix with periappendiceal fat stranding, in keeping with appendicitis."),
                ("splenomegaly", "Splenomegaly, with the spleen measuring 16 cm."),
                ("abscess", "A 4 cm rim-enhancing fluid collection in the right lower quadrant.")],
    "head": [("hemorrhage", "Acute left parietal intraparenchymal hemorrhage."),
             ("infarct", "Acute infarct in the right middle cerebral artery territory."),
             ("mass_effect", "Mass effect with 5 mm of rightward midline shift."),
             ("hydrocephalus", "Dilated lateral ventricles, in keeping with hydrocephalus.")],
    "spine": [("fracture", "Acute compression fracture of the L1 vertebral body."),
              ("cord_compression", "Cord compression at C5-C6."),
              ("disc_herniation", "Large left paracentral disc extrusion at L5-S1.")],
    "thyroid": [("nodule", "A 2.4 cm solid hypoechoic nodule in the left lobe."),
                ("lymphadenopathy", "Enlarged right level IV cervical lymph nodes.")],
    "breast": [("mass", "A 1.6 cm irregular spiculated mass in the right breast at 10 o'clock."),
               ("distortion", "Architectural distortion in the upper outer left breast.")],
    "pelvis": [("torsion", "Enlarged left ovary with absent internal flow, in keeping with ovarian torsion."),
               ("fibroid", "A 3.5 cm intramural fibroid in the uterine fundus."),
               ("ascites", "Moderate free fluid in the pelvis.")],
}
_REGION_WORDS = {
    "chest": r"lungs?|pleura\w*|heart|cardiac|mediastin\w*|thora\w*|chest|ribs?|hila\w*|pulmonary",
    "abdomen": r"liver|hepatic|kidneys?|renal|spleen|gallbladder|pancrea\w*|bowel|abdom\w*|appendix|biliary",
    "head": r"brain|intracranial|ventricles?|cerebr\w*|skull|cerebell\w*|sulci|gr[ae]y-white|white matter|"
            r"internal capsule|frontal|parietal|temporal|occipital|sylvian|subdural|subarachnoid|cisterns?",
    "spine": r"vertebra\w*|discs?|disks?|cord|lumbar|cervical|thoracic spine|thecal|foramina\w*|spinal canal",
    "thyroid": r"thyroid|isthmus|cervical lymph",
    "breast": r"breasts?|bi-rads|mammogra\w*|axilla\w*|fibroglandular",
    "pelvis": r"uterus|uterine|ovar\w*|endometri\w*|adnexa\w*|myometri\w*|cervix",
}


def body_region(text: str) -> str:
    """The body region a report is about, from its words (chest when nothing says otherwise)."""
    scores = {region: len(re.findall(rf"\b(?:{words})\b", text, re.I)) for region, words in _REGION_WORDS.items()}
    best = max(scores, key=lambda r: scores[r])
    return best if scores[best] else "chest"


def _after_sentence(text: str, end: int, sentence: str) -> tuple[str, int]:
    """What to insert at the end of a sentence to add ``sentence`` after it (a full stop first when the
    sentence has none), and where the added sentence will start."""
    lead = " " if re.search(r"[.!?]$", text[:end]) else ". "
    return lead + sentence, end + len(lead)


def _insertion_points(sentences: list[Sentence], section: Section | None) -> list[int]:
    points = [s.end for s in sentences]
    if not points and section is not None:
        points = [section.start]
    return points


def _inject_added(text: str, parts: _Parts, rng: random.Random, report: ReadReport) -> tuple[str, PlantedError]:
    mentioned = {g for m in [*parts.claim[1], *parts.evidence[1]] for g in m.info.groups}
    region = body_region(text + " " + parts.evidence_text)
    pool = [(c, s) for c, s in ADDED_SENTENCES[region] if not CONCEPTS[c].groups & mentioned]
    choice = _pick(rng, pool)
    if choice is None:
        raise InjectionError(f"every finding the injector can add for this {region} report is already mentioned")
    concept, sentence = choice
    section = report.section("impression") if parts.where == "report" else None
    points = _insertion_points(parts.claim[0], section)
    if not points:
        raise InjectionError("no sentence to add a finding after")
    at = points[rng.randrange(len(points))]
    if at == (section.start if section else -1):
        new = sentence + (" " if at < len(text) and not text[at:at + 1].isspace() else "")
        start = at
    else:
        new, start = _after_sentence(text, at, sentence)
    return _apply(text, at, at, new), PlantedError(
        type=ErrorType.ADDED, start=start, end=start + len(sentence), original="", new=sentence, edit_at=start,
        note=f"added {CONCEPTS[concept].label}")


def _inject_omitted(text: str, parts: _Parts, rng: random.Random) -> tuple[str, PlantedError]:
    claim_sentences, claim_mentions, _ = parts.claim
    candidates = []
    for sentence in claim_sentences:
        others = {g for m in claim_mentions if m.sentence is not sentence and not m.negated for g in m.info.groups}
        lost = [m for m in claim_mentions if m.sentence is sentence and m.significant and not m.info.groups & others]
        support = [e for e in parts.evidence[1] if e.significant and not e.info.groups & others
                   and any(e.info.groups & m.info.groups for m in lost)]
        if support:
            candidates.append((sentence, support[0]))
    choice = _pick(rng, candidates)
    if choice is None:
        raise InjectionError("no significant finding stated in both parts to drop")
    sentence, support = choice
    if len(claim_sentences) == 1 and parts.where == "report":
        start, end, new = sentence.start, sentence.end, "No acute abnormality."
    else:
        following = [s.lead for s in claim_sentences if s.lead >= sentence.end]
        start, end, new = sentence.lead, (following[0] if following else sentence.end), ""
        if not following:  # the last sentence: take the space before it instead
            while start > 0 and text[start - 1] in " \t":
                start -= 1
    new_text = _apply(text, start, end, new)
    shift = len(new) - (end - start)
    ev = support.sentence
    if parts.where == "report":
        ev_start, ev_end = (ev.start, ev.end) if ev.start < start else (ev.start + shift, ev.end + shift)
    else:
        ev_start, ev_end = ev.start, ev.end
    return new_text, PlantedError(
        type=ErrorType.OMITTED, start=ev_start, end=ev_end, original=text[start:end], new=new, where=parts.where,
        edit_at=start, note=f"dropped {support.info.label} from the "
                            f"{'impression' if parts.where == 'report' else 'report'}")


def _inject_repetition(text: str, report: ReadReport, rng: random.Random) -> tuple[str, PlantedError]:
    body = set(report.body)
    sentences = [s for s in report.sentences if s.section in body and len(s.text.split()) >= 3]
    preferred = [s for s in sentences if s.section == "impression"] or sentences
    target = _pick(rng, preferred)
    if target is None:
        raise InjectionError("no sentence of three words or more to repeat")
    copy = target.text
    new, start = _after_sentence(text, target.end, copy)
    return _apply(text, target.end, target.end, new), PlantedError(
        type=ErrorType.REPETITION, start=start, end=start + len(copy), original="", new=copy, edit_at=start,
        note="sentence repeated")


_INJECT = {ErrorType.NEGATION: _inject_negation, ErrorType.LATERALITY: _inject_laterality,
           ErrorType.MEASUREMENT: _inject_measurement, ErrorType.SEVERITY: _inject_severity,
           ErrorType.OMITTED: _inject_omitted}


def inject_error(report: str, error_type: ErrorType | str, *, seed: int = 0,
                 reference: str | None = None) -> Injection:
    """Plant one error of ``error_type`` in ``report`` (seeded), where it can be seen: in the impression,
    contradicting the findings; or, with ``reference`` findings, anywhere in the report, contradicting them.

    Raises ``InjectionError`` when the report offers no such place (a laterality swap in a report with
    no sided finding stated twice, ...)."""
    kind = ErrorType(error_type)
    rng = random.Random(f"{seed}:{kind.value}:{len(report)}")
    read = read_report(report)
    if kind is ErrorType.REPETITION:
        text, error = _inject_repetition(report, read, rng)
        return Injection(text=text, error=error)
    parts = _parts(read, reference)
    if parts is None:
        raise InjectionError(f"a {kind.label} needs FINDINGS and IMPRESSION sections or reference findings "
                             "to be detectable")
    if kind is ErrorType.ADDED:
        text, error = _inject_added(report, parts, rng, read)
    else:
        text, error = _INJECT[kind](report, parts, rng)
    return Injection(text=text, error=error)
