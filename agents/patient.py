"""The scripted patient: answers by matching the doctor's questions against the case's facts.

Deterministic for a given seed, fast enough for RL loops and offline. A greeting or an open
question ("what brings you in?") gets the *volunteer* facts; any other question is matched
(sentence embeddings, or a lexical overlap without a model) against the facts the patient
may say when asked (*volunteer* and *on-ask*). *Hidden* facts never enter the index, so no
question can reach them. The diagnosis, under any of its names, is never said, and a fact
that would read out one of the case's test results is never said either.

The patient keeps a disclosure log, ``disclosures``: (turn, fact id) for each fact, at the
first turn it was said. ``PatientReply.disclosed`` lists every fact a reply states (a fact
said again is listed again, but logged once).
"""

from __future__ import annotations

import random
import re
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from agentclinic.agents.base import PatientReply
from agentclinic.agents.embeddings import STOPWORDS, Embedder, default_embedder, tokens

from agentclinic.scenario.schema import Disclosure, Fact, FactCategory, Scenario
from agentclinic.scenario.first_person import TIMING_KEYWORDS, timing_facts

# Calibrated on the scenario bank with 100 questions that should reach a given fact and 54 that
# should reach none ("Do you own a boat?", symptoms a case does not mention):
# - all-MiniLM-L6-v2 cosine, best view of a fact: 90/100 reached, 0/54 disclosed at 0.50. True
#   matches mostly score 0.5-0.8; unrelated questions peak around 0.41-0.49 ("Any chest pain?" to
#   a headache fact), so the band between is settled by how much the best fact stands out.
# - lexical (no model): 92/100 reached, 1/54 disclosed at 0.50; 0.55 loses 5 good matches, 0.45
#   adds 3 false ones.
EMBEDDING_THRESHOLD = 0.50
EMBEDDING_MARGIN = 0.04  # a second fact is said too when it scores within this of the best
# Below the threshold a fact is still said when it stands out: score >= 0.44 and at least 0.25
# above the median over the case's facts (a flat profile means the question is about none of them).
EMBEDDING_STANDOUT = (0.44, 0.25)
LEXICAL_THRESHOLD = 0.50
LEXICAL_MARGIN = 0.0  # lexical scores tie exactly or differ clearly
KEYWORD_WEIGHT = 0.95  # a keyword alone is a little weaker evidence than the fact's own words
HINT_WEIGHT = 0.90  # category hints ("allergies") weaker still
MAX_FACTS_PER_QUESTION = 2
STATEMENT_EXTRA = 0.10  # a sentence that is not a question ("smoking history.") must match more clearly
INDEX_CACHE_SIZE = 4096  # scenarios' indexes kept per embedder

# Words of a question that say nothing about its topic (on top of the embeddings module's).
LEXICAL_STOPWORDS = frozenset(
    "notice noticed noticing experience experienced experiencing recent recently doctor today currently current "
    "usual usually sometimes anything anyone someone something things thing kind sort know think mean okay ok "
    "please yes yeah ask question lately happen happened bit little else problem problems issue issues trouble "
    "troubles does doesn't didn't haven't hasn't isn't aren't wasn't weren't can't won't i'd you'd you're you've "
    "i'll we".split())
# Word forms the light stemmer misses, before and after stemming.
LEXICAL_ALIASES = {"allergic": "allergi", "smoker": "smok", "drank": "drink", "drunk": "drink", "ate": "eat",
                   "eaten": "eat", "medicin": "medic", "felt": "feel", "threw": "vomit", "pregnanci": "pregnan",
                   "pregnant": "pregnan", "gave": "give", "went": "go", "gone": "go", "bled": "bleed",
                   "swollen": "swel", "swelling": "swel", "worse": "wors", "worst": "wors"}
# Words that stand for one topic in a history, whichever the patient or the doctor uses (stems).
LEXICAL_CONCEPTS = {**dict.fromkeys(("alcohol", "drink", "wine", "beer", "pint", "spirit", "booz"), "alcohol"),
                    **dict.fromkeys(("smok", "cigarett", "cigar", "tobacco", "vap"), "smok"),
                    **dict.fromkeys(("work", "job", "occupation", "employ"), "work"),
                    **dict.fromkeys(("medic", "tablet", "pill"), "medic")}

