"""The disease knowledge base: common diseases in our own words, as validated data.

Written for this project from general medical knowledge; never derived from the
scenario files. Used by the scripted doctor (ranking hypotheses) and the retrieval tool.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from agentclinic.errors import ScenarioError
from agentclinic.scenario.schema import Slug, Strict, Text, Condition

DISEASES_DIR = Path(__file__).with_name("diseases")


class TypicalTest(Strict):
    """A test and what it typically shows in the disease."""

    test: Text
    finding: Text


class Disease(Strict):
    """One disease: its code, presentation and the tests that confirm it."""

    id: Slug
    name: Text
    aliases: list[Text] = Field(default_factory=list)
    icd10: str
    specialty: Text
    summary: Text = Field(description="one or two sentences: what it is and who gets it")
    symptoms: list[Text] = Field(min_length=3)
    signs: list[Text] = Field(min_length=1)
    risk_factors: list[Text] = Field(default_factory=list)
    tests: list[TypicalTest] = Field(min_length=2)
    red_flags: list[Text] = Field(default_factory=list)

    def condition(self) -> Condition:
        return Condition(name=self.name, aliases=self.aliases, icd10=self.icd10)


class DiseaseFile(Strict):
    diseases: list[Disease]


def load_diseases(folder: str | Path = DISEASES_DIR) -> list[Disease]:
    """Every disease in the YAML files of ``folder``, in file order; errors name file and field."""
    diseases: list[Disease] = []
    for path in sorted(Path(folder).glob("*.yaml")):
        try:
            diseases += DiseaseFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))).diseases
        except (yaml.YAMLError, ValidationError) as exc:
            raise ScenarioError(f"invalid knowledge base file: {exc}", path=path) from exc
    ids = [d.id for d in diseases]
    if len(ids) != len(set(ids)):
        raise ScenarioError(f"duplicate disease ids: {sorted({i for i in ids if ids.count(i) > 1})}", path=folder)
    for disease in diseases:
        disease.icd10 = Condition(name=disease.name, icd10=disease.icd10).icd10
    return diseases


@lru_cache(maxsize=1)
def knowledge_base() -> tuple[Disease, ...]:
    """The project's disease knowledge base (cached)."""
    return tuple(load_diseases())
