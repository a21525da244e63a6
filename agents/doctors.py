"""Doctor policies without a language model: a scripted clinician, a random baseline and a human.

* ``ScriptedDoctor`` takes a structured history (presenting complaint, past history,
  medications, allergies, social and family history, review of systems), examines, ranks
  the knowledge-base diseases against everything it has heard (sentence embeddings, or a
  lexical overlap without a model), orders the typical tests of the leading hypotheses,
  re-ranks with the results and diagnoses - always within the turn budget. It uses the
  registered expert tools: segments the case's images, checks radiology reports, and looks
  its findings up with the retrieval tool before diagnosing.
* ``RandomDoctor`` acts at random (seeded): a floor for any metric.
* ``HumanDoctor`` lets a person play the doctor at the terminal.

``make_doctor(spec)`` builds one from a spec: ``scripted``, ``random`` or ``human``,
optionally with keyword options, e.g. ``scripted:max_questions=8,max_turns=30``.
"""

from __future__ import annotations

import asyncio
import builtins
import random
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from agentclinic.agents.base import Doctor
from agentclinic.agents.embeddings import Embedder, default_embedder, tokens
from agentclinic.env.actions import Action, Ask, CallTool, Diagnose, End, Examine, OrderTests, RequestImage
from agentclinic.knowledge import Disease, knowledge_base
from agentclinic.tools import TOOLS

DEFAULT_MAX_TURNS = 20  # AgentClinic's default turn budget

# --------------------------------------------------------------------------------------------
# The history the scripted doctor takes: (priority, topic, question), asked in this order; when
# fewer questions fit, the lowest-priority ones (largest number) are dropped first. What the
# patient says in reply counts as evidence with the topic's weight (an allergy or a relative's
# illness says little about this illness).
# --------------------------------------------------------------------------------------------

GREETING = "Hello, I'm the doctor seeing you today. What brings you in?"
HISTORY_QUESTIONS: tuple[tuple[int, str, str], ...] = (
    (0, "presenting complaint", GREETING),
    (1, "onset", "When did this start, and did it come on suddenly or gradually?"),
    (3, "character", "Can you describe it - what does it feel like, and how severe is it?"),
    (4, "location", "Where exactly is it, and does it spread anywhere else?"),
    (2, "associated symptoms", "Have you noticed any other symptoms along with it?"),
    (5, "modifying factors", "Does anything make it better or worse?"),
    (6, "past history", "Do you have any medical conditions, or have you had any operations or hospital stays?"),
    (7, "medications", "What medications do you take, including anything over the counter?"),
    (14, "allergies", "Do you have any allergies?"),
    (8, "social", "Do you smoke, drink alcohol or use any recreational drugs?"),
    (11, "occupation and travel", "What do you do for work, and have you travelled anywhere recently?"),
    (13, "contacts", "Who do you live with, and is anyone around you unwell?"),
    (12, "family history", "Does any illness run in your family?"),
    (9, "fever", "Have you had any fevers, chills or night sweats?"),
    (10, "weight", "Have you lost any weight, or noticed a change in your appetite or energy?"),
    (15, "review of systems", "Any cough, breathlessness, chest pain, tummy, bowel or urinary problems, or rashes?"),
)
TOPIC_WEIGHT = {"past history": 0.6, "medications": 0.4, "allergies": 0.2, "social": 0.7, "family history": 0.4,
                "occupation and travel": 0.8}

# Knowledge-base "tests" that are not orderable tests (a manoeuvre, questionnaire or trial).
NOT_A_TEST = re.compile(r"examination|assessment|questionnaire|\bscale\b|\bscore\b|\btrial\b|rating|history|"
                        r"mental state|clinical|blood pressure", re.I)

# A statement that reports an absence or a normal result: it is no evidence for a disease.
NEGATIVE = re.compile(
    r"\b(?:no|not|denies|denied|deny|never|none|nothing|normal|unremarkable|negative|absent|nil|without|neither|nor|"
    r"don'?t|doesn'?t|didn'?t|haven'?t|hasn'?t|isn'?t|wasn'?t|aren'?t|weren'?t|won'?t|unavailable|n/a|clear|"
    r"unsure|not sure|non|symmetrical|intact|couldn'?t|can'?t say|no idea|afraid|what to say)\b", re.I)
# In a short statement, a word like these means a normal finding ("Pupils equal and reactive.").
NORMAL_WORD = re.compile(r"\b(?:equal|equally|reactive|flexor|symmetrical|symmetric|intact|soft|regular|clear|"
                         r"normal|unremarkable|active|present|palpable|appropriate|adequate)\b", re.I)
# An examination line that only says "soft", "normal", "clear"...: a normal finding.
NORMAL_FINDING = re.compile(r"^(?:[\w ,/-]{0,40}:\s*)?(?:(?:and|,|\s)*\b(?:soft|normal|clear|unremarkable|nad|"
                            r"non-?tender|regular|well|alert|oriented|comfortable)\b)+[\s.,]*$", re.I)
ABNORMAL = re.compile(r"\b(?:high|raised|elevated|increased|low|reduced|decreased|positive|abnormal|"
                      r"markedly|severely)\b", re.I)
REFERENCE = re.compile(r"\((?:[^)]*\b(?:normal|ref|reference|range|nr|below|above)\b[^)]*)\)", re.I)
INSTRUCTION = re.compile(r"^(?:please\s+)?(?:take|assess|evaluate|examine|order|give|make|determine|diagnose|find|"
                         r"work\s+up|consider)\b|\b(?:your|a|the)\s+diagnosis\b|\bfocused history\b", re.I)
SKIP_OBSERVATION = re.compile(r"^\s*(?:error\b|diagnosis recorded\b|tool\b)", re.I)
HEADER = re.compile(r"^\s*(?:patient|examination|test results|images|doctor)\s*:\s*", re.I)
SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
MALE = re.compile(r"\b(?:man|male|boy|gentleman|he|his|him)\b", re.I)
FEMALE = re.compile(r"\b(?:woman|female|girl|lady|she|her|pregnant)\b", re.I)

