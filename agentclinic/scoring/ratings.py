"""Patient-reported ratings: after the consultation a model-played patient rates the doctor.

Three questions in the spirit of AgentClinic's post-consultation questions, each 1-10:
``confidence`` (in the doctor), ``compliance`` (willingness to follow the advice) and
``consult_again`` (willingness to see the doctor again). They are simulated, and recorded as
such (``"simulated": true`` and the model's name). Scripted patients give none.
"""

from __future__ import annotations

import re
from typing import Any

RATING_KEYS = ("confidence", "compliance", "consult_again")
_ALIASES: dict[str, tuple[str, ...]] = {
    "confidence": ("confidence", "confident", "trust"),
    "compliance": ("compliance", "comply", "complian", "adherence", "follow", "willing_to_follow"),
    "consult_again": ("consult_again", "again", "return", "come_back", "follow_up", "followup", "revisit",
                      "see_again", "recommend"),
}
_NUMBER = r"(10|[1-9])(?:\.0+)?(?:\s*/\s*10|\s*out of\s*10)?"


def _key(key: str) -> str | None:
    k = re.sub(r"[^a-z]+", "_", key.lower()).strip("_")
    for name, cues in _ALIASES.items():
        if k == name or any(c in k for c in cues):
            return name
    return None


def _value(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if float(value).is_integer() and 1 <= value <= 10 else None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*" + _NUMBER + r"\s*", value, re.I)
        return int(m.group(1)) if m else None
    return None


def parse_ratings(text: str) -> dict[str, Any] | None:
    """{confidence, compliance, consult_again (1-10), comment} from a reply, tolerantly; None when no
    rating is readable. Reads JSON (bare or fenced; keys by name or alias, values as numbers or
    "7/10"), then "Confidence: 7" lines, then exactly three numbers 1-10 in the asked order."""
    from agentclinic.agents.llm import json_object

    text = text or ""
    out: dict[str, Any] = {}
    data = json_object(text)
    if data is not None:
        if isinstance(data.get("ratings"), dict):
            data = data["ratings"] | {k: v for k, v in data.items() if k != "ratings"}
        for key, value in data.items():
            name = _key(str(key))
            if name and name not in out and (v := _value(value)) is not None:
                out[name] = v
        comment = next((str(data[k]) for k in ("comment", "reason", "why", "explanation") if data.get(k)), None)
    else:
        comment = None
        for line in re.split(r"[\n;]+", text):
            m = re.match(r"\s*[-*\d.)\s]*\**([A-Za-z][A-Za-z _-]*?)\**\s*[:=-]\s*\**" + _NUMBER, line, re.I)
            if m and (name := _key(m.group(1))) and name not in out:
                out[name] = int(m.group(2))
        if not out:
            numbers = re.findall(r"(?<![\d.])" + _NUMBER + r"(?!\.?\d)", text, re.I)
            if len(numbers) == 3:
                out = dict(zip(RATING_KEYS, map(int, numbers)))
    if not out:
        return None
    ratings: dict[str, Any] = {k: out.get(k) for k in RATING_KEYS}
    if comment:
        ratings["comment"] = comment[:300]
    return ratings


async def patient_ratings(patient: Any) -> dict[str, Any] | None:
    """The patient's ratings of the consultation, when it can give them (``patient.rate()``); None for
    patients that cannot (the scripted patient)."""
    rate = getattr(patient, "rate", None)
    if rate is None:
        return None
    return await rate()
