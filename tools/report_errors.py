"""Errors in radiology reports: the taxonomy, a reader of reports, and a seeded error injector.

The reader splits a report into sections (FINDINGS, IMPRESSION, ... or one free-text part) and
sentences, and finds *mentions* of findings from a small vocabulary: each with its polarity
(negation cues before or after the term, "normal" phrasings such as "heart size is normal"),
hedging, laterality, severity words and measurements (normalised to mm). The rule checker
(``report_check``) compares mentions between parts of a report; ``inject_error`` plants one error
of a given type where such a comparison can reveal it (the impression made to contradict the
findings, or the report made to contradict reference findings).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field


class ErrorType(StrEnum):
    """The kinds of report error the checker looks for and the injector plants."""

    NEGATION = "negation_flip"
    LATERALITY = "laterality_swap"
    MEASUREMENT = "measurement_change"
    ADDED = "added_finding"
    OMITTED = "omitted_finding"
    SEVERITY = "severity_change"
    REPETITION = "repetition"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Concept:
    """A finding the reader recognises: regex, groups of related findings (an impression's
    "pneumonia" is supported by the findings' "consolidation"), and whether an impression must
    mention it when the findings report it (``significant``)."""

    name: str
    pattern: str
    groups: frozenset[str]
    significant: bool
    label: str
    organ: str | None = None  # measurement key shared with anatomy anchors (spleen size ~ splenomegaly)

    @property
    def measure_key(self) -> str:
        return self.organ or sorted(self.groups)[0]


_CONCEPT_TABLE: list[tuple[str, str, bool, str | None, tuple[str, ...]]] = [
    # name, groups (space-separated), significant, organ (measurement key), the regex alternatives
    ("pneumothorax", "pneumothorax", True, None, ("pneumothora(?:x|ces|xes)", "hydropneumothorax")),
    ("pleural_effusion", "effusion", True, None,
     ("(?:pleural )?effusions?", "pleural fluid(?: collections?)?", "hydrothorax",
      r"blunt(?:ing|ed) of the (?:\w+ )?costophrenic angles?", r"blunted (?:\w+ )?costophrenic angles?")),
    ("pericardial_effusion", "pericardial", True, None, ("pericardial (?:effusions?|fluid)",)),
    ("consolidation", "airspace", True, None,
     ("consolidations?", "consolidative (?:opacit(?:y|ies)|changes?)",
      "air[- ]?space (?:disease|consolidation|opacit(?:y|ies)|process)", "infiltrates?", "infiltration")),
    ("pneumonia", "airspace", True, None, ("(?:broncho)?pneumonias?", "pneumonitis")),
    ("opacity", "airspace atelectasis lesion", True, None, ("opacit(?:y|ies)", "opacification")),
    ("atelectasis", "atelectasis airspace", False, None, ("atelectas[ie]s", "atelectatic(?: changes?)?")),
    ("edema", "edema interstitial", True, None,
     ("(?:pulmonary |interstitial |alveolar |vasogenic |cerebral |cytotoxic )?o?edema",
      "(?:pulmonary )?(?:venous |vascular )congestion", "kerley b lines")),
    ("heart_failure", "edema cardiomegaly effusion interstitial", True, None,
     ("(?:congestive )?heart failure", "chf", "fluid overload", "volume overload")),
    ("cardiomegaly", "cardiomegaly", True, None,
     ("cardiomegaly", "cardiac enlargement", "enlarged (?:heart|cardiac silhouette|cardiomediastinal silhouette)",
      "enlargement of the (?:heart|cardiac silhouette)",
      r"(?:heart|cardiac silhouette|cardiac size|heart size|cardiomediastinal silhouette) "
      r"(?:is |are |appears |remains )?(?:(?!not\b)[\w-]+ )?enlarged")),
    ("nodule", "lesion", True, None,
     ("(?:pulmonary |lung |thyroid |breast |hepatic |renal |adrenal )?nodules?", "nodular opacit(?:y|ies)")),
    ("mass", "lesion", True, None,
     ("mass(?:es)?(?! effect)", "mass-?like (?:opacity|lesion)", "tumou?rs?", "neoplasms?", "malignanc(?:y|ies)",
      "carcinomas?", "metasta(?:sis|ses|tic disease)", "lesions?")),
    ("lymphadenopathy", "nodes", True, None,
     ("lymphadenopathy", "adenopathy", r"enlarged (?:[\w-]+ ){0,3}?(?:lymph )?nodes?",
      r"lymph nodes? (?:is |are )?(?:(?!not\b)\w+ )?enlarged")),
    ("fracture", "fracture", True, None, ("fractures?",)),
    ("marrow_edema", "fracture", False, None, ("(?:bone )?marrow o?edema",)),
    ("soft_tissue", "soft_tissue", False, None, ("soft[- ]tissue (?:o?edema|swelling|thickening)",)),
    ("emphysema", "emphysema", False, None,
     ("emphysema(?:tous changes?)?", "hyperinflat(?:ion|ed lungs?)", "hyperexpan(?:sion|ded lungs?)", "copd",
      "chronic obstructive pulmonary disease")),
    ("granuloma", "granuloma", False, None,
     ("(?:calcified )?granulomas?", "granulomatous (?:disease|process|infection|changes?)")),
    ("scarring", "scar", False, None,
     ("scar(?:ring)?", "fibrosis", "fibrotic changes?", "pleural thickening", "parenchymal bands?")),
    ("degenerative", "degenerative", False, None,
     ("degenerative (?:changes?|disease|disc disease)", "spondylosis", "osteophytes?", "osteoarthritis",
      "arthritic changes?", "disc desiccation", "facet arthropathy")),
    ("hernia", "hernia", False, None, ("(?:hiatal |hiatus |inguinal |umbilical |ventral )?hernias?",)),
    ("atherosclerosis", "vascular", False, None,
     ("atherosclero(?:sis|tic (?:calcifications?|changes?|disease|plaques?))", "(?:aortic|vascular) calcifications?",
      "calcified aorta", "tortuous (?:thoracic )?aorta", "tortuosity of the (?:thoracic )?aorta",
      "aortic tortuosity", "unfolded aorta", "unfolding of the aorta")),
    ("interstitial", "interstitial", False, None,
     ("interstitial (?:markings|lung disease|opacities|prominence|thickening|changes?|infiltrates?|disease)",
      "reticular (?:opacities|markings)")),
    ("embolism", "embolism", True, None, ("(?:pulmonary )?embol(?:ism|i|us)", "filling defects?")),
    ("aneurysm", "aneurysm", True, "aorta", ("aneurysm(?:al dilatation)?s?",)),
    ("dissection", "dissection", True, None, ("dissections?",)),
    ("free_air", "free_air", True, None, ("pneumoperitoneum", "free (?:intraperitoneal )?(?:air|gas)")),
    ("hemorrhage", "hemorrhage", True, None,
     ("ha?emorrhages?", "ha?ematomas?", "ha?emoperitoneum", "ha?emothorax", "bleed(?:ing)?",
      "ha?emorrhagic (?:contusions?|transformation)")),
    ("infarct", "infarct", True, None,
     ("infarcts?", "infarctions?", "(?:ischa?emic )?strokes?", "acute ischa?emi(?:a|c changes?)",
      "restricted diffusion")),
    ("small_vessel", "small_vessel", False, None,
     ("(?:chronic )?small vessel (?:ischa?emic )?(?:disease|changes?)",
      "white matter (?:hyperintensit(?:y|ies)|changes?|disease)", "leukoaraiosis", "microangiopath(?:y|ic changes?)")),
    ("mass_effect", "mass_effect", True, None,
     ("mass effect", "midline shift", "(?:subfalcine|uncal|tonsillar|transtentorial) herniation",
      r"effacement of the (?:\w+ )?(?:sulci|ventricles?|cisterns?)")),
    ("hydrocephalus", "hydrocephalus", True, None,
     ("hydrocephalus", "ventriculomegaly", "ventricular enlargement", "(?:enlarged|dilated) ventricles")),
    ("atrophy", "atrophy", False, None, ("atroph(?:y|ic changes?)",)),
    ("sinus_disease", "sinus", False, None,
     ("sinusitis", "(?:paranasal )?sinus (?:disease|mucosal thickening)", "mucosal thickening")),
    ("disc_herniation", "disc", True, None,
     ("(?:disc |disk )?(?:herniations?|protrusions?|extrusions?)", "herniated (?:disc|disk|nucleus pulposus)")),
    ("disc_bulge", "disc", False, None, ("(?:disc |disk )bulges?", "bulging (?:disc|disk)", "(?:disc|disk) bulging")),
    ("stenosis", "stenosis", True, None,
     ("(?:spinal |central |canal |neural foraminal |foraminal |lateral recess |carotid )?stenos[ie]s",
      "(?:neural foraminal|foraminal|lateral recess|canal|central canal) narrowing",
      r"narrowing of the (?:[\w-]+ )?(?:spinal canal|canal|neural foram(?:en|ina)|lateral recess)")),
    ("cord_compression", "cord", True, None,
     ("(?:spinal )?cord compression", "compression of the (?:spinal )?cord", "myelopathy",
      "cord (?:signal abnormality|edema)")),
    ("hepatomegaly", "liver_size", True, "liver",
     ("hepatomegaly", "enlarged liver", r"liver is (?:(?!not\b)\w+ )?enlarged")),
    ("splenomegaly", "spleen_size", True, "spleen",
     ("splenomegaly", "enlarged spleen", r"spleen is (?:(?!not\b)\w+ )?enlarged")),
    ("steatosis", "steatosis", True, None,
     ("(?:hepatic )?steatosis", "fatty (?:liver|infiltration(?: of the liver)?)",
      "increased (?:hepatic )?echogenicity")),
    ("cirrhosis", "cirrhosis", True, None,
     ("cirrho(?:sis|tic (?:liver|morphology|changes?))", "nodular (?:liver|hepatic) (?:contour|surface)")),
    ("gallstones", "gallstones", True, None, ("cholelithiasis", "choledocholithiasis", "gall ?stones?")),
    ("cholecystitis", "cholecystitis", True, None,
     ("cholecystitis", "gallbladder wall thickening", "pericholecystic fluid", "sonographic murphy(?:'s)? sign")),
    ("biliary_dilatation", "biliary", True, "bile_duct",
     ("(?:intrahepatic |extrahepatic )?biliary (?:ductal )?(?:dilatation|dilation)",
      "dilated (?:common bile duct|bile ducts?|cbd)")),
    ("hydronephrosis", "hydronephrosis", True, None,
     ("hydronephrosis", "hydroureter(?:onephrosis)?", "pelvicaliectasis", "pelviectasis")),
    ("urolithiasis", "stone", True, None,
     ("nephrolithiasis", "urolithiasis", "ureterolithiasis",
      "(?:renal |kidney |ureteral |ureteric |urinary |obstructing |nonobstructing |non-obstructing )?"
      "(?:calculus|calculi|stones?)")),
    ("cyst", "cyst", False, None, ("(?:simple |hemorrhagic |haemorrhagic |complex )?cysts?", "cystic lesions?")),
    ("appendicitis", "appendicitis", True, "appendix",
     ("appendicitis", "periappendiceal (?:fat stranding|inflammation|fluid)")),
    ("diverticulitis", "diverticulitis", True, None, ("diverticulitis",)),
    ("diverticulosis", "diverticulosis", False, None, ("diverticulosis", "diverticula")),
    ("bowel_obstruction", "obstruction", True, None,
     ("(?:small |large )?bowel obstruction", "sbo", "dilated (?:small )?bowel loops",
      "dilated loops of (?:small )?bowel", "ileus")),
    ("ascites", "fluid", True, None, ("ascites", "free fluid", "(?:intraperitoneal|pelvic|abdominal) fluid")),
    ("abscess", "abscess", True, None, ("abscess(?:es)?", "(?:organi[sz]ed )?fluid collections?")),
    ("goiter", "thyroid_size", True, "thyroid",
     ("goit(?:er|re)", "thyromegaly", "enlarged thyroid(?: gland)?",
      r"thyroid(?: gland)? is (?:(?!not\b)\w+ )?enlarged")),
    ("distortion", "distortion", True, None, ("architectural distortion",)),
    ("asymmetry", "asymmetry", True, None, ("(?:focal |global |developing )?asymmetr(?:y|ies)",)),
    ("calcification", "calcification", False, None, ("(?:micro)?calcifications?",)),
    ("fibroid", "fibroid", True, None, ("fibroids?", "leiomyom(?:a|as|ata)")),
    ("torsion", "torsion", True, None, ("torsion",)),
    ("endometrial_thickening", "endometrium", True, "endometrium",
     ("endometrial thickening", "thickened endometri(?:um|al (?:stripe|lining))",
      r"endometri(?:um|al (?:stripe|lining)) (?:is |appears )?(?:(?!not\b)\w+ )?thickened")),
    ("thrombosis", "thrombus", True, None,
     ("(?:deep (?:venous|vein) )?thrombos[ie]s", "thromb(?:us|i)", "dvt", "occlusive clot")),
    ("pancreatitis", "pancreatitis", True, None, ("pancreatitis", "peripancreatic (?:fat stranding|inflammation)")),
    ("pyelonephritis", "pyelonephritis", True, None, ("pyelonephritis",)),
    ("colitis", "colitis", True, None, ("(?:entero)?colitis", "proctitis")),
    ("bowel_ischemia", "bowel_ischemia", True, None,
     ("pneumatosis(?: intestinalis)?", "portal venous gas", "bowel ischa?emia", "mesenteric ischa?emia")),
    ("volvulus", "obstruction", True, None, ("volvulus", "intussusception")),
    ("organ_injury", "injury hemorrhage", True, None, ("lacerations?", "contusions?", "transections?")),
    ("abnormality", "generic", False, None,
     ("acute (?:(?:cardiopulmonary|intrathoracic|intracranial|intra-?abdominal|abdominal|pelvic|pulmonary|osseous|"
      "bony|chest|thoracic|abdominopelvic|lung|traumatic)(?: or | and |/| ))*(?:abnormalit(?:y|ies)|disease|"
      "process(?:es)?|pathology|findings?)",
      "(?:cardiopulmonary|intrathoracic|intracranial|intra-?abdominal|abdominopelvic) (?:abnormalit(?:y|ies)|disease|"
      "process(?:es)?|pathology)",
      "active (?:cardiopulmonary |pulmonary |lung )?disease",
      r"abnormal (?:[\w-]+ )?(?:chest|study|examination|exam|radiograph|x-ray|ct|mri|ultrasound|sonogram|mammogram)")),
]

GENERIC = "abnormality"
_DESCRIPTIVE = frozenset({"opacity", "nodule", "mass"})  # findings a later word may explain away
_EXPLAINS = re.compile(r"\b(?:reflects?|reflecting|due to|secondary to|related to|attributable to|attributed to|"
                       r"from|consistent with|compatible with|suggests?|artifact\w*|radiation)\b", re.I)

# "Normal" phrasings that deny a finding.
_NORMAL_TABLE: list[tuple[str, str, tuple[str, ...]]] = [
    # finding, the positive phrase a negation flip puts in place, the regex alternatives
    ("cardiomegaly", "the heart is enlarged",
     (r"(?:the )?(?:heart|cardiac|cardiomediastinal)(?: (?:size|silhouette|contours?|shadow))?(?: and (?:mediastin\w+|"
      r"pulmonary vascularity|hil(?:um|a|ar))(?: (?:contours?|silhouettes?|size))?)?(?: (?:is|are|was|were|appears?|"
      r"remains?))? (?:normal|within normal limits|not enlarged)(?: in size)?",
      "normal(?:-sized| sized)? (?:heart|cardiac|cardiomediastinal)(?: (?:size|silhouette|contours?))?")),
    ("consolidation", "there is airspace consolidation",
     ("(?:the )?lungs? (?:fields? )?(?:are |is |were |remain |appear )?(?:otherwise )?(?:well[- ]aerated and )?"
      "clear(?: bilaterally)?",
      "clear lungs")),
    ("pleural_effusion", "there is a pleural effusion",
     ("(?:the )?costophrenic angles? (?:is |are )?(?:sharp|clear|preserved)", "sharp costophrenic angles?")),
    ("edema", "there is pulmonary vascular congestion",
     ("(?:the )?(?:pulmonary )?vascularity (?:is |are |appears )?(?:normal|within normal limits)",
      "normal (?:pulmonary )?vascularity")),
    ("hydrocephalus", "the ventricles are enlarged",
     ("(?:the )?ventricles?(?: and sulci)? (?:are|is) (?:normal(?: in size)?|within normal limits)",
      "normal(?:-sized| sized)? ventricles")),
    ("hepatomegaly", "the liver is enlarged",
     ("(?:the )?liver (?:is )?normal in size", "(?:the )?liver size is normal")),
    ("splenomegaly", "the spleen is enlarged",
     ("(?:the )?spleen (?:is )?normal in size", "(?:the )?spleen size is normal")),
    ("goiter", "the thyroid gland is enlarged", ("(?:the )?thyroid(?: gland)? (?:is )?normal in size",)),
    (GENERIC, "abnormal study",
     (r"(?:normal|negative|unremarkable) (?:[\w-]+ )?(?:chest(?: (?:x-ray|radiograph|film|study|examination|exam))?|"
      r"(?:study|examination|exam|radiograph|x-ray|ct|mri|ultrasound|sonogram|mammogram))",
      "(?:chest|study|examination|exam)(?: is| was)? (?:normal|negative|unremarkable)")),
]

# Organ words that carry measurements when no finding does ("the spleen measures 15.2 cm").
_ANCHORS: list[tuple[str, str]] = [
    ("kidney", r"kidneys?|renal length"), ("liver", r"liver"), ("spleen", r"spleen"),
    ("bile_duct", r"common bile duct|cbd|common duct"), ("endometrium", r"endometri(?:um|al (?:stripe|thickness|"
                                                                        r"lining))"),
    ("uterus", r"uterus"), ("ovary", r"ovar(?:y|ies)"), ("thyroid", r"thyroid(?: lobe| gland)?"),
    ("aorta", r"(?:abdominal )?aorta"), ("prostate", r"prostate"), ("appendix", r"appendix"),
]

CONCEPTS: dict[str, Concept] = {
    name: Concept(name, "|".join(patterns), frozenset(groups.split()), significant, name.replace("_", " "), organ)
    for name, groups, significant, organ, patterns in _CONCEPT_TABLE}


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-])(?:{pattern})(?![\w-])", re.I)


_CONCEPT_RX = [(name, _compile(c.pattern)) for name, c in CONCEPTS.items()]
_NORMAL_RX = [(name, _compile("|".join(patterns)), positive) for name, positive, patterns in _NORMAL_TABLE]
_ANCHOR_RX = [(key, _compile(pattern)) for key, pattern in _ANCHORS]

SIDE_RX = re.compile(r"\b(left|right|bilateral(?:ly)?|both)(?:-sided)?\b(?![- ](?:ventric|atri|heart|coronary|"
                     r"anterior descending|circumflex|main|bundle|sided aortic arch))", re.I)
_SEVERITY_WORDS: dict[str, tuple[str, int]] = {
    "trace": ("size", 1), "tiny": ("size", 1), "small": ("size", 2), "large": ("size", 4), "massive": ("size", 5),
    "minimal": ("degree", 1), "minimally": ("degree", 1), "slight": ("degree", 1), "slightly": ("degree", 1),
    "mild": ("degree", 2), "mildly": ("degree", 2), "moderate": ("degree", 3), "moderately": ("degree", 3),
    "severe": ("degree", 4), "severely": ("degree", 4), "marked": ("degree", 4), "markedly": ("degree", 4),
    "extensive": ("degree", 4),
}
def soft_ranks(ranks) -> frozenset[int]:
    """Severity ranks with the two lowest grades merged (radiologists use "minimal" and "mild" loosely)."""
    out = set(ranks)
    return frozenset(out | {1, 2}) if out & {1, 2} else frozenset(out)


_SEV = "|".join(sorted(_SEVERITY_WORDS, key=len, reverse=True))
SEVERITY_RX = re.compile(rf"\b({_SEV})(?:(?:\s*-\s*|\s+to\s+)({_SEV}))?\b(?![- ](?:bowel|intestine|vessel|airways?|"
                         r"cell|caliber|calibre))", re.I)
_UNIT_MM = {"mm": 1.0, "millimeter": 1.0, "millimetre": 1.0, "cm": 10.0, "centimeter": 10.0, "centimetre": 10.0}
_NUM = r"\d+(?:\.\d+)?"
MEASURE_RX = re.compile(rf"(?<![\w.])({_NUM})(?:\s*(?:x|×|by)\s*({_NUM}))?(?:\s*(?:x|×|by)\s*({_NUM}))?\s*"
                        r"(mm|cm|millimet(?:er|re)s?|centimet(?:er|re)s?)\b", re.I)

_PRE_NEG = re.compile(r"\b(?:(?:no|without)(?:\s+(?:[\w-]+\s+){0,2}?(?:evidence|signs?|demonstration|findings?|xxxx)\s+"
                      r"(?:of|for|to suggest))?|negative\s+for|(?:clear|free)\s+of|absence\s+of|(?:interval\s+)?"
                      r"(?:resolution|clearing)\s+of|resolved|not|nor|neither)\b(?:\s+(?:an?|any)\b)?", re.I)
_PSEUDO_NEG = re.compile(r"\bno\s+(?:significant\s+|interval\s+|appreciable\s+|substantial\s+)?(?:change|increase|"
                         r"decrease|worsening|improvement|longer)\b|\bnot\s+(?:changed|only|significantly)\b", re.I)
_POST_NEG = re.compile(r"^(?:\s+[\w-]+){0,4}?\s+(?:(?:is|are|was|were|has|have)\s+(?:been\s+)?)?(?:not\s+"
                       r"(?:definitely\s+|clearly\s+|well\s+)?(?:seen|identified|present|visuali[sz]ed|demonstrated|"
                       r"evident|appreciated|noted|detected|observed)|no\s+longer\s+(?:seen|present|visuali[sz]ed|"
                       r"evident|identified)|absent|resolved|excluded)\b", re.I)
_SCOPE_END = re.compile(r"\b(?:but|however|although|though|except|apart from|aside from|other than|whereas|while|"
                        r"which|is|are|was|were|a|an|there|with)\b|[;:]", re.I)
_HEDGE_END = re.compile(r"\b(?:but|however|although|though|there\s+(?:is|are)|also|additionally|in addition)\b|"
                        r"[;:]", re.I)
_HEDGE_AFTER = re.compile(r"\s*(?:\?|/|(?:[\w-]+[\s,]+){0,3}?(?:may|might|could|cannot|can not|is suspected|"
                          r"is questioned|not (?:entirely )?excluded)\b)|\s*,?\s*(?:versus|vs)\b", re.I)
_HEDGE = re.compile(r"\b(?:possible|possibly|probable|probably|likely|may|might|could|questionable|question of|"
                    r"suspicious for|suspected|suspect|concerning for|suggestive of|suggesting|differential|versus|vs|"
                    r"cannot be (?:excluded|ruled out)|can ?not (?:exclude|rule out)|not (?:entirely )?excluded|"
                    r"equivocal|indeterminate|rule out|r/o|to exclude|evaluate for|evaluation for|worrisome for|"
                    r"represents?|representing|presumed|presumably|favou?red?|suggests?|question|unclear|uncertain|"
                    r"whether|history of|correlate|rule-out|concern for|consider|if|and/or|secondary to|due to|"
                    r"related to)\b", re.I)
_STRONG_END = re.compile(r"[;:(]|\b(?:with|but|which|where|while|and there)\b", re.I)
_CLAUSE_END = re.compile(r",|;|:|\(|\)|\band\b|\bwith\b|\bbut\b|\bwhich\b|\bwhere\b|\bwhile\b|\bas well as\b",
                         re.I)
CHRONIC = frozenset({  # known, old or minor: need not reach the impression
    "chronic", "old", "healed", "healing", "remote", "calcified", "stable", "unchanged", "postoperative",
    "postsurgical", "post-surgical", "known", "prior", "degenerative", "incidental", "benign", "again", "similar",
    "continued", "redemonstrated", "re-demonstrated", "previously", "longstanding", "borderline", "minimal",
    "trace", "tiny", "subtle", "slight", "questionable", "minor", "persistent", "persisting", "resolving",
    "improving", "improved", "decreasing", "decreased"})
CONTRAST = frozenset({  # a denial with these words ("no new nodule") does not deny every such finding
    "focal", "cavitary", "spiculated", "dominant", "discrete", "definitive", "obvious", "gross", "overt", "frank",
    "suspicious", "new", "additional", "other", "further", "significant", "definite", "enlarging", "increasing",
    "worsening", "residual", "large", "sizable", "displaced"})
_QUALIFIER_RX = re.compile(r"\b(" + "|".join(sorted(CHRONIC | CONTRAST | {"acute"})) + r")\b", re.I)


# --------------------------------------------------------------------------------------------
# Reading a report
# --------------------------------------------------------------------------------------------

_HEADER = re.compile(r"(?:^|(?<=\n))[ \t]*(?:\*\*)?(findings?|impressions?|conclusions?|opinion|summary|comparison|"
                     r"indications?|history|clinical (?:history|information|indication)|technique|examination|"
                     r"procedure)(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*|(?<![\w])(FINDINGS|IMPRESSION|CONCLUSION|COMPARISON|"
                     r"INDICATION|TECHNIQUE)[ \t]*:[ \t]*", re.I)
_SECTION_NAMES = {"finding": "findings", "findings": "findings", "impression": "impression",
                  "impressions": "impression", "conclusion": "impression", "conclusions": "impression",
                  "opinion": "impression", "summary": "impression"}


@dataclass
class Section:
    name: str  # findings | impression | text (no headers) | other header names
    start: int  # content start (after the header)
    end: int


@dataclass
class Sentence:
    section: str
    start: int
    end: int
    lead: int  # where the sentence begins with its list marker ("2. ")
    text: str


@dataclass
class Mention:
    """A finding named in a sentence, with what the sentence says about it."""

    concept: str
    start: int  # the finding term, in report coordinates
    end: int
    sentence: Sentence
    negated: bool = False
    hedged: bool = False
    normal: bool = False  # a "normal" phrasing ("lungs are clear") that denies the finding
    cue: tuple[int, int] | None = None  # negation cue span
    sides: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, word)
    severities: list[tuple[int, int, frozenset[int], str]] = field(default_factory=list)  # (start, end, ranks, text)
    measures: list[tuple[int, int, tuple[float, ...]]] = field(default_factory=list)  # (start, end, dims in mm)
    qualifiers: frozenset[str] = frozenset()
    explained: bool = False  # a descriptive finding the sentence explains as a minor one ("opacity, likely scarring")

    @property
    def info(self) -> Concept:
        return CONCEPTS[self.concept]

    @property
    def side(self) -> frozenset[str]:
        out: set[str] = set()
        for _, _, word in self.sides:
            word = word.lower()
            out |= {"left", "right"} if word.startswith(("bilateral", "both")) else {word.split("-")[0]}
        return frozenset(out)

    @property
    def ranks(self) -> frozenset[int]:
        """The grades the mention is given; minimal/slight/trace and mild/small count as one."""
        return soft_ranks(r for _, _, ranks, _ in self.severities for r in ranks)

    @property
    def phrase(self) -> tuple[int, int]:
        """The span of the term with its cue and attached words."""
        points = [(self.start, self.end)] + ([self.cue] if self.cue else []) + [(s, e) for s, e, *_ in self.sides] \
            + [(s, e) for s, e, *_ in self.severities] + [(s, e) for s, e, _ in self.measures]
        return min(p[0] for p in points), max(p[1] for p in points)

    @property
    def generic(self) -> bool:
        return self.concept == GENERIC

    @property
    def positive(self) -> bool:
        return not self.negated and not self.hedged

    @property
    def chronic(self) -> bool:
        return bool(self.qualifiers & CHRONIC)

    @property
    def significant(self) -> bool:
        return self.info.significant and self.positive and not self.chronic and not self.explained


@dataclass
class Anchor:
    key: str
    start: int
    end: int
    sentence: Sentence
    measures: list[tuple[int, int, tuple[float, ...]]] = field(default_factory=list)


@dataclass
class ReadReport:
    """A report read into sections, sentences and mentions."""

    text: str
    sections: list[Section]
    sentences: list[Sentence]
    mentions: list[Mention]
    anchors: list[Anchor]

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def part(self, *names: str) -> tuple[list[Sentence], list[Mention], list[Anchor]]:
        """The sentences, mentions and anchors of the named sections."""
        keep = set(names)
        return ([s for s in self.sentences if s.section in keep],
                [m for m in self.mentions if m.sentence.section in keep],
                [a for a in self.anchors if a.sentence.section in keep])

    @property
    def has_findings_and_impression(self) -> bool:
        return self.section("findings") is not None and self.section("impression") is not None

    @property
    def body(self) -> tuple[str, ...]:
        """The sections that carry the report's content."""
        names = tuple(s.name for s in self.sections if s.name in ("findings", "impression", "text"))
        return names or ("text",)


def split_sections(text: str) -> list[Section]:
    """Sections by their headers ("FINDINGS:", "Impression:"); a report without the usual headers is one
    section named ``text``."""
    headers = list(_HEADER.finditer(text))
    if not headers:
        return [Section("text", 0, len(text))]
    sections = []
    if text[: headers[0].start()].strip():
        sections.append(Section("text", 0, headers[0].start()))
    for i, match in enumerate(headers):
        word = (match.group(1) or match.group(2)).lower()
        name = _SECTION_NAMES.get(word, word)
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        sections.append(Section(name, match.end(), end))
    return sections


_SENT_END = re.compile(r"(?<!\b[Ee]\.g)(?<!\b[Ii]\.e)(?<!\bvs)(?<!\bDr)(?<!\bapprox)[.!?](?=\s|$)|\n\s*\n|\n(?=\s*"
                       r"(?:\d{1,2}[.)]|[-•*])\s)")
_LIST_MARK = re.compile(r"\s*(?:\d{1,2}[.)]|[-•*])\s+|\s+")
_INLINE_ITEM = re.compile(r"(?<=[^\s.!?])\s+(\d{1,2})[.)]\s+(?=[A-Z])")


def split_sentences(text: str, section: Section) -> list[Sentence]:
    """The sentences of a section, with offsets in the report; list markers ("1.") are not sentences."""
    out: list[Sentence] = []
    pos = section.start
    chunk_ends = [m.end() for m in _SENT_END.finditer(text, section.start, section.end)] + [section.end]
    for match in _INLINE_ITEM.finditer(text, section.start, section.end):  # "1. Cardiomegaly 2. Effusion"
        number = int(match.group(1))
        if number >= 2 and re.search(rf"(?:^|\s){number - 1}[.)]\s", text[section.start:match.start()]):
            chunk_ends.append(match.start())
    chunk_ends.sort()
    for end in chunk_ends:
        if end <= pos:
            continue
        lead = pos
        while lead < end and text[lead].isspace():
            lead += 1
        start = lead
        while True:  # skip list markers, including a marker that stands alone ("1." before the sentence)
            marker = _LIST_MARK.match(text, start, end)
            if not marker or marker.end() == start:
                break
            start = marker.end()
        if re.fullmatch(r"\s*\d{1,2}[.)]\s*", text[start:end]):
            continue  # a list number cut off as its own piece: it belongs to the next sentence
        stop = end
        while stop > start and text[stop - 1].isspace():
            stop -= 1
        if stop > start and re.search(r"\w", text[start:stop]):
            out.append(Sentence(section.name, start, stop, lead, text[start:stop]))
        pos = end
    # a list number that ended a chunk ("1.") leaves its sentence's lead at the number: recover it
    for sentence in out:
        before = text[section.start:sentence.start]
        marker = re.search(r"(?:^|[.!?]\s+|\n\s*)(\d{1,2}[.)])\s*$", before)
        if marker:
            sentence.lead = section.start + marker.start(1)
    return out


def _select(spans: list[tuple[int, int, str, bool, str | None]]) -> list[tuple[int, int, str, bool, str | None]]:
    """Longest non-overlapping matches."""
    chosen: list[tuple[int, int, str, bool, str | None]] = []
    for span in sorted(spans, key=lambda s: (-(s[1] - s[0]), s[0])):
        if all(span[1] <= c[0] or span[0] >= c[1] for c in chosen):
            chosen.append(span)
    return sorted(chosen)


def _clause_bounds(text: str, sentence: Sentence) -> list[tuple[int, int]]:
    bounds, pos = [], sentence.start
    for match in _CLAUSE_END.finditer(text, sentence.start, sentence.end):
        bounds.append((pos, match.start()))
        pos = match.end()
    bounds.append((pos, sentence.end))
    return bounds


def _read_sentence(text: str, sentence: Sentence) -> tuple[list[Mention], list[Anchor]]:
    s0 = sentence.start
    body = text[s0:sentence.end]
    spans: list[tuple[int, int, str, bool, str | None]] = []
    for name, rx in _CONCEPT_RX:
        spans += [(s0 + m.start(), s0 + m.end(), name, False, None) for m in rx.finditer(body)]
    for name, rx, positive in _NORMAL_RX:
        spans += [(s0 + m.start(), s0 + m.end(), name, True, positive) for m in rx.finditer(body)]
    mentions = [Mention(name, s, e, sentence, negated=normal, normal=normal)
                for s, e, name, normal, _ in _select(spans)]
    taken = [(m.start, m.end) for m in mentions]
    anchors = [Anchor(key, s0 + m.start(), s0 + m.end(), sentence) for key, rx in _ANCHOR_RX for m in rx.finditer(body)
               if all(s0 + m.end() <= a or s0 + m.start() >= b for a, b in taken)]
    for mention in mentions:
        if not mention.normal:
            _negation(text, sentence, mention)
        elif re.search(r"\b(?:no|not|non)\s*-?\s*$", text[sentence.start:mention.start], re.I):
            mention.negated = False  # "not normal in size", "no normal ..." deny the normal phrase
        mention.hedged = _hedged(text, sentence, mention)
    _attach(text, sentence, mentions, anchors)
    for i, mention in enumerate(mentions):
        mention.explained = mention.concept in _DESCRIPTIVE and (any(
            not later.info.significant and not later.generic for later in mentions[i + 1:])
            or bool(_EXPLAINS.search(text, mention.end, sentence.end)))
    return mentions, anchors


def _hedged(text: str, sentence: Sentence, mention: Mention) -> bool:
    """A finding named as a possibility ("may represent X", "X versus Y", "X cannot be excluded")."""
    if sentence.text.rstrip().endswith("?"):
        return True
    before = text[sentence.start:mention.start]
    cues = list(_HEDGE.finditer(before))
    if cues:
        gap = before[cues[-1].end():]
        if len(gap.split()) <= 12 and not _HEDGE_END.search(gap):
            return True
    if _HEDGE.search(text[mention.start:mention.end]) or text[mention.start - 1:mention.start] == "/":
        return True
    after = _HEDGE_AFTER.match(text, mention.end, sentence.end)
    return bool(after and not re.search(r"\b(?:and|but|with)\b", after.group(0)))


def _negation(text: str, sentence: Sentence, mention: Mention) -> None:
    before = text[sentence.start:mention.start]
    cues = [c for c in _PRE_NEG.finditer(before) if not any(p.start() <= c.start() < p.end()
                                                             for p in _PSEUDO_NEG.finditer(before))]
    if cues:
        cue = cues[-1]
        gap = before[cue.end():]
        if len(gap.split()) <= 10 and not _SCOPE_END.search(gap):
            mention.negated = True
            mention.cue = (sentence.start + cue.start(), sentence.start + cue.end())
            return
    post = _POST_NEG.match(text, mention.end, sentence.end)
    if post and not re.search(r"\b(?:and|but|with)\b", post.group(0)):
        mention.negated = True
        mention.cue = (post.start(), post.end())


def _attach(text: str, sentence: Sentence, mentions: list[Mention], anchors: list[Anchor]) -> None:
    """Give each side word, severity word and measurement to the finding it describes: inside the term,
    else the next finding in its clause, else the previous one in its clause, else the nearest in the sentence."""
    clauses = _clause_bounds(text, sentence)
    spans = [(m.start, m.end) for m in mentions]

    def owner(start: int, end: int) -> Mention | None:
        for m in mentions:
            if m.start <= start and end <= m.end:
                return m
        if any(a <= start < b for a, b in spans):
            return None
        clause = next(((a, b) for a, b in clauses if a <= start < b), (sentence.start, sentence.end))
        after = [m for m in mentions if m.start >= end and m.start < clause[1]]
        if after:
            return after[0]
        before = [m for m in mentions if m.end <= start and m.end > clause[0]]
        if before:
            return before[-1]
        return None

    def nearest(start: int) -> Mention | None:
        return min(mentions, key=lambda m: abs(m.start - start), default=None)

    for match in SIDE_RX.finditer(text, sentence.start, sentence.end):
        target = owner(match.start(), match.end())
        if target is None and not any(a <= match.start() < b for a, b in spans):
            earlier = [m for m in mentions if m.end <= match.start()]
            target = earlier[-1] if earlier else nearest(match.start())
        if target is not None:
            target.sides.append((match.start(), match.end(), match.group(1)))
    for match in SEVERITY_RX.finditer(text, sentence.start, sentence.end):
        words = [w.lower() for w in match.groups() if w]
        scales = {_SEVERITY_WORDS[w] for w in words}
        low, high = min(r for _, r in scales), max(r for _, r in scales)
        target = owner(match.start(), match.end())
        if target is not None:
            target.severities.append((match.start(), match.end(), frozenset(range(low, high + 1)), match.group(0)))
    for match in MEASURE_RX.finditer(text, sentence.start, sentence.end):
        unit = _UNIT_MM[re.sub(r"s$", "", match.group(4).lower())]
        dims = tuple(round(float(g) * unit, 3) for g in match.groups()[:3] if g)
        target = owner(match.start(), match.end())
        if target is None:
            anchor = min(anchors, key=lambda a: abs(a.start - match.start()), default=None)
            if anchor is not None:
                anchor.measures.append((match.start(), match.end(), dims))
                continue
            target = nearest(match.start())
        if target is not None:
            target.measures.append((match.start(), match.end(), dims))
    for mention in mentions:
        head = sentence.start
        for match in _STRONG_END.finditer(text, sentence.start, mention.start):
            head = match.end()
        words = _QUALIFIER_RX.findall(text[head:mention.end])
        mention.qualifiers = frozenset(w.lower() for w in words)


@lru_cache(maxsize=4096)
def read_report(text: str) -> ReadReport:
    """Read a report: sections, sentences, finding mentions and organ anchors (cached by text)."""
    sections = split_sections(text)
    sentences = [s for section in sections for s in split_sentences(text, section)]
    mentions: list[Mention] = []
    anchors: list[Anchor] = []
    for sentence in sentences:
        found, held = _read_sentence(text, sentence)
        mentions += found
        anchors += held
    return ReadReport(text, sections, sentences, mentions, anchors)


def compose_report(findings: str, impression: str) -> str:
    """A report text from its two main sections."""
    return f"FINDINGS: {findings.strip()}\n\nIMPRESSION: {impression.strip()}"


def normalise_sentence(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


# --------------------------------------------------------------------------------------------
# The injector
# --------------------------------------------------------------------------------------------


class InjectionError(ValueError):
    """No place in this report where an error of the asked type could be planted detectably."""


class PlantedError(BaseModel):
    """One planted error: its type, where it shows (``start``/``end`` in the new report, or in the
    reference for an omission judged against one), and the edit (``original`` -> ``new``)."""

    type: ErrorType
    start: int
    end: int
    original: str
    new: str
    where: Literal["report", "reference"] = "report"
    edit_at: int = Field(description="where the edit was made in the new report text")
    note: str = ""


class Injection(BaseModel):
    text: str
    error: PlantedError


@dataclass
class _Parts:
    """What the injection edits (the claim) and what it must contradict (the evidence)."""

    claim: tuple[list[Sentence], list[Mention], list[Anchor]]
    evidence: tuple[list[Sentence], list[Mention], list[Anchor]]
    evidence_text: str
    where: Literal["report", "reference"]


def _parts(report: ReadReport, reference: str | None) -> _Parts | None:
    if reference is not None:
        ref = read_report(reference)
        return _Parts(report.part(*report.body), ref.part(*ref.body), reference, "reference")
    if report.has_findings_and_impression:
        return _Parts(report.part("impression"), report.part("findings"), report.text, "report")
    return None


def _compatible(a: Mention, b: Mention) -> bool:
    return not a.side or not b.side or bool(a.side & b.side)


def _case_like(old: str, new: str) -> str:
    if old.isupper() and len(old) > 1:
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


_NP_STOP = frozenset("is are was were be there with and or of in on at to by the a an some no not which that but from "
                     "for as has have had shows show demonstrates contains containing seen noted".split())


def _np_start(text: str, floor: int, start: int) -> int:
    """Where the noun phrase ending in the term begins: back over its modifiers ("acute displaced")."""
    while True:
        match = re.search(r"([\w-]+)\s+$", text[floor:start])
        if not match or match.group(1).lower() in _NP_STOP:
            return start
        start = floor + match.start()


def _negate(text: str, m: Mention) -> tuple[int, int, str] | None:
    """The edit (start, end, replacement) that turns a mention's polarity around, or None."""
    start, end = m.phrase
    at_start = not text[m.sentence.start:min(start, m.cue[0] if m.cue else start)].strip()
    if m.normal:  # "Heart size is normal" -> "The heart is enlarged"; "Normal chest" -> "Abnormal chest"
        old = text[m.start:m.end]
        if m.concept == GENERIC:
            return m.start, m.end, re.sub(r"\b(?:normal|negative|unremarkable)\b",
                                          lambda w: _case_like(w.group(0), "abnormal"), old, count=1, flags=re.I)
        positive = next(p for name, _, p in _NORMAL_RX if name == m.concept)
        return m.start, m.end, _capital(positive) if m.start == m.sentence.start else positive
    if m.negated and m.cue:
        cs, ce = m.cue
        old = text[cs:ce]
        if cs >= m.end:  # a cue after the term ("... is not seen", "has resolved")
            new = re.sub(r"(?i)\bno\s+longer\b", "still", re.sub(r"(?i)\bnot\s+", "", old))
            new = re.sub(r"(?i)\b(?:absent|excluded)\b", "present", re.sub(r"(?i)\bresolved\b", "persisted", new))
            return cs, ce, new
        for pattern, word in ((r"without", "with"), (r"negative\s+for", "positive for"), (r"free\s+of", "with"),
                              (r"absence\s+of", "presence of"), (r"resolution\s+of", "persistence of"),
                              (r"resolved", "persistent")):
            found = re.match(pattern, old, re.I)
            if found:
                return cs, cs + found.end(), _case_like(found.group(0), word)
        if at_start:  # "No pneumothorax." -> "Pneumothorax."
            rest = text[ce:end].lstrip()
            return cs, end, _capital(rest)
        return cs, ce + (1 if text[ce:ce + 1] == " " else 0), ""  # "... with no effusion" -> "... with effusion"
    if m.negated or m.hedged:
        return None
    verb = re.search(r"\b(?:is|are|appears|remains)\s+", text[m.start:m.end])
    if verb and start == m.start:  # "the heart is enlarged" -> "the heart is not enlarged"
        return m.start + verb.end(), m.start + verb.end(), "not "
    start = _np_start(text, m.sentence.start, start)
    before = text[m.sentence.start:start]
    there = re.search(r"\bthere\s+(?:is|are)\b(\s+(?:an?|some)\b)?\s*$", before, re.I)
    if there:  # "There is a small effusion" -> "There is no small effusion"
        cut = m.sentence.start + there.start(1) if there.group(1) else start
        return cut, start, " no " if there.group(1) else "no "
    article = re.search(r"\b(?:an?|some)\s+$", before, re.I)
    cut = m.sentence.start + article.start() if article else start
    if not text[m.sentence.start:cut].strip():  # "Small left effusion." -> "No small left effusion."
        word = re.match(r"[\w-]+", text[start:end]).group(0)
        return cut, start + len(word), "No " + (word if word.isupper() and len(word) > 1 else word.lower())
    return cut, start, "no "


def _pick(rng: random.Random, items: list):
    return items[rng.randrange(len(items))] if items else None


def _apply(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


def _inject_negation(text: str, parts: _Parts, rng: random.Random) -> tuple[str, PlantedError]:
    claim, evidence = parts.claim[1], parts.evidence[1]
    candidates = []
    for m in claim:
        if m.generic or m.hedged or (m.negated and m.qualifiers & CONTRAST):
            continue
        same = [e for e in evidence if e.concept == m.concept and not e.hedged and _compatible(e, m)]
        if same and all(e.negated == m.negated for e in same) and _negate(text, m):
            candidates.append(m)
    if not candidates and not any(e.significant for e in evidence):
        # a normal impression ("No acute disease") over findings with nothing significant
        candidates = [m for m in claim if m.generic and m.negated and not m.hedged]
    target = _pick(rng, candidates)
    if target is None:
        raise InjectionError("no finding stated in both parts (or normal impression over normal findings) to negate")
    start, end, new = _negate(text, target)
    shift = len(new) - (end - start)
    term_end = target.end + shift if target.end >= end else target.end
    return _apply(text, start, end, new), PlantedError(
        type=ErrorType.NEGATION, start=min(start, target.start), end=max(start + len(new), term_end),
        original=text[start:end], new=new, edit_at=start,
        note=f"{target.info.label}: {'denied' if target.negated else 'stated'} -> "
             f"{'stated' if target.negated else 'denied'}")


def _inject_laterality(text: str, parts: _Parts, rng: random.Random) -> tuple[str, PlantedError]:
    candidates = []
    for m in parts.claim[1]:
        if not m.positive or len(m.sides) != 1 or m.side not in ({"left"}, {"right"}):
            continue
        sides = [e.side for e in parts.evidence[1] if e.concept == m.concept and e.positive]
        if sides and all(s == m.side for s in sides):
            candidates.append(m)
    target = _pick(rng, candidates)
    if target is None:
        raise InjectionError("no left- or right-sided finding stated in both parts")
    start, end, _ = target.sides[0]
    old = text[start:end]
    new = re.sub(r"(?i)left|right", lambda w: _case_like(w.group(0), "right" if w.group(0).lower() == "left"
                                                                 else "left"), old)
    return _apply(text, start, end, new), PlantedError(
        type=ErrorType.LATERALITY, start=start, end=start + len(new), original=old, new=new, edit_at=start,
        note=f"{target.info.label}: {old.lower()} -> {new.lower()}")


def _values(items: list[Mention] | list[Anchor], key_of) -> dict[str, set[float]]:
    out: dict[str, set[float]] = {}
    for item in items:
        for _, _, dims in item.measures:
            out.setdefault(key_of(item), set()).update(dims)
    return out


def _key(item: Mention | Anchor) -> str:
    return item.info.measure_key if isinstance(item, Mention) else item.key


def measure_values(mentions: list[Mention], anchors: list[Anchor]) -> dict[str, set[float]]:
    """Every measured dimension (mm) by measurement key (the finding's group or the organ)."""
    out = _values(mentions, _key)
    for key, values in _values(anchors, _key).items():
        out.setdefault(key, set()).update(values)
    return out


def same_value(a: float, b: float) -> bool:
    return abs(a - b) <= 0.01 + 1e-6 * max(a, b)


def _measure_edits(old: str, known: set[float]) -> list[str]:
    match = MEASURE_RX.fullmatch(old)
    if not match:
        return []
    number, unit = match.group(1), match.group(4)
    scale = _UNIT_MM[re.sub(r"s$", "", unit.lower())]
    options = []
    swapped = {"mm": "cm", "cm": "mm"}.get(unit.lower())
    if swapped:
        options.append(old[:match.start(4)] + _case_like(unit, swapped) + old[match.end(4):])
    digits = number.replace(".", "")
    if len(set(digits)) > 1:
        flipped = number[::-1].lstrip("0") or "0"
        if flipped.startswith("."):
            flipped = "0" + flipped
        flipped = flipped.removesuffix(".")
        options.append(flipped + old[match.end(1):])
    whole = float(number)
    doubled = f"{whole * 2:g}" if whole < 50 else f"{whole / 2:g}"
    options.append(doubled + old[match.end(1):])
    good = []
    for option in options:
        new = MEASURE_RX.fullmatch(option)
        if not new:
            continue
        value = float(new.group(1)) * _UNIT_MM[re.sub(r"s$", "", new.group(4).lower())]
        if not any(same_value(value, k) for k in known) and not same_value(value, whole * scale):
            good.append(option)
    return good


def _inject_measurement(text: str, parts: _Parts, rng: random.Random) -> tuple[str, PlantedError]:
    known = measure_values(parts.evidence[1], parts.evidence[2])
    candidates = []
    for item in [*parts.claim[1], *parts.claim[2]]:
        key = _key(item)
        for s, e, dims in item.measures:
            if key in known and all(any(same_value(d, k) for k in known[key]) for d in dims):
                edits = _measure_edits(text[s:e], known[key])
                candidates += [(s, e, new) for new in edits]
    choice = _pick(rng, candidates)
    if choice is None:
        raise InjectionError("no measurement stated in both parts")
    start, end, new = choice
    return _apply(text, start, end, new), PlantedError(
        type=ErrorType.MEASUREMENT, start=start, end=start + len(new), original=text[start:end], new=new,
        edit_at=start, note=f"{text[start:end]} -> {new}")


def _inject_severity(text: str, parts: _Parts, rng: random.Random) -> tuple[str, PlantedError]:
    candidates = []
    for m in parts.claim[1]:
        if not m.positive or len(m.severities) != 1 or len(m.severities[0][2]) != 1:
            continue
        s, e, _, word = m.severities[0]
        scale, rank = _SEVERITY_WORDS[word.lower()]
        others = [x for x in parts.evidence[1] if x.concept == m.concept and x.positive and _compatible(x, m)]
        graded = [x for x in others if x.ranks]
        if not graded or not all(x.ranks <= m.ranks for x in graded):
            continue
        adverb = word.lower().endswith("ly")
        usable = [(w, r) for w, (sc, r) in _SEVERITY_WORDS.items() if sc == scale and w.endswith("ly") == adverb
                  and w not in ("extensive", "slight", "slightly") and not soft_ranks({r}) & soft_ranks({rank})]
        words = [w for w, r in usable if abs(r - rank) >= 2] or [w for w, _ in usable]
        candidates += [(s, e, _case_like(word, w), m) for w in words]
    choice = _pick(rng, candidates)
    if choice is None:
        raise InjectionError("no severity word on a finding graded in both parts")
    start, end, new, m = choice
    return _apply(text, start, end, new), PlantedError(
        type=ErrorType.SEVERITY, start=start, end=start + len(new), original=text[start:end], new=new, edit_at=start,
        note=f"{m.info.label}: {text[start:end].lower()} -> {new.lower()}")


# Sentences the injector can add, by body region: (concept, sentence). Written for this project.
ADDED_SENTENCES: dict[str, list[tuple[str, str]]] = {
    "chest": [("pneumothorax", "Small right apical pneumothorax."),
              ("pleural_effusion", "Moderate left pleural effusion."),
              ("consolidation", "Dense consolidation in the right lower lobe."),
              ("fracture", "Acute displaced fracture of the left seventh rib."),
              ("mass", "A 3.1 cm spiculated mass in the left upper lobe."),
              ("edema", "Interstitial pulmonary edema."),
              ("pericardial_effusion", "Small pericardial effusion."),
              ("lymphadenopathy", "Enlarged right hilar lymph nodes.")],
    "abdomen": [("free_air", "Free intraperitoneal air under the right hemidiaphragm."),
                ("hydronephrosis", "Moderate left hydronephrosis."),
                ("ascites", "Small volume ascites in the pelvis."),
                ("gallstones", "Multiple gallstones in the gallbladder."),
                ("appendicitis", "Dilated appendix with periappendiceal fat stranding, in keeping with appendicitis."),
                ("splenomegaly", "Splenomegaly, with the spleen measuring 16 cm."),
                ("abscess", "A 4 cm rim-enhancing fluid collection in the right lower quadrant.")],
    "head": [("hemorrhage", "Acute left parietal intraparenchymal hemorrhage."),
             ("infarct", "Acute infarct in the right middle cerebral artery territory."),
             ("mass_effect", "Mass effect with 5 mm of rightward midline shift."),
             ("hydrocephalus", "Dilated lateral ventricles, in keeping with hydrocephalus.")],
    "spine": [("fracture", "Acute compression fracture of the L1 vertebral body."),
              ("cord_compression", "Cord compression at C5-C6."),
              ("disc_herniation", "Large left paracentral disc extrusion at L5-S1.")],
    "thyroid": [("nodule", "A 2.4 cm solid hypoechoic nodule in the left lobe."),
                ("lymphadenopathy", "Enlarged right level IV cervical lymph nodes.")],
    "breast": [("mass", "A 1.6 cm irregular spiculated mass in the right breast at 10 o'clock."),
               ("distortion", "Architectural distortion in the upper outer left breast.")],
    "pelvis": [("torsion", "Enlarged left ovary with absent internal flow, in keeping with ovarian torsion."),
               ("fibroid", "A 3.5 cm intramural fibroid in the uterine fundus."),
               ("ascites", "Moderate free fluid in the pelvis.")],
}
_REGION_WORDS = {
    "chest": r"lungs?|pleura\w*|heart|cardiac|mediastin\w*|thora\w*|chest|ribs?|hila\w*|pulmonary",
    "abdomen": r"liver|hepatic|kidneys?|renal|spleen|gallbladder|pancrea\w*|bowel|abdom\w*|appendix|biliary",
    "head": r"brain|intracranial|ventricles?|cerebr\w*|skull|cerebell\w*|sulci|gr[ae]y-white|white matter|"
            r"internal capsule|frontal|parietal|temporal|occipital|sylvian|subdural|subarachnoid|cisterns?",
    "spine": r"vertebra\w*|discs?|disks?|cord|lumbar|cervical|thoracic spine|thecal|foramina\w*|spinal canal",
    "thyroid": r"thyroid|isthmus|cervical lymph",
    "breast": r"breasts?|bi-rads|mammogra\w*|axilla\w*|fibroglandular",
    "pelvis": r"uterus|uterine|ovar\w*|endometri\w*|adnexa\w*|myometri\w*|cervix",
}


def body_region(text: str) -> str:
    """The body region a report is about, from its words (chest when nothing says otherwise)."""
    scores = {region: len(re.findall(rf"\b(?:{words})\b", text, re.I)) for region, words in _REGION_WORDS.items()}
    best = max(scores, key=lambda r: scores[r])
    return best if scores[best] else "chest"


def _after_sentence(text: str, end: int, sentence: str) -> tuple[str, int]:
    """What to insert at the end of a sentence to add ``sentence`` after it (a full stop first when the
    sentence has none), and where the added sentence will start."""
    lead = " " if re.search(r"[.!?]$", text[:end]) else ". "
    return lead + sentence, end + len(lead)


def _insertion_points(text: str, sentences: list[Sentence], section: Section | None) -> list[int]:
    points = [s.end for s in sentences]
    if not points and section is not None:
        points = [section.start]
    return points


def _inject_added(text: str, parts: _Parts, rng: random.Random, report: ReadReport) -> tuple[str, PlantedError]:
    mentioned = {g for m in [*parts.claim[1], *parts.evidence[1]] for g in m.info.groups}
    region = body_region(text + " " + parts.evidence_text)
    pool = [(c, s) for c, s in ADDED_SENTENCES[region] if not CONCEPTS[c].groups & mentioned]
    choice = _pick(rng, pool)
    if choice is None:
        raise InjectionError(f"every finding the injector can add for this {region} report is already mentioned")
    concept, sentence = choice
    section = report.section("impression") if parts.where == "report" else None
    points = _insertion_points(text, parts.claim[0], section)
    if not points:
        raise InjectionError("no sentence to add a finding after")
    at = points[rng.randrange(len(points))]
    if at == (section.start if section else -1):
        new = sentence + (" " if at < len(text) and not text[at:at + 1].isspace() else "")
        start = at
    else:
        new, start = _after_sentence(text, at, sentence)
    return _apply(text, at, at, new), PlantedError(
        type=ErrorType.ADDED, start=start, end=start + len(sentence), original="", new=sentence, edit_at=start,
        note=f"added {CONCEPTS[concept].label}")


def _inject_omitted(text: str, parts: _Parts, rng: random.Random, report: ReadReport) -> tuple[str, PlantedError]:
    claim_sentences, claim_mentions, _ = parts.claim
    candidates = []
    for sentence in claim_sentences:
        others = {g for m in claim_mentions if m.sentence is not sentence and not m.negated for g in m.info.groups}
        lost = [m for m in claim_mentions if m.sentence is sentence and m.significant and not m.info.groups & others]
        support = [e for e in parts.evidence[1] if e.significant and not e.info.groups & others
                   and any(e.info.groups & m.info.groups for m in lost)]
        if support:
            candidates.append((sentence, support[0]))
    choice = _pick(rng, candidates)
    if choice is None:
        raise InjectionError("no significant finding stated in both parts to drop")
    sentence, support = choice
    if len(claim_sentences) == 1 and parts.where == "report":
        start, end, new = sentence.start, sentence.end, "No acute abnormality."
    else:
        following = [s.lead for s in claim_sentences if s.lead >= sentence.end]
        start, end, new = sentence.lead, (following[0] if following else sentence.end), ""
        if not following:  # the last sentence: take the space before it instead
            while start > 0 and text[start - 1] in " \t":
                start -= 1
    new_text = _apply(text, start, end, new)
    shift = len(new) - (end - start)
    ev = support.sentence
    if parts.where == "report":
        ev_start, ev_end = (ev.start, ev.end) if ev.start < start else (ev.start + shift, ev.end + shift)
    else:
        ev_start, ev_end = ev.start, ev.end
    return new_text, PlantedError(
        type=ErrorType.OMITTED, start=ev_start, end=ev_end, original=text[start:end], new=new, where=parts.where,
        edit_at=start, note=f"dropped {support.info.label} from the "
                            f"{'impression' if parts.where == 'report' else 'report'}")


def _inject_repetition(text: str, report: ReadReport, rng: random.Random) -> tuple[str, PlantedError]:
    body = set(report.body)
    sentences = [s for s in report.sentences if s.section in body and len(s.text.split()) >= 3]
    preferred = [s for s in sentences if s.section == "impression"] or sentences
    target = _pick(rng, preferred)
    if target is None:
        raise InjectionError("no sentence of three words or more to repeat")
    copy = target.text
    new, start = _after_sentence(text, target.end, copy)
    return _apply(text, target.end, target.end, new), PlantedError(
        type=ErrorType.REPETITION, start=start, end=start + len(copy), original="", new=copy, edit_at=start,
        note="sentence repeated")


def inject_error(report: str, error_type: ErrorType | str, *, seed: int = 0,
                 reference: str | None = None) -> Injection:
    """Plant one error of ``error_type`` in ``report`` (seeded), where it can be seen: in the impression,
    contradicting the findings; or, with ``reference`` findings, anywhere in the report, contradicting them.

    Raises ``InjectionError`` when the report offers no such place (a laterality swap in a report with
    no sided finding stated twice, ...)."""
    kind = ErrorType(error_type)
    rng = random.Random(f"{seed}:{kind.value}:{len(report)}")
    read = read_report(report)
    if kind is ErrorType.REPETITION:
        text, error = _inject_repetition(report, read, rng)
        return Injection(text=text, error=error)
    parts = _parts(read, reference)
    if parts is None:
        raise InjectionError(f"a {kind.label} needs FINDINGS and IMPRESSION sections or reference findings "
                             "to be detectable")
    inject = {ErrorType.NEGATION: _inject_negation, ErrorType.LATERALITY: _inject_laterality,
              ErrorType.MEASUREMENT: _inject_measurement, ErrorType.SEVERITY: _inject_severity}
    if kind in inject:
        text, error = inject[kind](report, parts, rng)
    elif kind is ErrorType.ADDED:
        text, error = _inject_added(report, parts, rng, read)
    else:
        text, error = _inject_omitted(report, parts, rng, read)
    return Injection(text=text, error=error)


# --------------------------------------------------------------------------------------------
# Our own clean reports
# --------------------------------------------------------------------------------------------

REPORTS_FILE = Path(__file__).with_name("data") / "reports.yaml"


class SampleReport(BaseModel):
    id: str
    modality: str
    findings: str
    impression: str

    @property
    def text(self) -> str:
        return compose_report(self.findings, self.impression)


def sample_reports(path: Path | None = None) -> list[SampleReport]:
    """The clean radiology reports written for this project (``tools/data/reports.yaml``)."""
    data = yaml.safe_load((path or REPORTS_FILE).read_text(encoding="utf-8"))
    return [SampleReport.model_validate(item) for item in data["reports"]]