# Expert tools: images are requested when the brief mentions them and segmented; radiology reports
# (FINDINGS / IMPRESSION) are checked; before the diagnosis the positive findings are looked up with the
# retrieval tool, whose ranking is fused with the knowledge-base ranking.
IMAGE_HINT = re.compile(r"\b(?:images?|imaging|photo(?:graph)?s?|pictures?|scans?|films?|radiographs?)\b", re.I)
REPORT = re.compile(r"\b(?:FINDINGS|IMPRESSION)\s*:")
RETRIEVAL_HIT = re.compile(r"^\s*\d+\.\s+(?P<name>.+?)(?:\s+\((?P<code>[A-Z][0-9][0-9A-Z.]*)\))?,\s+score\b", re.M)
RETRIEVAL_WEIGHT = 0.1  # fused score: own score / the leader's + RETRIEVAL_WEIGHT / (1 + rank in the retrieval)
RETRIEVAL_K = 10
QUERY_CHARS = 900  # the retrieval query: the positive findings, most telling first, up to this length
SEGMENT_WEIGHT = 0.3  # a segmentation's measurements count as weak evidence

TOP_K_ITEMS = 4  # a disease's clinical score: its k best one-to-one matches of items to statements
SIMILAR_ITEM = {True: 0.75, False: 0.5}  # items this similar count as the same finding (model, lexical)
MIN_WEIGHT = 0.15
FLOOR = {True: 0.35, False: 0.15}  # similarity below this is noise (model, lexical)
TEST_WEIGHT = 0.6
RISK_WEIGHT = 0.15
SEX_PENALTY = 0.5
CLOSE = 0.1  # a second round of tests when the two leaders are within 10% of each other
CONFIDENCE_TEMPERATURE = 0.08  # softmax over the five best scores
CONFIRMED = 0.55  # an item this similar to something heard counts as already known


# --------------------------------------------------------------------------------------------
# Knowledge-base index (embedded once per process)
# --------------------------------------------------------------------------------------------


@dataclass
class KbIndex:
    """Every disease's symptoms, signs, summary, test findings and risk factors, embedded once."""

    diseases: tuple[Disease, ...]
    texts: list[str]
    disease_of: np.ndarray  # item -> disease index
    kind: np.ndarray  # item -> 0 clinical (symptom, sign, summary), 1 test finding, 2 risk factor
    test_key: list[str]  # item -> normalised test name ('' unless kind 1)
    items: list[list[np.ndarray]]  # disease -> kind -> item indices
    vectors: np.ndarray | None  # unit vectors (model) or None (lexical)
    token_sets: list[frozenset[str]]
    weight: np.ndarray | None = None  # item -> specificity in (0, 1]: 'fever' is common, 'tophi' is not

    @classmethod
    def build(cls, diseases: Sequence[Disease], embedder: Embedder) -> KbIndex:
        texts, owner, kind, keys = [], [], [], []
        for i, disease in enumerate(diseases):
            entries = ([(s, 0, "") for s in disease.symptoms] + [(s, 0, "") for s in disease.signs]
                       + [(disease.summary, 0, "")]
                       + [(f"{t.test}: {t.finding}", 1, test_key(t.test)) for t in disease.tests]
                       + [(r, 2, "") for r in disease.risk_factors])
            for text, k, key in entries:
                texts.append(text)
                owner.append(i)
                kind.append(k)
                keys.append(key)
        owner_a, kind_a = np.array(owner), np.array(kind)
        items = [[np.flatnonzero((owner_a == d) & (kind_a == k)) for k in range(3)] for d in range(len(diseases))]
        vectors = embedder.encode_corpus(texts) if embedder.available else None
        token_sets = [frozenset(tokens(t)) for t in texts]
        index = cls(tuple(diseases), texts, owner_a, kind_a, keys, items, vectors, token_sets)
        index.weight = index._specificity()
        return index

    def _specificity(self) -> np.ndarray:
        """An inverse document frequency per item: log(N / diseases with a similar item) / log(N).

        Summaries count half: they are long and match anything a little.
        """
        n = max(2, len(self.diseases))
        weight = np.ones(len(self.texts), np.float32)
        for k in (0, 2):
            rows = np.flatnonzero(self.kind == k)
            if not len(rows):
                continue
            similar = np.zeros((len(rows), n), bool)
            if self.vectors is not None:
                for start in range(0, len(rows), 512):
                    block = rows[start:start + 512]
                    sim = self.vectors[block] @ self.vectors[rows].T
                    for r, hits in enumerate(sim >= SIMILAR_ITEM[True]):
                        similar[start + r, self.disease_of[rows[hits]]] = True
            else:
                postings: dict[str, list[int]] = {}
                for r, i in enumerate(rows):
                    for token in self.token_sets[i]:
                        postings.setdefault(token, []).append(r)
                for r, i in enumerate(rows):
                    a = self.token_sets[i]
                    similar[r, self.disease_of[i]] = True
                    for c in {c for token in a for c in postings[token]}:
                        b = self.token_sets[rows[c]]
                        if 2 * len(a & b) / (len(a) + len(b)) >= SIMILAR_ITEM[False]:
                            similar[r, self.disease_of[rows[c]]] = True
            df = similar.sum(axis=1).clip(1, None)
            weight[rows] = np.clip(np.log(n / df) / np.log(n), MIN_WEIGHT, 1.0)
        summaries = [self.items[d][0][-1] for d in range(len(self.diseases)) if len(self.items[d][0])]
        weight[summaries] *= 0.5
        return weight

    def similarity(self, chunks: list[str], embedder: Embedder, rows: np.ndarray | None = None) -> np.ndarray:
        """Similarity of the items (all, or ``rows``) to each chunk: items x chunks."""
        if not chunks:
            return np.zeros((len(self.texts) if rows is None else len(rows), 0), np.float32)
        if self.vectors is not None:
            vectors = self.vectors if rows is None else self.vectors[rows]
            return vectors @ embedder.encode(chunks).T
        rows = np.arange(len(self.texts)) if rows is None else rows
        chunk_sets = [frozenset(tokens(c)) for c in chunks]
        out = np.zeros((len(rows), len(chunks)), np.float32)
        for r, i in enumerate(rows):
            items = self.token_sets[i]
            if items:
                for j, chunk in enumerate(chunk_sets):
                    if chunk:
                        out[r, j] = 2 * len(items & chunk) / (len(items) + len(chunk))
        return out


