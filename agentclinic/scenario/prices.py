"""The versioned price table that turns ordered tests into money."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import Field

from agentclinic.errors import ScenarioError
from agentclinic.scenario.schema import LabTest, Strict

DEFAULT_TABLE = Path(__file__).with_name("prices-us-2024.yaml")


class PriceEntry(Strict):
    name: str
    price: float = Field(ge=0)


class PriceTable(Strict):
    """Prices by code, then by test group, then a default (all in ``currency``)."""

    version: str
    currency: str
    source_year: int
    source: str
    default: float = Field(ge=0)
    groups: dict[str, float]
    codes: dict[str, PriceEntry]

    def price(self, test: LabTest) -> float:
        """The price of ordering ``test``: by its code, else its group, else the default."""
        return self.price_of(test.price_code, test.group)

    def price_of(self, code: str | None, group: str | None) -> float:
        if code in self.codes:
            return self.codes[code].price
        return self.groups.get((group or "").lower(), self.default)

    @classmethod
    def load(cls, path: str | Path) -> PriceTable:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            table = cls.model_validate(data)
        except (OSError, yaml.YAMLError, ValueError) as exc:
            raise ScenarioError(f"cannot read price table: {exc}", path=path) from exc
        table.groups = {k.lower(): v for k, v in table.groups.items()}
        return table


@lru_cache(maxsize=8)
def price_table(path: str | None = None) -> PriceTable:
    """The price table at ``path``, or the default one (cached)."""
    return PriceTable.load(path or DEFAULT_TABLE)
