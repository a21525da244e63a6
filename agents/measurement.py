"""The scripted measurement agent: examination findings and test results, exactly as the case holds them.

A lookup, never a generator: a test is found by its canonical name, one of its synonyms, a
common abbreviation from the catalogue below (CBC, U&E, LFTs, ECG, CXR, ...), the same
words in another order ("CT of the chest" for "Chest CT") or a close spelling (difflib,
ratio >= 0.85, never across different numbers or short tokens: "free T3" is not "free T4").
A test *group* can be ordered too ("Complete blood count" holding WBC, haemoglobin and
platelets in an imported MedQA case): every test of the group comes back in one finding.
A test the case lacks is "Not available for this patient.", unless the scenario declares
``unknown_tests: normal``, when it is "Within normal limits.", or ``list-available``, when the tests the
case has are named too. Nothing is ever invented, and a result never repeats the test's name (the
environment prints it before the result).

Examination: no system (or 'all', 'general', 'full', ...) gives every finding; otherwise
the findings whose system or manoeuvre matches, after normalising the name ("Neurological
examination" -> neurological) and mapping synonyms ('heart' -> cardiovascular, 'chest' and
'lungs' -> respiratory, 'belly' -> abdominal, 'vitals' -> vital signs, 'skin' ->
dermatological), with close spellings accepted.
"""

from __future__ import annotations

import difflib
import re
from collections import OrderedDict

from agentclinic.agents.base import Finding

from agentclinic.scenario.schema import ExamFinding, LabTest, Scenario

TEST_CUTOFF = 0.85
EXAM_CUTOFF = 0.80
NORMAL_RESULT = "Within normal limits."

