"""The scenario bank meets the bar set for it: size, breadth, structure and clean gates."""

from collections import Counter

import pytest
import simple_icd_10_cm as icd

from agentclinic.scenario import load_scenarios, price_table
from agentclinic.scenario.loaders import BANK_DIR
from agentclinic.scenario.quality import validate_paths

BANK = load_scenarios(BANK_DIR)


def test_bank_size_and_breadth():
    assert len(BANK) >= 40
    specialties = Counter(s.specialty for s in BANK)
    assert len(specialties) >= 10, specialties
    assert {"easy", "hard"} <= {s.difficulty for s in BANK}


def test_bank_passes_every_gate():
    _, report = validate_paths([BANK_DIR])
    assert report.errors == [], "\n".join(map(str, report.errors))


def test_files_sit_in_their_specialty_folder():
    for s in BANK:
        path = s._source.path
        assert path.parent.name == s.specialty and s.id == f"{s.specialty}-{path.stem}", path


@pytest.mark.parametrize("scenario", BANK.scenarios, ids=BANK.ids())
def test_each_case_is_complete(scenario):
    s = scenario
    assert s.provenance.synthetic and s.provenance.source == "synthetic"
    assert len(s.facts) >= 8 and sum(f.important for f in s.facts) >= 3
    assert any(f.disclosure.value == "volunteer" for f in s.facts)
    assert any(f.disclosure.value == "on-ask" for f in s.facts)
    assert s.examination
    assert len(s.tests) >= 4
    assert all(t.price_code in price_table().codes for t in s.tests)
    assert any(t.relevant for t in s.tests) and not all(t.relevant for t in s.tests)
    assert s.diagnosis.aliases and icd.is_valid_item(s.diagnosis.icd10)
    assert len(s.differential) >= 3
