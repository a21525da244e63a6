"""The ``retrieve`` tool: hybrid search (dense faiss + BM25) over the disease knowledge base,
ICD-10-CM titles and, on request, HPO disease annotations.

``build_index`` and ``search`` are the one way in (the CLI and the tool both call them). Passages
are embedded with the shared sentence-transformers model (``agents/embeddings.py``) into a faiss
inner-product index over unit vectors (moved to the GPU when faiss sees one) and scored lexically
with BM25 (rank-bm25); the two are fused by a weighted sum (cosine and BM25 over the query's best
BM25), hits are grouped by disease (ICD-10-CM and HPO passages join the KB disease they code or
name), and an adaptive cut-off plus absolute floors drop weak tails and nonsense queries. Each
source's passages and faiss index are cached on disk (``corpus.py``); one index lives per process.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator

from agentclinic.agents.embeddings import tokens
from agentclinic.errors import ConfigError
from agentclinic.tools.base import ToolArgumentError, ToolArguments, ToolContext, ToolResult
from agentclinic.tools.corpus import (DEFAULT_SOURCES, SOURCES, Passage, build_source, cache_root, import_faiss,
                                     is_cached, load_source, source_dir)
from agentclinic.tools.registry import register_tool

Mode = Literal["hybrid", "dense", "bm25"]
Fusion = Literal["sum", "rrf"]

DENSE_WEIGHT = 0.5  # weighted sum: DENSE_WEIGHT * cosine + (1 - DENSE_WEIGHT) * BM25 / best BM25
RRF_K = 60  # reciprocal-rank fusion constant (kept for comparison; the weighted sum measured better)
CANDIDATES = 200  # passages taken from each of the dense and the BM25 rankings before fusion
# Absolute floors: a query whose best passage is less similar than QUERY_FLOOR gets no hits at all
# (nonsense), and no passage under PASSAGE_FLOOR becomes a hit. Without an embedding model the same
# two floors apply to the share of the query's IDF mass a passage contains.
QUERY_FLOOR = {"dense": 0.40, "lexical": 0.35}
PASSAGE_FLOOR = {"dense": 0.30, "lexical": 0.20}
RELATIVE_CUTOFF = 0.60  # adaptive cut-off: drop hits under this fraction of the best score ...
RELATIVE_DROP = 0.25  # ... and stop at the first hit scoring this much below the one before it
PASSAGES_PER_HIT = 3
SNIPPET_CHARS = 160


class HitPassage(BaseModel):
    """One passage behind a hit."""

    id: str
    source: str
    text: str
    score: float


class Hit(BaseModel):
    """One disease found: its name and code, the fused score, and its best passages (best first)."""

    disease: str
    icd10: str | None = None
    disease_id: str | None = Field(None, description="knowledge-base id, when the hit is a KB disease")
    source: str = Field(description="source of the best passage")
    score: float
    text: str = Field(description="the best passage")
    passage_id: str
    passages: list[HitPassage] = Field(default_factory=list)


class IndexInfo(BaseModel):
    """What ``build_index`` built or loaded."""

    passages: int
    sources: list[str]
    per_source: dict[str, int]
    corpus_hash: str
    cache_path: str
    model: str
    dense: bool
    faiss_gpu: bool = False
    seconds: float
    cache_hit: bool


# ---------------------------------------------------------------- helpers

_SPELLING = [("ae", "e"), ("oe", "e")]  # British -> American, so "haemorrhage" meets "hemorrhage"


def bm25_tokens(text: str) -> list[str]:
    """Content-word stems (the shared tokenizer) with British spellings folded to American."""
    out = []
    for token in tokens(text):
        for old, new in _SPELLING:
            token = token.replace(old, new)
        out.append(token)
    return out


_UNSPECIFIED = re.compile(r",?\s*unspecified$", re.IGNORECASE)


def _name_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", " ".join(bm25_tokens(name)))


def default_sources() -> tuple[str, ...]:
    """The sources of the default index: ``$AGENTCLINIC_RETRIEVAL_SOURCES`` (comma-separated) or kb, icd10."""
    raw = os.environ.get("AGENTCLINIC_RETRIEVAL_SOURCES", "").strip()
    if not raw:
        return DEFAULT_SOURCES
    chosen = tuple(s.strip() for s in raw.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown or not chosen:
        raise ConfigError(f"AGENTCLINIC_RETRIEVAL_SOURCES={raw!r}: unknown source(s) {unknown}; known: {SOURCES}")
    return chosen


def _check_sources(sources: Any) -> tuple[str, ...]:
    if isinstance(sources, str):
        sources = sources.split(",")
    chosen = tuple(dict.fromkeys(s.strip() for s in sources))
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown or not chosen:
        raise ToolArgumentError(f"unknown source(s) {unknown or '(none given)'}; known: {', '.join(SOURCES)}")
    return tuple(s for s in SOURCES if s in chosen)  # canonical order


def _embedder():
    from agentclinic.agents.embeddings import default_embedder

    return default_embedder()


# ---------------------------------------------------------------- the index


@dataclass
class _Group:
    disease: str
    icd10: str | None
    disease_id: str | None


@dataclass
class RetrievalIndex:
    """Passages of the chosen sources with their faiss indexes (one per source) and a BM25 model."""

    passages: list[Passage]
    sources: tuple[str, ...]
    spans: dict[str, tuple[int, int]]  # source -> [start, end) in ``passages``
    faiss_indexes: dict[str, Any]  # source -> faiss index (absent without an embedding model)
    info: IndexInfo
    groups: list[str] = field(default_factory=list)  # group key of each passage
    group_meta: dict[str, _Group] = field(default_factory=dict)
    vectors: np.ndarray | None = None
    postings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    idf: dict[str, float] = field(default_factory=dict)
    k1: float = 1.5
    max_idf: float = 1.0
    gpu: Any = None

    def __post_init__(self) -> None:
        self._group_passages()
        self._fit_bm25()
        if self.faiss_indexes:
            self.vectors = np.concatenate([self.faiss_indexes[s].reconstruct_n(0, self.faiss_indexes[s].ntotal)
                                           for s in self.sources])
            self._maybe_gpu()

    # -- construction

    def _group_passages(self) -> None:
        """One group per disease: KB diseases absorb ICD/HPO passages that name or code them."""
        kb = {p.disease_id: p for p in self.passages if p.source == "kb"}
        by_code: dict[str, set[str]] = {}  # every prefix of a KB disease's code -> the diseases under it
        by_name: dict[str, str] = {}
        if kb:
            from agentclinic.knowledge import knowledge_base

            for disease in knowledge_base():
                if disease.id in kb:
                    for end in range(3, len(disease.icd10) + 1):
                        by_code.setdefault(disease.icd10[:end], set()).add(disease.id)
                    for name in disease.condition().names():
                        by_name.setdefault(_name_key(name), disease.id)
        exact = {kb_p.icd10: key for key, kb_p in kb.items()}
        for p in self.passages:
            key = self._kb_match(p, exact, by_code, by_name)
            if key is not None:
                kb_p = kb[key]
                self.groups.append(f"kb:{key}")
                self.group_meta.setdefault(f"kb:{key}", _Group(kb_p.disease, kb_p.icd10, key))
            elif p.source == "icd10":
                self.groups.append(f"icd10:{p.icd10[:3]}")  # one hit per ICD-10-CM category
            else:
                self.groups.append(p.id)

    @staticmethod
    def _kb_match(p: Passage, exact: dict[str, str], by_code: dict[str, set[str]],
                  by_name: dict[str, str]) -> str | None:
        """The KB disease a passage is about: its own, the one its code names or is the only one
        under, or the one it names (a KB name or alias, ", unspecified" aside); else None."""
        if p.source == "kb":
            return p.disease_id
        if p.icd10 in exact:
            return exact[p.icd10]
        under = by_code.get(p.icd10 or "", set())
        if len(under) == 1:
            return next(iter(under))
        return by_name.get(_name_key(_UNSPECIFIED.sub("", p.disease)))  # "Psoriasis, unspecified" is psoriasis

    def _fit_bm25(self) -> None:
        from rank_bm25 import BM25Okapi

        corpus = [bm25_tokens(p.text) for p in self.passages]
        bm25 = BM25Okapi(corpus)
        self.idf, self.k1 = dict(bm25.idf), bm25.k1
        self.max_idf = max(self.idf.values(), default=1.0)
        doc_len = np.asarray(bm25.doc_len, np.float32)
        norm = bm25.k1 * (1 - bm25.b + bm25.b * doc_len / bm25.avgdl)
        rows: dict[str, tuple[list[int], list[float]]] = {}
        for i, freqs in enumerate(bm25.doc_freqs):
            for term, tf in freqs.items():
                ids, tfs = rows.setdefault(term, ([], []))
                ids.append(i)
                tfs.append(tf)
        for term, (ids, tfs) in rows.items():  # per-term BM25 weights, precomputed (scoring is then a scatter-add)
            ids_a, tf_a = np.asarray(ids), np.asarray(tfs, np.float32)
            weights = self.idf[term] * tf_a * (bm25.k1 + 1) / (tf_a + norm[ids_a])
            self.postings[term] = (ids_a, weights.astype(np.float32))

    def _maybe_gpu(self) -> None:
        faiss = import_faiss()

        if getattr(faiss, "get_num_gpus", lambda: 0)() > 0 and hasattr(faiss, "StandardGpuResources"):
            self.gpu = faiss.StandardGpuResources()
            self.faiss_indexes = {s: faiss.index_cpu_to_gpu(self.gpu, 0, ix) for s, ix in self.faiss_indexes.items()}

    # -- scoring

    def bm25_scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 (rank-bm25's Okapi parameters) of every passage, from the precomputed postings."""
        scores = np.zeros(len(self.passages), np.float32)
        for term in query_tokens:
            if term in self.postings:
                ids, weights = self.postings[term]
                scores[ids] += weights
        return scores

    def coverage(self, query_tokens: list[str]) -> np.ndarray:
        """The share of the query's IDF mass each passage contains (unknown words weigh the most)."""
        terms = set(query_tokens)
        total = sum(self.idf.get(t, self.max_idf) for t in terms)
        covered = np.zeros(len(self.passages), np.float32)
        for term in terms & self.postings.keys():
            covered[self.postings[term][0]] += self.idf[term]
        return covered / total if total > 0 else covered

    def search(self, query: str, k: int = 5, sources: tuple[str, ...] | None = None, mode: Mode = "hybrid",
               fusion: Fusion = "sum", cutoff: bool = True) -> list[Hit]:
        """Up to ``k`` diseases for ``query``, best first (see the module docstring)."""
        sources = self.sources if sources is None else sources
        mask = np.zeros(len(self.passages), bool)
        for source in sources:
            mask[slice(*self.spans[source])] = True
        if mode != "bm25" and not self.faiss_indexes:
            mode = "bm25"  # no embedding model in this process: lexical only
        size = len(self.passages)
        dense, lexical, coverage = np.zeros(size, np.float32), np.zeros(size, np.float32), np.zeros(size, np.float32)
        dense_rank: list[int] = []
        lexical_rank: list[int] = []
        if mode != "bm25":
            qv = _embedder().encode([query])
            dense = self.vectors @ qv[0]
            for source in sources:
                ix = self.faiss_indexes[source]
                _, found = ix.search(qv, min(CANDIDATES, ix.ntotal))
                dense_rank += [int(i) + self.spans[source][0] for i in found[0] if i >= 0]
            dense_rank = sorted(dense_rank, key=lambda i: (-dense[i], i))[:CANDIDATES]
        if mode != "dense":
            qtok = bm25_tokens(query)
            raw = np.where(mask, self.bm25_scores(qtok), 0.0)
            if raw.max() > 0:
                lexical = (raw / raw.max()).astype(np.float32)  # normalised by the query's best passage
                coverage = self.coverage(qtok)
                lexical_rank = [int(i) for i in np.argsort(-lexical, kind="stable")[:CANDIDATES] if lexical[i] > 0]
        signal, floor = (coverage, "lexical") if mode == "bm25" else (dense, "dense")
        if not np.any(mask & (signal >= QUERY_FLOOR[floor])):
            return []  # nothing in the corpus resembles the query
        if mode == "dense":
            score, candidates = dense, dense_rank
        elif mode == "bm25":
            score, candidates = lexical, lexical_rank
        else:
            score, candidates = DENSE_WEIGHT * dense + (1 - DENSE_WEIGHT) * lexical, [*dense_rank, *lexical_rank]
        gate = signal >= PASSAGE_FLOOR[floor]
        candidates = list(dict.fromkeys(candidates))
        order = {i: float(score[i]) for i in candidates}
        if fusion == "rrf" and mode == "hybrid":
            order = dict.fromkeys(candidates, 0.0)
            for ranking in (dense_rank, lexical_rank):
                for r, i in enumerate(ranking):
                    order[i] += 1.0 / (RRF_K + r + 1)
        return self._grouped([i for i in candidates if gate[i]], order, score, k, cutoff)

    def _grouped(self, candidates: list[int], order: dict[int, float], score: np.ndarray, k: int,
                 cutoff: bool) -> list[Hit]:
        """One hit per disease group, ranked by its best passage; the relative cut-off trims the tail."""
        best: dict[str, list[int]] = {}
        for i in sorted(candidates, key=lambda i: (-order[i], i)):
            best.setdefault(self.groups[i], []).append(i)
        ranked = list(best.values())[:k]  # already in the order of each group's best passage
        if cutoff and ranked:
            kept = ranked[:1]
            for ids in ranked[1:]:
                if (score[ids[0]] < RELATIVE_CUTOFF * score[ranked[0][0]]
                        or score[ids[0]] < (1 - RELATIVE_DROP) * score[kept[-1][0]]):
                    break
                kept.append(ids)
            ranked = kept
        return [self._hit(ids[:PASSAGES_PER_HIT], score) for ids in ranked]

    def _hit(self, ids: list[int], absolute: np.ndarray) -> Hit:
        first = self.passages[ids[0]]
        meta = self.group_meta.get(self.groups[ids[0]]) or _Group(first.disease, first.icd10, first.disease_id)
        return Hit(disease=meta.disease, icd10=meta.icd10, disease_id=meta.disease_id, source=first.source,
                   score=round(float(absolute[ids[0]]), 4), text=first.text, passage_id=first.id,
                   passages=[HitPassage(id=self.passages[i].id, source=self.passages[i].source,
                                        text=self.passages[i].text, score=round(float(absolute[i]), 4))
                             for i in ids])


