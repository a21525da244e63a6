"""Scenarios: the schema, the loaders (native and AgentClinic), quality gates and prices."""

from agentclinic.scenario.loaders import ScenarioSet, Source, load_scenarios, register_loader, source_of
from agentclinic.scenario.prices import PriceTable, price_table
from agentclinic.scenario.schema import (
    Condition,
    Disclosure,
    ExamFinding,
    Fact,
    FactCategory,
    Image,
    LabTest,
    Patient,
    Persona,
    Provenance,
    RedFlag,
    Scenario,
)

__all__ = [
    "Condition", "Disclosure", "ExamFinding", "Fact", "FactCategory", "Image", "LabTest", "Patient",
    "Persona", "PriceTable", "Provenance", "RedFlag", "Scenario", "ScenarioSet", "Source",
    "load_scenarios", "price_table", "register_loader", "source_of",
]