# Questions a category answers, whatever the fact's wording: they let "Any allergies?"
# reach "I'm not allergic to anything." (single-topic categories only; social history and
# the presenting complaint mix topics, so they rely on the fact's words and keywords).
CATEGORY_HINTS: dict[FactCategory, tuple[str, ...]] = {
    FactCategory.ALLERGIES: ("allergies", "allergic reactions to medicines"),
    FactCategory.MEDICATIONS: ("medications", "the medicines and tablets I take"),
    FactCategory.FAMILY: ("family history", "illnesses in my family"),
    FactCategory.PMH: ("past medical history", "my medical conditions"),
    FactCategory.OBSTETRIC: ("pregnancy", "my periods and contraception"),
}

_ABBREVIATIONS = re.compile(r"\b(dr|mr|mrs|ms|st|prof|vs|approx|e\.g|i\.e)\.", re.IGNORECASE)
_SENTENCES = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9'\"])")
_UNITS = re.compile(r"(?<=[.!?;])\s+|\n+")
_GREETING = re.compile(
    r"^(?:(?:hello|hi|hiya|hey|greetings|welcome|good\s+(?:morning|afternoon|evening|day))\b"
    r"(?:\s+(?:there|again|doctor|sir|madam|miss|mr\s+\w+|mrs\s+\w+|ms\s+\w+|mx\s+\w+))*[\s,.!-]*)+")
_INTRO = re.compile(
    r"^(?:my\s+name\s+is\b.*|(?:i\s+am|i'm|im|this\s+is)\s+(?:dr|doctor|the\s+doctor|your\s+doctor|one\s+of\s+the\s+"
    r"doctors|the\s+(?:registrar|resident|physician|consultant))\b.*"
    r"|(?:it's\s+)?(?:nice|pleased|good)\s+to\s+meet\s+you.*|i'll\s+be\s+(?:your|the)\s+doctor.*)$")
_ACK = re.compile(
    r"^(?:(?:ok(?:ay)?|alright|all\s+right|right|i\s+see|see|thanks?(?:\s+you)?(?:\s+(?:very|so)\s+much)?|"
    r"thank\s+you(?:\s+(?:very|so)\s+much)?|great|good|fine|understood|got\s+it|sure|yes|no|hmm+|mm+|uh\s*huh|"
    r"i\s+understand|that\s+makes\s+sense|sorry\s+to\s+hear\s+that|i'm\s+sorry(?:\s+to\s+hear\s+that)?|"
    r"that\s+must\s+be\s+(?:hard|difficult|awful|scary|frightening)|don't\s+worry|let's\s+see|"
    r"please|doctor|sir|madam)[\s,.!-]*)+$")
_LEAD = re.compile(r"^(?:(?:so|and|also|now|well|ok(?:ay)?|right|alright|then|next|just|first(?:ly)?|please|"
                   r"lastly|finally|can\s+i\s+ask|may\s+i\s+ask|let\s+me\s+ask(?:\s+you)?)[\s,]+)+")
_TRAIL = r"(?:\s+(?:today|now|then|please|here|doctor|this\s+morning|this\s+afternoon|this\s+evening|to\s+(?:the\s+)?" \
         r"(?:clinic|hospital|surgery|emergency\s+department|ed|a&e|er|department)|to\s+see\s+(?:me|us)|in))*"