# ---------------------------------------------------------------- the public API

_INDEX: RetrievalIndex | None = None
_LOCK = threading.Lock()


def build_index(sources: tuple[str, ...] | list[str] | None = None, force: bool = False) -> IndexInfo:
    """Build (or load from the cache) the process-wide index over ``sources``; ``force`` rebuilds."""
    global _INDEX
    sources = _check_sources(default_sources() if sources is None else sources)
    started = time.perf_counter()
    with _LOCK:
        if _INDEX is not None and _INDEX.sources == sources and not force:
            return _INDEX.info.model_copy(update={"seconds": round(time.perf_counter() - started, 3),
                                                  "cache_hit": True})
        embedder = _embedder()
        dense = embedder.available
        passages: list[Passage] = []
        spans: dict[str, tuple[int, int]] = {}
        indexes: dict[str, Any] = {}
        hashes, hits = [], []
        for source in sources:
            folder = source_dir(source, embedder.name)
            loaded = None
            if not force and is_cached(source, embedder.name, dense):
                try:
                    loaded = load_source(folder, dense)
                except (OSError, ValueError, RuntimeError):
                    loaded = None  # a damaged cache entry is rebuilt
            hits.append(loaded is not None)
            part, index = loaded or build_source(source, folder, embedder)
            spans[source] = (len(passages), len(passages) + len(part))
            passages += part
            if index is not None:
                indexes[source] = index
            hashes.append(folder.name)
        info = IndexInfo(
            passages=len(passages), sources=list(sources), per_source={s: b - a for s, (a, b) in spans.items()},
            corpus_hash=hashlib.sha256("|".join(hashes).encode()).hexdigest()[:20], cache_path=str(cache_root()),
            model=embedder.name, dense=dense, seconds=0.0, cache_hit=all(hits))
        index = RetrievalIndex(passages, sources, spans, indexes, info)
        info.faiss_gpu = index.gpu is not None
        info.seconds = round(time.perf_counter() - started, 3)
        _INDEX = index
        return info


