"""The ledger: turns, tests, tool calls and money spent, each with an optional budget.

Going over any budget truncates the episode ("no diagnosis"); the turn budget defaults
to AgentClinic's 20. Test prices come from the versioned price table.
"""

from __future__ import annotations

from pydantic import Field

from agentclinic.scenario.schema import Strict


class Budget(Strict):
    """Limits for one episode; ``None`` means unlimited."""

    turns: int | None = Field(20, ge=1)
    tests: int | None = Field(None, ge=0)
    tool_calls: int | None = Field(None, ge=0)
    money: float | None = Field(None, ge=0)


class Charge(Strict):
    turn: int
    item: str
    kind: str  # "test" or "tool"
    price: float


class Ledger(Strict):
    """What one episode has used so far."""

    budget: Budget = Field(default_factory=Budget)
    price_table: str = ""
    turns: int = 0
    tests: int = 0
    tool_calls: int = 0
    cost: float = 0.0
    charges: list[Charge] = Field(default_factory=list)

    def over_budget_if(self, *, tests: int = 0, tool_calls: int = 0, money: float = 0.0) -> str | None:
        """The budget that this much more would exceed, or None."""
        b = self.budget
        if b.tests is not None and self.tests + tests > b.tests:
            return "tests"
        if b.tool_calls is not None and self.tool_calls + tool_calls > b.tool_calls:
            return "tool_calls"
        if b.money is not None and self.cost + money > b.money + 1e-9:
            return "money"
        return None

    def charge_test(self, name: str, price: float) -> None:
        self.tests += 1
        self.cost = round(self.cost + price, 2)
        self.charges.append(Charge(turn=self.turns, item=name, kind="test", price=price))

    def charge_tool(self, name: str) -> None:
        self.tool_calls += 1
        self.charges.append(Charge(turn=self.turns, item=name, kind="tool", price=0.0))

    @property
    def turns_left(self) -> int | None:
        return None if self.budget.turns is None else self.budget.turns - self.turns

    def snapshot(self) -> dict:
        return {"turns": self.turns, "tests": self.tests, "tool_calls": self.tool_calls, "cost": self.cost}
