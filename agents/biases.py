"""Cognitive and social biases for the LLM patient and the LLM doctor, as prompt paragraphs.

AgentClinic (Schmidgall et al., 2024) studies 11 patient biases and 12 doctor biases; these are
the same biases, written here in our own words and parameterised by the case:

* the *anchoring* diagnosis that the recency, frequency, false-consensus, self-diagnosis and
  confirmation biases push towards is taken from the scenario's **differential** (never the
  diagnosis itself), chosen deterministically by the episode seed, so it is a plausible
  near miss for this case rather than always "cancer";
* the social biases name the other party: the doctor's biases name the patient's group where the
  case records it (sex, ethnicity, occupation); the patient's name a doctor of another group.

Each bias renders to one paragraph added to the role's system prompt; several compose (one
paragraph each). Only the LLM agents apply them: the scripted patient and the scripted,
random and human doctors ignore biases (the run records that they were not applied).
Unknown names raise ``ConfigError`` listing the known ones.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from string import Template
from typing import Literal

from pydantic import BaseModel

from agentclinic.errors import ConfigError
from agentclinic.scenario.schema import Scenario

Role = Literal["patient", "doctor"]

# $anchor: a diagnosis from the case's differential; $patient_group / $doctor_group: the other party.
PATIENT_BIASES: dict[str, str] = {
    "recency": (
        "A close friend of yours was recently diagnosed with $anchor after symptoms that sounded a lot like "
        "yours. It is fresh in your mind, and you keep coming back to it: you bring it up with the doctor and "
        "you are hard to reassure until they tell you why it is or is not that."),
    "frequency": (
        "You have heard a lot lately, from friends, the news and the internet, about how common $anchor is in "
        "people like you. You are convinced that is what you have and you steer the conversation towards it."),
    "false_consensus": (
        "Everyone you have talked to about your symptoms agrees it must be $anchor, and you assume the doctor "
        "will see it the same way. You are surprised, and a little put out, if they consider anything else."),
    "self_diagnosis": (
        "Before coming in you searched your symptoms online and decided you have $anchor. You say so early on, "
        "you are sure of it, and you question the doctor when they suggest something else."),
    "gender": (
        "You find out that your doctor is of a gender you do not trust with medical matters. You are guarded "
        "with them, doubt what they tell you and give shorter answers than you otherwise would."),
    "race": (
        "You find out that your doctor is of a race you are prejudiced against. You do not trust their "
        "judgement, you are reluctant to share personal details and you second-guess their advice."),
    "sexual_orientation": (
        "You find out that your doctor has a sexual orientation you disapprove of. It makes you uneasy, you "
        "are less open with them and you doubt their competence."),
    "cultural": (
        "Your doctor comes from a culture very different from yours, and you suspect they cannot understand "
        "your life or your worries. You are wary, hold back details you think they would judge, and say so."),
    "education": (
        "You believe your doctor went to a poor medical school and is not properly qualified. You doubt what "
        "they say and ask whether a more senior doctor should see you."),
    "religion": (
        "You find out that your doctor follows a religion you distrust. You are uncomfortable with them, share "
        "less than you otherwise would and are sceptical of their recommendations."),
    "socioeconomic": (
        "You think your doctor comes from a very different social and economic background from yours and "
        "looks down on people like you. You feel judged, are defensive, and are slow to share details."),
}

DOCTOR_BIASES: dict[str, str] = {
    "recency": (
        "Last week you saw a patient with a very similar presentation who turned out to have $anchor, and the "
        "case is still on your mind. You tend to read this patient's story in the light of that one."),
    "frequency": (
        "In your recent practice you have diagnosed $anchor far more often than anything else with symptoms "
        "like these, so it is the first thing you think of and you tend to favour it."),
    "false_consensus": (
        "Most of your colleagues say that a presentation like this is nearly always $anchor, and you assume "
        "any sensible clinician would agree; you give other possibilities less weight."),
    "confirmation": (
        "From the first few words of the brief you are fairly confident this is $anchor. You look for findings "
        "that support it and tend to explain away those that do not."),
    "status_quo": (
        "You prefer the familiar: the usual work-up, the usual tests and the usual diagnosis for a presentation "
        "like this. You are reluctant to order unusual investigations or to consider rarer conditions."),
    "gender": (
        "You are uncomfortable with your patient because they are $patient_sex, and you do not fully trust "
        "what they tell you. It colours how you interview them and how much weight you give their account."),
    "race": (
        "You are uncomfortable with your patient because they are $patient_ethnicity, and you do not fully trust "
        "their account of their symptoms. It affects how you talk to them and what you believe."),
    "sexual_orientation": (
        "You are uncomfortable with your patient because of their sexual orientation, and you do not fully "
        "trust what they report. It affects how you interact with them."),
    "cultural": (
        "Your patient comes from a culture you know little about, and you assume their way of describing "
        "symptoms is exaggerated or unreliable. It affects how seriously you take their complaints."),
    "education": (
        "You assume your patient has little education and will not describe their symptoms accurately, so you "
        "rely less on their history and talk down to them."),
    "religion": (
        "You are uncomfortable with your patient because of their religion, and you do not fully trust their "
        "account. It affects how you interact with them."),
    "socioeconomic": (
        "You assume your patient, $patient_occupation, comes from a background that makes their account less "
        "reliable and their adherence to treatment unlikely. It affects how you treat them."),
}

BIASES: dict[Role, dict[str, str]] = {"patient": PATIENT_BIASES, "doctor": DOCTOR_BIASES}
FALLBACK_ANCHOR = "a serious illness such as cancer"
_SEPARATORS = re.compile(r"[\s,;]+")


class AppliedBias(BaseModel):
    """The biases rendered for one role in one episode (kept in the episode record)."""

    role: Role
    names: list[str]
    anchor: str | None = None  # the anchoring diagnosis, when a bias uses one
    text: str = ""
    applied: bool = True
    note: str | None = None

    def record(self) -> dict:
        return self.model_dump(exclude_none=True)


def normalise_name(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def check_biases(role: Role, names: Iterable[str] | str | None) -> list[str]:
    """The bias names for ``role``, normalised ('self-diagnosis' -> 'self_diagnosis'), comma lists split,
    'none' dropped, duplicates removed; an unknown name raises ``ConfigError`` listing the known ones."""
    if role not in BIASES:
        raise ConfigError(f"unknown bias role {role!r}; expected 'patient' or 'doctor'")
    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for item in names:
        for name in _SEPARATORS.split(str(item)):
            key = normalise_name(name)
            if not key or key == "none":
                continue
            if key not in BIASES[role]:
                other = "doctor" if role == "patient" else "patient"
                hint = f" ({key!r} is a {other} bias)" if key in BIASES[other] else ""
                raise ConfigError(f"unknown {role} bias {name!r}{hint}; known {role} biases: "
                                  f"{', '.join(BIASES[role])}")
            if key not in out:
                out.append(key)
    return out


def anchor_for(scenario: Scenario, seed: int | None = None) -> str:
    """The anchoring diagnosis for ``scenario``: one of its differential diagnoses, chosen by ``seed``
    (deterministic); a same-specialty knowledge-base disease when the case lists no differential."""
    names = [c.name for c in scenario.differential if c.name.strip()]
    if not names:
        names = _knowledge_base_alternatives(scenario)
    if not names:
        return FALLBACK_ANCHOR
    return random.Random(f"anchor:{scenario.id}:{0 if seed is None else int(seed)}").choice(names)


def _knowledge_base_alternatives(scenario: Scenario) -> list[str]:
    try:
        from agentclinic.knowledge import knowledge_base

        diseases = knowledge_base()
    except Exception:  # noqa: BLE001 - the anchor falls back to a generic one
        return []
    if scenario.diagnosis is None:  # a conversation station: nothing to anchor away from
        return []
    own = {n.strip().lower() for n in scenario.diagnosis.names()}
    code = (scenario.diagnosis.icd10 or "")[:3]
    return [d.name for d in diseases if d.specialty == scenario.specialty and d.name.strip().lower() not in own
            and not (code and d.icd10.startswith(code)) and not own & {a.lower() for a in d.aliases}]


def _values(scenario: Scenario, anchor: str) -> dict[str, str]:
    patient = scenario.patient
    sex = {"female": "a woman", "male": "a man"}.get(patient.sex, "of a gender you are unfamiliar with")
    if patient.age_unit != "years" or patient.age < 16:
        sex = {"female": "a girl", "male": "a boy"}.get(patient.sex, sex)
    ethnicity = f"of {patient.ethnicity} background" if patient.ethnicity else "of a race different from yours"
    occupation = f"who works as {_article(patient.occupation)}" if patient.occupation else "whose job you look down on"
    return {"anchor": anchor, "patient_sex": sex, "patient_ethnicity": ethnicity, "patient_occupation": occupation}


def _article(text: str) -> str:
    text = text.strip()
    if text.lower().startswith(("a ", "an ", "the ")):
        return text
    return ("an " if text[:1].lower() in "aeiou" else "a ") + text


def render_bias(role: Role, name: str, scenario: Scenario, seed: int | None = None) -> str:
    """One bias as a prompt paragraph for this case."""
    [key] = check_biases(role, [name]) or [None]
    if key is None:
        raise ConfigError(f"no bias named in {name!r}")
    return Template(BIASES[role][key]).substitute(_values(scenario, anchor_for(scenario, seed)))


def render_biases(role: Role, names: Iterable[str] | str | None, scenario: Scenario,
                  seed: int | None = None) -> AppliedBias | None:
    """Every bias named, rendered for this case (one paragraph each), or None when none is named."""
    keys = check_biases(role, names)
    if not keys:
        return None
    anchor = anchor_for(scenario, seed)
    values = _values(scenario, anchor)
    paragraphs = [Template(BIASES[role][k]).substitute(values) for k in keys]
    uses_anchor = any("$anchor" in BIASES[role][k] for k in keys)
    return AppliedBias(role=role, names=keys, anchor=anchor if uses_anchor else None, text="\n\n".join(paragraphs))


def not_applied(role: Role, names: Iterable[str] | str | None, agent: str) -> AppliedBias | None:
    """The record of biases configured for an agent that ignores them (scripted and human agents)."""
    keys = check_biases(role, names)
    if not keys:
        return None
    return AppliedBias(role=role, names=keys, applied=False, note=f"the {agent} {role} ignores biases")


__all__ = ["PATIENT_BIASES", "DOCTOR_BIASES", "BIASES", "AppliedBias", "check_biases", "anchor_for", "render_bias",
           "render_biases", "not_applied"]
