"""Asset references: files shipped in packages, files beside the scenario, remote URLs.

``package:pydicom/data/test_files/CT_small.dcm`` names a file inside an installed package's
folder, located from the top-level name alone by the file-system finders (``sys.path`` entries, and
setuptools' editable installs), which import nothing; other import hooks are never asked, as one
may run code when asked (setuptools' distutils hack imports setuptools when asked for ``distutils``);
a plain path is relative to the scenario file; ``https://...`` is remote and unavailable offline.

Nothing outside the scenario is reachable: a local path must stay inside the scenario file's
folder tree and a package path inside the package's folder (symbolic links are followed before
the check; absolute paths are refused). An asset must be a PNG, JPEG, GIF, TIFF or DICOM file,
as its first bytes show, named with that format's suffix, and within the limits below, which
are read from the file's header without decoding the image.
"""

from __future__ import annotations

import sys
import warnings
from importlib.machinery import PathFinder
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
    if "\x00" in ref:
        raise ScenarioError(f"asset {ref!r} contains a NUL character, which no file name may hold", code="bad-asset")
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
    spec = None
    for finder in _file_finders():
        try:
            spec = finder.find_spec(name, None)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            break
    if spec is None:
        raise ScenarioError(f"asset {ref!r}: package {name!r} is not installed", code="bad-asset")
    if not spec.submodule_search_locations:
        raise ScenarioError(f"asset {ref!r}: {name!r} is a module, not a package with a folder", code="bad-asset")
    return [Path(p) for p in spec.submodule_search_locations]


def _file_finders() -> list:
    """The finders of ``sys.meta_path`` that only look on disk: importlib's own, and setuptools' editable ones."""
    return [PathFinder, *(f for f in sys.meta_path if getattr(f, "__module__", "").startswith("__editable__"))]


def _inside(roots: list[Path], inner: str, ref: str, where: str) -> Path:
    """``inner`` under the first of ``roots`` that holds it, refused if it leads outside that root."""
    if not inner or PurePosixPath(inner).is_absolute() or Path(inner).is_absolute():
        raise ScenarioError(f"asset {ref!r} is not a relative path inside {where}", code="bad-asset")
    candidates = []
    for root in roots:
        try:
            root = root.resolve()
            path = (root / inner).resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of symbolic links (Python < 3.13)
            raise ScenarioError(f"asset {ref!r} cannot be followed inside {where}: a loop of symbolic links or "
                                f"an unreadable folder ({exc})", code="bad-asset") from None
        if not path.is_relative_to(root):
            raise ScenarioError(f"asset {ref!r} leads outside {where} ({root})", code="bad-asset")
        candidates.append(path)
    return next((p for p in candidates if p.exists()), candidates[0])


def usable_asset(ref: str, base: Path | None = None) -> Path:
    """The local path of an asset that is a readable image within the limits; raises ``ScenarioError``
    saying why it cannot be used offline."""
    path = resolve_asset(ref, base)
    inspect_image(path, ref)
    return path


def check_asset(ref: str, base: Path | None = None) -> str | None:
    """Why an asset cannot be used offline, or None when it is a readable image within the limits."""
    try:
        usable_asset(ref, base)
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
            size = {key: int(header.get(key) or 0) for key in ("Rows", "Columns", "NumberOfFrames")}
        except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds of error on a malformed header
            raise ScenarioError(f"asset {ref!r} has an unreadable DICOM header: {exc}", code="bad-asset") from None
        least = {"Rows": 1, "Columns": 1, "NumberOfFrames": 0}  # NumberOfFrames 0: not given (one frame)
        if bad := [f"{key} {value}" for key, value in size.items() if value < least[key]]:
            raise ScenarioError(f"asset {ref!r} is not a DICOM image of a known size ({', '.join(bad)}; Rows and "
                                "Columns must be positive, NumberOfFrames at least 1 when given)", code="bad-asset")
        return size["Rows"] * size["Columns"] * max(size["NumberOfFrames"], 1)
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
