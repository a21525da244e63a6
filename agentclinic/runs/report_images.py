"""Images for the HTML report: files on disk as capped base64 PNG/JPEG data URLs.

PNG and JPEG files are read with Pillow, DICOM files are rendered by the one display conversion
(``agentclinic.tools.imaging.display_image``); every image is shrunk to ``max_side`` pixels
and the page stops embedding once ``budget`` bytes of images are in it.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

MAX_SIDE = 480
BUDGET = 24 * 1024 * 1024


def png_data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
        return head[128:132] == b"DICM"
    except OSError:
        return False


def _dicom_image(path: Path):
    """A DICOM file as every consumer shows it (``agentclinic.tools.imaging.display_image``: modality LUT,
    the file's VOI window, MONOCHROME1 inverted, the middle frame of a multi-frame object)."""
    from PIL import Image

    from agentclinic.tools.imaging import display_image

    return Image.fromarray(display_image(path))


class ImageEmbedder:
    """Turns image paths into data URLs, once per path, within a byte budget for the page."""

    def __init__(self, base: Path | None = None, max_side: int = MAX_SIDE, budget: int = BUDGET):
        self.base = base
        self.max_side = max_side
        self.budget = budget
        self.used = 0
        self._cache: dict[str, tuple[str | None, str]] = {}

    def resolve(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        if not p.is_absolute() and self.base is not None and (self.base / p).exists():
            return self.base / p
        return p

    def embed(self, path: str | Path | None) -> tuple[str | None, str]:
        """``(data_url, note)``; the URL is None (and the note says why) when the image is not embedded."""
        if not path:
            return None, "no local file"
        resolved = self.resolve(path)
        key = str(resolved)
        if key not in self._cache:
            self._cache[key] = self._encode(resolved)
        return self._cache[key]

    def _encode(self, path: Path) -> tuple[str | None, str]:
        if not path.is_file():
            return None, f"missing file: {path}"
        if self.used >= self.budget:
            return None, f"not embedded (the page's image budget of {self.budget // 2**20} MiB is spent): {path}"
        try:
            from PIL import Image

            if _is_dicom(path):
                try:
                    image = _dicom_image(path)
                except ImportError:
                    return None, f"DICOM not rendered (pydicom is not installed): {path}"
                kind = "DICOM"
            else:
                image = Image.open(path)
                image.load()
                kind = image.format or path.suffix.lstrip(".").upper()
            image.thumbnail((self.max_side, self.max_side))
            if image.mode not in ("RGB", "RGBA", "L", "LA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            buffer = io.BytesIO()
            if kind in ("JPEG", "MPO") and image.mode in ("RGB", "L"):
                image.save(buffer, format="JPEG", quality=85)
                mime = "image/jpeg"
            else:
                image.save(buffer, format="PNG", optimize=True)
                mime = "image/png"
        except Exception as exc:  # noqa: BLE001 - any unreadable image becomes a note, not a failed report
            return None, f"could not read {path}: {type(exc).__name__}: {exc}"
        data = buffer.getvalue()
        self.used += len(data)
        return png_data_url(data, mime), f"{kind} {path.name}, {image.width}x{image.height} shown"


__all__ = ["ImageEmbedder", "png_data_url", "MAX_SIDE", "BUDGET"]