# Requests -> canonical test names (both sides of a match go through this table, so a case's
# own name or synonym meets the doctor's abbreviation at the canonical form).
TEST_SYNONYMS: dict[str, tuple[str, ...]] = {
    "complete blood count": ("cbc", "fbc", "full blood count", "blood count", "full blood examination", "fbe",
                             "hemogram", "haemogram", "complete blood cell count", "cbc with differential",
                             "cbc with diff", "full blood picture"),
    "basic metabolic panel": ("bmp", "u&e", "u and e", "ue", "u es", "u&es", "urea and electrolytes",
                              "urea electrolytes", "electrolytes", "renal function", "renal profile",
                              "kidney function", "kidney function tests", "renal function tests", "rft", "rfts",
                              "chem 7", "chem7", "basic metabolic profile", "serum electrolytes", "lytes"),
    "comprehensive metabolic panel": ("cmp", "chem 14", "chem14", "comprehensive metabolic profile"),
    "liver function tests": ("lft", "lfts", "liver function test", "liver function", "liver panel", "liver profile",
                             "hepatic function panel", "hepatic panel", "liver enzymes"),
    "thyroid function tests": ("tft", "tfts", "thyroid function test", "thyroid function", "thyroid panel",
                               "thyroid profile"),
    "thyroid stimulating hormone": ("tsh", "thyrotropin"),
    "12-lead ecg": ("ecg", "ekg", "electrocardiogram", "12 lead ecg", "12-lead ekg", "12 lead ekg",
                    "electrocardiography", "12-lead electrocardiogram"),
    "chest x-ray": ("cxr", "chest radiograph", "chest xray", "chest x ray", "chest film", "cxr pa", "pa chest",
                    "chest radiography"),
    "ct head": ("head ct", "ct brain", "brain ct", "ct of the head", "ct scan of the head", "ct scan head",
                "non-contrast ct head", "noncontrast ct head", "ct head without contrast", "cth"),
    "mri brain": ("brain mri", "mri head", "head mri", "mri of the brain", "mr brain"),
    "ct chest": ("chest ct", "ct thorax", "thoracic ct", "ct of the chest"),
    "ct abdomen and pelvis": ("ct abdomen", "ct abdo pelvis", "ct ap", "ct a/p", "abdominal ct", "ct abdomen pelvis",
                              "ct of the abdomen and pelvis", "ct abdo"),
    "ct pulmonary angiogram": ("ctpa", "ct pulmonary angiography", "ct pa"),
    "c-reactive protein": ("crp", "c reactive protein"),
    "erythrocyte sedimentation rate": ("esr", "sed rate", "sedimentation rate"),
    "arterial blood gas": ("abg", "blood gas", "arterial gas", "blood gases", "arterial blood gases"),
    "venous blood gas": ("vbg", "venous gas"),
    "urinalysis": ("ua", "urine dipstick", "urine dip", "dipstick urinalysis", "urine analysis", "urine test",
                   "urine r/e", "urine routine"),
    "urine culture": ("msu", "midstream urine", "urine mc&s", "urine microscopy and culture"),
    "blood cultures": ("blood culture", "bcs", "blood c/s"),
    "coagulation profile": ("coag", "coags", "coagulation screen", "clotting screen", "clotting", "pt/inr",
                            "pt inr", "coagulation studies", "coagulation panel"),
    "international normalized ratio": ("inr", "international normalised ratio"),
    "high-sensitivity troponin": ("troponin", "trop", "hs-troponin", "hs troponin", "troponin t", "troponin i",
                                  "cardiac troponin", "hs-ctn", "hstnt", "hs-tnt", "high-sensitivity troponin t",
                                  "high sensitivity troponin"),
    "brain natriuretic peptide": ("bnp", "nt-probnp", "nt probnp", "natriuretic peptide", "pro-bnp"),
    "d-dimer": ("d dimer", "ddimer", "dimer"),
    "lipid panel": ("lipids", "lipid profile", "cholesterol", "fasting lipids", "lipid screen"),
    "hemoglobin a1c": ("hba1c", "a1c", "glycated hemoglobin", "glycosylated hemoglobin", "haemoglobin a1c"),
    "blood glucose": ("glucose", "blood sugar", "capillary blood glucose", "cbg", "bm", "finger prick glucose",
                      "random blood glucose", "serum glucose", "fingerstick glucose"),
    "lactate": ("serum lactate", "lactic acid", "venous lactate"),
    "lipase": ("serum lipase",),
    "amylase": ("serum amylase",),
    "magnesium": ("mg", "serum magnesium"),
    "potassium": ("k", "serum potassium", "k+"),
    "sodium": ("na", "serum sodium", "na+"),
    "calcium": ("ca", "serum calcium", "corrected calcium"),
    "creatine kinase": ("ck", "cpk", "creatine phosphokinase"),
    "human immunodeficiency virus test": ("hiv", "hiv test", "hiv serology", "hiv antibody", "hiv screen"),
    "pregnancy test": ("beta hcg", "b-hcg", "bhcg", "hcg", "urine pregnancy test", "upt", "serum hcg",
                       "beta-hcg", "urine hcg"),
    "lumbar puncture": ("lp", "csf analysis", "csf", "spinal tap", "cerebrospinal fluid analysis"),
    "echocardiogram": ("echo", "transthoracic echocardiogram", "tte", "cardiac echo", "echocardiography",
                       "cardiac ultrasound"),
    "abdominal ultrasound": ("us abdomen", "ultrasound abdomen", "abdominal us", "abdo us", "usg abdomen",
                             "ultrasound of the abdomen", "abdominal sonography"),
    "electroencephalogram": ("eeg", "electroencephalography"),
    "electromyography": ("emg", "nerve conduction studies", "ncs", "emg/ncs"),
    "iron studies": ("ferritin and iron", "iron panel", "iron profile"),
    "vitamin b12": ("b12", "cobalamin", "serum b12"),
    "prothrombin time": ("pt",),
    "activated partial thromboplastin time": ("aptt", "ptt", "partial thromboplastin time"),
    "urine drug screen": ("uds", "tox screen", "toxicology screen", "urine toxicology", "drug screen",
                          "urine drug test"),
    "antinuclear antibodies": ("ana", "antinuclear antibody", "ana test"),
    "rheumatoid factor": ("rf",),
    "peripheral blood smear": ("blood film", "blood smear", "peripheral smear", "peripheral blood film", "pbs"),
    "respiratory pathogen pcr": ("viral swab", "nasopharyngeal swab", "flu swab", "covid test", "covid swab",
                                 "respiratory viral panel", "rvp"),
}

