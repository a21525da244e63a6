"""Case-file wording as the patient would say it: a rule-based rewrite of third-person notes.

AgentClinic's MedQA cases describe the patient ("The patient reports a 1-month history of double vision.",
"Denies fever.", "Weakness in upper limbs"); the scripted patient speaks the facts, so they are rewritten
in the first person ("I've had double vision for about a month.", "I haven't had a fever.", "I've had
weakness in upper limbs."). When the one who answers is a parent (a child's case), the child stays "he" or
"she" and the parent speaks ("my son"). Onset, duration, severity and course are also split off as facts
of their own (``timing_facts``), so that "When did this start?" finds them. Rules only: a sentence no rule
fits is kept as written, never invented.
"""

from __future__ import annotations

import re

NUMBER = r"(?:\d+(?:\.\d+)?|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|several|a few)"
UNIT = r"(?:minute|hour|day|week|month|year)s?"
NO_INFORMATION = re.compile(r"^(?:no |none |not )?(?:significant |other |further |relevant )*(?:information|details?|data)"
                            r"(?: is| was)? ?(?:not )?(?:provided|available|given|specified|mentioned|reported)?\.?$"
                            r"|^(?:none(?: reported| known| noted)?|n/?a|not (?:provided|available|applicable|mentioned|specified))\.?$",
                            re.I)
_SUBJECT = r"(?:the patient|patient|he|she|the (?:man|woman|boy|girl|child|infant|baby|mother|father))"
# "<subject> <verb> [that] X": the verb's meaning is said in the first person; X keeps its words
REPORTING = re.compile(rf"^{_SUBJECT}\s+(?:also\s+)?(?:reports?|notes?|states?|mentions?|says?|describes?|recalls?|"
                       r"admits?(?: to)?|endorses?|explains?|adds?|indicates?|expresses?|reveals?)\s+(?:that\s+)?(.+)$", re.I)
HAVING = re.compile(rf"^{_SUBJECT}\s+(?:presents?|comes?|came|presented)\s+(?:to [^,]+?\s+)?(?:with|for)\s+"
                    r"(?:(?:a |an )?(?:complaints? of|history of)\s+)?(.+)$"
                    rf"|^{_SUBJECT}\s+(?:complains?|complained) of\s+(.+)$", re.I)
DENYING = re.compile(rf"^(?:{_SUBJECT}\s+)?(?:denies|denied|deny)\s+(?:any\s+|experiencing\s+(?:any\s+)?)?(.+)$", re.I)
SUBJECT_VERB = [  # the patient as subject, at the start of a sentence
    (re.compile(rf"^{_SUBJECT}\s+is\b", re.I), "I am"), (re.compile(rf"^{_SUBJECT}\s+was\b", re.I), "I was"),
    (re.compile(rf"^{_SUBJECT}\s+has\b", re.I), "I have"), (re.compile(rf"^{_SUBJECT}\s+had\b", re.I), "I had"),
    (re.compile(rf"^{_SUBJECT}\s+does\b", re.I), "I do"), (re.compile(rf"^{_SUBJECT}\s+(\w+?)s\b", re.I), r"I \1"),
]
SUBJECTLESS = [  # note style without a subject: "Has smoked ...", "Works as ...", "Non-smoker"
    (re.compile(r"^(?:is a\s+)?non-?smoker\b\.?", re.I), "I don't smoke."),
    (re.compile(r"^(has|had|is|was|works|lives|drinks|smokes|takes|uses|recently|occasionally|currently)\b", re.I), None),
]
VERB_FOR_I = {"has": "have", "is": "am", "works": "work", "lives": "live", "drinks": "drink", "smokes": "smoke",
              "takes": "take", "uses": "use", "does": "do"}
PRONOUNS = [(re.compile(r"\bthe patient's\b", re.I), "my"), (re.compile(r"\b(?:his|her)\s+(?=[a-z])", re.I), "my "),
            (re.compile(r"\b(?:himself|herself)\b", re.I), "myself"), (re.compile(r"\b(?:he|she)\s+is\b", re.I), "I am"),
            (re.compile(r"\b(?:he|she)\s+has\b", re.I), "I have"), (re.compile(r"\b(?:he|she)\s+does\b", re.I), "I do"),
            (re.compile(r"\b(?:he|she)\b", re.I), "I"), (re.compile(r"\b(?:him|her)\b", re.I), "me"),
            (re.compile(r"\bthe patient\b", re.I), "I"), (re.compile(r"\bI (\w+?[^s])s\b(?! (?:ago|old))"), None)]
