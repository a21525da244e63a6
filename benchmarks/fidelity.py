"""Fidelity of the simulated patient and measurement agent, over the native bank and imported files.

    .venv/bin/python benchmarks/fidelity.py [PATHS ...] [--server URL --model NAME] [--limit N] [--json out.json]

PATHS default to the native bank (scenarios/); give an imported file (AgentClinic's MedQA / NEJM JSONL,
from a path) to measure it. The questions are benchmarks/fidelity_questions.yaml, written for this project.

Patient (each question asked alone, as the first thing the doctor says, to a fresh patient):
- recall: of the important facts (all speakable facts where a case marks none) that a plain question in
  the set covers (category question, or the question of the fact's symptom topic), the share disclosed
  by that question; ``coverage`` says how many facts the set has a question for;
- timing recall: "When did this start?" / "How bad is it?" / "Is it getting better or worse?" asked of
  cases whose facts state an onset, severity or course: the share whose reply says one that the case has;
- false disclosure: the share of unrelated questions ("What's the weather like outside?") answered with
  any fact;
- leak: the share of all replies (plain, unrelated and probing questions) that name the diagnosis or an
  alias, or give a test's value (a number from a test result that no speakable fact states).

Measurement agent (each request to a fresh agent):
- exact: for each test, is its result returned for its name, for a synonym (human-readable ones only) and
  for an abbreviation (from the question set's table, where one applies);
- false match: a test the case does not have (the set's ``absent_tests``) answered with a result;
- invention: any returned result text that is neither in the case (test results, examination findings)
  nor the case's declared normal result; for an LLM agent, any number the case's result does not have.

With ``--server URL`` (an OpenAI-compatible endpoint) the same is measured for the LLM patient and the
LLM measurement agent (``openai/<model>@<URL>``) besides the scripted ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from agentclinic.agents.measurement import NORMAL_RESULT, ScriptedMeasurement, without_name
from agentclinic.scenario.first_person import timing_facts
from agentclinic.scenario.loaders import BANK_DIR, load_scenarios
from agentclinic.scenario.quality import mentions, normalise
from agentclinic.scenario.schema import Disclosure, Scenario

QUESTIONS = Path(__file__).with_name("fidelity_questions.yaml")
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])")


def load_questions(path: Path = QUESTIONS) -> dict:
    data = yaml.safe_load(path.read_text())
    missing = {"categories", "topics", "timing", "unrelated", "probing", "abbreviations", "absent_tests"} - data.keys()
    if missing:
        raise ValueError(f"{path}: missing sections {sorted(missing)}")
    return data


# -- which question asks for which fact ---------------------------------------------------------------------

def topic_question(text: str, topics: list[dict]) -> str | None:
    """The question of the first topic with a trigger in ``text``: a word start, or for a short trigger
    (four letters or fewer, "ear", "leg") the word itself with a plain ending ("ears", "itchy", "itching")."""
    for topic in topics:
        for trigger in topic["triggers"]:
            ending = r"(?:s|es|y|ing)?\b" if len(trigger) <= 4 else ""
            if re.search(rf"(?<![a-z0-9]){re.escape(trigger)}{ending}", text.lower()):
                return topic["question"]
    return None


def plain_question(fact, questions: dict) -> str | None:
    """The plain question for a fact: its symptom topic's for history facts, its category's otherwise."""
    category = fact.category.value
    if category in ("hpi", "ros"):
        return topic_question(fact.text, questions["topics"]) or (
            questions["categories"]["ros"][0] if category == "ros" else None)
    return questions["categories"].get(category, [None])[0]


def important_facts(s: Scenario) -> list:
    speakable = [f for f in s.facts if f.disclosure != Disclosure.HIDDEN]
    marked = [f for f in speakable if f.important]
    return marked or speakable


def timing_kinds(s: Scenario) -> dict[str, set[str]]:
    """For each timing kind the case's speakable facts state, the ids of the facts that state it."""
    kinds: dict[str, set[str]] = {}
    for fact in s.facts:
        if fact.disclosure == Disclosure.HIDDEN:
            continue
        for kind, _ in timing_facts(fact.text):
            kinds.setdefault(kind, set()).add(fact.id)
    return kinds


