from collections import Counter

import simple_icd_10_cm as icd

from agentclinic.knowledge import knowledge_base, load_diseases


def test_knowledge_base_is_broad_and_valid():
    diseases = knowledge_base()
    assert len(diseases) >= 150
    assert len(Counter(d.specialty for d in diseases)) >= 12
    for d in diseases:
        assert icd.is_valid_item(d.icd10), (d.id, d.icd10)
        assert len(d.symptoms) >= 3 and d.signs and len(d.tests) >= 2


def test_bad_file_is_named(tmp_path):
    (tmp_path / "x.yaml").write_text("diseases:\n  - id: a\n    name: A\n")
    try:
        load_diseases(tmp_path)
    except Exception as exc:  # noqa: BLE001
        assert "x.yaml" in str(exc) and "icd10" in str(exc)
    else:
        raise AssertionError("an incomplete disease must not load")