_KB_LOCK = threading.Lock()
_KB_CACHE: list[tuple[Embedder, tuple[Disease, ...], KbIndex]] = []


def kb_index(embedder: Embedder, diseases: Sequence[Disease]) -> KbIndex:
    """The knowledge-base index for this embedder and disease list (built once per process)."""
    diseases = tuple(diseases)
    with _KB_LOCK:
        for cached_embedder, cached_diseases, index in _KB_CACHE:
            if cached_embedder is embedder and cached_diseases == diseases:
                return index
        index = KbIndex.build(diseases, embedder)
        _KB_CACHE.append((embedder, diseases, index))
        del _KB_CACHE[:-4]
        return index


_NUM = r"(\d{1,3}(?:\.\d+)?)"
VITALS = (
    ("temperature", re.compile(r"\b(?:temp(?:erature)?)\b[^0-9\n]{0,20}" + _NUM
                               + r"\s*(?:°|deg(?:rees)?)?\s*([cf])?\b", re.I)),
    ("heart rate", re.compile(r"\b(?:heart rate|pulse(?: rate)?|hr)\b[^0-9\n]{0,20}" + _NUM, re.I)),
    ("respiratory rate", re.compile(r"\b(?:respiratory rate|resp(?:iratory)?\.? rate|rr)\b[^0-9\n]{0,20}" + _NUM,
                                    re.I)),
    ("oxygen saturation", re.compile(r"\b(?:oxygen saturation|saturations?|sats|spo2|o2 sat\w*)\b[^0-9\n]{0,20}" + _NUM
                                     + r"\s*%", re.I)),
    ("blood pressure", re.compile(r"\b(?:blood pressure|bp)\b[^0-9\n]{0,20}(\d{2,3})\s*/\s*(\d{2,3})", re.I)),
)


def _vital_finding(kind: str, match: re.Match) -> str | None:
    """What an abnormal vital sign means in words (None when it is normal)."""
    value = float(match.group(1))
    if kind == "temperature":
        if match.group(2) and match.group(2).lower() == "f" or value > 50:
            value = (value - 32) * 5 / 9
        return ("fever, high temperature" if value >= 37.8 else
                "hypothermia, low body temperature" if value < 35.5 else None)
    if kind == "heart rate":
        return "tachycardia, fast heart rate" if value > 100 else "bradycardia, slow heart rate" if value < 55 else None
    if kind == "respiratory rate":
        return ("tachypnoea, rapid breathing" if value >= 22 else
                "slow shallow breathing, respiratory depression" if value < 10 else None)
    if kind == "oxygen saturation":
        return "low oxygen saturation, hypoxia" if value <= 94 else None
    systolic, diastolic = value, float(match.group(2))
    if systolic >= 160 or diastolic >= 100:
        return "high blood pressure, hypertension"
    return "low blood pressure, hypotension" if systolic < 90 else None


def interpret_vitals(statement: str) -> list[str]:
    """A statement with vital signs, as words for the abnormal ones plus any other content it has."""
    findings, rest = [], statement
    for kind, pattern in VITALS:
        for match in pattern.finditer(statement):
            finding = _vital_finding(kind, match)
            if finding and finding not in findings:
                findings.append(finding)
            rest = rest.replace(match.group(0), " ")
    if rest == statement:
        return [statement]
    rest = re.sub(r"\b(?:mmhg|beats|breaths|per|minute|minutes|min|bpm|on|room|air|regular|irregular|sitting|lying|"
                  r"standing|after|both|arms?|and|with|\d+)\b|[^a-z ]", " ", rest.lower())
    if len(tokens(rest)) >= 3:
        findings.append(" ".join(rest.split()))
    return findings


_VALUE = r"(-?\d+(?:\.\d+)?)"
_RANGES = (  # a value followed by its reference: (pattern, how to compare)
    (re.compile(_VALUE + r"[^();]{0,25}\((?:[^()]*?)(?:below|under|less than|<)\s*" + _VALUE, re.I), "below"),
    (re.compile(_VALUE + r"[^();]{0,25}\((?:[^()]*?)(?:above|over|more than|greater than|>)\s*" + _VALUE, re.I),
     "above"),
    (re.compile(_VALUE + r"[^();]{0,25}\((?:[^()]*?)" + _VALUE + r"\s*(?:-|\u2013|to)\s*" + _VALUE, re.I), "range"),
)


def _judge_value(segment: str) -> str | None:
    """'high'/'low' when a number lies outside the reference given with it, 'in range', or None."""
    for pattern, kind in _RANGES:
        m = pattern.search(segment)
        if m:
            number, *limits = (float(g) for g in m.groups())
            if kind == "below":
                return "high" if number >= limits[0] else "in range"
            if kind == "above":
                return "low" if number <= limits[0] else "in range"
            low, high = sorted(limits)
            return "high" if number > high else "low" if number < low else "in range"
    return None


def interpret_result(value: str) -> str:
    """A test result with its normal parts dropped and numbers outside their reference marked high/low.

    '148 U/mL (reference below 15 U/mL); total IgA 2.1 g/L (normal)' -> '148 U/mL (high, raised)'.
    Empty when nothing abnormal remains (a normal result, or 'not available').
    """
    if re.search(r"not available|not done|unavailable", value, re.I):
        return ""
    kept = []
    for clause in re.split(r"(?<=[.;])\s+|;\s*", value):
        segments = re.split(r",\s+(?=[A-Za-z])", clause) if clause.count("(") > 1 else [clause]
        for segment in segments:
            verdict = _judge_value(segment)
            text = re.sub(r"\([^()]*\)", " ", segment) if verdict else REFERENCE.sub(" ", segment)
            text = " ".join(text.split()).strip(" .;,")
            if verdict in ("high", "low"):
                kept.append(f"{text} ({'high, raised' if verdict == 'high' else 'low, reduced'})")
            elif verdict is None and text and not re.search(r"\(\s*normal\s*\)", segment, re.I) \
                    and not is_negative(text):
                kept.append(text)
    return "; ".join(kept)