_OPEN = re.compile(
    r"^(?:what\s+(?:brings|brought)\s+you\b.*"
    r"|(?:how|what)\s+(?:can|may|could)\s+(?:i|we)\s+(?:help|do\s+for\s+you|assist)(?:\s+you)?" + _TRAIL +
    r"|(?:can\s+you\s+|could\s+you\s+|would\s+you\s+|please\s+)?(?:tell\s+me|describe|explain)\s+(?:about\s+it|"
    r"more|everything|(?:a\s+bit\s+)?more\s+about\s+(?:it|that|what(?:'s|\s+is)\s+going\s+on|"
    r"why\s+you(?:'re|\s+are)\s+here)|"
    r"what(?:'s|\s+is|\s+has\s+been)\s+(?:going\s+on|wrong|the\s+matter|the\s+problem|happening|bothering\s+you)|"
    r"what\s+happened|why\s+you(?:'re|\s+are|\s+have)\s+(?:here|come(?:\s+in)?)|what\s+(?:brings|brought)\s+you\b.*|"
    r"(?:about\s+)?(?:your|the)\s+(?:symptoms|problem|problems|complaint|concerns?|story|main\s+problem)|"
    r"about\s+yourself|about\s+your\s+(?:visit|illness))" + _TRAIL +
    r"|what(?:'s|\s+is|\s+seems\s+to\s+be|\s+appears\s+to\s+be|\s+has\s+been)\s+(?:the\s+)?"
    r"(?:problem|matter|trouble|issue|going\s+on|wrong|bothering\s+you)" + _TRAIL +
    r"|what\s+happened" + _TRAIL +
    r"|how\s+(?:are|have)\s+you(?:\s+been)?(?:\s+(?:feeling|doing))?" + _TRAIL +
    r"|why\s+(?:are\s+you\s+here|have\s+you\s+come(?:\s+in)?|did\s+you\s+come(?:\s+in)?)" + _TRAIL +
    r"|what(?:'s|\s+is|\s+are)\s+(?:your|the)\s+(?:main|chief|presenting)\s+"
    r"(?:complaint|problem|concern|symptom)s?" + _TRAIL +
    r"|what\s+(?:are\s+)?(?:your|the)\s+symptoms" + _TRAIL +
    r"|what\s+symptoms\s+(?:do|are)\s+you\s+(?:have|having|experiencing)" + _TRAIL +
    r"|(?:is\s+there\s+)?anything\s+(?:else|more)(?:\s+(?:to\s+(?:tell|add)|you(?:'d|\s+would)\s+like\s+to\s+"
    r"(?:tell\s+me|add|mention)|i\s+should\s+know))?" + _TRAIL + r")$")
_YES_NO = re.compile(r"^(?:do|does|did|are|is|was|were|have|has|had|can|could|will|would|should|shall|may|might|"
                     r"am|any|anything|ever|been|got|you've|you're|is\s+there|are\s+there)\b")
_QUESTION_START = re.compile(r"^(?:what|when|where|which|who|whom|whose|why|how|tell|describe|explain|list|"
                             r"show|name|give|say|talk|let\s+me\s+know|"
                             r"i(?:'d|\s+would)\s+like\s+to\s+(?:know|ask|hear)|"
                             r"i\s+(?:want|need)\s+to\s+(?:know|ask)|i\s+(?:was\s+)?wonder(?:ing)?)\b")
_TEST_TALK = re.compile(r"\b(?:tests?|results?|blood\s+work|bloods|x-?rays?|scans?|ecg|ekg|mri|ct|levels?|counts?|"
                        r"readings?|numbers?)\b")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NORMALISE = re.compile(r"[^a-z0-9'&\s-]+")

UNSURE = ("I'm not sure.", "I don't really know, doctor.", "I'm not sure what to say about that.",
          "I couldn't tell you, I'm afraid.", "Hmm, I'm not sure.")
DENY = ("No, I don't think so.", "No, not that I know of.", "I don't think so, no.", "No.",
        "No, I don't think so, doctor.")
NO_RESULTS = ("I don't know, doctor, nobody has told me any results.",
              "You'd have to ask the lab, I haven't seen any results.")
GREETED_AGAIN = ("Hello again, doctor.", "Yes, doctor?", "Hello.")
OPEN_AGAIN = ("That's the main thing that's been bothering me.", "I think I've told you the main thing, doctor.",
              "That's really what brought me in.")
NO_COMPLAINT = "I just haven't been feeling right, doctor."
ACKNOWLEDGE = "Okay."
PARDON = "Sorry, doctor, what did you say?"


@dataclass(frozen=True)
class _Unit:
    """One question or sentence of the doctor's message, with how it was classified."""

    text: str  # normalised, lead words stripped
    raw: str
    kind: str  # "greeting", "open", "ack", "question", "statement"
    yes_no: bool