def reset_index() -> None:
    """Forget the process-wide index (the disk cache stays); the next search loads it again."""
    global _INDEX
    with _LOCK:
        _INDEX = None


def current_index() -> RetrievalIndex:
    """The process-wide index, built with the default sources on first use."""
    if _INDEX is None:
        build_index()
    assert _INDEX is not None
    return _INDEX


def search(query: str, k: int = 5, sources: tuple[str, ...] | list[str] | None = None, *,
           mode: Mode = "hybrid", fusion: Fusion = "sum", cutoff: bool = True) -> list[Hit]:
    """The ``k`` best diseases for ``query`` (fewer after the cut-off; none for nonsense).

    ``sources`` filters to some of the index's sources; a source the index lacks is loaded when it
    is already cached on disk, else it is an error (build it first: it can take minutes).
    ``mode``, ``fusion`` and ``cutoff`` exist for the benchmark; the defaults are the measured best.
    """
    if not query or not query.strip():
        raise ToolArgumentError("query must not be empty")
    if not 1 <= k <= 100:
        raise ToolArgumentError(f"k must be between 1 and 100, got {k}")
    index = current_index()
    if sources is not None:
        sources = _check_sources(sources)
        missing = [s for s in sources if s not in index.sources]
        if missing:
            model, dense = _embedder().name, _embedder().available
            if not all(is_cached(s, model, dense) for s in missing):
                raise ToolArgumentError(
                    f"source(s) {missing} not in the index; build them first with "
                    f"build_index(sources={list(dict.fromkeys([*index.sources, *missing]))}) "
                    "or `agentclinic kb build`")
            build_index(tuple(dict.fromkeys([*index.sources, *missing])))
            index = current_index()
    return index.search(query.strip(), k, sources, mode=mode, fusion=fusion, cutoff=cutoff)


