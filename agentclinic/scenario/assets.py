"""Asset references: files shipped in packages, files beside the scenario, remote URLs.

``package:pydicom/data/test_files/CT_small.dcm`` names a file inside an installed package's
folder, located by importlib's finders from the top-level name alone, which imports nothing;
a plain path is relative to the scenario file; ``https://...`` is remote and unavailable offline.

Nothing outside the scenario is reachable: a local path must stay inside the scenario file's
folder tree and a package path inside the package's folder (symbolic links are followed before
the check; absolute paths are refused). An asset must be a PNG, JPEG, GIF, TIFF or DICOM file,
as its first bytes show, named with that format's suffix, and within the limits below, which
are read from the file's header without decoding the image.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path, PurePosixPath

from agentclinic.errors import ScenarioError

MAX_ASSET_BYTES = 100 * 2**20
"""Largest asset file, in bytes (100 MiB)."""
MAX_IMAGE_PIXELS = 50_000_000
"""Most pixels in one image: width x height (x frames for DICOM), read from the header."""

# (format, offset, leading bytes). DICOM ("DICM" after a 128-byte preamble) comes first: its preamble may
# itself be a TIFF header.
SIGNATURES = (("DICOM", 128, b"DICM"), ("PNG", 0, b"\x89PNG\r\n\x1a\n"), ("JPEG", 0, b"\xff\xd8\xff"),
              ("GIF", 0, b"GIF87a"), ("GIF", 0, b"GIF89a"), ("TIFF", 0, b"II*\x00"), ("TIFF", 0, b"MM\x00*"))
SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF", ".tif": "TIFF", ".tiff": "TIFF",
            ".dcm": "DICOM"}


def is_remote(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def resolve_asset(ref: str, base: Path | None = None) -> Path:
    """The local path of an asset reference, symbolic links resolved; raises ``ScenarioError`` for a
    remote reference, an unknown package, or a path that leads outside its scenario folder or package."""
    if is_remote(ref):
        raise ScenarioError(f"asset {ref!r} is remote and unavailable offline", code="remote-asset")
    if ref.startswith("package:"):
        name, _, inner = ref.removeprefix("package:").partition("/")
        return _inside(package_folders(name, ref), inner, ref, f"package {name!r}")
    if base is None:
        raise ScenarioError(f"asset {ref!r} is a local path, but the scenario was not read from a file to "
                            "which it could be relative", code="bad-asset")
    return _inside([base], ref, ref, "the scenario file's folder")


def package_folders(name: str, ref: str) -> list[Path]:
    """The folders of the installed top-level package ``name``, found without importing it."""
    if not name.isidentifier():
        raise ScenarioError(f"asset {ref!r}: {name!r} is not a top-level package name (write "
                            "package:<name>/<path inside the package>)", code="bad-asset")
    try:
        spec = importlib.util.find_spec(name)  # a top-level name: finders look on disk, nothing is imported
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ScenarioError(f"asset {ref!r}: package {name!r} is not installed", code="bad-asset")
    if not spec.submodule_search_locations:
        raise ScenarioError(f"asset {ref!r}: {name!r} is a module, not a package with a folder", code="bad-asset")
    return [Path(p) for p in spec.submodule_search_locations]


def _inside(roots: list[Path], inner: str, ref: str, where: str) -> Path:
    """``inner`` under the first of ``roots`` that holds it, refused if it leads outside that root."""
    if not inner or PurePosixPath(inner).is_absolute() or Path(inner).is_absolute():
        raise ScenarioError(f"asset {ref!r} is not a relative path inside {where}", code="bad-asset")
    candidates = []
    for root in roots:
        root = root.resolve()
        path = (root / inner).resolve()
        if not path.is_relative_to(root):
            raise ScenarioError(f"asset {ref!r} leads outside {where} ({root})", code="bad-asset")
        candidates.append(path)
    return next((p for p in candidates if p.exists()), candidates[0])


def check_asset(ref: str, base: Path | None = None) -> str | None:
    """Why an asset cannot be used offline, or None when it is a readable image within the limits."""
    try:
        inspect_image(resolve_asset(ref, base), ref)
    except ScenarioError as exc:
        return exc.message
    return None


def inspect_image(path: Path, ref: str) -> str:
    """The image format of the file at ``path`` (e.g. ``"PNG"``); raises ``ScenarioError`` if it is
    missing, unreadable, not an image, named with another format's suffix, or over the limits."""
    if not path.is_file():
        raise ScenarioError(f"asset {ref!r} not found at {path}", code="bad-asset")
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError as exc:
        raise ScenarioError(f"asset {ref!r} cannot be read: {exc}", code="bad-asset") from None
    if size > MAX_ASSET_BYTES:
        raise ScenarioError(f"asset {ref!r} is {size / 2**20:.1f} MiB, over the limit of "
                            f"{MAX_ASSET_BYTES // 2**20} MiB per asset (MAX_ASSET_BYTES)", code="bad-asset")
    kind = next((k for k, offset, magic in SIGNATURES if head[offset:offset + len(magic)] == magic), None)
    expected = SUFFIXES.get(path.suffix.lower())
    if kind is None or expected is None:
        what = f"a {kind} file" if kind else "not an image"
        raise ScenarioError(f"asset {ref!r} is {what}: assets must be PNG, JPEG, GIF, TIFF or DICOM files named "
                            f"{', '.join(SUFFIXES)}", code="bad-asset")
    if kind != expected:
        raise ScenarioError(f"asset {ref!r} is not a valid {expected} file (its content is {kind})", code="bad-asset")
    pixels = _pixels(path, kind, ref)
    if pixels is None or pixels > MAX_IMAGE_PIXELS:
        count = f"{pixels:,}" if pixels else "too many"
        raise ScenarioError(f"asset {ref!r} has {count} pixels, over the limit of {MAX_IMAGE_PIXELS:,} per "
                            "image (MAX_IMAGE_PIXELS)", code="bad-asset")
    return kind


def _pixels(path: Path, kind: str, ref: str) -> int | None:
    """Pixels in the image, from its header only (no pixel data is decoded); None when over Pillow's
    own limit, which is above ours."""
    if kind == "DICOM":
        import pydicom

        try:
            header = pydicom.dcmread(path, stop_before_pixels=True,
                                     specific_tags=["Rows", "Columns", "NumberOfFrames"])
            return int(header.get("Rows") or 0) * int(header.get("Columns") or 0) * int(
                header.get("NumberOfFrames") or 1)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds of error on a malformed header
            raise ScenarioError(f"asset {ref!r} has an unreadable DICOM header: {exc}", code="bad-asset") from None
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # lazy: reads the header, decodes nothing
                width, height = image.size
    except Image.DecompressionBombError:
        return None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ScenarioError(f"asset {ref!r} has an unreadable {kind} header: {exc}", code="bad-asset") from None
    return width * height