class _Index:
    """A scenario's speakable facts, their views and (with a model) the views' embeddings."""

    def __init__(self, scenario: Scenario, embedder: Embedder):
        self.guard = diagnosis_guard(scenario)
        results = [_normalise(t.result) for t in scenario.tests if len(_normalise(t.result)) >= 12]
        self.facts: list[Fact] = []
        self.texts: list[str] = []
        for fact in scenario.facts:
            if fact.disclosure == Disclosure.HIDDEN:
                continue  # never indexed: no question can reach it
            text = self.guard(fact.text)
            if text is None:
                continue
            normalised = _normalise(text)
            if any(r in normalised for r in results):
                continue  # the patient does not read out test results
            self.facts.append(fact)
            self.texts.append(text)
        self.volunteer = [i for i, f in enumerate(self.facts) if f.disclosure == Disclosure.VOLUNTEER]
        self.position = {f.id: i for i, f in enumerate(self.facts)}
        views: list[str] = []
        owners: list[int] = []
        weights: list[float] = []
        for i, (fact, text) in enumerate(zip(self.facts, self.texts)):
            # views: the text, each of its sentences, each keyword, the category's hints
            keywords = [k for k in fact.keywords if self.guard(k) == k]  # a keyword naming the diagnosis is dropped
            if fact.category == FactCategory.HPI:  # a history fact that states an onset answers "when did it start?"
                keywords += [k for kind, _ in timing_facts(text) for k in TIMING_KEYWORDS[kind] if k not in keywords]
            sentences = [x for x in _SENTENCES.split(text) if tokens(x)]
            candidates = [(text, 1.0), *((x, 1.0) for x in sentences if len(sentences) > 1)]
            candidates += [(k, KEYWORD_WEIGHT) for k in keywords]
            candidates += [(h, HINT_WEIGHT) for h in CATEGORY_HINTS.get(fact.category, ())]
            for view, weight in candidates:
                views.append(view)
                owners.append(i)
                weights.append(weight)
        self.views = views
        self.owners = np.array(owners, dtype=np.int64)
        self.weights = np.array(weights, dtype=np.float32)
        # the views' vectors, one text per forward pass as ``encode`` does, kept on disk for the next process
        self.matrix = embedder.encode_corpus(views, batch_size=1).T.copy() if embedder.available and views else None
        if embedder.available:
            self.lexical = None
        else:  # per fact: all its words (text, keywords, hints), and the text's own words
            union: list[set[str]] = [set() for _ in self.facts]
            for owner, view in zip(owners, views):
                union[owner] |= lexical_tokens(view)
            self.lexical = [(frozenset(u), lexical_tokens(t)) for u, t in zip(union, self.texts)]
            self.view_tokens = [lexical_tokens(v) for v in views]

    def scores(self, embedder: Embedder, queries: list[str]) -> np.ndarray:
        """How well each query matches each fact (queries x facts)."""
        out = np.zeros((len(queries), len(self.facts)), np.float32)
        if not queries or not self.views:
            return out
        if self.lexical is not None:
            for i, query in enumerate(map(lexical_tokens, queries)):
                out[i] = [lexical_score(query, words, own) for words, own in self.lexical]
                views = np.array([lexical_score(query, v, v) for v in self.view_tokens], np.float32) * self.weights
                np.maximum.at(out[i], self.owners, views)
            return out
        sims = (embedder.encode(queries) @ self.matrix) * self.weights
        np.maximum.at(out.T, self.owners, sims.T)
        return out


def lexical_stem(word: str) -> str:
    """A light stemmer for the lexical fallback: 'smoking', 'smoked', 'smokes', 'smoker' -> 'smok'."""
    word = LEXICAL_ALIASES.get(word, word)
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ations", "ation", "ness", "ing", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word.endswith("y"):
        word = word[:-1] + "i"
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    word = LEXICAL_ALIASES.get(word, word)
    return LEXICAL_CONCEPTS.get(word, word)


def lexical_tokens(text: str) -> frozenset[str]:
    """Content-word stems for the lexical fallback (the embeddings module's stop words, a few more)."""
    words = _WORD.findall(text.lower().replace("\u2019", "'"))
    return frozenset(lexical_stem(w) for w in words
                     if w not in STOPWORDS and w not in LEXICAL_STOPWORDS and len(w) > 1)


def lexical_score(query: frozenset[str], words: frozenset[str], own: frozenset[str]) -> float:
    """Lexical match of a question to a fact: mostly the share of the question's words the fact
    knows (its text, keywords and category hints), plus the Dice overlap with the text itself."""
    if not query:
        return 0.0
    covered = len(query & words) / len(query)
    dice = 2 * len(query & own) / (len(query) + len(own)) if own else 0.0
    return 0.7 * covered + 0.3 * dice