FRAGMENT = [  # symptom-list fragments
    (re.compile(r"^no\s+(?:any\s+)?(.+)$", re.I), "I haven't had any {0}"),
    (re.compile(r"^(?:a\s+)?(?:past\s+)?history of\s+(.+)$", re.I), "I've had {0} before"),
    (re.compile(r"^(?:worse|worsening|worsens)\s+(.+)$", re.I), "It's worse {0}"),
    (re.compile(r"^(?:better|improves?|improvement(?: of (?:the )?symptoms)?)\s+(?:with|after|on)\s+(.+)$", re.I),
     "It gets better with {0}"),
    (re.compile(r"^recent(?:ly)?\s+(.+)$", re.I), "I've recently had {0}"),
    (re.compile(r"^(.+)$"), "I've had {0}"),
]


def is_no_information(text: str) -> bool:
    """Whether a case-file field says only that nothing was given ("Information not provided.")."""
    return bool(NO_INFORMATION.match(text.strip()))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text  # keep "HIV", "CT"


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".").strip()
    return (text[:1].upper() + text[1:] + ".") if text else ""


def _pronouns(text: str, speaker_is_patient: bool) -> str:
    """Third-person references to the patient made first person (only when the patient speaks)."""
    if not speaker_is_patient:
        return re.sub(r"\bthe patient's\b", "my child's", re.sub(r"\bthe patient\b", "my child", text, flags=re.I),
                      flags=re.I)
    for pattern, repl in PRONOUNS[:-1]:
        text = pattern.sub(repl, text)
    return re.sub(r"\bI (has|is|does|was)\b", lambda m: "I " + {"has": "have", "is": "am", "does": "do"}.get(
        m.group(1), m.group(1)), text)


HISTORY_OF = re.compile(rf"^(?:a|an)?\s*({NUMBER})[- ]({UNIT})[- ]history of (?:experiencing |having )?(.+)$", re.I)
CLAUSE_START = re.compile(r"^(?:i|it|they|there|these|this|that|the|my|he|she|his|her|both|all|her|symptoms?)\b", re.I)


def _units(number: str, unit: str) -> str:
    unit = unit.lower().rstrip("s")
    return f"{number} {unit}" if number.lower() in ("1", "one", "a", "an") else f"{number} {unit}s"


def _had(phrase: str, speaker_is_patient: bool = True) -> str:
    """A noun phrase the patient has had: "a 2-day history of fever" -> "I've had fever for 2 days."."""
    phrase = _pronouns(_lower_first(phrase), speaker_is_patient)
    if m := HISTORY_OF.match(phrase):
        number = "a" if m.group(1).lower() in ("1", "one", "a", "an") else m.group(1)
        return _sentence(f"I've had {m.group(3).rstrip('.')} for {'about ' if number == 'a' else ''}"
                         f"{_units(number, m.group(2))}")
    return _sentence("I've had " + phrase)


FRAGMENT_BY_CATEGORY = {  # fragments of these fact categories: "Levothyroxine 50 mcg", "Penicillin"
    "medications": [(re.compile(r"^no(?:ne)?\b\s*(.*)$", re.I), "I don't take any {0}"),
                    (re.compile(r"^(.+)$"), "I take {0}")],
    "allergies": [(re.compile(r"^no(?:ne)?\b\s*(.*)$", re.I), "I don't have any {0}"),
                  (re.compile(r"^(.+)$"), "I'm allergic to {0}")],
}


