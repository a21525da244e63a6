"""A rule-based diagnosis judge: normalised names, ICD-10-CM codes, guarded embeddings.

``RuleJudge.judge`` compares a proposed diagnosis with the case's diagnosis (its name,
aliases and ICD-10-CM code) and returns a ``Verdict`` with one of these levels:

* ``none``      - no proposal (empty or ``None``).
* ``exact``     - the normalised proposal equals the diagnosis name. Normalising lowers
  case, strips accents, punctuation, articles and possessives (``Hashimoto's`` ==
  ``Hashimoto``) and folds British spellings (haem/hem, oedema/edema, oesophag/esophag,
  paediatric, tumour, leukaemia, anaemia, -isation ...); framing and hedges are dropped at
  either end ("I think this is", "probably", "most likely"); words split by a hyphen are
  joined where the reference writes them as one ("keto-acidosis"), and a one-letter typo in a
  long word that is no known word is fixed ("apendicitis"). Several readings of the answer are
  tried and the best wins: without parentheticals, the clause before "," or ";" when what
  follows is a plan, comment or measurement ("..., start aspirin"), without a trailing
  circumstance ("confirmed on CT", "in a young woman"), and with apostrophes dropped.
* ``synonym``   - equals an alias; or an abbreviation that spells out to the diagnosis (the
  knowledge base's abbreviations whose letters fit the long form, plus a small table here; one
  with several readings, such as MS, counts only when a reading is a full match);
  or the same words up to order, fillers (``of``, ``due to``),
  word-level synonyms (cardiac/heart, renal/kidney) and weak modifiers (``acute``,
  ``primary``, ``severe``, ``disease`` ...); or the same ICD-10-CM code (the proposal may be a code such
  as ``I21.19``, or text that exactly matches an ICD-10-CM description), including "X" vs
  "X, unspecified" (M10 vs M10.9); or, where one name's words contain the other's, an
  embedding cosine >= ``synonym_threshold`` (the extra words are redundant: "migraine
  headache" for "migraine").
* ``broader``   - the proposal's code is an ancestor of the diagnosis code (``I21`` for
  ``I21.19``), or its words are a proper subset of the diagnosis words and still name a
  disease (``pneumonia`` for ``community-acquired pneumonia``).
* ``narrower``  - the proposal's code is a descendant of the diagnosis code (or of the code an
  "unspecified" diagnosis code stands for: M10.07 under M10 for M10.9), or its words are a
  proper superset of the diagnosis words, a cause included ("X secondary to Y"). Extra side,
  site or kind words ("inferior", "left", "chronic") are never read as redundant by the
  embedding step.
* ``wrong``     - anything else, and always a near miss: guards fire when the two names
  differ in a number or type letter (type 1/type 2, type A/B, hepatitis B/C), a negation
  (``non-``, ``without``, ``not``), a contrasting prefix (un-, a-, pseudo-, pre-, supra-...:
  stable/unstable, gout/pseudogout), hyper-/hypo- (tachy-/brady-, ...), laterality or site
  (left/right, upper/lower, anterior/inferior), acuity (acute/chronic), primary/secondary,
  benign/malignant, mellitus/insipidus or spontaneous/traumatic; and names where each has a
  word the other lacks (``subdural`` vs ``extradural``, ``bronchitis`` vs ``bronchiolitis``)
  never reach the embedding step, however similar their embeddings. An answer naming alternatives ("X or Y",
  "X vs Y") commits to no diagnosis and is wrong too.

``correct`` is true for ``exact`` and ``synonym``. The ICD-10-CM description index is
built lazily, once per process.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import re
import threading
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from agentclinic.agents.base import LEVEL_RANK as RANK  # the one table of levels: precedence follows credit
from agentclinic.agents.base import MatchLevel, Verdict
from agentclinic.agents.concepts import concept_index, split_bracketed
from agentclinic.errors import AgentClinicError
from agentclinic.scenario.schema import ICD10_PATTERN, Scenario

# Calibrated on labelled pairs in tests/test_judge.py (all-MiniLM-L6-v2, normalised names). The
# embedding step only sees pairs that pass the near-miss guards and where one name's words contain
# the other's: it decides whether the extra words are redundant ("migraine headache" / "migraine"
# 0.91, "asthma attack" 0.89, "migraine attack" 0.88) or specify a narrower condition ("allergic
# rhinitis" / "rhinitis" 0.86, "viral pneumonia" 0.85, "temporal lobe epilepsy" 0.84).
EMBEDDING_SYNONYM_THRESHOLD = 0.88
# The lexical fallback (Dice overlap of word stems) only accepts near-identical word sets.
LEXICAL_SYNONYM_THRESHOLD = 0.85

# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

_SPELLING = [  # British -> American, applied to lower-case text: general rules, then a few single words
    (r"ae(?!r)(?=[a-z])", "e"),  # haem, anaemia, paediatric, aetiology, caecum (not aerobic, nor plural -ae)
    (r"ooe", "oe"), (r"(?:\b|(?<=[cfhmnp]))oe(?=[a-z])", "e"),  # oedema, oesophagus, diarrhoea, dyspnoea,
    # coeliac, foetal, amoeba, manoeuvre, gastrooesophageal (not gastroenteritis, gastroesophageal)
    (r"(?<=[a-z]{3})our", "or"),  # tumour, behaviour, labour, flavour (not four, hour, course)
    (r"(?<=[a-z][bcdgkptv])re(?=s?\b)", "er"),  # centre, fibre, litre, goitre, calibre (not pre, are, -ure)
    (r"(?<=[a-z]{3})is(e|es|ed|ing|ation|ations)\b", r"iz\1"),  # organise, hospitalisation (not raise)
    (r"yse\b", "yze"), (r"sulph", "sulf"), (r"odour", "odor"), (r"\bgrey\b", "gray"), (r"mould", "mold"),
]
_SPELLING_RE = [(re.compile(a), b) for a, b in _SPELLING]
_SPELLING_ANY = re.compile("|".join(f"(?:{a})" for a, _ in _SPELLING))
_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5",
    "1st": "1", "2nd": "2", "3rd": "3", "4th": "4", "5th": "5",
}
_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6"}
_NUMBERED = {"type", "grade", "stage", "class", "phase", "degree", "group", "level"}
_LETTERED = _NUMBERED | {"hepatitis", "vitamin", "influenza", "factor", "protein", "serotype"}
# Prefixes written as separate words ("pre-eclampsia") are joined to the next word.
_JOINED_PREFIXES = frozenset("pre post pseudo peri para supra sub extra intra inter trans anti".split())
_ARTICLES = {"a", "an", "the"}
_HEDGES = re.compile(
    r"^(?:(?:final|working|most likely|likely|probable|probably|possible|possibly|suspected|presumed|"
    r"presumptive|provisional|query|newly diagnosed|new diagnosis of|(?:diagnosis|dx)(?: is| of)?)\b\s*)+")
# Framing before the diagnosis (normalised text: articles and punctuation are already gone).
_FRAMING = re.compile(
    r"^(?:(?:i|we) (?:think|believe|suspect|would say)(?: that)?(?: (?:this|it) is)?|"
    r"(?:(?:my|our) )?(?:final |working |most likely |leading )?(?:answer|diagnosis|impression|assessment)"
    r"(?: is| would be)|(?:this|it) (?:is|looks like|seems to be)|"
    r"(?:patient|pt) (?:has|is suffering from|suffers from|is presenting with|presents with)|"
    r"(?:(?:picture|presentation|findings|features|appearances?) )?(?:are |is )?(?:consistent|in keeping|compatible) "
    r"with|case of)\b\s*")
_TRAILING_HEDGES = re.compile(
    r"(?:\s+(?:(?:is |are )?(?:most |more |very )?(?:likely|probable)|probably|possibly|suspected|presumed|"
    r"query))+$")


def _fold_accents(text: str) -> str:
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalise(text: str) -> str:
    """Lower case, accents, possessives, British spellings, punctuation and articles folded."""
    text = _fold_accents(text).lower().replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"'s\b", "", text)
    text = re.sub(r"s'(?=\s|$)", "s", text)
    text = text.replace("&", " and ")
    if _SPELLING_ANY.search(text):
        for pattern, repl in _SPELLING_RE:
            text = pattern.sub(repl, text)
    text = re.sub(r"[^a-z0-9]+", " ", text)
    words = text.split()
    out: list[str] = []
    for i, word in enumerate(words):
        previous = words[i - 1] if i else ""
        # "a" after a name ends it as a type letter ("hemophilia a"), else it is an article
        if word in _ARTICLES and not (word == "a" and (previous in _LETTERED or (i and i == len(words) - 1))):
            continue
        if word in _NUMBER_WORDS:
            word = _NUMBER_WORDS[word]
        elif word in _ROMAN and (previous in _NUMBERED or (previous.isalpha() and len(previous) > 2 and (
                word != "i" or i == len(words) - 1))):
            word = _ROMAN[word]  # "type II", "Mobitz II" -> 2; a lone "i" only when it ends the name
        if out and out[-1] in _JOINED_PREFIXES:
            word = out.pop() + word
        out.append(word)
    return " ".join(out)


def _strip_hedges(text: str) -> str:
    """The normalised text without leading framing or hedges ("I think this is", "probably") or trailing ones."""
    norm = normalise(text)
    stripped, previous = norm, None
    while stripped != previous:
        previous = stripped
        stripped = _HEDGES.sub("", _FRAMING.sub("", stripped)).strip()
    stripped = _TRAILING_HEDGES.sub("", stripped).strip()
    return stripped or norm


# Words ignored when comparing word sets (order-free): fillers, and weak modifiers that do not
# change the diagnosis ("acute appendicitis" == "appendicitis", "Graves disease" == "Graves").
_FILLERS = frozenset("of in on to due at by for from and or with caused".split())
_WEAK = frozenset("acute primary idiopathic simple uncomplicated unspecified typical classic classical "
                  "mellitus disease diseases syndrome disorder nos true condition mild moderate severe".split())
# Word-level synonyms folded before comparing word sets.
_WORD_FOLD = {
    "cardiac": "heart", "renal": "kidney", "nephric": "kidney", "hepatic": "liver", "pulmonary": "lung",
    "gastric": "stomach", "cerebral": "brain", "cutaneous": "skin", "venous": "vein", "arterial": "artery",
    "ocular": "eye", "colonic": "colon", "rectal": "rectum", "vesical": "bladder", "neoplasm": "tumor",
    "calculi": "stone", "stones": "stone", "calculus": "stone", "diseases": "disease",
}


def _content_words(norm: str) -> list[str]:
    words = norm.split()
    out = []
    for i, w in enumerate(words):
        if w in _FILLERS:
            continue
        if w == "type" and not (i + 1 < len(words) and len(words[i + 1]) <= 2):
            continue  # "tension-type headache" == "tension headache"
        out.append(_WORD_FOLD.get(w, w))
    return out


def _core(words: list[str]) -> frozenset[str]:
    core = frozenset(w for w in words if w not in _WEAK)
    return core or frozenset(words)


# "X secondary to Y": a cause makes the diagnosis narrower, however similar the embeddings
# (normalised text: "as a result of" has lost its article).
_CAUSE = re.compile(r"\b(?:secondary to|due to|caused by|because of|as result of|resulting from|induced by|"
                    r"complicated by)\b")


# --------------------------------------------------------------------------------------------
# Near-miss guards
# --------------------------------------------------------------------------------------------

_NEGATORS = frozenset("non no not without negative absent absence".split())
_PREFIX_PAIRS = (("hyper", "hypo"), ("tachy", "brady"), ("micro", "macro"), ("poly", "oligo"),
                 ("hyper", "normo"), ("hypo", "normo"))
_GROUPS = {
    "laterality": frozenset("left right bilateral unilateral".split()),
    "level": frozenset("upper lower".split()),
    "site": frozenset("anterior posterior inferior superior lateral medial septal".split()),
    "position": frozenset("proximal distal".split()),
    "acuity": frozenset("acute chronic subacute".split()),
    "order": frozenset("primary secondary tertiary".split()),
    "behaviour": frozenset("benign malignant".split()),
    "side": frozenset("internal external".split()),
    "kind of diabetes": frozenset("mellitus insipidus".split()),
    "origin": frozenset("spontaneous traumatic iatrogenic".split()),
}
# "x" vs prefix + "x" names a different (often opposite) condition: unstable/stable, pseudogout/gout.
_CONTRASTING_PREFIXES = ("non", "un", "in", "a", "pre", "post", "pseudo", "para", "peri", "supra", "sub", "extra",
                         "intra", "anti")


@dataclass(frozen=True)
class _Features:
    words: tuple[str, ...]
    numbers: frozenset[str]
    negated: frozenset[str]

    @classmethod
    def of(cls, norm: str) -> _Features:
        words = tuple(norm.split())
        numbers = set()
        negated = set()
        for i, w in enumerate(words):
            if any(c.isdigit() for c in w):
                numbers.add(w)  # type 2, HSV 1, 1a, trisomy 21, Mobitz II (normalised to 2)
            elif len(w) == 1 and w.isalpha():
                numbers.add(w)  # a type letter: hemophilia a / b, t / b cell
            elif w in _LETTERED and i + 1 < len(words) and re.fullmatch(r"[a-z]|[iv]{1,3}[a-d]", words[i + 1]):
                numbers.add(f"{w} {words[i + 1]}")  # type a, type ia / ib
            if w in _NEGATORS and i + 1 < len(words):
                negated.add(words[i + 1])
        return cls(words, frozenset(numbers), frozenset(negated))


def guard(a: str, b: str) -> str | None:
    """Why two normalised names are a near miss (a different diagnosis), or None."""
    fa, fb = _Features.of(a), _Features.of(b)
    sa, sb = set(fa.words), set(fb.words)
    if fa.numbers and fb.numbers and fa.numbers != fb.numbers:
        return f"they differ in number or type ({', '.join(sorted(fa.numbers))} vs {', '.join(sorted(fb.numbers))})"
    if (fa.negated & (sb - _NEGATORS)) - fb.negated or (fb.negated & (sa - _NEGATORS)) - fa.negated:
        return "one negates what the other asserts"
    for x in sa:
        for y in sb:
            if x == y:
                continue
            for prefix in _CONTRASTING_PREFIXES:
                if (x == prefix + y and len(y) >= 4) or (y == prefix + x and len(x) >= 4):
                    return f"{x!r} vs {y!r} (prefix {prefix}-)"
            for p, q in _PREFIX_PAIRS:
                for u, v in ((x, y), (y, x)):
                    if u.startswith(p) and v.startswith(q) and u[len(p):] == v[len(q):] and len(u) > len(p) + 2:
                        return f"{p}- vs {q}- ({x!r} vs {y!r})"
    for name, group in _GROUPS.items():
        ga, gb = sa & group, sb & group
        if ga and gb and ga != gb:
            return f"they differ in {name} ({', '.join(sorted(ga))} vs {', '.join(sorted(gb))})"
    return None


def _variants(x: str, y: str) -> bool:
    """Two forms of one word (colon / colonic, hemorrhage / hemorrhagic), not two words."""
    common = len(os.path.commonprefix([x, y]))
    return common >= max(4, min(len(x), len(y)) - 2)


def _siblings(a: list[str], b: list[str]) -> tuple[str, str] | None:
    """Each name has a word the other lacks (subdural / extradural, bronchitis / bronchiolitis).

    Such pairs name different things however similar their embeddings, so the embedding step
    skips them; it only decides whether extra words on one side are redundant.
    """
    ca, cb = _core(a), _core(b)
    only_a = [x for x in ca - cb if not any(_variants(x, y) for y in cb - ca)]
    only_b = [y for y in cb - ca if not any(_variants(y, x) for x in ca - cb)]
    if only_a and only_b:
        return only_a[0], only_b[0]
    return None


_SPECIFYING = frozenset().union(*_GROUPS.values()) - _WEAK


# Adjectives name a kind, cause or site ("allergic", "viral", "temporal"); extra nouns may be redundant
# ("migraine headache", "asthma attack").
_ADJECTIVE = re.compile(r"[a-z]{3,}(?:ic|al|ous|ary|ive|ar)$")


def _specifies(a: list[str], b: list[str]) -> str | None:
    """A side, site or kind word ("inferior", "left", "chronic", "allergic") that only one name has:
    never redundant."""
    extra = sorted(w for w in _core(a) ^ _core(b) if w in _SPECIFYING or _ADJECTIVE.match(w))
    return extra[0] if extra else None


_DISEASE_SUFFIXES = ("itis", "osis", "emia", "oma", "pathy", "algia", "ism", "iasis", "plegia", "penia", "uria",
                     "rrhea", "rrhage", "ectasis", "ia", "sis", "cele", "oses", "omas")
_DISEASE_HEADS = frozenset(
    "disease syndrome disorder failure infection fracture cancer carcinoma tumor injury infarction deficiency "
    "stenosis insufficiency bleed bleeding hemorrhage embolism thrombosis fever ulcer stroke attack block arrest "
    "palsy dissection aneurysm abscess poisoning overdose diabetes hypertension angina asthma gout migraine "
    "dementia depression psychosis dermatitis eczema colitis arthritis lymphoma leukemia anemia pneumonia sepsis "
    "shock hematoma fibrillation flutter tachycardia bradycardia cardiomyopathy hernia obstruction torsion "
    "pregnancy allergy reaction withdrawal dependence seizure epilepsy headache pain lesion mass cyst "
    "regurgitation prolapse rupture perforation".split())


def _knowledge_base():
    """The disease knowledge base; an error that says so when it cannot be loaded (never an empty one)."""
    try:
        from agentclinic.knowledge import knowledge_base

        return knowledge_base()
    except Exception as exc:  # noqa: BLE001 - reported, never swallowed: the verdicts depend on it
        raise AgentClinicError(f"the judge cannot load the disease knowledge base: {type(exc).__name__}: {exc}") \
            from exc


@lru_cache(maxsize=1)
def _kb_names() -> frozenset[str]:
    return frozenset(normalise(n) for d in _knowledge_base() for n in (d.name, *d.aliases))


# --------------------------------------------------------------------------------------------
# Abbreviations
# --------------------------------------------------------------------------------------------

# Abbreviations the knowledge base does not spell out, written for this project. One may stand for
# several conditions ("MS": multiple sclerosis in the knowledge base, mitral stenosis here).
_ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "mi": ("myocardial infarction",), "acs": ("acute coronary syndrome",), "htn": ("hypertension",),
    "dm": ("diabetes mellitus",), "hf": ("heart failure",), "ccf": ("congestive cardiac failure",),
    "hfref": ("heart failure with reduced ejection fraction",),
    "hfpef": ("heart failure with preserved ejection fraction",),
    "ms": ("mitral stenosis",), "mr": ("mitral regurgitation",), "ar": ("aortic regurgitation",),
    "vt": ("ventricular tachycardia",), "vf": ("ventricular fibrillation",), "aaa": ("abdominal aortic aneurysm",),
    "pad": ("peripheral arterial disease",), "dcm": ("dilated cardiomyopathy",),
    "lrti": ("lower respiratory tract infection",), "urti": ("upper respiratory tract infection",),
    "hap": ("hospital-acquired pneumonia",), "dic": ("disseminated intravascular coagulation",),
    "hus": ("haemolytic uraemic syndrome",), "als": ("amyotrophic lateral sclerosis",),
    "mnd": ("motor neurone disease",), "nafld": ("non-alcoholic fatty liver disease",),
    "hcc": ("hepatocellular carcinoma",), "sbp": ("spontaneous bacterial peritonitis",),
}


def _abbreviation_key(token: str) -> str:
    return re.sub(r"[^a-z0-9]", "", _fold_accents(token).lower())


def _looks_abbreviated(token: str) -> bool:
    """Written like an abbreviation: one word with two capitals or a capital and a hyphen (DKA, HFrEF, A-fib)."""
    capitals = sum(c.isupper() for c in token)
    return " " not in token and "/" not in token and 2 <= len(_abbreviation_key(token)) <= 7 \
        and (capitals >= 2 or (capitals == 1 and "-" in token))  # A-fib


def _acronym_fits(abbreviation: str, long_form: str) -> bool:
    """Each letter of the abbreviation appears in order in the long form, the first at a word start,
    and every content word of the long form starts with one of its letters.

    Scanned from the right, as in the Schwartz-Hearst rule; it keeps "diabetic ketoacidosis" for DKA
    and drops knowledge-base aliases that are no expansion ("ketoacidosis", "heart failure" for HFrEF,
    "relapsing remitting multiple sclerosis" for MS).
    """
    short, long = _abbreviation_key(abbreviation), " " + normalise(long_form)
    words = [w for w in long.split() if w not in _FILLERS]
    if not words or len(words) > len(short) or any(w[0] not in short for w in words):
        return False
    j = len(long) - 1
    for i in range(len(short) - 1, -1, -1):
        while j > 0 and (long[j] != short[i] or (i == 0 and long[j - 1] != " ")):
            j -= 1
        if j <= 0:
            return False
        j -= 1
    return True


@lru_cache(maxsize=1)
def _abbreviation_table() -> dict[str, tuple[tuple[str, ...], ...]]:
    """Abbreviation key -> its readings, each a tuple of long forms naming one condition."""
    readings: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for disease in _knowledge_base():
        names = [disease.name, *disease.aliases]
        for alias in disease.aliases:
            if _looks_abbreviated(alias):
                long_forms = tuple(n for n in names if not _looks_abbreviated(n) and _acronym_fits(alias, n))
                if long_forms:
                    readings[_abbreviation_key(alias)].append(long_forms)
    for key, long_forms in _ABBREVIATIONS.items():
        readings[key] += [(f,) for f in long_forms]
    table = {}
    for key, found in readings.items():
        merged: list[tuple[str, ...]] = []  # readings sharing a long form name one condition
        for forms in found:
            norms = {normalise(f) for f in forms}
            for k, other in enumerate(merged):
                if norms & {normalise(f) for f in other}:
                    merged[k] = tuple(dict.fromkeys(other + forms))
                    break
            else:
                merged.append(forms)
        table[key] = tuple(merged)
    return table


_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")


def _expansions(text: str) -> tuple[list[str], bool]:
    """The text with its abbreviations spelled out (each reading), and whether any is ambiguous.

    A token counts when it is written like an abbreviation, or when it is the whole (unhedged) answer.
    """
    table = _abbreviation_table()
    whole = _strip_hedges(text)
    out, ambiguous, expanded = [text], False, False
    for token in dict.fromkeys(_TOKEN.findall(text)):
        key = _abbreviation_key(token)
        if key not in table or not (_looks_abbreviated(token) or whole == key):
            continue
        readings = table[key]
        ambiguous |= len(readings) > 1
        pattern = re.compile(rf"(?<![A-Za-z0-9-]){re.escape(token)}(?![A-Za-z0-9-])")
        out = [pattern.sub(form, t) for t in out for forms in readings for form in forms]
        expanded = True
        if len(out) > 24:
            break
    return (list(dict.fromkeys(out)) if expanded else []), ambiguous


def _names_a_disease(norm: str, target: str, use_icd: bool = True) -> bool:
    words = norm.split()
    if not words or all(w in _WEAK or w in _FILLERS or w in _NEGATORS or w.isdigit() for w in words):
        return False
    head = words[-1]
    if head == target.split()[-1] or head in _DISEASE_HEADS or head.endswith(_DISEASE_SUFFIXES):
        return True
    return norm in _kb_names() or (use_icd and bool(icd_index().lookup(norm)))


# --------------------------------------------------------------------------------------------
# Split words and typos
# --------------------------------------------------------------------------------------------

TYPO_MIN_LENGTH = 9  # only words this long may carry a one-letter typo


def _join_split_words(norm: str, vocabulary: set[str]) -> str:
    """Join neighbouring words whose concatenation is in ``vocabulary`` ("keto acidosis" -> "ketoacidosis")."""
    words = norm.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        if i + 1 < len(words) and words[i] + words[i + 1] in vocabulary:
            out.append(words[i] + words[i + 1])
            i += 2
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def _one_edit(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by one insertion, deletion, substitution or swap of neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = len(os.path.commonprefix([short, long]))
    return short[i:] == long[i + 1:]


@lru_cache(maxsize=2)
def _known_words(use_icd: bool) -> frozenset[str]:
    """Words of ICD-10-CM descriptions and knowledge-base names: real words, never read as typos."""
    words = {w for name in _kb_names() for w in name.split()}
    if use_icd:
        words |= {w for description in icd_index().exact for w in description.split()}
    return frozenset(words)


def _align(norm: str, vocabulary: set[str], use_icd: bool = True) -> str:
    """The proposal with split words joined and one-letter typos in long words fixed, towards the
    reference's ``vocabulary``. A word is fixed only when it is no known word (so "arthritis" is never
    read as "arteritis", nor "nephritic" as "nephrotic"), the fix is unique and keeps the first letter,
    and no near-miss guard separates the two words."""
    words = _join_split_words(norm, vocabulary).split()
    for i, word in enumerate(words):
        if len(word) < TYPO_MIN_LENGTH or word in vocabulary or not word.isalpha():
            continue
        fixes = [v for v in vocabulary if len(v) >= TYPO_MIN_LENGTH and v[0] == word[0] and _one_edit(word, v)
                 and guard(word, v) is None]
        if len(fixes) == 1 and word not in _known_words(use_icd):
            words[i] = fixes[0]
    return " ".join(words)


# --------------------------------------------------------------------------------------------
# ICD-10-CM
# --------------------------------------------------------------------------------------------

_UNSPECIFIED = re.compile(
    r"\b(?:unspecified(?: organism| site| type| side| part| laterality| cause| etiology)?|"
    r"not elsewhere classified|nos|without complications?|initial encounter(?: for closed fracture)?|"
    r"subsequent encounter|sequela|of unspecified \w+)\b")


def _concept(norm: str) -> str:
    text = _UNSPECIFIED.sub(" ", norm)
    text = re.sub(r"\b(of|for|with|in)\s*$", "", " ".join(text.split()).strip())
    return " ".join(text.split())


def canonical_code(code: str) -> str | None:
    """An ICD-10-CM code in dotted upper case ('i2119' -> 'I21.19'; blocks as 'I20-I25'), or None."""
    code = code.strip().upper().rstrip(".")
    if re.fullmatch(r"[A-TV-Z][0-9][0-9A-Z]-[A-TV-Z][0-9][0-9A-Z]", code):  # a block, e.g. I20-I25
        return code
    if not ICD10_PATTERN.match(code):
        return None
    if len(code) > 3 and "." not in code:
        code = f"{code[:3]}.{code[3:]}"
    return code


class IcdIndex:
    """Normalised ICD-10-CM descriptions -> codes (exact, and with 'unspecified' phrases removed)."""

    def __init__(self, exact: dict[str, set[str]] | None = None, loose: dict[str, set[str]] | None = None) -> None:
        """Built from ``simple-icd-10-cm`` (several seconds), or from the maps of a saved index."""
        self.exact: dict[str, set[str]] = defaultdict(set, exact or {})
        self.loose: dict[str, set[str]] = defaultdict(set, loose or {})
        if exact is not None:
            return
        cm = self.cm
        for code in cm.get_all_codes(True):
            if code.isdigit():  # chapters: too broad to name a diagnosis
                continue
            description = cm.get_description(code)
            variants = {normalise(description)}
            if "(" in description:
                variants.add(normalise(re.sub(r"\([^)]*\)", " ", description)))
            if "[" in description:
                variants.add(normalise(re.sub(r"\[[^\]]*\]", " ", description)))
                bracket = re.fullmatch(r"\s*([^\[]+?)\s*\[([^\]]+)\]\s*", description)
                if bracket:
                    variants.add(normalise(bracket.group(2)))
            for variant in variants:
                if variant:
                    self.exact[variant].add(code)
                    loose = _concept(variant)
                    if loose and loose != variant:
                        self.loose[loose].add(code)

    @property
    def cm(self):
        """The ``simple_icd_10_cm`` module (imported on first use: it takes seconds)."""
        import simple_icd_10_cm

        return simple_icd_10_cm

    def to_json(self) -> dict:
        return {name: {k: sorted(v) for k, v in table.items()} for name, table in
                (("exact", self.exact), ("loose", self.loose))}

    @classmethod
    def from_json(cls, data: dict) -> IcdIndex:
        return cls({k: set(v) for k, v in data["exact"].items()}, {k: set(v) for k, v in data["loose"].items()})

    def lookup(self, norm: str) -> set[str]:
        return self.exact.get(norm, set())

    def lookup_loose(self, norm: str) -> set[str]:
        return self.loose.get(norm, set()) | self.loose.get(_concept(norm), set())

    def valid(self, code: str) -> bool:
        return bool(self.cm.is_valid_item(code))  # False for any string that is not a code, never an error

    def description(self, code: str) -> str | None:
        return self.cm.get_description(code) if self.valid(code) else None

    def concept(self, code: str) -> str | None:
        description = self.description(code)
        return _concept(normalise(re.sub(r"\([^)]*\)", " ", description))) if description else None

    def ancestors(self, code: str) -> set[str]:
        if self.valid(code):
            return set(self.cm.get_ancestors(code))
        plain = code.replace(".", "")  # a code the library lacks: fall back on prefixes
        return {c for c in (canonical_code(plain[:n]) for n in range(3, len(plain))) if c}

    def relation(self, proposed: str, target: str) -> tuple[str, str] | None:
        """('synonym'|'broader'|'narrower', why) when the codes are related, else None."""
        p, t = proposed.upper(), target.upper()
        if p == t:
            return "synonym", f"same ICD-10-CM code {t}"
        cp, ct = self.concept(p), self.concept(t)
        if cp and ct and cp == ct:
            return "synonym", f"{p} and {t} name the same concept ({cp!r}, up to 'unspecified')"
        if p in self.ancestors(t):
            return "broader", f"{p} is an ancestor of {t}"
        if t in self.ancestors(p):
            return "narrower", f"{p} is a descendant of {t}"
        general = self.generalise(t)  # 'Gout, unspecified' (M10.9) stands for all of 'Gout' (M10)
        if general != t and general in self.ancestors(p):
            return "narrower", f"{p} is a descendant of {general}, which {t} stands for ('unspecified')"
        return None

    def generalise(self, code: str) -> str:
        """The broadest ancestor that names the same concept (M10.9 'Gout, unspecified' -> M10 'Gout')."""
        concept = self.concept(code)
        if not concept or not self.valid(code):
            return code
        for ancestor in self.cm.get_ancestors(code):
            if self.concept(ancestor) != concept:
                break
            code = ancestor
        return code


_ICD_LOCK = threading.Lock()
_ICD: IcdIndex | None = None


def icd_cache_path() -> Path:
    """The disk cache of the ICD-10-CM index, keyed by the package's version and this module's code."""
    from agentclinic.agents.disk_cache import cache_dir, digest

    version = importlib.metadata.version("simple-icd-10-cm")
    return cache_dir() / f"icd-index-{digest(version, Path(__file__).read_bytes())}.json"


def icd_index() -> IcdIndex:
    """The process-wide ICD-10-CM description index: read from the disk cache (``agents/disk_cache.py``),
    else built (about 10 s with the package's import) and saved for the next process."""
    from agentclinic.agents.disk_cache import cached_json

    global _ICD
    if _ICD is None:
        with _ICD_LOCK:
            if _ICD is None:
                _ICD = cached_json(icd_cache_path(), IcdIndex, IcdIndex.to_json, IcdIndex.from_json)
    return _ICD


# --------------------------------------------------------------------------------------------
# The judge
# --------------------------------------------------------------------------------------------

_CODE_TOKEN = re.compile(r"\b([A-TV-Z][0-9][0-9A-Z]\.[0-9A-Z]{1,4})\b", re.I)
# Modifiers dropped to find a concept for a name no vocabulary lists ("acute myocardial infarction").
_CONCEPT_WEAK = frozenset("acute idiopathic simple uncomplicated unspecified typical classic classical true mild "
                          "moderate severe".split())


def _concept_keys(norm: str) -> list[str]:
    """The normalised name, and without weak modifiers: the keys to look up in the concept index."""
    core = " ".join(w for w in norm.split() if w not in _CONCEPT_WEAK)
    return [norm, core] if core and core != norm else [norm]


# A tail after "," or ";" that starts with one of these narrows the diagnosis ("Gout, left knee",
# "Anaemia, secondary to blood loss"): the head alone is then not tried.
_NARROWING_TAIL = frozenset(
    "secondary due caused with without complicated associated involving affecting of type grade stage class "
    "left right bilateral unilateral upper lower anterior posterior inferior superior lateral medial proximal "
    "distal acute chronic subacute primary tertiary recurrent relapsing community hospital".split())
# A tail after "," that starts with one of these adds a plan, a test or a comment, not part of the diagnosis.
_EXTRA_TAIL = frozenset(
    "start started starting begin commence give given giving prescribe prescribed refer referred referral admit "
    "admitted admission arrange needs need needing requires require requiring treat treated treating treatment "
    "manage managed management plan consider check monitor confirmed confirm proven seen shown typical typically "
    "consistent compatible likely probable probably possible possibly suspected most query score pending awaiting "
    "discharge recommend urgent urgently send order request will should please which as based".split())
# Clauses that add circumstances rather than narrow the diagnosis ("confirmed on CT", "in a young woman").
_EXTRA_CLAUSE = re.compile(
    r"\s+(?:(?:confirmed|diagnosed|proven|seen|shown|demonstrated|visible|evident)\s+(?:on|by|with|at|in)\b|"
    r"in an? (?:\d+[- ]year[- ]old |young |older |old |elderly |pregnant |middle[- ]aged )?"
    r"(?:man|woman|male|female|patient|child|boy|girl|adult|infant|baby|neonate|smoker)\b|"
    r"(?:after|following) (?:an?|recent)\b)", re.I)
_EPONYM_S = re.compile(r"\b([A-Za-z]{3,})s (disease|syndrome|palsy|sign|ulcer|lymphoma|thyroiditis|arteritis)\b", re.I)


def _head(text: str) -> str | None:
    """The part before the first "," or ";" when what follows adds no diagnostic detail."""
    m = re.search(r"[,;]", text)
    if not m:
        return None
    head, tail = text[:m.start()].strip(), normalise(text[m.end():]).split()
    if not head or not tail or tail[0] in _NARROWING_TAIL:
        return None
    if m.group() == ";" or tail[0] in _EXTRA_TAIL or (tail[0].isalpha() and any(w.isdigit() for w in tail)):
        return head  # a plan, a comment, or a measurement ("pH 7.1", "CURB-65 score 1")
    return None


def _candidates(proposed: str) -> list[str]:
    """The proposal, then without parentheticals, each parenthetical and code in it, and its head clause."""
    out = [proposed.strip()]
    bare = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", proposed).strip(" -:;,")
    out.append(bare)
    for groups in re.findall(r"\(([^)]*)\)|\[([^\]]*)\]", proposed):
        out += [g.strip() for g in groups if g.strip()]
    out += [m.group(1) for m in _CODE_TOKEN.finditer(proposed)]
    head = re.split(r"\s+[-\u2013:]\s+", proposed.strip(), maxsplit=1)
    if len(head) > 1:
        out += head
    for text in list(out):
        first = _head(text)
        if first:
            out.append(first)
    for text in list(out):
        clause = _EXTRA_CLAUSE.split(text, maxsplit=1)[0].strip(" ,;")
        if clause != text:
            out.append(clause)
    for text in list(out):
        if "'" in text or "\u2019" in text:
            out.append(re.sub("['\u2019]", "", text))  # "Grave's disease" -> "Graves disease"
        if _EPONYM_S.search(text):
            out.append(_EPONYM_S.sub(r"\1 \2", text))  # "Crohns disease" -> "Crohn disease"
    return [c for c in dict.fromkeys(out) if c]


_ALTERNATIVE = re.compile(r"(?<!\bwith) (?:or|vs|versus) (?!without\b)")


def _alternatives(proposed: str, targets: list[str], use_icd: bool = True) -> list[str]:
    """The alternatives of an answer that does not commit ("X or Y", "X vs. Y"), else []."""
    bare = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", proposed)
    first = re.split(r"[,;]|\s[-\u2013]\s", bare, maxsplit=1)[0]
    norm = _strip_hedges(first)
    if not _ALTERNATIVE.search(norm) or norm in {normalise(t) for t in targets}:
        return []
    parts = [p.strip() for p in _ALTERNATIVE.split(norm)]
    if len(parts) < 2 or not all(_content_words(p) for p in parts) or (use_icd and icd_index().lookup(norm)):
        return []
    return parts


@dataclass
class _Result:
    level: MatchLevel
    rationale: str
    matched: str | None = None
    score: float | None = None


class RuleJudge:
    """Deterministic judge: exact / synonym / broader / narrower / wrong / none (see module doc)."""

    def __init__(self, embedder=None, synonym_threshold: float | None = None, use_icd: bool = True,
                 use_concepts: bool = True):
        self._embedder = embedder
        self._threshold = synonym_threshold
        self.use_icd = use_icd
        self.use_concepts = use_concepts  # the vocabularies' concepts (agents/concepts.py)

    @property
    def embedder(self):
        if self._embedder is None:
            from agentclinic.agents.embeddings import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    @property
    def synonym_threshold(self) -> float:
        if self._threshold is not None:
            return self._threshold
        return EMBEDDING_SYNONYM_THRESHOLD if self.embedder.available else LEXICAL_SYNONYM_THRESHOLD

    async def judge(self, proposed: str | None, scenario: Scenario) -> Verdict:
        # In a worker thread: the first call may build the ICD-10-CM index (a few seconds).
        return await asyncio.to_thread(self.judge_sync, proposed, scenario)

    def judge_sync(self, proposed: str | None, scenario: Scenario) -> Verdict:
        """The verdict, computed synchronously (``judge`` wraps this)."""
        condition = scenario.diagnosis
        if condition is None:
            return Verdict(level="none", correct=False, rationale="a conversation station has no diagnosis to match")
        if proposed is None or not str(proposed).strip() or not normalise(str(proposed)):
            return Verdict(level="none", correct=False, rationale="no diagnosis was proposed")
        name, bracketed = split_bracketed(condition.name)  # "... disease (COPD)": a name and an alias
        aliases = [*bracketed, *condition.aliases]
        targets = [name, *aliases]
        alternatives = _alternatives(str(proposed), targets, self.use_icd)
        if alternatives:
            return Verdict(level="wrong", correct=False,
                           rationale=f"{proposed!r} names alternatives ({' / '.join(alternatives)}), not one diagnosis")
        best: _Result | None = None
        for candidate in _candidates(str(proposed)):
            result = self._judge_one(candidate, name, aliases, condition.icd10)
            if best is None or RANK[result.level] < RANK[best.level]:
                best = result
            if best.level == "exact":
                break
            expansions, ambiguous = _expansions(candidate)
            for expansion in expansions:
                spelled = self._judge_one(expansion, name, aliases, condition.icd10)
                if spelled.level == "exact":
                    spelled.level = "synonym"  # an abbreviation is a synonym, whatever it expands to
                if ambiguous and spelled.level != "synonym":
                    continue  # MS: multiple sclerosis or mitral stenosis - only a full match counts
                if RANK[spelled.level] < RANK[best.level]:
                    spelled.rationale = f"{candidate!r} read as {expansion!r}: {spelled.rationale}"
                    best = spelled
        assert best is not None
        return Verdict(level=best.level, correct=best.level in ("exact", "synonym"), matched=best.matched,
                       rationale=best.rationale, score=best.score)

    # ----------------------------------------------------------------------------------------

    def _judge_one(self, text: str, name: str, aliases: list[str], icd10: str | None) -> _Result:
        code = canonical_code(text)
        if code and icd10 and code == icd10.upper():
            return _Result("synonym", f"{code} is the diagnosis code", icd10)
        if code and self.use_icd:
            index = icd_index()
            if index.valid(code) or (icd10 and code.replace(".", "")[:3] == icd10.replace(".", "")[:3]):
                return self._judge_code(code, icd10, index, name)

        norm = _strip_hedges(text)
        if not norm:
            return _Result("none", "no diagnosis was proposed")
        targets = [(name, normalise(name))] + [(a, normalise(a)) for a in aliases]
        norm = _align(norm, {w for _, tn in targets for w in tn.split()}, self.use_icd)
        own = set(norm.split())
        targets = [(t, _join_split_words(tn, own)) for t, tn in targets]
        name_norm = targets[0][1]
        if norm == name_norm:
            return _Result("exact", f"{text!r} is the diagnosis {name!r}", name)
        for alias, alias_norm in targets[1:]:
            if norm == alias_norm:
                return _Result("synonym", f"{text!r} is an alias of {name!r}", alias)
        spelled_out = self._abbreviates(text, norm, targets)
        if spelled_out:
            return _Result("synonym", f"{text!r} abbreviates {spelled_out!r}", spelled_out)

        words = _content_words(norm)
        for target, target_norm in targets:
            if _core(words) == _core(_content_words(target_norm)) and not guard(norm, target_norm):
                return _Result("synonym", f"{text!r} names {target!r} up to word order and modifiers", target)

        index = icd_index() if self.use_icd and icd10 else None
        codes = index.lookup(norm) if index is not None else set()
        if icd10 and icd10.upper() in codes:
            return _Result("synonym", f"{text!r} is the ICD-10-CM description of {icd10}", icd10)

        open_targets, reasons = [], []
        for target, target_norm in targets:
            why = guard(norm, target_norm)
            if why:
                reasons.append(f"{target!r}: {why}")
            else:
                open_targets.append((target, target_norm))
        if not open_targets:
            return _Result("wrong", f"{text!r} is a near miss for {name!r} - " + "; ".join(reasons))

        for target, target_norm in open_targets:
            target_words = _content_words(target_norm)
            if (set(words) - set(target_words) <= _WEAK and _core(words) < _core(target_words)
                    and _names_a_disease(norm, target_norm, self.use_icd)):
                return _Result("broader", f"{text!r} is a more general name than {target!r}", target)

        related = self._best_code_relation(codes, icd10, index) if codes else None
        if related:
            return _Result(related[0], f"{text!r} is an ICD-10-CM description; {related[1]}", icd10)

        if _CAUSE.search(norm):
            for target, target_norm in open_targets:
                if _core(_content_words(target_norm)) < _core(words):
                    return _Result("narrower", f"{text!r} adds a cause to {target!r}", target)

        if index is not None:
            loose = index.lookup_loose(norm)
            related = self._best_code_relation(loose, icd10, index) if loose else None
            if related:
                return _Result(related[0], f"{text!r} matches an ICD-10-CM description; {related[1]}", icd10)

        concept, distinct = self._concepts(norm, words, open_targets, reasons)
        if concept:
            concept.rationale = f"{text!r}: {concept.rationale}"
            return concept

        score, target, siblings = self._similarity(norm, open_targets)
        # A near miss of one reference name is never a synonym of another by embedding alone
        # ("proliferative" vs "non-proliferative diabetic retinopathy", alias "diabetic retinopathy"),
        # nor are two names that the vocabularies know as unrelated concepts.
        if distinct:
            siblings.append(distinct)
        if target is not None and score >= self.synonym_threshold and not reasons and not distinct:
            return _Result("synonym", f"{text!r} is semantically equivalent to {target!r} (cosine {score:.2f} >= "
                                      f"{self.synonym_threshold:.2f})", target, score)

        for target, target_norm in open_targets:
            target_words = _content_words(target_norm)
            if _core(target_words) < _core(words) and set(target_words) - set(words) <= _WEAK:
                return _Result("narrower", f"{text!r} is a more specific form of {target!r}", target, score)


        why = reasons + siblings
        if score is not None:
            why.append(f"best similarity {score:.2f} < {self.synonym_threshold:.2f}")
        return _Result("wrong", f"{text!r} does not match {name!r} ({'; '.join(why) or 'no match'})", None, score)

    def _abbreviates(self, text: str, norm: str, targets: list[tuple[str, str]]) -> str | None:
        """The reference name that an answer written as one abbreviation spells out ("GIST" for
        "gastrointestinal stromal tumor"), unless the vocabularies know it as another concept's name."""
        token = next((t for t in _TOKEN.findall(text) if _abbreviation_key(t) == norm.replace(" ", "")), None)
        if token is None or " " in norm or not _looks_abbreviated(token):
            return None
        for target, target_norm in targets:
            if _looks_abbreviated(target) or not _acronym_fits(token, target):
                continue
            if self.use_concepts:
                index = concept_index()
                if index.lookup(norm) and index.relation(norm, target_norm) is None:
                    continue  # a known abbreviation of something else
            return target
        return None

    def _concepts(self, norm: str, words: list[str], targets: list[tuple[str, str]],
                  reasons: list[str]) -> tuple[_Result | None, str | None]:
        """The vocabularies' reading of the answer against each open target: the best relation, and
        else why the embedding must not call them synonyms (both name known, unrelated concepts).

        A shared concept is no synonym when one name's words contain the other's (MeSH lists
        "paroxysmal atrial fibrillation" and "hemophilia" as entry terms of broader / narrower
        descriptors): the word-level steps decide those. Nor when the answer is a near miss of another
        reference name. A vocabulary's hierarchy counts only between names whose words nest or that
        share a word: MeSH files bronchiolitis under bronchitis and psoriatic arthritis under
        psoriasis, which are other diseases, not kinds of them."""
        if not self.use_concepts:
            return None, None
        index = concept_index()
        best: _Result | None = None
        distinct = None
        for target, target_norm in targets:
            target_words = _content_words(target_norm)
            nested = _core(words) < _core(target_words) or _core(target_words) < _core(words)
            siblings = _siblings(words, target_words) is not None
            for a in _concept_keys(norm):
                for b in _concept_keys(target_norm):
                    related = index.relation(a, b)
                    if related is None:
                        if index.lookup(a) and index.lookup(b):
                            distinct = f"{target!r}: the vocabularies name two unrelated concepts"
                        continue
                    level, why = related
                    if level == "synonym" and (nested or reasons):
                        continue  # the word-level steps and the embedding decide
                    if level != "synonym" and siblings:
                        distinct = f"{target!r}: {why}, but each name has a word the other lacks"
                        continue
                    if best is None or RANK[level] < RANK[best.level]:
                        best = _Result(level, f"{why} (vs {target!r})", target)
        return best, (None if best else distinct)

    def _judge_code(self, code: str, icd10: str | None, index: IcdIndex, name: str) -> _Result:
        if not icd10:
            description = index.description(code)
            if description:
                result = self._judge_one(description, name, [], None)
                result.rationale = f"{code} is {description!r}: {result.rationale}"
                return result
            return _Result("wrong", f"the case has no ICD-10-CM code to compare {code} with")
        related = index.relation(code, icd10)
        if related:
            level = related[0]
            return _Result(level, f"code {code}: {related[1]}", icd10)
        return _Result("wrong", f"code {code} is unrelated to the diagnosis code {icd10}")

    @staticmethod
    def _best_code_relation(codes: set[str], icd10: str, index: IcdIndex) -> tuple[str, str] | None:
        best = None
        for code in sorted(codes):
            related = index.relation(code, icd10)
            if related and (best is None or RANK[related[0]] < RANK[best[0]]):
                best = related
        return best

    def _similarity(self, norm: str, targets: list[tuple[str, str]]) -> tuple[float | None, str | None, list[str]]:
        """Best embedding cosine over targets that are not siblings of the proposal."""
        words = _content_words(norm)
        allowed, siblings = [], []
        for target, target_norm in targets:
            pair = _siblings(words, _content_words(target_norm))
            specific = _specifies(words, _content_words(target_norm))
            if pair:
                siblings.append(f"{target!r}: each names something the other does not ({pair[0]!r} vs {pair[1]!r})")
            elif specific:
                siblings.append(f"{target!r}: {specific!r} on one side only specifies the condition")
            else:
                allowed.append((target, target_norm))
        if not allowed:
            return None, None, siblings
        scores = self.embedder.similarity([norm], [tn for _, tn in allowed])[0]
        i = int(scores.argmax())
        return float(scores[i]), allowed[i][0], siblings


__all__ = ["RuleJudge", "normalise", "guard", "canonical_code", "icd_index", "EMBEDDING_SYNONYM_THRESHOLD",
           "LEXICAL_SYNONYM_THRESHOLD"]