_INDEXES: weakref.WeakKeyDictionary[Embedder, OrderedDict] = weakref.WeakKeyDictionary()


def _index_for(scenario: Scenario, embedder: Embedder) -> _Index:
    """The scenario's index, built once per embedder and scenario content (LRU)."""
    key = (scenario.id,
           tuple((f.id, f.text, f.disclosure.value, f.category.value, tuple(f.keywords)) for f in scenario.facts),
           tuple(scenario.diagnosis.names() if scenario.diagnosis else ()), tuple(t.result for t in scenario.tests))
    cache = _INDEXES.setdefault(embedder, OrderedDict())
    index = cache.get(key)
    if index is None:
        index = cache[key] = _Index(scenario, embedder)
        while len(cache) > INDEX_CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return index


def _normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(_NORMALISE.sub(" ", text).split())


def _name_pattern(name: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in re.split(r"[\s\-]+", name.strip()) if w]
    body = r"[\s\-]+".join(words)
    # acronyms (aSAH, CAP, IHPS) match case-sensitively so that "cap" or "dka" in prose is judged right
    acronym = len(name) <= 5 and sum(c.isupper() for c in name) >= 2
    return re.compile(rf"(?<![\w-]){body}(?![\w-])", 0 if acronym else re.IGNORECASE)


def diagnosis_guard(scenario: Scenario):
    """A function text -> text with every name of the diagnosis replaced by 'it' (None if nothing is left)."""
    own = scenario.diagnosis.names() if scenario.diagnosis else []  # a station has none
    names = sorted({n.strip() for n in own if n.strip()}, key=len, reverse=True)
    variants = set(names)
    for name in names:  # 'Early Lyme disease (facial palsy)' -> also without the parenthesis
        bare = re.sub(r"\s*\([^)]*\)", "", name).strip()
        if bare:
            variants.add(bare)
    patterns = [_name_pattern(n) for n in sorted(variants, key=len, reverse=True)]

    def guard(text: str) -> str | None:
        changed = text
        for pattern in patterns:
            changed = pattern.sub("it", changed)
        if changed == text:
            return text
        if not tokens(changed):
            return None  # nothing left but "I have it"
        return changed[:1].upper() + changed[1:]

    return guard


def split_message(message: str) -> list[_Unit]:
    """The doctor's message as questions and sentences, each classified."""
    text = _ABBREVIATIONS.sub(lambda m: m.group(1), message.replace("\u2019", "'"))
    units: list[_Unit] = []
    for raw in _UNITS.split(text):
        raw = raw.strip()
        if not raw:
            continue
        asked = raw.endswith("?")
        norm = _normalise(raw)
        if not norm:
            continue
        greeting = _GREETING.match(norm)
        rest = norm[greeting.end():].strip(" ,-") if greeting else norm
        rest = _LEAD.sub("", rest).strip(" ,-")
        # "Do you ...?", "Any ...?", and bare "Fever?" are yes/no questions; "What/when/how ...?" are not
        yes_no = bool(_YES_NO.match(rest)) or (asked and not _QUESTION_START.match(rest))
        if greeting and not rest:
            units.append(_Unit("", raw, "greeting", False))
            continue
        if greeting:
            units.append(_Unit("", raw, "greeting", False))
        if not rest or _ACK.match(rest) or _INTRO.match(rest):
            units.append(_Unit(rest, raw, "ack", False))
        elif _OPEN.match(rest):
            units.append(_Unit(rest, raw, "open", False))
        else:
            question = asked or yes_no or bool(_QUESTION_START.match(rest))
            units.append(_Unit(rest, raw, "question" if question else "statement", yes_no))
    return units


