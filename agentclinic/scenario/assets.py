"""Asset references: files shipped in packages, files beside the scenario, remote URLs.

``package:pydicom/data/test_files/CT_small.dcm`` names a file inside an installed
package (found with importlib, never copied); a plain path is relative to the scenario
file; ``https://...`` is remote and unavailable offline.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from agentclinic.errors import ScenarioError

# Leading bytes of the image formats scenarios use; DICOM has "DICM" after a 128-byte preamble.
MAGIC = {".png": (0, b"\x89PNG"), ".jpg": (0, b"\xff\xd8"), ".jpeg": (0, b"\xff\xd8"),
         ".gif": (0, b"GIF8"), ".dcm": (128, b"DICM"), ".tif": (0, (b"II*\x00", b"MM\x00*")),
         ".tiff": (0, (b"II*\x00", b"MM\x00*"))}


def is_remote(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def resolve_asset(ref: str, base: Path | None = None) -> Path:
    """The local path of an asset reference; raises ``ScenarioError`` for remote or unknown packages."""
    if is_remote(ref):
        raise ScenarioError(f"asset {ref!r} is remote and unavailable offline", code="remote-asset")
    if ref.startswith("package:"):
        package, _, inner = ref.removeprefix("package:").partition("/")
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not (spec.submodule_search_locations or spec.origin):
            raise ScenarioError(f"asset {ref!r}: package {package!r} is not installed", code="missing-asset")
        root = Path(next(iter(spec.submodule_search_locations))) if spec.submodule_search_locations \
            else Path(spec.origin).parent
        return root / inner
    path = Path(ref)
    return path if path.is_absolute() or base is None else base / path


def check_asset(ref: str, base: Path | None = None) -> str | None:
    """Why an asset cannot be used offline, or None when it is readable."""
    try:
        path = resolve_asset(ref, base)
    except ScenarioError as exc:
        return exc.message
    if not path.is_file():
        return f"asset {ref!r} not found at {path}"
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
    except OSError as exc:
        return f"asset {ref!r} cannot be read: {exc}"
    if not head:
        return f"asset {ref!r} is empty"
    offset, magic = MAGIC.get(path.suffix.lower(), (0, None))
    if magic is not None and not head[offset:].startswith(magic):
        return f"asset {ref!r} is not a valid {path.suffix.lstrip('.').upper()} file"
    return None
