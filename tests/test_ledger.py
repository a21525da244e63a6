from agentclinic.env.ledger import Budget, Ledger


def test_default_budget_is_agentclinic_twenty_turns():
    assert Budget().turns == 20 and Budget().tests is None


def test_charges_and_budgets():
    ledger = Ledger(budget=Budget(turns=5, tests=2, money=50))
    ledger.turns = 1
    assert ledger.over_budget_if(tests=1, money=30) is None
    ledger.charge_test("CBC", 30)
    assert ledger.over_budget_if(tests=1, money=25) == "money"
    ledger.charge_test("ESR", 20)
    assert ledger.over_budget_if(tests=1) == "tests"
    assert ledger.snapshot() == {"turns": 1, "tests": 2, "tool_calls": 0, "cost": 50.0}
    assert [c.item for c in ledger.charges] == ["CBC", "ESR"] and ledger.turns_left == 4
    ledger.charge_tool("retrieve")
    assert Ledger(budget=Budget(tool_calls=1), tool_calls=1).over_budget_if(tool_calls=1) == "tool_calls"