# Examination requests -> canonical systems; a finding's system goes through the same table.
SYSTEM_SYNONYMS: dict[str, tuple[str, ...]] = {
    "cardiovascular": ("heart", "cardiac", "cardio", "cvs", "cardiovascular system", "cardiology", "circulation",
                       "pulses", "precordium", "precordial", "heart sounds"),
    "respiratory": ("chest", "lungs", "lung", "pulmonary", "resp", "respiration", "breathing", "thorax",
                    "thoracic", "breath sounds", "respiratory system"),
    "abdominal": ("abdomen", "belly", "tummy", "stomach", "abdo", "gi", "gastrointestinal", "abdominal system"),
    "neurological": ("neuro", "neurologic", "neurology", "nervous system", "cns", "neural", "nerves",
                     "neurological system"),
    "vital signs": ("vitals", "vital", "obs", "observations", "vital sign", "vital signs at presentation"),
    "dermatological": ("skin", "dermatologic", "dermatology", "derm", "integument", "integumentary", "rash",
                       "cutaneous", "skin and nails"),
    "mental status": ("mental state", "mse", "mental status exam", "psychiatric", "psych", "cognition",
                      "mental state exam"),
    "musculoskeletal": ("msk", "joints", "joint", "locomotor", "muscles", "musculoskeletal system"),
    "ent": ("ear nose and throat", "ears nose throat", "throat", "otolaryngology", "ears", "nose",
            "head and neck", "otolaryngologic", "oropharynx"),
    "ophthalmological": ("eyes", "eye", "ophthalmic", "ophthalmologic", "fundoscopy", "fundi", "ophthalmoscopy",
                         "visual", "vision"),
    "extremities": ("limbs", "legs", "lower limbs", "lower extremity", "lower extremities", "extremity",
                    "peripheries", "peripheral", "upper limbs", "arms", "leg", "calves"),
    "genitourinary": ("gu", "genitals", "genital", "urogenital", "external genitalia"),
    "pelvic": ("gynaecological", "gynecological", "gynae", "gyn", "vaginal", "speculum", "bimanual"),
    "general": ("general appearance", "appearance", "general inspection", "inspection", "general examination"),
}
# A finding's system that names two systems ("Cardiopulmonary examination") answers both.
COMPOUND_SYSTEMS = {"cardiopulmonary": ("cardiovascular", "respiratory"),
                    "cardiorespiratory": ("cardiovascular", "respiratory"),
                    "heart and lungs": ("cardiovascular", "respiratory")}
# Manoeuvre and sign names (vital signs mostly).
NAME_SYNONYMS: dict[str, tuple[str, ...]] = {
    "blood pressure": ("bp", "arterial pressure"),
    "heart rate": ("hr", "pulse", "pulse rate", "heart rate and rhythm"),
    "respiratory rate": ("rr", "breathing rate", "resp rate"),
    "oxygen saturation": ("sats", "spo2", "o2 sat", "o2 sats", "oxygen sats", "pulse oximetry", "saturation",
                          "o2 saturation", "sao2"),
    "temperature": ("temp", "fever", "body temperature"),
    "weight": ("body weight",),
    "height": (),
    "bmi": ("body mass index",),
}
ALL_EXAM = {"", "all", "everything", "general", "full", "complete", "physical", "whole body", "head to toe",
            "head-to-toe", "full body", "systemic", "full physical", "complete physical", "everything please",
            "all systems", "general physical", "full examination", "complete examination", "general examination",
            "physical examination", "full physical examination", "complete physical examination", "examination",
            "exam", "physical exam", "full exam", "general exam", "complete exam", "routine", "any", "patient"}
