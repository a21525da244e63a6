"""The scenario model: one clinical case, as the environment and its agents see it.

Every model rejects unknown keys, so a typo in a scenario file is an error, not a
silently ignored field. The native file format (``scenarios/README.md``) is exactly
these models written as YAML or JSON.
"""

from __future__ import annotations

import re
from collections import Counter
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, FiniteFloat, PrivateAttr, StringConstraints, field_validator,
                      model_validator)

SCHEMA_VERSION = 1
MAX_IMAGES = 32
"""Most images in one scenario (the bank's cases have at most 2): each is checked on disk at every reset and,
with images up front, sent with the brief (2,000 aliased images cost 215 s per episode)."""

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Slug = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
ICD10_PATTERN = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")


class Strict(BaseModel):
    """Base for every saved model: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FactCategory(str, Enum):
    """Where a fact belongs in a structured history."""

    HPI = "hpi"
    PMH = "pmh"
    MEDICATIONS = "medications"
    ALLERGIES = "allergies"
    SOCIAL = "social"
    FAMILY = "family"
    ROS = "ros"
    OBSTETRIC = "obstetric"
    OTHER = "other"


class Disclosure(str, Enum):
    """When the patient tells a fact: unprompted, only when asked, or never."""

    VOLUNTEER = "volunteer"
    ON_ASK = "on-ask"
    HIDDEN = "hidden"


class Provenance(Strict):
    """Where a scenario comes from and under which terms it may be used."""

    source: Text = Field(description="'synthetic' for cases written here, else the data set's name")
    synthetic: bool = Field(description="True when the case was invented, not taken from a real patient")
    licence: Text
    authors: str | None = None
    reference: str | None = Field(None, description="citation or record locator in the source")
    notes: str | None = None


class Persona(Strict):
    """How the patient talks and feels."""

    description: str | None = Field(None, description="who the patient is, in a sentence or two")
    mood: str | None = Field(None, description="emotional state at the start, e.g. 'anxious'")
    health_literacy: Literal["low", "average", "high"] = "average"
    verbosity: Literal["terse", "normal", "talkative"] = "normal"
    language: str = "English"


class Patient(Strict):
    """Demographics and persona. ``informant`` is who answers, e.g. 'mother' for a child."""

    age: Annotated[float, Field(ge=0, le=130)]
    age_unit: Literal["years", "months", "days"] = "years"
    sex: Literal["female", "male", "intersex", "unknown"]
    gender: str | None = None
    ethnicity: str | None = None
    occupation: str | None = None
    informant: str | None = None
    persona: Persona = Field(default_factory=Persona)

    def describe(self) -> str:
        """A short human-readable description, e.g. '54-year-old female'."""
        age = int(self.age) if float(self.age).is_integer() else self.age
        unit = self.age_unit[:-1]
        return f"{age}-{unit}-old {self.sex}"


class Fact(Strict):
    """One thing the patient knows, in the first person, with its disclosure level."""

    id: Slug | None = Field(None, description="stable id; defaults to f1, f2, ... in file order")
    category: FactCategory
    text: Text
    disclosure: Disclosure = Disclosure.ON_ASK
    important: bool = Field(False, description="a key fact a good history must elicit")
    keywords: list[Text] = Field(default_factory=list, description="extra words that should match this fact")


class ExamFinding(Strict):
    """An examination finding, by body system (``name`` is the manoeuvre or sign)."""

    system: Text
    name: str | None = None
    result: Text
    abnormal: bool | None = None


class LabTest(Strict):
    """A test the measurement agent can report, by canonical name or synonym."""

    name: Text
    group: Text = Field(description="e.g. 'Blood tests', 'Imaging', 'Microbiology'")
    synonyms: list[Text] = Field(default_factory=list)
    result: Text
    value: FiniteFloat | None = None
    unit: str | None = None
    reference_range: str | None = None
    abnormal: bool | None = None
    relevant: bool = Field(False, description="whether ordering it helps to reach the diagnosis")
    price_code: Slug | None = Field(None, description="key in the price table; the group price otherwise")
    harmful: str | None = Field(None, description="why ordering it would harm this patient (scored under safety)")


class Image(Strict):
    """An image the doctor can request. ``asset`` is a reference (see ``assets.py``)."""

    id: Slug | None = Field(None, description="defaults to img1, img2, ... in file order")
    asset: Text
    modality: Text = Field(description="e.g. 'CT', 'MR', 'X-ray', 'US', 'fundus photo', 'histology'")
    description: str | None = Field(None, description="what a reader would report; for text-only doctors")
    mask: str | None = Field(None, description="asset reference of a ground-truth segmentation mask")

    @property
    def remote(self) -> bool:
        return self.asset.startswith(("http://", "https://"))


class Condition(Strict):
    """A diagnosis: a name, its aliases and its ICD-10-CM code."""

    name: Text
    aliases: list[Text] = Field(default_factory=list)
    icd10: str | None = None

    @field_validator("icd10")
    @classmethod
    def _icd10_shape(cls, code: str | None) -> str | None:
        if code is None:
            return None
        code = code.strip().upper()
        if not ICD10_PATTERN.match(code):
            raise ValueError(f"{code!r} is not shaped like an ICD-10-CM code (e.g. 'I21.4')")
        if len(code) > 3 and "." not in code:
            code = f"{code[:3]}.{code[3:]}"
        return code

    def names(self) -> list[str]:
        return [self.name, *self.aliases]


class RedFlag(Strict):
    """A danger sign the doctor should ask about, tied to the facts that reveal it."""

    text: Text
    facts: list[Slug] = Field(default_factory=list, description="ids of facts that answer it")


SITUATIONS = ("breaking-bad-news", "pregnancy-loss", "dementia-diagnosis", "angry-relative", "refusal-of-treatment",
              "antibiotic-demand", "opioid-request", "error-disclosure", "goals-of-care", "adolescent-confidentiality",
              "interpreter", "health-literacy", "domestic-abuse", "suicide-risk", "uncertain-result", "other")
"""The kinds of difficult conversation a station rehearses."""
MOVES = ("introduction", "check-setting", "ask-perception", "ask-invitation", "warning-shot", "deliver-information",
         "plain-language", "jargon", "silence", "naming-emotion", "understanding-statement", "respect-statement",
         "support-statement", "explore-emotion", "empathy-statement", "open-question", "closed-question",
         "ask-concerns", "false-reassurance", "blunt-news", "blaming", "dismissing-emotion", "interrupting",
         "check-understanding", "summarise", "plan", "safety-net", "close", "apologise", "confidentiality",
         "risk-question")
"""The learner moves the conversation engine recognises (agentclinic.conversation.moves)."""
RED_LINES = ("false-reassurance", "blaming", "jargon-unexplained", "dismissing-emotion", "breach-confidentiality",
             "coercion", "judgemental", "withholding-error", "ignoring-risk", "talking-to-interpreter")
"""What a learner must not do in a station (graded by agentclinic.conversation.grading)."""
EMOTION_AXES = ("distress", "anger", "trust", "understanding")
LINE_STATES = ("opening", "calm", "distressed", "angry", "withdrawn", "confused", "reassured", "closing", "unknown")
"""The person's written lines, by state: the scripted emotional patient picks from them."""

