"""Rubrics as data: ``rubrics/<id>.yaml`` (SPIKES, NURSE, Calgary-Cambridge), read and validated here.

An item says what counts (``what``) and how the rule grader recognises it: any of ``moves`` (``need`` distinct
ones for "met"), ``when`` they must come (``before-news``: before the first essential information;
``after-news``; ``early``: in the first three turns), whether they count only in response to an emotion
or cue (``responsive``), and ``check: information`` for items about getting the information across.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError

from agentclinic.errors import ScenarioError
from agentclinic.scenario.schema import MoveId, Slug, Strict, Text


class RubricItem(Strict):
    id: Slug
    title: Text
    what: Text
    moves: list[MoveId] = Field(min_length=1)
    need: Annotated[int, Field(ge=1, le=5)] = 1
    when: Literal["any", "before-news", "after-news", "early"] = "any"
    responsive: bool = False
    check: Literal["none", "information"] = "none"
    advice: Text


class Rubric(Strict):
    id: Slug
    title: Text
    items: list[RubricItem] = Field(min_length=1)


def rubric_ids() -> list[str]:
    """The rubrics shipped with the package."""
    folder = resources.files("agentclinic.conversation") / "rubrics"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


@lru_cache(maxsize=None)
def rubric(rubric_id: str) -> Rubric:
    """A shipped rubric by id; a ``ScenarioError`` naming the file for an unknown id or a bad file."""
    known = rubric_ids()
    if rubric_id not in known:
        raise ScenarioError(f"unknown rubric {rubric_id!r}; the rubrics are: {', '.join(known)}", field="rubric")
    path = resources.files("agentclinic.conversation") / "rubrics" / f"{rubric_id}.yaml"
    try:
        return Rubric.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ScenarioError(f"rubric file {path}: {exc}", path=str(path)) from exc