# Groups too broad to order as a whole: "order imaging" names no test.
GENERIC_GROUPS = {"tests", "test", "other", "other tests", "additional tests", "results", "test results", "imaging",
                  "investigations", "laboratory tests", "lab tests", "labs", "laboratory studies", "lab work",
                  "blood work", "bloods", "blood tests", "blood test", "miscellaneous", "basic laboratory tests"}

_EXAM_WORDS = re.compile(r"\b(?:examination|examinations|exam|exams|examine|system|systems|assessment|findings?|"
                         r"of\s+the|of|the|a|an|please|check|inspect|auscultate|auscultation\s+of|"
                         r"on\s+examination|o/e)\b")
_TEST_FILLER = re.compile(r"\b(?:a|an|the|please|order|request|requesting|get|run|check|send|test\s+for|"
                          r"level|levels|result|results|value|values|scan|study|studies|serum|plasma|of|for|me|"
                          r"stat|urgent|urgently|do|perform|obtain)\b")
_PUNCT = re.compile(r"[^a-z0-9&+/ ]+")
_SPELLING = ((re.compile(r"(?<=[a-z])ae(?=[a-z])"), "e"), (re.compile(r"\boe"), "e"), (re.compile(r"coe"), "ce"),
             (re.compile(r"x[\s-]*rays?\b"), "xray"), (re.compile(r"(?<=[a-z])ise\b"), "ize"),
             (re.compile(r"sulph"), "sulf"))


def normalise(text: str) -> str:
    """Lower case, US spelling for ae/oe, punctuation to spaces (keeps & + /), single spaces."""
    text = text.lower().replace("\u2019", "'").replace("_", " ").replace("-", " ")
    for pattern, replacement in _SPELLING:
        text = pattern.sub(replacement, text)
    text = _PUNCT.sub(" ", text)
    text = re.sub(r"\s*([&+/])\s*", r"\1", text)
    return " ".join(text.split())