Level = Annotated[int, Field(ge=0, le=4)]
MoveId = Literal[MOVES]  # type: ignore[valid-type]
RedLineId = Literal[RED_LINES]  # type: ignore[valid-type]
Lines = Annotated[list[Text], Field(min_length=1)]


class Participant(Strict):
    """Someone in the room; the first participant is the person the learner mainly talks to."""

    role: Literal["patient", "relative", "interpreter"]
    name: Text
    description: str | None = None


class InformationItem(Strict):
    """Something the learner must get across, in clinical and plain words, and how the person reacts to it."""

    id: Slug
    text: Text = Field(description="the clinical version")
    plain: Text = Field(description="the same in plain language")
    keywords: list[Text] = Field(default_factory=list, description="words that show it being delivered")
    essential: bool = True
    reaction: list[Text] = Field(default_factory=list, description="what the person says on hearing it")


class Concern(Strict):
    """A hidden worry: said only when the learner invites it; ``cue`` is dropped unprompted."""

    id: Slug
    text: Text = Field(description="what the person says when invited")
    cue: Text | None = Field(None, description="an emotional cue the person drops unprompted")
    keywords: list[Text] = Field(default_factory=list)


class EmotionStart(Strict):
    """The emotional state, each axis 0..4."""

    distress: Level = 2
    anger: Level = 0
    trust: Level = 2
    understanding: Level = 1


class EmotionArc(Strict):
    """The starting state, and the learner moves that make it worse or better."""

    start: EmotionStart = Field(default_factory=EmotionStart)
    escalates: list[MoveId] = Field(default_factory=list)
    settles: list[MoveId] = Field(default_factory=list)


class StationLines(Strict):
    """The person's written lines by state (the scripted patient picks by state and seed)."""

    opening: Lines
    calm: Lines
    distressed: Lines
    angry: Lines
    withdrawn: Lines
    confused: Lines
    reassured: Lines
    closing: Lines
    unknown: Lines


class RedLine(Strict):
    id: RedLineId
    text: str | None = None


class ConversationBudget(Strict):
    turns: Annotated[int, Field(ge=1, le=500)] = 30
    minutes: Annotated[float, Field(gt=0, le=240)] = 15


