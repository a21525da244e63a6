"""Speed settings of the Gymnasium environment: the embedder, torch's threads, and which axes to score.

* ``ClinicEnv(embedder="minilm" | "lexical")``: the scripted agents' text matching (None: the process's
  default, ``AGENTCLINIC_EMBEDDINGS``). Lexical matching needs no model and no torch; it changes
  disclosures and verdicts, and ``info["embedder"]`` says which ran.
* ``ClinicEnv(torch_threads=1)`` (the default): when the environment's agents embed with a model, torch's
  intra-op threads of the process that creates the environment are set to this number (None: leave
  them). The model embeds one short text per call; with torch's default (one thread per core) every call
  pays for waking and joining the threads, and processes of a vector env fight over the cores. A process
  that creates no environment, or one with lexical matching, is left alone.
* ``ClinicEnv(score_axes=("diagnosis", ...))``: the terminal reward from those axes only (the others are
  None in ``info["axes"]``, the record's scores say so, and ``agentclinic rescore`` completes them);
  without ``differential`` the differential is not judged. For training; evaluate with every axis.

The disk caches that spare each new process the warm-up (ICD-10-CM index, concept index, scenario fact
and knowledge-base embeddings) need no setting: ``agentclinic.agents.disk_cache``.
"""

from __future__ import annotations

from agentclinic.agents.embeddings import embedder_of, limit_torch_threads
from agentclinic.scoring.rewards import score_axes as checked_axes  # the axes to score, checked (None: all)

__all__ = ["checked_axes", "limit_threads"]


def limit_threads(clinic, threads: int | None) -> int | None:
    """Set torch's threads to ``threads`` when one of the clinic's agents embeds with a model; returns the
    count set (None when nothing was changed)."""
    if threads is None:
        return None
    agents = (clinic.patient, clinic.measurement, clinic.judge)
    if not any(e is not None and e.available for e in map(embedder_of, agents)):
        return None
    return limit_torch_threads(threads)
