"""Communication and empathy: a rubric in the spirit of OSCE / PACES communication marks.

Six items, each scored 0, 0.5 or 1 (plain language: 1 minus 0.5 per unexplained term); the axis
is their mean over what the doctor said to the patient (None when it said nothing).

* With a model (``grade_with_model``): the model grades each item 0-2 with a quote from the
  doctor as evidence (prompt ``agents/prompts/communication_rubric.md``, JSON reply parsed
  tolerantly); each quote is checked against the transcript. A reply that cannot be understood,
  or a failed call, falls back to the heuristic with the reason recorded.
* Without (``heuristic``): transparent phrase patterns over the doctor's utterances; the phrases
  that matched, with their turns, are the evidence.
"""

from __future__ import annotations

import re
from typing import Any

from agentclinic.scoring.dialogue import AxisScore
from agentclinic.runs.record import EpisodeRecord

ITEMS: dict[str, str] = {
    "open_questions": "Asks open questions that let the patient tell their story in their own words.",
    "acknowledges_emotion": "Notices and acknowledges the patient's feelings, worries or concerns.",
    "plain_language": "Uses plain language and explains any medical term it uses.",
    "summarises": "Summarises what the patient said, to check it was heard correctly.",
    "checks_understanding": "Checks the patient's understanding and invites their questions.",
    "introduces_and_explains": "Introduces themself and explains what will happen next.",
}

_I = re.IGNORECASE
OPEN_QUESTION = re.compile(
    r"(?:^|[.!?]\s+|,\s*)(?:so,?\s+)?(?:what(?!\s+time)|how(?!\s+(?:many|much|old|often|long))|why|"
    r"tell me|can you tell me|could you tell me|can you describe|could you describe|describe|"
    r"walk me through|in your own words)\b", _I)
EMOTION = re.compile(
    r"\b(?:i'?m (?:so |very |really )?sorry|that (?:sounds|must be|must have been) (?:really |very |so |quite )?"
    r"(?:hard|difficult|frightening|scary|worrying|upsetting|distressing|painful|tough|awful|stressful|"
    r"unpleasant)|i (?:can )?understand (?:that|how|why|this|your)|i can (?:see|imagine|hear) (?:that|how|why|this)|"
    r"understandabl[ey]|you (?:seem|sound|look) (?:a bit |quite |very )?(?:worried|anxious|upset|scared|"
    r"frightened|concerned|distressed)|(?:it'?s|that'?s) (?:completely |perfectly |very )?(?:normal|natural|"
    r"understandable) to (?:feel|be)|how (?:are|have) you (?:been )?(?:feeling|coping) (?:about|with)|"
    r"(?:what|is there anything|is anything) (?:worries|concerns|worrying|concerning) you|any (?:worries|concerns)|"
    r"thank you for (?:telling|sharing))", _I)
SUMMARY = re.compile(
    r"\b(?:to (?:sum|summari[sz]e)(?: up)?|let me (?:just )?(?:summari[sz]e|recap|go over)|"
    r"so far,? you'?ve (?:told|said|mentioned)|(?:so|ok|okay),? (?:you'?ve|you have) (?:told|said|mentioned|"
    r"been having|had)|if i'?ve understood (?:you )?(?:correctly|right)|if i understand (?:you )?(?:correctly|right)|"
    r"just to (?:recap|check i'?ve got|make sure i)|what i'?m hearing is|so what you'?re (?:telling|saying))", _I)
CHECK = re.compile(
    r"\b(?:does (?:that|this|everything) make sense|(?:do you have )?any questions|is (?:that|this|everything) clear|"
    r"what do you understand|what is your understanding|tell me what you understand|"
    r"anything (?:else )?(?:you'?d|you would) like (?:me )?to (?:ask|explain|know)|anything i (?:can|should) explain|"
    r"have i (?:missed|left out) anything|is there anything else (?:you want|you'?d like) to (?:tell|add|ask)|"
    r"are you (?:ok|okay|happy|comfortable) with (?:that|this|the plan))", _I)
INTRODUCTION = re.compile(
    r"\b(?:(?:i'?m|i am|my name is) (?:dr\b\.?|doctor\b)|(?:i'?m|i am) (?:one of )?the (?:doctors?|physician|"
    r"registrar|resident|clinician)\b|(?:i'?m|i am) (?:the doctor|a doctor))", _I)