class Conversation(Strict):
    """What a conversation station adds: the situation, the people, what to get across, the hidden
    concerns, the emotional arc, the written lines, the red lines and the rubrics."""

    situation: Literal[SITUATIONS]  # type: ignore[valid-type]
    setting: Text
    task: Text
    participants: Annotated[list[Participant], Field(min_length=1)]
    information: list[InformationItem] = Field(default_factory=list)
    concerns: list[Concern] = Field(default_factory=list)
    emotion: EmotionArc = Field(default_factory=EmotionArc)
    lines: StationLines
    red_lines: list[RedLine] = Field(default_factory=list)
    rubric: list[Slug] = Field(default_factory=lambda: ["calgary-cambridge"])
    budget: ConversationBudget = Field(default_factory=ConversationBudget)

    @model_validator(mode="after")
    def _unique_ids(self) -> Conversation:
        for kind, ids in (("information", [i.id for i in self.information]), ("concern", [c.id for c in self.concerns]),
                          ("red line", [r.id for r in self.red_lines]), ("rubric", self.rubric)):
            if repeated := sorted(x for x, n in Counter(ids).items() if n > 1):
                raise ValueError(f"duplicate {kind} ids: {repeated}")
        return self

    @property
    def speaker(self) -> Participant:
        return self.participants[0]


class Scenario(Strict):
    """One clinical case (``kind: diagnostic``) or communication station (``kind: conversation``)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: Slug
    kind: Literal["diagnostic", "conversation"] = "diagnostic"
    title: Text
    specialty: Text
    difficulty: Literal["easy", "medium", "hard"] = "medium"
    provenance: Provenance
    doctor_brief: Text = Field(description="what the doctor is told at the start")
    patient: Patient
    facts: list[Fact] = Field(default_factory=list)
    examination: list[ExamFinding] = Field(default_factory=list)
    tests: list[LabTest] = Field(default_factory=list)
    images: list[Image] = Field(default_factory=list)
    unknown_tests: Literal["not-available", "normal", "list-available"] = Field(
        "not-available", description="what the measurement agent says for a test the case lacks: that it is not "
        "available, that it is normal, or that it is not available and which tests are")
    diagnosis: Condition | None = Field(None, description="required for diagnostic cases; none for stations")
    differential: list[Condition] = Field(default_factory=list)
    red_flags: list[RedFlag] = Field(default_factory=list)
    relevant_tools: list[Slug] = Field(default_factory=list, description="expert tools the case calls for (e.g. segment)")
    conversation: Conversation | None = Field(None, description="the station: required for conversation, else none")
    _source: Any = PrivateAttr(None)  # loaders.Source: file and line numbers, when read from a file

    @field_validator("images", mode="before")
    @classmethod
    def _at_most_max_images(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_IMAGES:  # before the images are validated one by one
            raise ValueError(f"{len(value):,} images, over the limit of {MAX_IMAGES} per scenario (MAX_IMAGES)")
        return value

    @field_validator("specialty")
    @classmethod
    def _normalise_specialty(cls, value: str) -> str:
        return re.sub(r"[\s_]+", "-", value.strip().lower())

    @model_validator(mode="after")
    def _ids_and_references(self) -> Scenario:
        if self.kind == "diagnostic" and self.diagnosis is None:
            raise ValueError("a diagnostic case needs a 'diagnosis' (or set 'kind: conversation' for a station)")
        if self.kind == "diagnostic" and self.conversation is not None:
            raise ValueError("'conversation' is for stations: set 'kind: conversation'")
        if self.kind == "conversation" and self.conversation is None:
            raise ValueError("a conversation station needs a 'conversation' block")
        for i, fact in enumerate(self.facts, 1):
            if fact.id is None:
                fact.id = f"f{i}"
        for i, image in enumerate(self.images, 1):
            if image.id is None:
                image.id = f"img{i}"
        for kind, ids in (("fact", [f.id for f in self.facts]), ("image", [m.id for m in self.images])):
            if repeated := sorted(x for x, n in Counter(ids).items() if n > 1):
                raise ValueError(f"duplicate {kind} ids: {repeated}")
        fact_ids = {f.id for f in self.facts}
        for flag in self.red_flags:
            missing = [x for x in flag.facts if x not in fact_ids]
            if missing:
                raise ValueError(f"red flag {flag.text!r} names unknown facts {missing}")
        return self

    @property
    def is_station(self) -> bool:
        """Whether this is a conversation station (no diagnosis; graded on the conversation)."""
        return self.kind == "conversation"

    def fact(self, fact_id: str) -> Fact:
        return next(f for f in self.facts if f.id == fact_id)