def first_person(text: str, *, fragment: bool = False, speaker_is_patient: bool = True,
                 category: str | None = None) -> str:
    """One sentence (or a symptom-list fragment when ``fragment``) as the one answering would say it;
    ``category`` (a fact category) picks the wording of fragments such as a medication's name."""
    text = re.sub(r"\s+", " ", text.strip())
    if not text:
        return text
    if speaker_is_patient:
        if m := DENYING.match(text):
            return _sentence("I haven't had any " + _pronouns(_lower_first(m.group(1)), True))
        if m := HAVING.match(text):
            return _had(m.group(1) or m.group(2))
        if m := REPORTING.match(text):
            said = m.group(1)
            if not CLAUSE_START.match(said):  # "reports pain on urination": a thing had, not a clause
                return _had(said)
            return _sentence(_pronouns(said, True).replace("these symptoms", "the symptoms"))
        if m := re.match(r"^significant for\s+(.+)$", text, re.I):
            return _had(m.group(1))
        for pattern, repl in SUBJECT_VERB:
            if pattern.match(text):
                return _sentence(_pronouns(pattern.sub(repl, text, count=1), True))
        for pattern, repl in SUBJECTLESS:
            if m := pattern.match(text):
                if repl is not None:
                    return repl
                word = m.group(1).lower()
                return _sentence("I " + VERB_FOR_I.get(word, word) + _pronouns(text[m.end():], True))
    elif m := DENYING.match(text):
        return _sentence("There hasn't been " + _lower_first(m.group(1)))
    if (fragment or re.match(r"^no\s", text, re.I)) and not re.search(r"\b(?:is|are|was|were|has|have|had|reports?|denies)\b", text, re.I):
        for pattern, template in FRAGMENT_BY_CATEGORY.get(category or "", []) + FRAGMENT:
            if m := pattern.match(text.rstrip(".")):
                return _sentence(template.format(_pronouns(_lower_first(m.group(1)), speaker_is_patient)))
    return _sentence(_pronouns(text, speaker_is_patient))


# -- onset, duration, severity, course --------------------------------------------------------------------

TIMING = [  # (pattern, what it says, keywords a question about it uses)
    (re.compile(rf"\b({NUMBER})[- ]({UNIT})[- ]history\b", re.I), "It started about {0} {1} ago.", "onset"),
    (re.compile(rf"\b(?:for|over) (?:the )?(?:past |last )?({NUMBER}) ({UNIT})\b", re.I),
     "It's been going on for {0} {1}.", "onset"),
    (re.compile(rf"\b({NUMBER}) ({UNIT}) ago\b", re.I), "It started {0} {1} ago.", "onset"),
    (re.compile(r"\bsince (yesterday|this morning|last night|last \w+|childhood|birth|\d{4})\b", re.I),
     "It started {0}.", "onset"),
    (re.compile(r"\b(sudden(?:-| )onset|suddenly|abrupt(?:ly)?|acute onset)\b", re.I), "It came on suddenly.", "onset"),
    (re.compile(r"\b(gradual(?:ly)?|insidious(?:ly)?|slowly)\b", re.I), "It came on gradually.", "onset"),
    (re.compile(r"\b(\d+)\s*(?:/|out of)\s*10\b", re.I), "It's about {0} out of 10.", "severity"),
    (re.compile(r"\b(severe|excruciating|unbearable|worst)\b", re.I), "It's severe.", "severity"),
    (re.compile(r"\b(mild|slight)\b", re.I), "It's mild.", "severity"),
    (re.compile(r"\b(progressive(?:ly)?|worsening|getting worse|increasing(?:ly)?)\b", re.I),
     "It's been getting worse.", "course"),
    (re.compile(r"\b(intermittent(?:ly)?|comes and goes|on and off|episodic)\b", re.I),
     "It comes and goes.", "course"),
    (re.compile(r"\b(constant|persistent|continuous)\b", re.I), "It's there all the time.", "course"),
]
TIMING_KEYWORDS = {
    "onset": ["when", "start", "started", "begin", "began", "how long", "since", "onset", "duration", "first notice"],
    "severity": ["how bad", "severe", "severity", "scale", "score", "intense", "intensity", "mild"],
    "course": ["worse", "better", "change", "changed", "course", "progress", "constant", "come and go", "all the time"],
}


def timing_facts(text: str) -> list[tuple[str, str]]:
    """(kind, first-person sentence) for each onset, duration, severity or course the text states, at most
    one of each kind, in the text's order."""
    found: dict[str, tuple[int, str]] = {}
    if DENYING.match(text.strip()) or re.match(r"^no\s", text.strip(), re.I):
        return []  # what did not happen has no onset
    for pattern, template, kind in TIMING:
        if kind in found:
            continue
        if m := pattern.search(text):
            words = [g.lower().strip() for g in m.groups()]
            if len(words) == 2:
                words = _units(*words).split(" ", 1)
            found[kind] = (m.start(), template.format(*words))
    return [(kind, sentence) for kind, (_, sentence) in sorted(found.items(), key=lambda kv: kv[1][0])]