NEXT_STEPS = re.compile(
    r"\b(?:i'?d like to (?:examine|check|take|order|run|arrange|do|listen|have a look)|"
    r"i(?:'?m| am) going to (?:examine|check|order|arrange|ask|take|do|listen|send)|"
    r"i(?:'?ll| will) (?:examine|check|order|arrange|ask|take|send|request|refer)|next,? (?:i|we)\b|"
    r"the next step|we(?:'?ll| will) (?:do|run|arrange|check|order|get|need|start)|the plan (?:is|will be)|"
    r"what (?:will|is going to) happen (?:next|now))", _I)

# Medical terms a patient may not know; "unexplained" unless the same sentence explains them.
JARGON = re.compile(
    r"\b(?:dyspn(?:o)?ea|orthopn(?:o)?ea|paroxysmal nocturnal|presyncope|syncope|ha?emoptysis|ha?ematemesis|"
    r"mela?ena|ha?ematuria|ha?ematochezia|dysuria|polyuria|polydipsia|nocturia|pruritus|erythema\w*|o?edema|"
    r"emesis|diaphoresis|pyrexia|febrile|rigou?rs|myalgia|arthralgia|paraesthesia\w*|paresthesia\w*|photophobia|"
    r"dysphagia|odynophagia|dyspepsia|tenesmus|claudication|myocardial|infarct\w*|tachycardi\w*|bradycardi\w*|"
    r"hyperlipida?emia|dyslipida?emia|idiopathic|a?etiology|anticoagula\w*|thrombo\w+|embol\w+|isch(?:a)?emi\w*|"
    r"neoplas\w+|metasta\w+|menorrhagia|dysmenorrh(?:o)?ea|amenorrh(?:o)?ea|dyspareunia|sputum|haemodynamic\w*|"
    r"hemodynamic\w*|prodrom\w*|coryza|rhinorrh(?:o)?ea|epistaxis|ptosis|diplopia|dysarthria|hemiparesis|"
    r"lymphadenopathy|hepatomegaly|splenomegaly|icterus|steatorrh(?:o)?ea|exertional|postprandial)\b"
    r"|\b(?:SOB|PND|LMP|PMH|NKDA|PRN|MI|PE|DVT|TIA|CVA|GORD|GERD|IBS|UTI)\b", _I)
EXPLAINED = re.compile(r"\(|\bwhich means\b|\bmeaning\b|\bthat is\b|\bi\.e\.|\bin other words\b|\bby that i mean\b|"
                       r"\bi mean\b|\bcalled\b|\bknown as\b| - ", _I)
_SENTENCES = re.compile(r"(?<=[.!?])\s+")
_CASE_SENSITIVE = {"SOB", "PND", "LMP", "PMH", "NKDA", "PRN", "MI", "PE", "DVT", "TIA", "CVA", "GORD", "GERD", "IBS",
                   "UTI"}


def _sentence_at(text: str, start: int) -> str:
    """The sentence of ``text`` around position ``start``."""
    begin = max(text.rfind(ch, 0, start) for ch in ".!?") + 1
    ends = [i for i in (text.find(ch, start) for ch in ".!?") if i != -1]
    return text[begin: (min(ends) + 1) if ends else len(text)].strip()