class ScriptedPatient:
    """A patient that says the case's facts when asked about them, and nothing else."""

    def __init__(self, embedder: Embedder | None = None, threshold: float | None = None,
                 margin: float | None = None, max_facts: int = MAX_FACTS_PER_QUESTION,
                 standout: tuple[float, float] | None = None):
        self.embedder = embedder if embedder is not None else default_embedder()
        lexical = not self.embedder.available
        self.threshold = threshold if threshold is not None else (LEXICAL_THRESHOLD if lexical else EMBEDDING_THRESHOLD)
        self.margin = margin if margin is not None else (LEXICAL_MARGIN if lexical else EMBEDDING_MARGIN)
        self.max_facts = max_facts
        self.standout = None if lexical else (EMBEDDING_STANDOUT if standout is None else standout)
        self.scenario: Scenario | None = None
        self.index: _Index | None = None
        self.seed = 0
        self.disclosures: list[tuple[int, str]] = []
        self._disclosed: set[str] = set()

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.index = _index_for(scenario, self.embedder)
        self.seed = 0 if seed is None else int(seed)
        self.disclosures = []
        self._disclosed = set()

    def _pick(self, options: tuple[str, ...], turn: int, salt: int) -> str:
        return options[random.Random(f"{self.seed}:{turn}:{salt}").randrange(len(options))]

    def match(self, question: str, strict: bool = False) -> list[tuple[str, float]]:
        """The facts (ids) one question reaches, best first, with their scores (for tuning and tests)."""
        if self.index is None:
            raise RuntimeError("ScriptedPatient.match called before reset(scenario)")
        return self._match_many([_normalise(question)], [strict])[0]

    def _match_many(self, questions: list[str], strict: list[bool]) -> list[list[tuple[str, float]]]:
        index = self.index
        scores = index.scores(self.embedder, questions)
        out = []
        for row, is_strict in zip(scores, strict):
            if not len(row):
                out.append([])
                continue
            threshold = self.threshold + (STATEMENT_EXTRA if is_strict else 0.0)
            order = np.argsort(-row, kind="stable")[: self.max_facts]
            best = float(row[order[0]])
            if best < threshold and (is_strict or self.standout is None or best < self.standout[0]
                                     or best - float(np.median(row)) < self.standout[1]):
                out.append([])
                continue
            chosen = [(index.facts[order[0]].id, best)]
            for j in order[1:]:  # a second fact only when it is nearly as good and above the threshold
                score = float(row[j])
                if score < threshold or score < best - self.margin:
                    break
                chosen.append((index.facts[j].id, score))
            out.append(chosen)
        return out

    async def reply(self, message: str, turn: int) -> PatientReply:
        return self.respond(message, turn)

    def respond(self, message: str, turn: int) -> PatientReply:
        """The synchronous core of :meth:`reply`."""
        if self.index is None:
            raise RuntimeError("ScriptedPatient.reply called before reset(scenario)")
        index = self.index
        units = split_message(message)
        asked = [n for n, u in enumerate(units) if u.kind in ("question", "statement")]
        found_all = self._match_many([units[n].text for n in asked], [units[n].kind == "statement" for n in asked])
        matches = dict(zip(asked, found_all))
        said: list[str] = []  # fact ids, in order, each once per reply
        parts: list[str] = []
        welcomed = False

        def say(fact_id: str) -> None:
            if fact_id not in said:
                said.append(fact_id)
                parts.append(index.texts[index.position[fact_id]])

        for n, unit in enumerate(units):
            if unit.kind in ("greeting", "open"):
                if welcomed:
                    continue
                welcomed = True
                fresh = [index.facts[i].id for i in index.volunteer if index.facts[i].id not in self._disclosed]
                if fresh:
                    for fact_id in fresh:
                        say(fact_id)
                elif unit.kind == "open" and not index.volunteer:
                    parts.append(NO_COMPLAINT)
                elif not any(u.kind == "question" for u in units):
                    options = GREETED_AGAIN if unit.kind == "greeting" else OPEN_AGAIN
                    parts.append(self._pick(options, turn, n))
            elif unit.kind in ("question", "statement"):
                found = matches[n]
                if found:
                    for fact_id, _ in found:
                        say(fact_id)
                elif unit.kind == "question":
                    if _TEST_TALK.search(unit.text) and not unit.yes_no:
                        line = self._pick(NO_RESULTS, turn, n)
                    else:
                        line = self._pick(DENY if unit.yes_no else UNSURE, turn, n)
                    if line not in parts:
                        parts.append(line)
        if not parts:
            parts.append(ACKNOWLEDGE if units else PARDON)
        for fact_id in said:
            if fact_id not in self._disclosed:
                self._disclosed.add(fact_id)
                self.disclosures.append((turn, fact_id))
        text = " ".join(parts)
        guarded = index.guard(text)
        return PatientReply(text=guarded if guarded is not None else self._pick(UNSURE, turn, -1), disclosed=said)