def chunks_of(observation: str) -> list[str]:
    """The statements of an observation, with headers and list markers removed."""
    out = []
    for line in observation.splitlines():
        line = HEADER.sub("", line.strip()).lstrip("-*\u2022 ").strip()
        if line.lower().startswith("the consultation is over"):
            continue
        for part in SENTENCE.split(line):
            part = part.strip(" \t-")
            if len(part) >= 3:
                out.append(part)
    return out


def test_key(name: str) -> str:
    """A test name compared loosely: lower case, punctuation dropped."""
    return " ".join(re.findall(r"[a-z0-9]+", name.lower()))


def _matched(evidence: np.ndarray, k: int) -> float:
    """Sum of the k best one-to-one pairings of items (rows) with statements (columns), greedily."""
    if evidence.size == 0:
        return 0.0
    evidence = evidence.copy()
    total = 0.0
    for _ in range(min(k, *evidence.shape)):
        i, j = np.unravel_index(int(evidence.argmax()), evidence.shape)
        if evidence[i, j] <= 0:
            break
        total += float(evidence[i, j])
        evidence[i, :] = 0
        evidence[:, j] = 0
    return total


def _dice(a: str, b: str) -> float:
    ta, tb = set(a.split()) - {"serum", "blood", "test", "level"}, set(b.split()) - {"serum", "blood", "test", "level"}
    return 2 * len(ta & tb) / (len(ta) + len(tb)) if ta and tb else 0.0


def is_negative(statement: str) -> bool:
    """Whether a statement reports an absence or a normal finding (no evidence for a disease)."""
    text = REFERENCE.sub(" ", statement)
    if NORMAL_FINDING.match(text) or (len(text.split()) <= 6 and NORMAL_WORD.search(text)):
        return True
    if ABNORMAL.search(text):
        return False
    return bool(NEGATIVE.search(text))


# --------------------------------------------------------------------------------------------
# The scripted doctor
# --------------------------------------------------------------------------------------------


@dataclass
class Ranking:
    diseases: list[Disease]
    scores: list[float]

    def top(self, n: int) -> list[Disease]:
        return self.diseases[:n]


