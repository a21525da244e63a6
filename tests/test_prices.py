from agentclinic.scenario import LabTest, PriceTable, price_table
from agentclinic.scenario.prices import DEFAULT_TABLE


def test_default_table_is_versioned_and_dated():
    table = price_table()
    assert table.version == "us-2024.1" and table.currency == "USD" and table.source_year == 2024
    assert len(table.codes) >= 50


def test_price_by_code_then_group_then_default():
    table = price_table()
    by_code = LabTest(name="FBC", group="Blood tests", result="normal", price_code="cbc")
    by_group = LabTest(name="Odd assay", group="Blood Tests", result="normal")
    unknown = LabTest(name="Odd assay", group="Séance", result="normal")
    assert table.price(by_code) == table.codes["cbc"].price
    assert table.price(by_group) == table.groups["blood tests"]
    assert table.price(unknown) == table.default == 30


def test_another_table_can_be_loaded(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(DEFAULT_TABLE.read_text().replace("default: 30", "default: 99"))
    assert PriceTable.load(path).default == 99
