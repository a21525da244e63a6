"""Adapters for the AgentClinic case files (Schmidgall et al., 2024): MedQA and NEJM JSONL.

The files are third-party data: they are read from a path the user gives, never copied.
MedQA: the patient actor becomes categorised facts; the nested examination and test
trees become flat findings and tests with readable names (``Blood_Tests.Acetylcholine_
Receptor_Antibodies`` -> "Acetylcholine receptor antibodies", group "Blood tests").
NEJM: the correct answer is the diagnosis, the others the differential, and the image
URL a remote asset (offline the case runs text-only, and the scenario says so).
Both: the bare diagnosis name gets aliases, an ICD-10-CM code and a specialty from the
medical vocabularies where they agree on one concept (``with_concept``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from agentclinic.errors import ScenarioError
from agentclinic.scenario.first_person import TIMING_KEYWORDS, first_person, is_no_information, timing_facts
from agentclinic.scenario.loaders import Record, Source, build, register_loader
from agentclinic.scenario.reading import jsonl_rows

MEDQA_PROVENANCE = {
    "source": "AgentClinic-MedQA", "synthetic": False, "licence": "MIT",
    "reference": "Schmidgall et al. 2024, AgentClinic (arXiv:2405.07960)",
}
NEJM_PROVENANCE = {**MEDQA_PROVENANCE, "source": "AgentClinic-NEJM"}
# Leaf keys that name the kind of result rather than the test ("Chest_CT.Findings").
GENERIC_LEAVES = {"findings", "finding", "result", "results", "report", "value", "interpretation", "impression"}
FACT_CATEGORIES = {
    "past_medical_history": "pmh", "social_history": "social", "review_of_systems": "ros",
    "family_history": "family", "allergies": "allergies", "current_medications": "medications",
    "medications": "medications", "drug_history": "medications", "medication_history": "medications",
    "obstetric_history": "obstetric", "history": "hpi",
}
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
# Sub-keys of a history field that only label their text (MedQA-Ext nests ``Past_Medical_History.Surgeries``,
# ``Social_History.Smoking_Status``); any other sub-key names a condition and is said with its text
# (``Past_Medical_History.Epilepsy: "Taking phenytoin"`` -> "Epilepsy, taking phenytoin").
LABEL_KEYS = {"surgeries": "pmh", "chronic_conditions": "pmh", "conditions": "pmh", "medications": "medications",
              "current_medications": "medications", "allergies": "allergies", "smoking_status": "social",
              "alcohol_use": "social", "substance_use": "social", "occupation": "social", "activities": "social",
              "interests": "social"}


def humanise(key: str) -> str:
    """``Acetylcholine_Receptor_Antibodies`` -> ``Acetylcholine receptor antibodies``; acronyms stay."""
    words = key.replace("_", " ").split()
    out = [w if (w.isupper() and len(w) > 1) or any(c.isdigit() for c in w) else w.lower() for w in words]
    text = " ".join(out)
    return text[:1].upper() + text[1:]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(text.strip()) if s.strip()]


def flatten(value: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Leaves of a nested dict/list as (key path, text)."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from flatten(sub, (*path, str(key)))
    elif isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            yield path, "; ".join(str(v) for v in value)
        else:
            for sub in value:
                yield from flatten(sub, path)
    elif value is not None and str(value).strip():
        yield path, str(value).strip()


def demographics(text: str) -> dict:
    """'35-year-old female' -> age and sex (unknown parts stay unknown)."""
    patient: dict = {"age": 0, "sex": "unknown"}
    if re.search(r"\bnewborn\b", text, re.I):
        patient["age_unit"] = "days"
    age = re.search(r"(\d+(?:\.\d+)?)[\s-]*(year|month|week|day)s?[\s-]*old", text, re.I)
    if age:
        unit = age.group(2).lower()
        value = float(age.group(1))
        if unit == "week":
            unit, value = "day", value * 7
        patient.update(age=value, age_unit=f"{unit}s")
    lowered = text.lower()
    if re.search(r"\b(female|woman|girl|lady)\b", lowered):
        patient["sex"] = "female"
    elif re.search(r"\b(male|man|boy|gentleman)\b", lowered):
        patient["sex"] = "male"
    return patient


def is_child(patient: dict) -> bool:
    """Whether a parent answers for the patient: under 12 years (or an age in months or days)."""
    return patient.get("age_unit", "years") != "years" or 0 < patient.get("age", 0) < 12


def _numeric(result: str) -> dict:
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z%µ/^][\w%µ/^.\s]*)?\s*", result)
    if not match:
        return {}
    return {"value": float(match.group(1)), "unit": (match.group(2) or "").strip() or None}


IMAGING = re.compile(r"x-?ray|radiograph|\bct\b|\bmri\b|ultrason|sonogra|echocardio|\bscan\b|enema|angiogra|"
                     r"imaging|mammogra|fluoroscop", re.I)


NOT_APPLICABLE = re.compile(r"^(?:non-?applicable|not applicable)\b", re.I)


def medqa_tests(tree: object) -> list[dict]:
    """Nested test results -> flat tests.

    ``Group.Test`` -> test "Test" in group "Group"; a generic leaf (``Chest_CT.Findings``)
    names the test by its parent; deeper trees (``Group.Panel.Item``) give one test per
    panel whose result lists its items.
    """
    panels: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for path, text in flatten(tree):
        if is_no_information(text) or NOT_APPLICABLE.match(text):  # "No specific lab tests": "Non-applicable"
            continue
        if len(path) > 1 and path[-1].lower() in GENERIC_LEAVES:
            path = path[:-1]
        key = path[:2] if len(path) >= 2 else path
        panels.setdefault(key, []).append((" ".join(humanise(p) for p in path[2:]), text))
    tests, taken = [], set()
    for key, items in panels.items():
        name = humanise(key[-1])
        group = humanise(key[0]) if len(key) == 2 else ("Imaging" if IMAGING.search(name) else "Tests")
        synonyms = {".".join(key), *re.findall(r"\(([A-Za-z0-9-]{2,})\)", name)}
        if name.lower() in taken:  # e.g. WBC in the blood count and in the urinalysis
            name = f"{name} ({group.lower()})"
        else:
            synonyms.add(key[-1])
        taken.add(name.lower())
        if len(items) == 1 and not items[0][0]:
            result, extra = items[0][1], _numeric(items[0][1])
        else:
            result, extra = "; ".join(f"{item}: {text}" if item else text for item, text in items), {}
        synonyms.discard(name)
        tests.append({"name": name, "group": group, "synonyms": sorted(synonyms), "result": result,
                      "relevant": True, **extra})
    return tests


def medqa_examination(tree: object) -> list[dict]:
    findings = []
    for path, text in flatten(tree):
        system = humanise(path[0]) if path else "General"
        name = " ".join(humanise(p) for p in path[1:]) or None
        findings.append({"system": system, "name": name, "result": text})
    return findings


def medqa_facts(actor: dict, speaker_is_patient: bool = True) -> list[dict]:
    """The patient actor as facts in the speaker's own words (``first_person``): the primary symptom is
    volunteered, the rest on ask; onset, duration, severity and course become facts of their own; fields
    that only say nothing was given are left out."""
    facts: list[dict] = []

    def add(category: str, text: str, fragment: bool = False, **extra) -> None:
        if text.strip() and not is_no_information(text):
            said = first_person(text, fragment=fragment, speaker_is_patient=speaker_is_patient, category=category)
            facts.append({"category": category, "text": said.replace(" any .", "."), **extra})

    symptoms = actor.get("Symptoms") or {}
    if isinstance(symptoms, dict):
        if symptoms.get("Primary_Symptom"):
            add("hpi", str(symptoms["Primary_Symptom"]), fragment=True, disclosure="volunteer", important=True)
        for item in symptoms.get("Secondary_Symptoms") or []:
            add("hpi", str(item), fragment=True, important=True)
        other = {k: v for k, v in symptoms.items() if k not in ("Primary_Symptom", "Secondary_Symptoms")}
    else:
        other = {"Symptoms": symptoms}
    timing: dict[str, str] = {}
    for key, value in {**other, **{k: v for k, v in actor.items() if k not in ("Demographics", "Symptoms")}}.items():
        for path, text in flatten(value):
            category = FACT_CATEGORIES.get(key.lower(), "other")
            if path and category != "ros":  # a nested history field (MedQA-Ext)
                category = LABEL_KEYS.get(path[-1].lower(), category)
                if path[-1].lower() not in LABEL_KEYS and not is_no_information(text):
                    text = f"{humanise(path[-1])}, {text[:1].lower()}{text[1:]}"
            for sentence in sentences(text):
                add(category, sentence, fragment=category != "hpi")
                if category == "hpi":
                    for kind, said in timing_facts(sentence):
                        timing.setdefault(kind, said)
    for kind, said in timing.items():  # one of each kind: the first the history states
        facts.append({"category": "hpi", "text": said, "keywords": TIMING_KEYWORDS[kind]})
    if facts and not any(f.get("disclosure") == "volunteer" for f in facts):  # no Primary_Symptom (MedQA-Ext)
        first = next((f for f in facts if f["category"] == "hpi"), facts[0])
        first["disclosure"] = "volunteer"
    return facts


def _mapping(osce: dict, key: str) -> dict:
    """``osce[key]``, which must be a mapping (names to texts or to deeper mappings), or {} when absent."""
    value = osce.get(key) or {}
    if not isinstance(value, dict):
        raise ScenarioError(f"{key} must be a mapping of names to findings, not a {type(value).__name__}",
                            field=f"OSCE_Examination.{key}")
    return value


def with_concept(data: dict) -> dict:
    """The case with its bare diagnosis name mapped onto the medical vocabularies (agents/concepts.py):
    a bracketed abbreviation split off as an alias, the concept's other names as aliases, and its
    ICD-10-CM code and specialty where the match is unambiguous; else the provenance notes say why not."""
    from agentclinic.agents.concepts import enrich

    found = enrich(str(data["diagnosis"]["name"]))
    data["diagnosis"] = {"name": found.name, "aliases": found.aliases,
                         **({"icd10": found.icd10} if found.icd10 else {})}
    if found.specialty:
        data["specialty"] = found.specialty
    if found.note:
        provenance = data["provenance"]
        provenance["notes"] = " ".join(filter(None, [provenance.get("notes"), f"{found.note}."]))
    return data


def load_medqa(path: Path) -> Iterator[Record]:
    """AgentClinic MedQA / MedQA-extended JSONL, one OSCE case per line."""
    for number, row in jsonl_rows(path):
        if isinstance(row, ScenarioError):
            yield row
            continue
        source = Source(path, number)
        try:
            osce = row["OSCE_Examination"]
            actor = _mapping(osce, "Patient_Actor")
            data = {
                "id": f"medqa-{number:03d}",
                "title": str(osce.get("Objective_for_Doctor") or f"MedQA case {number}")[:120],
                "specialty": "general",
                "provenance": {**MEDQA_PROVENANCE, "reference": f"{MEDQA_PROVENANCE['reference']}; {path.name} line {number}"},
                "doctor_brief": osce.get("Objective_for_Doctor") or "Assess and diagnose the patient.",
                "patient": (patient := demographics(str(actor.get("Demographics", "")))),
                "facts": medqa_facts(actor, speaker_is_patient=not is_child(patient)),
                "examination": medqa_examination(_mapping(osce, "Physical_Examination_Findings")),
                "tests": medqa_tests(_mapping(osce, "Test_Results")),
                "diagnosis": {"name": osce.get("Correct_Diagnosis")} if osce.get("Correct_Diagnosis") else None,
            }
        except ScenarioError as exc:
            yield ScenarioError(exc.message, path=path, line=number, field=exc.field)
            continue
        except (KeyError, TypeError, AttributeError) as exc:
            yield ScenarioError(f"not an AgentClinic MedQA record ({exc!r})", path=path, line=number)
            continue
        if data["diagnosis"] is None:
            yield ScenarioError("missing diagnosis (Correct_Diagnosis is empty)", path=path, line=number,
                                field="OSCE_Examination.Correct_Diagnosis", code="missing-diagnosis")
            continue
        built = build(with_concept(data), source)
        yield from built if isinstance(built, list) else [built]


BULLET = re.compile(r"(?:^|\s)(?:\d+\.|-)\s+(?=\S)")
PREAMBLE = re.compile(r"^(the information|the provided|for your role|for the patient|here'?s what|based on|"
                      r"the instrument readings|the patient,)", re.I)
# NEJM-Ext wording: markdown emphasis, a header left at the end of the previous item ("Negative Imaging
# results:"), results that only say nothing was given, and the actor's stage directions.
BOLD = re.compile(r"\*\*([^*]*)\*\*")
TRAILING_HEADER = re.compile(r"\s+[A-Z][\w()-]*(?:\s+[a-z][\w()-]*){0,3}\s+(?:results?|findings?|studies|tests?):\s*$")
NOT_GIVEN = re.compile(r"\bnot (?:detailed|provided|specified|mentioned|included|described|reported)\b", re.I)
STAGE_DIRECTION = re.compile(r"^(?:remember|note|keep in mind|your (?:character|role)|as (?:the|a) patient)\b"
                             r"|\b(?:patient actor|portray|your character)\b", re.I)
SUB_ITEMS = GENERIC_LEAVES | {"staining", "details", "observations", "observation", "description"}


def nejm_findings(text: str) -> list[dict]:
    """'1. Dermoscopy findings: X. 2. Skin biopsy: Y' or '- Name: value' lists -> tests.

    A header without a value ('Laboratory studies:') collects the unnamed items after it, and the
    generic ones ('**CT of the chest:** - Findings: X'); a result that only says it was not given is dropped.
    """
    tests: list[dict] = []
    header: dict | None = None
    for segment in filter(None, (s.strip() for s in BULLET.split(BOLD.sub(r"\1", text)))):
        segment = TRAILING_HEADER.sub("", segment)
        name, sep, result = segment.partition(":")
        name = name.strip()
        if sep and header is not None and name.lower() in SUB_ITEMS:
            header["result"] = "; ".join(filter(None, [header["result"], result.strip()]))
        elif sep and len(name) <= 80 and not PREAMBLE.match(name):
            name = re.sub(r"\s+(findings?|results?|readings?|indicated)$", "", name, flags=re.I)
            tests.append({"name": name, "group": "Tests", "result": result.strip(), "relevant": True})
            header = tests[-1] if not result.strip() else None
        elif tests:
            tests[-1]["result"] = "; ".join(filter(None, [tests[-1]["result"], segment]))
    return [t for t in tests if t["result"] and not NOT_GIVEN.search(t["result"])]


SECOND_PERSON = [(re.compile(p, re.I), r) for p, r in (
    (r"\byou are\b", "I am"), (r"\byou're\b", "I'm"), (r"\byou were\b", "I was"), (r"\byou've\b", "I've"),
    (r"\byou'd\b", "I'd"), (r"\byou'll\b", "I'll"), (r"\byourself\b", "myself"), (r"\byours\b", "mine"),
    (r"\byour\b", "my"),
    (r"\b(told|tell|[a-z]+ed) you\b(?! (?:have|had|are|were|need|should|might|may|could|would|will|must)\b)",
     r"\1 me"), (r"\b(to|with|for|at|about|on|from|by|gave|give|gives|showed|prescribed|"
                          r"examined|helps?) you\b", r"\1 me"), (r"\byou\b", "I"))]


def second_to_first(text: str) -> str:
    """'You've been experiencing swelling in your neck' -> 'I've been experiencing swelling in my neck'."""
    def swap(repl: str):
        def said(m: re.Match) -> str:
            out = m.expand(repl)
            return out[:1].upper() + out[1:] if m.group(0)[:1].isupper() else out
        return said

    for pattern, repl in SECOND_PERSON:
        text = pattern.sub(swap(repl), text)
    return text


def nejm_facts(patient_info: str) -> list[dict]:
    """The patient brief (second person, often bulleted, in NEJM-Ext with markdown headers) as first-person
    facts; headers, preambles and stage directions are left out; the first fact is volunteered; onset,
    duration, severity and course become facts of their own (as for MedQA)."""
    text = BOLD.sub(r"\1", patient_info)
    text = re.sub(r"\([^()]*(?:not aware|aware of|portrayal|don't know)[^()]*\)", "", text, flags=re.I)
    parts = [s.strip() for chunk in BULLET.split(text) for s in sentences(chunk)]
    parts = [re.sub(r"^[\w ,/’'()-]{1,60}:\s+(?=\S)", "", p) for p in parts  # "Age and Background: You are..."
             if p and not PREAMBLE.match(p) and not STAGE_DIRECTION.search(p) and not p.rstrip().endswith(":")]
    facts: list[dict] = []
    timing: dict[str, str] = {}
    for p in parts:
        said = second_to_first(p)
        facts.append({"category": "hpi", "text": said, "disclosure": "on-ask" if facts else "volunteer"})
        for kind, sentence in timing_facts(said):
            timing.setdefault(kind, sentence)
    facts += [{"category": "hpi", "text": said, "keywords": TIMING_KEYWORDS[kind]} for kind, said in timing.items()]
    return facts


def without_answer_options(data: dict) -> dict:
    """Aliases from the vocabularies that are another answer option of the question (MeSH files keratoglobus
    under keratoconus) are dropped: the question itself tells them apart."""
    others = {normalise_name(c["name"]) for c in data.get("differential", [])}
    data["diagnosis"]["aliases"] = [a for a in data["diagnosis"].get("aliases", []) if normalise_name(a) not in others]
    return data


def normalise_name(name: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", name.lower()).split())


def load_nejm(path: Path) -> Iterator[Record]:
    """AgentClinic NEJM image challenge JSONL: question, patient_info, physical_exams, answers."""
    for number, row in jsonl_rows(path):
        if isinstance(row, ScenarioError):
            yield row
            continue
        try:
            answers = row.get("answers") or []
            correct = [a["text"] for a in answers if a.get("correct")]
            if not correct:
                yield ScenarioError("missing diagnosis (no answer is marked correct)", path=path, line=number,
                                    field="answers", code="missing-diagnosis")
                continue
            question = str(row.get("question", ""))
            first = sentences(question)[0] if question else "A patient presents."
            exams = str(row.get("physical_exams", ""))
            tests = nejm_findings(exams)
            data = {
                "id": f"nejm-{number:03d}",
                "title": first[:120],
                "specialty": "general",
                "provenance": {**NEJM_PROVENANCE, "reference": f"{NEJM_PROVENANCE['reference']}; {path.name} line {number}",
                               "notes": "The case image is a remote URL: offline, the case runs text-only."},
                "doctor_brief": f"{first} Take a history, request the findings you need and give your diagnosis.",
                "patient": demographics(first),
                "facts": nejm_facts(str(row.get("patient_info", ""))),
                "examination": [] if tests else [{"system": "Examination and tests", "result": exams or "None recorded."}],
                "tests": tests,
                "images": [{"id": "img1", "asset": row["image_url"],
                            "modality": ", ".join(map(str, row.get("type") or [])) or "clinical image"}]
                if row.get("image_url") else [],
                "diagnosis": {"name": correct[0]},
                "differential": [{"name": a["text"]} for a in answers if not a.get("correct")],
            }
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            yield ScenarioError(f"not an AgentClinic NEJM record ({exc!r})", path=path, line=number)
            continue
        built = build(without_answer_options(with_concept(data)), Source(path, number))
        yield from built if isinstance(built, list) else [built]


register_loader("agentclinic_medqa", load_medqa, lambda row: "OSCE_Examination" in row)
register_loader("agentclinic_nejm", load_nejm, lambda row: {"question", "answers"} <= row.keys())
