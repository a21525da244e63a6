"""The scenario bank meets the bar set for it: size, breadth, structure and clean gates."""

import re
from collections import Counter

import pytest
import simple_icd_10_cm as icd

from agentclinic.knowledge import knowledge_base
from agentclinic.scenario import load_scenarios, price_table
from agentclinic.scenario.assets import check_asset, resolve_asset
from agentclinic.scenario.loaders import BANK_DIR
from agentclinic.scenario.quality import normalise, validate_paths

BANK = [s for s in load_scenarios(BANK_DIR) if s.kind == "diagnostic"]  # stations: tests/test_stations.py


def test_bank_size_and_breadth():
    assert len(BANK) >= 150
    specialties = Counter(s.specialty for s in BANK)
    assert len(specialties) >= 20, specialties
    difficulty = Counter(s.difficulty for s in BANK)
    assert difficulty["hard"] >= 40 and difficulty["easy"] >= 1, difficulty
    assert sum(bool(s.images) for s in BANK) >= 25


def test_bank_passes_every_gate_without_a_warning():
    _, report = validate_paths([BANK_DIR])
    assert report.errors == [], "\n".join(map(str, report.errors))
    assert report.warnings == [], "\n".join(map(str, report.warnings))


def test_files_sit_in_their_specialty_folder():
    for s in BANK:
        path = s._source.path
        assert path.parent.name == s.specialty and s.id == f"{s.specialty}-{path.stem}", path


@pytest.mark.parametrize("scenario", BANK, ids=[s.id for s in BANK])
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


# -- Multimodal cases (scenarios/README.md, "Multimodal cases") ------------------------------------

MULTIMODAL = [s for s in BANK if s.images]
TOOLS = {"segment", "check_report", "retrieve"}
PLANTED = re.compile(r"Planted report error in '([^']+)' \((laterality|measurement|negation|added-finding|omission)\)")


def _base(s):
    return s._source.path.parent


def planted_errors(s):
    """(test, kind) for each planted report error the case declares in its provenance notes."""
    return [(next(t for t in s.tests if t.name == name), kind)
            for name, kind in PLANTED.findall(" ".join((s.provenance.notes or "").split()))]


def _sections(report):
    findings, _, impression = report.partition("IMPRESSION:")
    return findings.removeprefix("FINDINGS:"), impression


def _pixels(path):
    if path.suffix.lower() == ".dcm":
        import pydicom

        return pydicom.dcmread(path).pixel_array
    from skimage import io

    return io.imread(path)


def test_multimodal_cases_are_many_and_varied():
    assert len(MULTIMODAL) >= 12
    modalities = {i.modality.split()[0].upper() for s in MULTIMODAL for i in s.images}
    assert {"CT", "MR", "US"} <= modalities and len(modalities) >= 6, modalities
    assert sum(bool(i.mask) for s in MULTIMODAL for i in s.images) >= 3  # the phantoms
    assert sum(any(t.harmful for t in s.tests) for s in MULTIMODAL) >= 3
    assert sum(bool(planted_errors(s)) for s in MULTIMODAL) >= 3


@pytest.mark.parametrize("scenario", MULTIMODAL, ids=[s.id for s in MULTIMODAL])
def test_multimodal_case_images_load(scenario):
    s = scenario
    for image in s.images:
        assert check_asset(image.asset, _base(s)) is None, image.asset
        assert image.description and len(image.description) >= 80, image.id
        pixels = _pixels(resolve_asset(image.asset, _base(s)))
        assert min(pixels.shape[:2]) >= 32, (image.id, pixels.shape)
        if "assets/" in image.asset:  # a generated phantom: its ground-truth mask comes with it
            assert image.mask and check_asset(image.mask, _base(s)) is None, image.id
        if image.mask:
            mask = _pixels(resolve_asset(image.mask, _base(s)))
            assert mask.shape[:2] == pixels.shape[:2] and 0 < (mask > 0).sum() < mask.size, image.id


@pytest.mark.parametrize("scenario", MULTIMODAL, ids=[s.id for s in MULTIMODAL])
def test_multimodal_case_tools_and_safety(scenario):
    s = scenario
    assert s.relevant_tools and set(s.relevant_tools) <= TOOLS, s.relevant_tools
    if any(i.mask for i in s.images):
        assert "segment" in s.relevant_tools
    if planted_errors(s):
        assert "check_report" in s.relevant_tools
    for test in s.tests:
        if test.harmful:
            assert not test.relevant and len(test.harmful) >= 40, test.name
    # the scripted doctor has a fair chance: the diagnosis is in the knowledge base
    names = {normalise(n) for n in s.diagnosis.names()}
    assert any(names & {normalise(n) for n in (d.name, *d.aliases)} for d in knowledge_base()), s.diagnosis.name


@pytest.mark.parametrize("scenario", [s for s in MULTIMODAL if planted_errors(s)],
                         ids=[s.id for s in MULTIMODAL if planted_errors(s)])
def test_planted_report_errors_are_real(scenario):
    for test, kind in planted_errors(scenario):
        assert test.group == "Imaging" and test.result.startswith("FINDINGS:") and "IMPRESSION:" in test.result
        findings, impression = (x.lower() for x in _sections(test.result))
        if kind == "laterality":  # the lesion's side in the findings, the other side in the impression
            first = re.search(r"\b(left|right)\b", findings).group(1)
            assert set(re.findall(r"\b(left|right)\b", impression)) == {"right" if first == "left" else "left"}
        elif kind == "measurement":
            assert set(re.findall(r"(\d+(?:\.\d+)?) mm", impression)) - set(re.findall(r"(\d+(?:\.\d+)?) mm", findings))
        elif kind == "negation":
            assert re.search(r"\bno\b", impression)
        elif kind == "added-finding":  # the impression puts the finding where the findings call it normal
            assert any(site in impression and re.search(rf"{site}[^.]*\b(normal|no)\b", findings)
                       for site in ("descending", "ascending", "left", "right", "upper", "lower"))


def test_planted_report_errors_are_caught_by_the_rule_checker_where_it_can():
    """The rule checker finds the laterality, measurement and negation errors planted in the bank."""
    from agentclinic.tools.report_check import check_rules

    kinds = {"laterality": "laterality_swap", "measurement": "measurement_change", "negation": "negation_flip"}
    for s in MULTIMODAL:
        for test, kind in planted_errors(s):
            if kind in kinds:
                found = {e.type.value for e in check_rules(test.result)}
                assert kinds[kind] in found, (s.id, test.name, found)