def _catalogue(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for canonical, synonyms in table.items():
        key = normalise(canonical)
        out[key] = key
        for synonym in synonyms:
            out.setdefault(normalise(synonym), key)
    return out


TEST_CATALOGUE = _catalogue(TEST_SYNONYMS)
SYSTEM_CATALOGUE = _catalogue(SYSTEM_SYNONYMS)
NAME_CATALOGUE = _catalogue(NAME_SYNONYMS)


def _strip(text: str, filler: re.Pattern[str]) -> str:
    return " ".join(filler.sub(" ", text).split())


def _sorted_words(text: str) -> str:
    return " ".join(sorted(text.split()))


def test_keys(text: str) -> list[str]:
    """Every form under which a test name or a request is looked up, the literal forms first.

    A list, not a set: ties between equally long forms must resolve the same way in every
    process (set order changes with PYTHONHASHSEED).
    """
    full = normalise(text)
    core = _strip(full, _TEST_FILLER) or full
    keys = [full, core]
    keys += [TEST_CATALOGUE[k] for k in keys if k in TEST_CATALOGUE]
    keys += [_sorted_words(k) for k in keys]
    return [k for k in dict.fromkeys(keys) if k]


def _compatible(a: str, b: str) -> bool:
    """Two keys may be close spellings of each other: same numbers and same short words."""
    def rigid(key: str) -> set[str]:
        return {w for w in key.split() if len(w) <= 3 or any(c.isdigit() for c in w)}
    return rigid(a) == rigid(b)


def close_match(request_keys: set[str], candidates: dict[str, object], cutoff: float) -> object | None:
    """The candidate whose key is the closest spelling (difflib ratio >= cutoff) of a request key."""
    best, best_ratio = None, cutoff
    keys = list(candidates)
    for key in sorted(request_keys):
        if len(key) < 5:
            continue  # too short to tell a typo from another abbreviation
        for match in difflib.get_close_matches(key, keys, n=3, cutoff=cutoff):
            if len(match) < 5 or not _compatible(key, match):
                continue
            ratio = difflib.SequenceMatcher(None, key, match).ratio()
            if ratio > best_ratio or (ratio == best_ratio and best is None):
                best, best_ratio = candidates[match], ratio
    return best


def system_keys(text: str) -> set[str]:
    """Canonical systems a request or a finding's system stands for."""
    full = normalise(text)
    core = _strip(full, _EXAM_WORDS) or full
    out: set[str] = set()
    for key in (full, core):
        if key in COMPOUND_SYSTEMS:
            out |= set(COMPOUND_SYSTEMS[key])
        out.add(SYSTEM_CATALOGUE.get(key, key))
    return out


def without_name(result: str, name: str) -> str:
    """A result without a leading copy of its test's name ("Chest X-ray: clear" -> "clear")."""
    head, colon, rest = result.partition(":")
    return rest.strip() if colon and rest.strip() and normalise(head) == normalise(name) else result


def name_key(text: str) -> str:
    full = normalise(text)
    core = _strip(full, _EXAM_WORDS) or full
    return NAME_CATALOGUE.get(core, core)


class ScriptedMeasurement:
    """Reports the case's examination findings and test results, looked up, never invented."""

    def __init__(self, cutoff: float = TEST_CUTOFF, exam_cutoff: float = EXAM_CUTOFF):
        self.cutoff = cutoff
        self.exam_cutoff = exam_cutoff
        self.scenario: Scenario | None = None
        self.seed = 0
        self._tests: dict[str, LabTest] = {}
        self._groups: dict[str, list[LabTest]] = {}
        self._systems: list[tuple[ExamFinding, set[str], str | None]] = []
        self._cache: OrderedDict[tuple[str, str], tuple] = OrderedDict()

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = 0 if seed is None else int(seed)
        key = (scenario.id, tuple((t.name, t.group, tuple(t.synonyms), t.result) for t in scenario.tests),
               tuple((e.system, e.name, e.result) for e in scenario.examination))
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._build(scenario)
            while len(self._cache) > 1024:
                self._cache.popitem(last=False)
        self._tests, self._groups, self._systems = cached

    @staticmethod
    def _build(scenario: Scenario) -> tuple:
        tests: dict[str, LabTest] = {}
        for exact in (True, False):  # names and synonyms as written win over catalogue forms
            for test in scenario.tests:
                for label in (test.name, *test.synonyms):
                    keys = {normalise(label)} if exact else test_keys(label)
                    for k in keys:
                        tests.setdefault(k, test)
        groups: dict[str, list[LabTest]] = {}
        for test in scenario.tests:
            for k in test_keys(test.group):
                if normalise(test.group) in GENERIC_GROUPS or k in GENERIC_GROUPS:
                    continue
                groups.setdefault(k, [])
                if test not in groups[k]:
                    groups[k].append(test)
        systems = [(finding, system_keys(finding.system), name_key(finding.name) if finding.name else None)
                   for finding in scenario.examination]
        return tests, groups, systems

    # --- tests -------------------------------------------------------------------------------

    async def order(self, test: str) -> Finding:
        return self.lookup(test)

    def lookup(self, test: str) -> Finding:
        """The synchronous core of :meth:`order`."""
        if self.scenario is None:
            raise RuntimeError("ScriptedMeasurement.order called before reset(scenario)")
        request = (test or "").strip()
        if not request:
            return Finding(request=test or "", result="No test was named.", available=False)
        keys = test_keys(request)
        found = self._find_test(keys)
        if found is not None:
            return found if isinstance(found, Finding) else self._test_finding(request, found)
        if self.scenario.unknown_tests == "normal":
            return Finding(request=request, name=request, result=NORMAL_RESULT, available=True)
        result = "Not available for this patient."
        if self.scenario.unknown_tests == "list-available" and self.scenario.tests:
            result += " Available: " + ", ".join(dict.fromkeys(t.name for t in self.scenario.tests)) + "."
        return Finding(request=request, result=result, available=False)

    def _find_test(self, keys: list[str]) -> LabTest | list[LabTest] | None:
        for key in sorted(keys, key=len, reverse=True):
            if key in self._tests:
                test = self._tests[key]
                extra = [t for t in self._groups.get(key, []) if t is not test]
                return [test, *extra] if extra else test  # "MRI brain" and its "Comments" part
        for key in sorted(keys, key=len, reverse=True):
            if key in self._groups:
                return self._groups[key]
        candidates: dict[str, object] = {**{k: v for k, v in self._groups.items()}, **self._tests}
        return close_match(keys, candidates, self.cutoff)

    def _test_finding(self, request: str, found: LabTest | list[LabTest]) -> Finding:
        if isinstance(found, LabTest):
            return Finding(request=request, name=found.name, result=without_name(found.result, found.name),
                           available=True, price_code=found.price_code, group=found.group)
        first = found[0]
        if first.group not in {t.group for t in found[1:]}:  # a test with parts filed under its name
            result = "; ".join([first.result, *(f"{t.name}: {t.result}" for t in found[1:])])
            return Finding(request=request, name=first.name, result=result, available=True,
                           price_code=first.price_code, group=first.group)
        group = first.group
        result = "; ".join(f"{t.name}: {t.result}" for t in found)
        return Finding(request=request, name=group, result=result, available=True, price_code=None, group=group)

    # --- examination -------------------------------------------------------------------------

    async def examine(self, system: str | None) -> list[Finding]:
        return self.look(system)

    def look(self, system: str | None) -> list[Finding]:
        """The synchronous core of :meth:`examine`."""
        if self.scenario is None:
            raise RuntimeError("ScriptedMeasurement.examine called before reset(scenario)")
        request = (system or "").strip()
        norm = normalise(request)
        if norm in ALL_EXAM or (_strip(norm, _EXAM_WORDS) in ALL_EXAM):
            chosen = [f for f, _, _ in self._systems]
        else:
            chosen = self._match_systems(request)
            if not chosen:
                parts = [p for p in re.split(r"\s*(?:,|;|&|/|\band\b|\bplus\b)\s*", norm) if p]
                if len(parts) > 1:
                    seen: list[ExamFinding] = []
                    for part in parts:
                        seen += [f for f in self._match_systems(part) if f not in seen]
                    chosen = [f for f, _, _ in self._systems if f in seen]
        if not chosen:
            if not self._systems and norm in ALL_EXAM:
                return [Finding(request=request, result="No examination findings recorded.", available=False)]
            label = request or "this examination"
            return [Finding(request=request, result=f"No examination findings recorded for {label}.",
                            available=False)]
        return [Finding(request=request, name=f.name or f.system, result=f.result, available=True, group=f.system)
                for f in chosen]

    def _match_systems(self, request: str) -> list[ExamFinding]:
        wanted = system_keys(request)
        wanted_name = name_key(request)
        words = set(_strip(normalise(request), _EXAM_WORDS).split())
        chosen = [f for f, systems, name in self._systems
                  if wanted & systems or (name is not None and name == wanted_name)]
        if chosen:
            return chosen
        # every word of the request inside the finding's system or name ("knee" -> "Right knee examination")
        if words:
            chosen = [f for f, systems, name in self._systems
                      if any(words <= set(s.split()) for s in systems) or (name and words <= set(name.split()))]
            if chosen:
                return chosen
        # a close spelling of a catalogue word, a finding's system or a finding's name
        candidates: dict[str, str] = {k: v for k, v in SYSTEM_CATALOGUE.items()}
        for _, systems, name in self._systems:
            for s in systems:
                candidates.setdefault(s, s)
            if name:
                candidates.setdefault(name, name)
        key = _strip(normalise(request), _EXAM_WORDS) or normalise(request)
        match = close_match({key}, candidates, self.exam_cutoff)
        if match is None:
            return []
        return [f for f, systems, name in self._systems if match in systems or match == name]