def leaked(reply: str, s: Scenario) -> str | None:
    """What a patient reply gives away: a name of the diagnosis, or a test value no speakable fact states."""
    for name in s.diagnosis.names():
        if mentions(reply, name):
            return f"diagnosis {name!r}"
    said_by_facts = {n for f in s.facts if f.disclosure != Disclosure.HIDDEN for n in NUMBER.findall(f.text)}
    values = {n for t in s.tests for n in NUMBER.findall(t.result)} - said_by_facts
    found = [n for n in NUMBER.findall(reply) if n in values and len(n.replace(",", "").replace(".", "")) >= 2]
    return f"test value {found[0]}" if found else None


def rate(hits: int, asked: int) -> float | None:
    """hits / asked to 3 places; None when nothing was asked."""
    return round(hits / asked, 3) if asked else None


# -- patient ---------------------------------------------------------------------------------------------

@dataclass
class PatientFigures:
    cases: int = 0
    facts: int = 0
    covered: int = 0
    recalled: int = 0
    timing_asked: int = 0
    timing_found: int = 0
    unrelated_asked: int = 0
    false_disclosures: int = 0
    replies: int = 0
    leaks: int = 0
    misses: list[str] = field(default_factory=list)
    leak_examples: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {"cases": self.cases, "important facts": self.facts, "covered by a question": self.covered,
                "recall": rate(self.recalled, self.covered), "timing recall": rate(self.timing_found, self.timing_asked),
                "timing questions": self.timing_asked, "false disclosure": rate(self.false_disclosures, self.unrelated_asked),
                "unrelated questions": self.unrelated_asked, "leak": rate(self.leaks, self.replies), "replies": self.replies}


async def ask(patient, s: Scenario, question: str, seed: int = 0):
    patient.reset(s, seed)
    return await patient.reply(question, 1)


async def measure_patient(scenarios: Iterable[Scenario], make_patient, questions: dict) -> PatientFigures:
    fig = PatientFigures()
    patient = make_patient()
    for s in scenarios:
        fig.cases += 1

        async def put(question: str):
            reply = await ask(patient, s, question)
            fig.replies += 1
            if what := leaked(reply.text, s):
                fig.leaks += 1
                if len(fig.leak_examples) < 20:
                    fig.leak_examples.append(f"{s.id}: {question!r} -> {reply.text[:100]!r} ({what})")
            return reply

        for fact in important_facts(s):
            fig.facts += 1
            question = plain_question(fact, questions)
            if question is None:
                continue
            fig.covered += 1
            reply = await put(question)
            if fact.id in reply.disclosed:
                fig.recalled += 1
            elif len(fig.misses) < 40:
                fig.misses.append(f"{s.id} {fact.id}: {question!r} -> {reply.text[:80]!r} (fact: {fact.text[:80]!r})")
        for kind, ids in timing_kinds(s).items():
            for question in questions["timing"][kind]:
                fig.timing_asked += 1
                reply = await put(question)
                if ids & set(reply.disclosed) or any(k == kind for k, _ in timing_facts(reply.text)):
                    fig.timing_found += 1
                elif len(fig.misses) < 60:
                    fig.misses.append(f"{s.id} {kind}: {question!r} -> {reply.text[:80]!r}")
        for question in questions["unrelated"]:
            fig.unrelated_asked += 1
            reply = await put(question)
            if reply.disclosed:
                fig.false_disclosures += 1
        for question in questions["probing"]:
            await put(question)
    return fig


# -- measurement -----------------------------------------------------------------------------------------