def _hits(pattern: re.Pattern[str], utterances: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """The first match per utterance: turn, the phrase that matched, and its sentence."""
    return [{"turn": turn, "phrase": m.group(0).strip(" ,.!?"), "sentence": _sentence_at(text, m.end() - 1)}
            for turn, text in utterances for m in [pattern.search(text)] if m]


def _jargon(utterances: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """Every unexplained medical term: (turn, term, sentence)."""
    out = []
    for turn, text in utterances:
        for sentence in _SENTENCES.split(text):
            if EXPLAINED.search(sentence):
                continue
            for m in JARGON.finditer(sentence):
                term = m.group(0)
                if term.upper() in _CASE_SENSITIVE and term != term.upper():
                    continue  # "mi", "pe" in lower case are ordinary words
                out.append({"turn": turn, "term": term, "sentence": sentence.strip()})
    return out


def heuristic(record: EpisodeRecord) -> AxisScore:
    """The rubric by phrase patterns over the doctor's utterances (see the module doc)."""
    utterances = record.utterances()
    if not utterances:
        return AxisScore(None, {"method": "heuristic", "reason": "the doctor said nothing to the patient"})
    items: dict[str, dict[str, Any]] = {}
    opens = _hits(OPEN_QUESTION, utterances)
    items["open_questions"] = {"score": 1.0 if len(opens) >= 2 else 0.5 if opens else 0.0, "evidence": opens}
    for name, pattern in (("acknowledges_emotion", EMOTION), ("summarises", SUMMARY), ("checks_understanding", CHECK)):
        hits = _hits(pattern, utterances)
        items[name] = {"score": 1.0 if hits else 0.0, "evidence": hits}
    jargon = _jargon(utterances)
    items["plain_language"] = {"score": max(0.0, 1.0 - 0.5 * len(jargon)), "evidence": jargon}
    intro, steps = _hits(INTRODUCTION, utterances), _hits(NEXT_STEPS, utterances)
    items["introduces_and_explains"] = {"score": 0.5 * bool(intro) + 0.5 * bool(steps),
                                        "evidence": [h | {"kind": "introduction"} for h in intro]
                                        + [h | {"kind": "next steps"} for h in steps]}
    value = sum(item["score"] for item in items.values()) / len(items)
    return AxisScore(round(value, 4), {"method": "heuristic", "items": items, "utterances": len(utterances)})


# --------------------------------------------------------------------------------------------
# The model-graded rubric
# --------------------------------------------------------------------------------------------

RUBRIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"items": {"type": "object", "properties": {
        name: {"type": "object", "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 2},
                                                "evidence": {"type": "string"}},
               "required": ["score", "evidence"]} for name in ITEMS},
        "required": list(ITEMS)}},
    "required": ["items"],
}

_WORD_SCORES = {"yes": 1.0, "met": 1.0, "fully": 1.0, "full": 1.0, "good": 1.0, "partly": 0.5, "partially": 0.5,
                "partial": 0.5, "some": 0.5, "somewhat": 0.5, "no": 0.0, "not": 0.0, "none": 0.0, "absent": 0.0}


def _item_key(key: str) -> str | None:
    """A rubric item from a key the model wrote ('Open questions', 'open-questions', 'empathy', ...)."""
    k = re.sub(r"[^a-z]+", "_", key.lower()).strip("_")
    if k in ITEMS:
        return k
    for cue, item in (("open", "open_questions"), ("emotion", "acknowledges_emotion"),
                      ("empath", "acknowledges_emotion"), ("plain", "plain_language"), ("jargon", "plain_language"),
                      ("language", "plain_language"), ("summar", "summarises"), ("understand", "checks_understanding"),
                      ("check", "checks_understanding"), ("introduc", "introduces_and_explains"),
                      ("next", "introduces_and_explains"), ("explain", "introduces_and_explains")):
        if cue in k:
            return item
    return None