class ScriptedDoctor:
    """A baseline clinician: history, examination, tests for the leading hypotheses, diagnosis.

    Plan (one action per turn): greeting, then up to ``max_questions`` history questions in
    all (greeting included; ``HISTORY_QUESTIONS`` by priority), a full examination,
    ``targeted_questions`` questions about the leading hypotheses' most specific symptoms not
    heard yet, then up to ``test_rounds`` rounds of tests: first at most ``max_tests`` typical
    tests of the ``hypotheses`` leading diseases, then - only when the results changed the
    leader or left the two leaders within 10% - a few more for the two leaders; then the
    diagnosis (primary, ``differential`` runners-up, confidence from the score margin). The
    plan shrinks to fit ``max_turns``: the diagnosis comes at turn ``max_turns - 1`` at the
    latest, or at ``max_turns`` when the retrieval lookup takes the turn before it.
    Deterministic: the same observations give the same actions (``seed`` is kept for the
    protocol; nothing here is random).

    Expert tools (``use_tools``; each only when registered, and a failing call is logged and
    skipped): when the brief mentions images, they are requested after the examination (two
    history questions fewer); each received image (on request or upfront, at most
    ``max_segments``) is segmented automatically, its measurements folded in as weak
    evidence; a radiology report received (FINDINGS / IMPRESSION) is checked with
    ``check_report`` when a turn is free after the tests (at most ``max_report_checks``);
    before the diagnosis the positive findings go to ``retrieve`` and its ranking is fused
    with the knowledge-base ranking (``retrieval_weight``, see ``_fused``). ``tool_log``
    keeps each call with its result or error.

    Ranking (``rank``): every statement heard (brief, replies, examination; vital signs read
    as words when abnormal, normal findings and denials dropped) is compared with every
    knowledge-base symptom, sign and summary; a disease scores the sum of its best four
    one-to-one matches (similarity above a noise floor, times the item's specificity, an
    inverse document frequency over the knowledge base), plus its tests' findings against
    the abnormal results of the tests ordered, plus a little for a matching risk factor.
    The knowledge-base embeddings are computed once per process.
    """

    name = "scripted"

    def __init__(self, *, embedder: Embedder | None = None, diseases: Sequence[Disease] | None = None,
                 max_questions: int = 13, max_turns: int = DEFAULT_MAX_TURNS, max_tests: int = 4,
                 hypotheses: int = 3, test_rounds: int = 2, targeted_questions: int = 2, differential: int = 3,
                 use_tools: bool = True, max_segments: int = 1, max_report_checks: int = 1,
                 retrieval_weight: float = RETRIEVAL_WEIGHT):
        if max_turns < 2:
            raise ValueError("max_turns must be at least 2")
        self._embedder = embedder
        self._diseases = tuple(diseases) if diseases is not None else None
        self.max_questions = max(0, max_questions)
        self.max_turns = max_turns
        self.max_tests = max(1, max_tests)
        self.hypotheses = max(1, hypotheses)
        self.test_rounds = max(0, test_rounds)
        self.targeted_questions = max(0, targeted_questions)
        self.differential = max(0, differential)
        self.use_tools = bool(use_tools)
        self.max_segments = max(0, max_segments)
        self.max_report_checks = max(0, max_report_checks)
        self.retrieval_weight = max(0.0, float(retrieval_weight))
        self.reset("")

    # -- set-up ----------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    @property
    def diseases(self) -> tuple[Disease, ...]:
        if self._diseases is None:
            self._diseases = knowledge_base()
        return self._diseases

    def warm_up(self) -> ScriptedDoctor:
        """Load the embedder and embed the knowledge base now (otherwise on first need)."""
        kb_index(self.embedder, self.diseases)
        return self

    def reset(self, brief: str, seed: int | None = None) -> None:
        self.seed = seed
        self.brief = brief or ""
        self.turn = 0
        self.observations: list[str] = []
        self.clinical: list[str] = []  # statements from history, examination and images
        self.weights: list[float] = []  # per clinical statement: how much it says about this illness
        self.results: list[tuple[str, str]] = []  # (test key, "test: result") of abnormal results
        self.pending: list[str] = []  # the tests of the last order, to pair with their results
        self.sex = self._sex(self.brief)
        last = self.max_turns - 1  # the diagnosis comes at this turn at the latest
        self.wants_images = self.use_tools and bool(IMAGE_HINT.search(self.brief))
        reserve = 1 + 1 + self.test_rounds + self.targeted_questions  # examine, tests, targeted, diagnose
        reserve += 2 if self.wants_images else 0  # request the images, segment one
        room = max(last - reserve, 1 if last > 1 else 0)  # at least the greeting, when a turn is free
        n_questions = min(self.max_questions, len(HISTORY_QUESTIONS), room)
        chosen = sorted(HISTORY_QUESTIONS)[:n_questions]
        self.questions = [(topic, q) for p, topic, q in HISTORY_QUESTIONS if (p, topic, q) in chosen]
        self.topic: str | None = None  # what the last question was about
        self.examined = False
        self.targeted_left = self.targeted_questions
        self.asked: set[str] = set()  # symptoms a targeted question asked about
        self.rounds_done = 0
        self.ordered: dict[str, str] = {}  # normalised test name -> name as ordered
        self.leader_before_tests: str | None = None
        self.plan: list[Action] = []  # the actions taken, for inspection
        self.awaiting_tool: str | None = None  # the expert tool the last action called
        self.tool_log: list[dict] = []  # per call: turn, tool, arguments, and the result text or the error
        self.images_requested = False
        self.images_seen: list[str] = []  # ids of the images received (with a local file)
        self.to_segment: list[str] = []
        self.reports: list[str] = []  # received radiology reports (test names) not checked yet
        self.checked_reports = 0
        self.retrieve_called = False
        self.retrieved: list[Disease] | None = None  # the retrieval tool's ranking, in knowledge-base diseases
        self.last_ranking: Ranking | None = None
        if self.brief:
            self._absorb(self.brief)

    @staticmethod
    def _sex(brief: str) -> str | None:
        male, female = len(MALE.findall(brief)), len(FEMALE.findall(brief))
        return "male" if male > female else "female" if female > male else None

    # -- acting ----------------------------------------------------------------------------

    async def act(self, observation: str, images: list[dict] | None = None) -> Action:
        self.turn += 1  # image reports arrive in the observation text; image files are only segmented
        self._note_images(images)
        if observation and not (self.turn == 1 and observation.strip() == self.brief.strip()):
            if not self._absorb_tool(observation):
                self._absorb(observation)
        action = self._decide()
        self.awaiting_tool = action.name if isinstance(action, CallTool) else None
        if isinstance(action, CallTool):
            self.tool_log.append({"turn": self.turn, "tool": action.name, "arguments": dict(action.arguments)})
        self.plan.append(action)
        return action

    def _decide(self) -> Action:
        last = self.max_turns - 1
        if self.turn >= last:
            if self.turn < self.max_turns and self._can_retrieve():  # the spare last turn: look up, then diagnose
                return self._retrieve()
            return self._diagnose()
        self.topic = None
        if self.questions:
            self.topic, question = self.questions.pop(0)
            return Ask(text=question)
        if not self.examined:
            self.examined = True
            return Examine()
        if self.use_tools and self.wants_images and not self.images_requested and not self.images_seen:
            self.images_requested = True
            return RequestImage()
        if self.to_segment and len([t for t in self.tool_log if t["tool"] == "segment"]) < self.max_segments \
                and self._has_tool("segment"):
            return CallTool(name="segment", arguments={"image_id": self.to_segment.pop(0)})
        turns_left = last - self.turn  # turns after this one before the diagnosis must come
        if self.targeted_left and turns_left >= 2:  # leave a turn for the tests
            self.targeted_left -= 1
            question = self._targeted_question()
            if question:
                self.topic = "targeted"
                return Ask(text=question)
        if self.rounds_done < self.test_rounds:
            ranking = self.rank()
            close = len(ranking.scores) > 1 and ranking.scores[0] - ranking.scores[1] < CLOSE * ranking.scores[0]
            if self.rounds_done == 0 or ranking.diseases[0].name != self.leader_before_tests or close:
                first = self.rounds_done == 0
                tests = self._tests_for(ranking.top(self.hypotheses if first else 2),
                                        self.max_tests if first else max(1, self.max_tests - 1))
                if tests:
                    if self.rounds_done == 0:
                        self.leader_before_tests = ranking.diseases[0].name
                    self.rounds_done += 1
                    self.pending = list(tests)
                    return OrderTests(tests=tests)
            self.rounds_done = self.test_rounds
        if self.reports and self.checked_reports < self.max_report_checks and self._has_tool("check_report"):
            self.checked_reports += 1
            return CallTool(name="check_report", arguments={"test": self.reports.pop(0)})
        if self._can_retrieve():
            return self._retrieve()
        return self._diagnose()

    # -- expert tools ----------------------------------------------------------------------

    def _has_tool(self, name: str) -> bool:
        return self.use_tools and name in TOOLS

    def _note_images(self, images: list[dict] | None) -> None:
        for image in images or ():
            image_id = str(image.get("id"))
            if image.get("available", True) and image.get("path") and image_id not in self.images_seen:
                self.images_seen.append(image_id)
                self.to_segment.append(image_id)

    def _absorb_tool(self, observation: str) -> bool:
        """Fold the answer of the expert tool just called into the log (and the reasoning); False when the
        last action called no tool. A tool that failed is logged and the doctor carries on without it."""
        name, self.awaiting_tool = self.awaiting_tool, None
        if name is None:
            return False
        self.observations.append(observation)
        entry = self.tool_log[-1] if self.tool_log else {"tool": name}
        text = observation.strip()
        prefix = f"Tool {name}:"
        if not text.startswith(prefix):
            entry["error"] = text
            return True
        result = text[len(prefix):].split("\nThe consultation is over", 1)[0].strip()
        entry["text"] = result
        if name == "retrieve":
            self.retrieved = self._retrieval_ranking(result)
            entry["hits"] = [d.name for d in self.retrieved]
        elif name == "segment":  # measurements, not denials: every statement counts, weakly
            for chunk in chunks_of(result):
                self.clinical.append(chunk)
                self.weights.append(SEGMENT_WEIGHT)
        return True

    def _can_retrieve(self) -> bool:
        return not self.retrieve_called and bool(self.clinical or self.results) and self._has_tool("retrieve")

    def _retrieve(self) -> CallTool:
        self.retrieve_called = True
        return CallTool(name="retrieve", arguments={"query": self.retrieval_query(), "k": RETRIEVAL_K})

    def retrieval_query(self) -> str:
        """The positive findings, most telling first: what the patient and the examination said (full-weight
        topics), then the abnormal results, then the rest (history, risk factors), up to ``QUERY_CHARS``."""
        strong = [s for s, w in zip(self.clinical, self.weights) if w >= 1.0]
        weak = [s for s, w in zip(self.clinical, self.weights) if w < 1.0]
        parts, size = [], 0
        for text in dict.fromkeys(strong + [r for _, r in self.results] + weak):
            text = " ".join(text.split())
            if size + len(text) > QUERY_CHARS and parts:
                break
            parts.append(text)
            size += len(text) + 2
        return "; ".join(parts)[:QUERY_CHARS]

    def _retrieval_ranking(self, text: str) -> list[Disease]:
        """The knowledge-base diseases in the retrieval tool's ranked list (by name, alias or ICD-10 code)."""
        by_name = {}
        by_code = {}
        for disease in self.diseases:
            for name in (disease.name, *disease.aliases):
                by_name.setdefault(test_key(name), disease)
            by_code.setdefault(disease.icd10.upper(), disease)
        ranked: list[Disease] = []
        for match in RETRIEVAL_HIT.finditer(text):
            disease = by_name.get(test_key(match.group("name"))) or by_code.get((match.group("code") or "").upper())
            if disease is not None and disease not in ranked:
                ranked.append(disease)
        return ranked

    def _fused(self, ranking: Ranking) -> Ranking:
        """The knowledge-base ranking with the retrieval ranking folded in: each disease scores its own score
        over the leader's plus ``retrieval_weight / (1 + its rank in the retrieval)``."""
        if not self.retrieved or not ranking.scores or ranking.scores[0] <= 0 or not self.retrieval_weight:
            return ranking
        top = ranking.scores[0]
        place = {d.id: r for r, d in enumerate(self.retrieved)}
        fused = [s / top + (self.retrieval_weight / (1 + place[d.id]) if d.id in place else 0.0)
                 for d, s in zip(ranking.diseases, ranking.scores)]
        order = sorted(range(len(fused)), key=lambda i: (-round(fused[i], 6), i))
        return Ranking([ranking.diseases[i] for i in order], [fused[i] * top for i in order])

    def _absorb(self, observation: str) -> None:
        self.observations.append(observation)
        if self.sex is None and len(self.observations) == 1:
            self.sex = self._sex(observation)
        if SKIP_OBSERVATION.match(observation):
            return
        if observation.lstrip().lower().startswith("test result"):
            self._absorb_results(observation)
            return
        for chunk in chunks_of(observation):
            for statement in interpret_vitals(chunk):
                if not is_negative(statement) and not INSTRUCTION.search(statement):
                    self.clinical.append(statement)
                    self.weights.append(TOPIC_WEIGHT.get(self.topic, 1.0))

    def _absorb_results(self, observation: str) -> None:
        """Result lines, paired in order with the tests just ordered (their knowledge-base names)."""
        lines = [HEADER.sub("", ln.strip()).lstrip("-*\u2022 ").strip() for ln in observation.splitlines()[1:]]
        lines = [ln for ln in lines if ln and not ln.lower().startswith("the consultation is over")]
        aligned = 0 < len(lines) <= len(self.pending)
        for i, line in enumerate(lines):
            name, colon, value = line.partition(":")
            if not colon:
                name, value = "", line
            if colon and self.use_tools and REPORT.search(value) and name.strip() not in self.reports:
                self.reports.append(name.strip())  # a radiology report, by the name it came back under
            value = interpret_result(value)
            if not value:
                continue
            label = self.pending[i] if aligned else name.strip()
            self.results.append((test_key(label), f"{label}: {value}" if label else value))
        self.pending = []

    # -- reasoning -------------------------------------------------------------------------

    def rank(self) -> Ranking:
        """The knowledge-base diseases, best first, scored against everything heard so far.

        A disease's score is the sum over its best ``TOP_K_ITEMS`` matches - each symptom or
        sign paired with a different statement heard - of similarity above a noise floor times
        the item's specificity, plus the same for abnormal results of its typical tests, plus
        a little for its best-matched risk factor.
        """
        index = kb_index(self.embedder, self.diseases)
        n = len(index.diseases)
        floor = FLOOR[index.vectors is not None]
        weight = index.weight
        clinical = index.similarity(self.clinical, self.embedder)  # items x statements
        evidence = np.clip((clinical - floor) / (1 - floor), 0, None) * weight[:, None]
        if evidence.shape[1]:
            evidence *= np.asarray(self.weights, np.float32)[None, :]
        test_sim = np.zeros(len(index.texts), np.float32)
        if self.results:
            rows = np.flatnonzero(index.kind == 1)
            sim = index.similarity([text for _, text in self.results], self.embedder, rows)
            for r, item in enumerate(rows):
                item_key = index.test_key[item]
                for j, (key, _) in enumerate(self.results):
                    if key == item_key or _dice(key, item_key) >= 0.5:
                        test_sim[item] = max(test_sim[item], (sim[r, j] - floor) / (1 - floor))
        scores = np.zeros(n)
        for d in range(n):
            own = index.items[d]
            score = _matched(evidence[own[0]], TOP_K_ITEMS) / TOP_K_ITEMS
            tests = np.sort(test_sim[own[1]])[::-1][:2]
            if tests.size:
                score += TEST_WEIGHT * float(tests.clip(0, None).sum()) / 2
            if len(own[2]) and evidence.shape[1]:
                score += RISK_WEIGHT * float(evidence[own[2]].max())
            scores[d] = score * self._sex_factor(index.diseases[d])
        order = sorted(range(n), key=lambda d: (-round(scores[d], 6), d))
        ranking = Ranking([index.diseases[d] for d in order], [float(scores[d]) for d in order])
        self.last_ranking = ranking
        return ranking

    def _sex_factor(self, disease: Disease) -> float:
        text = f"{disease.name} {disease.specialty}".lower()
        if self.sex == "male" and ("obstetric" in text or "gynae" in text or "gyne" in text or "pregnan" in text
                                   or "ovar" in text or "uter" in text):
            return SEX_PENALTY
        if self.sex == "female" and ("prostat" in text or "testic" in text):
            return SEX_PENALTY
        return 1.0

    def _targeted_question(self) -> str | None:
        """Ask about the most specific symptoms of the leading hypotheses not heard of yet.

        One symptom from each of the two leading diseases (and a second from the leader), the
        most specific first, skipping what an earlier question already asked about.
        """
        index = kb_index(self.embedder, self.diseases)
        ranking = self.rank()
        heard = index.similarity(self.clinical, self.embedder).max(axis=1, initial=0.0)
        position = {d.id: i for i, d in enumerate(index.diseases)}
        missing: list[str] = []
        for disease, count in zip(ranking.top(2), (2, 1)):
            symptoms = set(disease.symptoms)
            rows = [i for i in index.items[position[disease.id]][0]
                    if index.texts[i] in symptoms and heard[i] < CONFIRMED and index.texts[i] not in self.asked]
            rows.sort(key=lambda i: -index.weight[i])
            for i in rows[:count]:
                if index.texts[i] not in missing:
                    missing.append(index.texts[i])
        if not missing:
            return None
        self.asked.update(missing)
        listed = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " or " + missing[-1]
        return f"Have you had any {listed}?"

    def _tests_for(self, diseases: list[Disease], limit: int) -> list[str]:
        """The most useful typical tests of these hypotheses (best first), not ordered before.

        A test scores 1/(1 + rank of the disease) x 1/(1 + position in its list / 2), summed over
        the diseases that list it: early tests of the leading diseases, and tests that several
        hypotheses share (they tell them apart), come first.
        """
        candidates: dict[str, list] = {}
        for rank, disease in enumerate(diseases):
            usable = [t.test for t in disease.tests if not NOT_A_TEST.search(t.test)]
            for position, test in enumerate(usable):
                key = test_key(test)
                if key in self.ordered:
                    continue
                entry = candidates.setdefault(key, [0.0, len(candidates), test])
                entry[0] += 1 / (1 + rank) / (1 + position / 2)
        chosen = [test for _, _, test in sorted(candidates.values(), key=lambda c: (-c[0], c[1]))[:limit]]
        for test in chosen:
            self.ordered[test_key(test)] = test
        return chosen

    def _diagnose(self) -> Diagnose:
        ranking = self._fused(self.rank())
        top = ranking.scores[:5]
        weights = np.exp((np.array(top) - top[0]) / CONFIDENCE_TEMPERATURE)
        confidence = float(np.clip(weights[0] / weights.sum(), 0.05, 0.95))
        names = [d.name for d in ranking.diseases]
        return Diagnose(primary=names[0], differential=names[1:1 + self.differential],
                        confidence=round(confidence, 3))