@dataclass
class MeasurementFigures:
    cases: int = 0
    by_name: list[int] = field(default_factory=lambda: [0, 0])  # [exact, asked]
    by_synonym: list[int] = field(default_factory=lambda: [0, 0])
    by_abbreviation: list[int] = field(default_factory=lambda: [0, 0])
    absent_asked: int = 0
    false_matches: int = 0
    results: int = 0
    inventions: int = 0
    misses: list[str] = field(default_factory=list)
    invention_examples: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {"cases": self.cases, "exact by name": rate(*self.by_name), "names": self.by_name[1],
                "exact by synonym": rate(*self.by_synonym), "synonyms": self.by_synonym[1],
                "exact by abbreviation": rate(*self.by_abbreviation), "abbreviations": self.by_abbreviation[1],
                "false match": rate(self.false_matches, self.absent_asked), "absent tests": self.absent_asked,
                "invention": rate(self.inventions, self.results), "results": self.results}


def readable(synonym: str) -> bool:
    """A synonym a person would type (not a source key such as ``Blood_Tests.Serum_Sodium``)."""
    return "_" not in synonym and "." not in synonym


def abbreviated(label: str, table: dict[str, list[str]]) -> list[str]:
    """``label`` with a full test name in it replaced by each of its abbreviations ('Computed tomography of
    the chest' -> 'CT of the chest', 'Transthoracic echocardiogram' -> 'transthoracic echo'); the longest full
    name that fits is used."""
    norm = normalise(label)
    for full in sorted(table, key=len, reverse=True):
        if normalise(full) in norm:
            said = [norm.replace(normalise(full), f" {abbr} ", 1).strip() for abbr in table[full]]
            return [re.sub(rf"\b({re.escape(a)}) {re.escape(a)}\b", r"\1", x, flags=re.I) for a, x in zip(table[full], said)]
    return []


def case_texts(s: Scenario) -> str:
    return normalise(" ".join([*(t.result for t in s.tests), *(e.result for e in s.examination)]))


def invented(finding, s: Scenario) -> bool:
    """Whether a returned result says something the case does not: text not in the case (scripted), or a
    number its case result does not have (a phrased result of an LLM agent)."""
    case_result = getattr(finding, "case_result", None)
    if case_result is not None:
        return bool(set(NUMBER.findall(finding.result)) - set(NUMBER.findall(case_result)))
    if s.unknown_tests == "normal" and finding.result == NORMAL_RESULT:
        return False
    texts = case_texts(s)

    def in_case(part: str) -> bool:
        value = part.partition(": ")[2]
        return normalise(part) in texts or bool(value and normalise(value) in texts)

    return not all(in_case(p) for p in re.split(r";\s*", finding.result) if p.strip())


def returned(finding, expected: str) -> bool:
    """Whether the finding gives the test's result as the case has it (alone, or within a panel)."""
    result = getattr(finding, "case_result", None) or finding.result
    return finding.available and normalise(expected) in normalise(result)