def _score(value: Any) -> float | None:
    """An item's score in [0, 1] from 0-2 (the asked scale), 'a/b', true/false or words; None if unreadable."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return value / 2 if 0 <= value <= 2 else None
    if isinstance(value, str):
        text = value.strip().lower()
        if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)", text):
            a, b = float(m.group(1)), float(m.group(2))
            return a / b if b > 0 and 0 <= a <= b else None
        try:
            return _score(float(text))
        except ValueError:
            pass
        first = re.split(r"[^a-z]+", text)[0] if text else ""
        return _WORD_SCORES.get(first)
    return None


def parse_rubric(text: str) -> dict[str, dict[str, Any]] | None:
    """Items {name: {"score": 0-1, "evidence": str}} from a grader's reply, tolerantly (JSON bare or in
    a code fence; items as an object or a list; a bare number as the score); None when no item is readable."""
    from agentclinic.agents.llm import json_object

    data = json_object(text or "")
    if data is None:
        return None
    raw = data.get("items", data.get("rubric", data))
    pairs: list[tuple[str, Any]] = []
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = [(str(x.get("item") or x.get("name") or x.get("id") or ""), x) for x in raw if isinstance(x, dict)]
    out: dict[str, dict[str, Any]] = {}
    for key, value in pairs:
        item = _item_key(str(key))
        if item is None or item in out:
            continue
        if isinstance(value, dict):
            score = _score(value.get("score", value.get("grade", value.get("rating"))))
            evidence = value.get("evidence", value.get("quote", value.get("quotes", "")))
        else:
            score, evidence = _score(value), ""
        if score is None:
            continue
        if isinstance(evidence, list):
            evidence = " / ".join(str(e) for e in evidence)
        out[item] = {"score": round(score, 4), "evidence": str(evidence or "").strip()}
    return out or None


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9']+", " ", text.lower()).split())


def quote_found(quote: str, utterances: list[tuple[int, str]]) -> bool:
    """Whether each part of a quote (parts split by '/' or '...') is in something the doctor said."""
    said = " | ".join(_plain(t) for _, t in utterances)
    parts = [_plain(p) for p in re.split(r"\s*(?:/|\.\.\.|…)\s*", quote.strip(" \"'“”")) if _plain(p)]
    return bool(parts) and all(p in said for p in parts)


def transcript(record: EpisodeRecord) -> str:
    """The consultation as the grader reads it: the doctor's words and the patient's replies, and
    the other actions in brackets."""
    lines = []
    for event in record.events:
        action = event.action or {}
        kind = action.get("type")
        if kind == "ask":
            lines.append(f"Doctor: {action.get('text', '')}")
            reply = event.observation
            lines.append(reply if reply.startswith("Patient:") else f"Patient: {reply}")
        elif kind == "examine":
            lines.append(f"[The doctor examines the patient{': ' + action['system'] if action.get('system') else ''}.]")
        elif kind == "order_tests":
            lines.append(f"[The doctor orders tests: {', '.join(action.get('tests', []))}.]")
        elif kind == "diagnose":
            lines.append(f"[The doctor records a diagnosis: {action.get('primary', '')}.]")
        elif kind:
            lines.append(f"[The doctor: {kind.replace('_', ' ')}.]")
    return "\n".join(lines)


async def grade_with_model(record: EpisodeRecord, model: Any, settings: Any = None) -> AxisScore:
    """The rubric graded by ``model``; the heuristic, with the reason, when its reply is not understood."""
    from agentclinic.agents.llm import render_prompt
    from agentclinic.backends.base import Message, Settings, call_model

    utterances = record.utterances()
    fallback = heuristic(record)
    if not utterances:
        return fallback
    items_text = "\n".join(f"- {name}: {text}" for name, text in ITEMS.items())
    prompt = render_prompt("communication_rubric", items=items_text, transcript=transcript(record))
    settings = settings or Settings()
    if settings.max_tokens < 512:
        settings = settings.model_copy(update={"max_tokens": 512})
    name = getattr(model, "name", str(model))
    try:
        result = await call_model(model, [Message(role="user", content=prompt)], settings, role="rubric",
                                  json_schema=RUBRIC_SCHEMA)
    except Exception as exc:  # noqa: BLE001 - a failed grading call must not lose the episode
        return AxisScore(fallback.value, fallback.details | {"fallback": f"the grader call failed: "
                                                                         f"{type(exc).__name__}: {exc}", "model": name})
    parsed = parse_rubric(result.text)
    if parsed is None:
        snippet = " ".join((result.text or "").split())[:160]
        return AxisScore(fallback.value, fallback.details | {"fallback": f"the grader's reply was not understood: "
                                                                         f"{snippet!r}", "model": name})
    items: dict[str, dict[str, Any]] = {}
    for item in ITEMS:
        if item in parsed:
            entry = parsed[item]
            verified = quote_found(entry["evidence"], utterances) if entry["evidence"] else None
            items[item] = entry | {"verified": verified, "source": "model"}
        else:
            items[item] = fallback.details["items"][item] | {"source": "heuristic (missing from the grader's reply)"}
    value = sum(i["score"] for i in items.values()) / len(items)
    return AxisScore(round(value, 4), {"method": "llm", "model": name, "items": items, "utterances": len(utterances)})