# ---------------------------------------------------------------- the tool


MAX_QUERY = 2000  # characters of a query (a tool argument): longer ones are invalid arguments


class RetrieveArguments(ToolArguments):
    """Arguments of ``retrieve``."""

    query: str = Field(max_length=MAX_QUERY, description=(
        "what to look up: symptoms, signs, test results or a disease name, in plain words (e.g. 'fever, neck "
        f"stiffness and a purpuric rash'); at most {MAX_QUERY} characters"))
    k: int = Field(5, ge=1, le=20, description="the most diseases to return (fewer when the rest score poorly)")
    sources: list[Literal["kb", "icd10", "hpo"]] | None = Field(
        None, description="only these sources: 'kb' (the disease knowledge base), 'icd10' (ICD-10-CM titles), "
                          "'hpo' (rare diseases with their HPO phenotypes, when built); default: every built source")

    @field_validator("query")
    @classmethod
    def _non_empty(cls, query: str) -> str:
        if not query.strip():
            raise ValueError("query must not be empty")
        return query.strip()

    @field_validator("sources")
    @classmethod
    def _some(cls, sources: list[str] | None) -> list[str] | None:
        if sources is not None and not sources:
            raise ValueError("sources, when given, must name at least one source")
        return sources


class RetrieveTool:
    """Look up diseases matching a clinical description in the knowledge base and ICD-10-CM."""

    name: ClassVar[str] = "retrieve"
    description: ClassVar[str] = (
        "Search the medical knowledge base for diseases that match a description (symptoms, signs, test "
        "results). Returns a short ranked list of diseases with ICD-10-CM codes, scores and the best "
        "matching passage; an empty list means nothing matched well.")
    Arguments: ClassVar[type[ToolArguments]] = RetrieveArguments

    def run(self, arguments: RetrieveArguments, context: ToolContext) -> ToolResult:  # CPU-bound: in a thread
        hits = search(arguments.query, arguments.k, arguments.sources)
        if not hits:
            return ToolResult(text=f"No disease matched {arguments.query!r} well enough.", data={"hits": []})
        lines = [f"{n}. {h.disease}{f' ({h.icd10})' if h.icd10 else ''}, score {h.score:.2f} [{h.source}]: "
                 f"{_snippet(h.text)}" for n, h in enumerate(hits, 1)]
        return ToolResult(text="\n".join(lines), data={"hits": [h.model_dump() for h in hits]})


def _snippet(text: str) -> str:
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rsplit(" ", 1)[0] + "…"


register_tool(RetrieveTool())

__all__ = ["Hit", "HitPassage", "IndexInfo", "RetrieveArguments", "RetrieveTool", "build_index", "cache_root",
           "current_index", "reset_index", "search"]