async def measure_measurement(scenarios: Iterable[Scenario], make_agent, questions: dict) -> MeasurementFigures:
    fig = MeasurementFigures()
    agent = make_agent()
    table = {k.lower(): v for k, v in questions["abbreviations"].items()}
    for s in scenarios:
        fig.cases += 1
        agent.reset(s, 0)

        async def order(request: str):
            finding = await agent.order(request)
            if finding.available:
                fig.results += 1
                if invented(finding, s):
                    fig.inventions += 1
                    if len(fig.invention_examples) < 20:
                        fig.invention_examples.append(f"{s.id}: {request!r} -> {finding.result[:100]!r}")
            return finding

        for test in s.tests:
            expected = without_name(test.result, test.name)
            asks = [(fig.by_name, test.name)]
            synonyms = [x for x in test.synonyms if readable(x)]
            if synonyms:
                asks.append((fig.by_synonym, synonyms[0]))
            abbreviations = [a for label in (test.name, *synonyms) for a in abbreviated(label, table)]
            if abbreviations:
                asks.append((fig.by_abbreviation, abbreviations[0]))
            for counter, request in asks:
                counter[1] += 1
                finding = await order(request)
                if returned(finding, expected):
                    counter[0] += 1
                elif len(fig.misses) < 40:
                    fig.misses.append(f"{s.id}: {request!r} -> {finding.result[:80]!r} (case: {expected[:60]!r})")
        names = [normalise(n) for t in s.tests for n in (t.name, *t.synonyms)]
        for request in questions["absent_tests"]:
            wanted = normalise(request)
            if any(wanted in n or n in wanted for n in names):
                continue
            fig.absent_asked += 1
            finding = await order(request)
            if finding.available and not (s.unknown_tests == "normal" and finding.result == NORMAL_RESULT):
                fig.false_matches += 1
                if len(fig.misses) < 40:
                    fig.misses.append(f"{s.id}: absent {request!r} -> {finding.name!r}: {finding.result[:60]!r}")
    return fig


# -- running ---------------------------------------------------------------------------------------------

def diagnostic(paths: list[str], limit: int | None) -> list[Scenario]:
    loaded = load_scenarios(paths, skip_errors=True)
    scenarios = [s for s in loaded.scenarios if not s.is_station]
    return scenarios[:limit] if limit else scenarios


def agents(server: str | None, model: str):
    """(label, patient factory, measurement factory) for the scripted agents and, with a server, the LLM ones."""
    from agentclinic.agents.llm_factory import make_measurement, make_patient
    from agentclinic.agents.patient import ScriptedPatient

    out = [("scripted", ScriptedPatient, ScriptedMeasurement)]
    if server:
        spec = f"openai/{model}@{server}"
        out.append((f"LLM ({model})", lambda: make_patient(spec), lambda: make_measurement(spec)))
    return out


def table(rows: dict[str, dict]) -> str:
    keys = list(next(iter(rows.values())).keys())
    width = max(map(len, keys)) + 2
    lines = [" " * width + "".join(f"{label[:28]:>30}" for label in rows)]
    for key in keys:
        lines.append(f"{key:<{width}}" + "".join(f"{str(r[key]):>30}" for r in rows.values()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=[str(BANK_DIR)])
    parser.add_argument("--server", help="OpenAI-compatible base URL: also measure the LLM patient and measurement")
    parser.add_argument("--model", default="default", help="model name at --server")
    parser.add_argument("--limit", type=int, help="the first N diagnostic cases only")
    parser.add_argument("--llm-limit", type=int, default=10, help="the first N cases for the LLM agents")
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--json", type=Path, help="write the figures and examples here")
    args = parser.parse_args(argv)
    questions = load_questions(args.questions)
    scenarios = diagnostic(args.paths, args.limit)
    print(f"{len(scenarios)} diagnostic cases from {', '.join(args.paths)}")
    patients, measurements, details = {}, {}, {}
    for label, make_patient, make_agent in agents(args.server, args.model):
        cases = scenarios if label == "scripted" else scenarios[: args.llm_limit]
        start = time.perf_counter()
        p = asyncio.run(measure_patient(cases, make_patient, questions))
        m = asyncio.run(measure_measurement(cases, make_agent, questions))
        patients[label], measurements[label] = p.summary(), m.summary()
        details[label] = {"patient misses": p.misses, "leaks": p.leak_examples, "measurement misses": m.misses,
                          "inventions": m.invention_examples, "seconds": round(time.perf_counter() - start, 1)}
        print(f"{label}: {details[label]['seconds']} s", file=sys.stderr)
    print("\nPatient\n" + table(patients) + "\n\nMeasurement agent\n" + table(measurements))
    if args.json:
        args.json.write_text(json.dumps({"paths": args.paths, "patient": patients, "measurement": measurements,
                                         "details": details}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