# --------------------------------------------------------------------------------------------
# The random doctor
# --------------------------------------------------------------------------------------------

RANDOM_QUESTIONS = (
    "What brings you in today?", "How long has this been going on?", "Do you have any pain?",
    "Do you take any medications?", "Any allergies?", "Do you smoke or drink alcohol?",
    "Does anything run in your family?", "Have you had a fever?", "Have you lost weight?",
    "Any other symptoms?",
)
RANDOM_SYSTEMS = (None, "general", "cardiovascular", "respiratory", "abdomen", "neurological",
                  "musculoskeletal", "skin", "head and neck")
FALLBACK_TESTS = ("Complete blood count", "Basic metabolic panel", "C-reactive protein", "Chest X-ray",
                  "Urinalysis", "12-lead ECG")
FALLBACK_DIAGNOSES = ("Viral infection", "Community-acquired pneumonia", "Gout", "Migraine", "Heart failure")


class RandomDoctor:
    """Random but valid actions, seeded by ``reset(brief, seed)``; diagnoses a random KB disease."""

    name = "random"

    def __init__(self, *, diseases: Sequence[Disease] | None = None, p_diagnose: float = 0.1,
                 max_turns: int = DEFAULT_MAX_TURNS):
        self._diseases = tuple(diseases) if diseases is not None else None
        self.p_diagnose = p_diagnose
        self.max_turns = max_turns
        self.reset("")

    def _names(self) -> tuple[list[str], list[str]]:
        try:
            diseases = self._diseases if self._diseases is not None else knowledge_base()
        except Exception:  # noqa: BLE001 - a broken knowledge base must not stop a baseline
            diseases = ()
        names = [d.name for d in diseases] or list(FALLBACK_DIAGNOSES)
        tests = sorted({t.test for d in diseases for t in d.tests}) or list(FALLBACK_TESTS)
        return names, tests

    def reset(self, brief: str, seed: int | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.turn = 0

    async def act(self, observation: str, images: list[dict] | None = None) -> Action:
        self.turn += 1
        names, tests = self._names()
        rng = self.rng
        if self.turn >= self.max_turns - 1 or rng.random() < self.p_diagnose:
            primary = rng.choice(names)
            others = [n for n in names if n != primary]
            return Diagnose(primary=primary, differential=rng.sample(others, min(2, len(others))),
                            confidence=round(rng.random(), 2))
        kind = rng.choices(("ask", "examine", "test", "image"), weights=(0.5, 0.15, 0.3, 0.05))[0]
        if kind == "ask":
            return Ask(text=rng.choice(RANDOM_QUESTIONS))
        if kind == "examine":
            return Examine(system=rng.choice(RANDOM_SYSTEMS))
        if kind == "test":
            return OrderTests(tests=rng.sample(tests, min(len(tests), rng.randint(1, 2))))
        return RequestImage()


# --------------------------------------------------------------------------------------------
# The human doctor
# --------------------------------------------------------------------------------------------


class HumanDoctor:
    """A person at the terminal: prints each observation, reads the doctor's reply.

    The text is returned as typed (the environment parses it: a question, ``EXAMINE``,
    ``REQUEST TEST: ...``, ``REQUEST IMAGES``, ``DIAGNOSIS READY: ...``). ``input_fn`` and
    ``output_fn`` default to ``input`` and ``print`` (looked up at call time). Empty lines are asked again.
    End of input (Ctrl-D) or Ctrl-C ends the episode cleanly: the doctor sends ``End`` (a station is
    "completed", a diagnostic case ends with no diagnosis) and the episode is recorded and scored.

    A given ``input_fn`` is read in a worker thread; the terminal's ``input`` is read on the main thread
    with Python's own Ctrl-C handler in place for the read, so Ctrl-C interrupts it (asyncio's handler only
    cancels the task and would leave the read waiting).
    """

    name = "human"
    HELP = ("You are the doctor. Ask the patient anything, or type EXAMINE [system], REQUEST TEST: name[, name], "
            "REQUEST IMAGES, or DIAGNOSIS READY: your diagnosis. In a conversation station, just talk; type END "
            "CONVERSATION (or press Ctrl-D) to finish.")

    def __init__(self, input_fn: Callable[[str], str] | None = None, output_fn: Callable[[str], object] | None = None,
                 prompt: str = "Doctor> ", show_help: bool = True):
        self.input_fn = input_fn
        self.output_fn = output_fn
        self.prompt = prompt
        self.show_help = show_help
        self.reset("")

    def reset(self, brief: str, seed: int | None = None) -> None:
        self.brief = brief
        self.turn = 0

    def _out(self, text: str) -> None:
        (self.output_fn or builtins.print)(text)

    async def act(self, observation: str, images: list[dict] | None = None) -> str:
        self.turn += 1
        if self.turn == 1 and self.show_help:
            self._out(self.HELP)
        self._out(observation)
        for image in images or ():  # a person can open the file
            if image.get("path"):
                self._out(f"[image {image.get('id')} ({image.get('modality')}): {image['path']}]")
        while True:
            try:
                text = await asyncio.to_thread(self.input_fn, self.prompt) if self.input_fn else _terminal_read(
                    self.prompt)
            except (EOFError, KeyboardInterrupt):
                self._out("")
                return End()
            if text is not None and text.strip():
                return text.strip()


def _terminal_read(prompt: str) -> str:
    """``input`` on the main thread with the default Ctrl-C handler for the read (KeyboardInterrupt)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return builtins.input(prompt)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return builtins.input(prompt)
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------

DOCTORS: dict[str, type] = {"scripted": ScriptedDoctor, "random": RandomDoctor, "human": HumanDoctor}


def _option(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def make_doctor(spec: str, *, settings=None, max_turns: int | None = None, cache=None) -> Doctor:
    """A doctor from a spec: 'scripted', 'random' or 'human', optionally 'name:key=value,...'; or a
    model spec ('openai/<model>[@<url>][?mode=text|tools|graph|graph-text]', 'hf/<path>[?mode=...]') for an LLM doctor,
    or with '?mode=graph' / '?mode=graph-text' (and '&retries=N') the LangGraph tool-using doctor,
    with decoding ``settings``, the turn budget ``max_turns`` and an optional replay ``cache`` path.
    ``max_turns`` also sets the scripted and random doctors' plan unless the spec gives one."""
    if str(spec).strip().startswith(("openai/", "hf/")):
        from agentclinic.agents.llm_factory import make_model_doctor

        return make_model_doctor(str(spec).strip(), settings, max_turns=max_turns or DEFAULT_MAX_TURNS, cache=cache)
    name, _, options = str(spec).strip().partition(":")
    name = name.strip().lower()
    if name not in DOCTORS:
        raise ValueError(f"unknown doctor {spec!r}; known doctors: {', '.join(DOCTORS)} "
                         f"(options as 'scripted:max_questions=8'), or a model spec: "
                         f"openai/<model>[@<base_url>][?mode=text|tools|graph|graph-text] or "
                         f"hf/<path>[?mode=text|tools|graph|graph-text]")
    kwargs = {}
    for item in filter(None, (o.strip() for o in options.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"doctor option {item!r} in {spec!r} is not key=value")
        kwargs[key.strip()] = _option(value.strip())
    if max_turns is not None and name in ("scripted", "random"):
        kwargs.setdefault("max_turns", max_turns)
    try:
        return DOCTORS[name](**kwargs)
    except TypeError as exc:
        raise ValueError(f"invalid options for the {name} doctor in {spec!r}: {exc}") from exc


__all__ = ["ScriptedDoctor", "RandomDoctor", "HumanDoctor", "make_doctor", "DOCTORS", "HISTORY_QUESTIONS",
           "kb_index", "chunks_of"]
