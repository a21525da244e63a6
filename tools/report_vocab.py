"""The vocabulary of radiology reports: findings (with their groups, "normal" phrasings and organ
anchors), and the patterns for sides, severity words, measurements, negation and hedging cues and
qualifiers that ``report_text`` reads reports with."""

from __future__ import annotations

import re
from dataclasses import dataclass


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
DESCRIPTIVE = frozenset({"opacity", "nodule", "mass"})  # findings a later word may explain away
EXPLAINS = re.compile(r"\b(?:reflects?|reflecting|due to|secondary to|related to|attributable to|attributed to|"
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


CONCEPT_RX = [(name, _compile(c.pattern)) for name, c in CONCEPTS.items()]
NORMAL_RX = [(name, _compile("|".join(patterns))) for name, _, patterns in _NORMAL_TABLE]
NORMAL_POSITIVE = {name: positive for name, positive, _ in _NORMAL_TABLE}
ANCHOR_RX = [(key, _compile(pattern)) for key, pattern in _ANCHORS]

SIDE_RX = re.compile(r"\b(left|right|bilateral(?:ly)?|both)(?:-sided)?\b(?![- ](?:ventric|atri|heart|coronary|"
                     r"anterior descending|circumflex|main|bundle|sided aortic arch))", re.I)
SEVERITY_WORDS: dict[str, tuple[str, int]] = {
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


_SEV = "|".join(sorted(SEVERITY_WORDS, key=len, reverse=True))
SEVERITY_RX = re.compile(rf"\b({_SEV})(?:(?:\s*-\s*|\s+to\s+)({_SEV}))?\b(?![- ](?:bowel|intestine|vessel|airways?|"
                         r"cell|caliber|calibre))", re.I)
_NUM = r"\d+(?:\.\d+)?"
MEASURE_RX = re.compile(rf"(?<![\w.])({_NUM})(?:\s*(?:x|×|by)\s*({_NUM}))?(?:\s*(?:x|×|by)\s*({_NUM}))?\s*"
                        r"(mm|cm|millimet(?:er|re)s?|centimet(?:er|re)s?)\b", re.I)
_UNIT_MM = {"mm": 1.0, "millimeter": 1.0, "millimetre": 1.0, "cm": 10.0, "centimeter": 10.0, "centimetre": 10.0}


def unit_mm(unit: str) -> float:
    """Millimetres per ``unit`` as MEASURE_RX finds it ("cm", "millimetres", ...)."""
    return _UNIT_MM[re.sub(r"s$", "", unit.lower())]


# Negation, hedging and clause cues.
PRE_NEG = re.compile(r"\b(?:(?:no|without)(?:\s+(?:[\w-]+\s+){0,2}?(?:evidence|signs?|demonstration|findings?|xxxx)\s+"
                     r"(?:of|for|to suggest))?|negative\s+for|(?:clear|free)\s+of|absence\s+of|(?:interval\s+)?"
                     r"(?:resolution|clearing)\s+of|resolved|not|nor|neither)\b(?:\s+(?:an?|any)\b)?", re.I)
PSEUDO_NEG = re.compile(r"\bno\s+(?:significant\s+|interval\s+|appreciable\s+|substantial\s+)?(?:change|increase|"
                        r"decrease|worsening|improvement|longer)\b|\bnot\s+(?:changed|only|significantly)\b", re.I)
POST_NEG = re.compile(r"^(?:\s+[\w-]+){0,4}?\s+(?:(?:is|are|was|were|has|have)\s+(?:been\s+)?)?(?:not\s+"
                      r"(?:definitely\s+|clearly\s+|well\s+)?(?:seen|identified|present|visuali[sz]ed|demonstrated|"
                      r"evident|appreciated|noted|detected|observed)|no\s+longer\s+(?:seen|present|visuali[sz]ed|"
                      r"evident|identified)|absent|resolved|excluded)\b", re.I)
SCOPE_END = re.compile(r"\b(?:but|however|although|though|except|apart from|aside from|other than|whereas|while|"
                       r"which|is|are|was|were|a|an|there|with)\b|[;:]", re.I)
HEDGE_END = re.compile(r"\b(?:but|however|although|though|there\s+(?:is|are)|also|additionally|in addition)\b|"
                       r"[;:]", re.I)
HEDGE_AFTER = re.compile(r"\s*(?:\?|/|(?:[\w-]+[\s,]+){0,3}?(?:may|might|could|cannot|can not|is suspected|"
                         r"is questioned|not (?:entirely )?excluded)\b)|\s*,?\s*(?:versus|vs)\b", re.I)
HEDGE = re.compile(r"\b(?:possible|possibly|probable|probably|likely|may|might|could|questionable|question of|"
                   r"suspicious for|suspected|suspect|concerning for|suggestive of|suggesting|differential|versus|vs|"
                   r"cannot be (?:excluded|ruled out)|can ?not (?:exclude|rule out)|not (?:entirely )?excluded|"
                   r"equivocal|indeterminate|rule out|r/o|to exclude|evaluate for|evaluation for|worrisome for|"
                   r"represents?|representing|presumed|presumably|favou?red?|suggests?|question|unclear|uncertain|"
                   r"whether|history of|correlate|rule-out|concern for|consider|if|and/or|secondary to|due to|"
                   r"related to)\b", re.I)
STRONG_END = re.compile(r"[;:(]|\b(?:with|but|which|where|while|and there)\b", re.I)
CLAUSE_END = re.compile(r",|;|:|\(|\)|\band\b|\bwith\b|\bbut\b|\bwhich\b|\bwhere\b|\bwhile\b|\bas well as\b",
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
QUALIFIER_RX = re.compile(r"\b(" + "|".join(sorted(CHRONIC | CONTRAST | {"acute"})) + r")\b", re.I)
