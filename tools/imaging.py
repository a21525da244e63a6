"""Reading medical and ordinary images into a float array with metadata, and CT windowing.

``display_image`` is the one conversion of an image file for display, used by every consumer (the
HTML report, the images a vision doctor is shown, the segmentation tool's overlays go through
``load_image`` and ``display_grey`` too).

DICOM goes through pydicom (modality LUT / rescale to Hounsfield units for CT, pixel spacing in mm,
middle frame of a multi-frame object, colour to grey); PNG, JPEG, TIFF and BMP through Pillow (no
physical spacing). Also: CT windowing and display, mask overlays, PNG writing, ground-truth masks
and the Dice overlap. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentclinic.tools.base import ToolError

# Display windows for CT, as (centre, width) in HU.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "soft-tissue": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ".ima"}
LUMINANCE = np.array([0.2125, 0.7154, 0.0721])  # ITU-R BT.709 weights, as scikit-image's rgb2gray


@dataclass
class LoadedImage:
    """A 2-D greyscale image as float64 plus what is known about it."""

    pixels: np.ndarray  # (rows, columns) float64; Hounsfield units for CT
    path: str
    format: str  # "dicom", "png", "jpeg", "tiff", ...
    modality: str | None = None  # DICOM Modality ("CT", "MR", ...) when known
    spacing_mm: tuple[float, float] | None = None  # (row, column) spacing in mm
    units: str = "intensity"  # "HU" for CT with a rescale, otherwise stored values
    window: tuple[float, float] | None = None  # default display window from the file (centre, width)
    rgb: np.ndarray | None = None  # original colour (uint8, rows x columns x 3) for display
    info: dict[str, Any] = field(default_factory=dict)  # frames, frame used, spacing source, ...

    @property
    def is_ct(self) -> bool:
        return self.units == "HU"

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape  # type: ignore[return-value]


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def load_image(path: str | Path) -> LoadedImage:
    """Read a DICOM, PNG, JPEG or TIFF file; raises ``ToolError`` naming the file when it cannot."""
    path = Path(path)
    if not path.is_file():
        raise ToolError(f"image file not found: {path}")
    if _is_dicom(path):
        return _load_dicom(path)
    try:
        return _load_pillow(path)
    except ToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types; try DICOM without a preamble
        try:
            return _load_dicom(path)
        except ToolError:
            raise ToolError(f"cannot read image {path.name}: not a DICOM, PNG, JPEG or TIFF file ({exc})") from exc


def _load_dicom(path: Path) -> LoadedImage:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, force=path.suffix.lower() in DICOM_SUFFIXES)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise ToolError(f"cannot read DICOM file {path.name}: {exc}") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ToolError(f"DICOM file {path.name} has no pixel data")
    try:
        array = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - missing codec plugins, truncated data, ...
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise ToolError(f"cannot decode the pixels of DICOM file {path.name} "
                        f"(transfer syntax {getattr(syntax, 'name', syntax)}): {exc}") from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    info: dict[str, Any] = {"frames": frames, "rows": int(ds.Rows), "columns": int(ds.Columns)}
    if frames > 1:
        info["frame_used"] = frames // 2
        array = array[frames // 2]
    rgb = None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    info["photometric"] = photometric
    if photometric == "PALETTE COLOR":  # indexes into the file's colour table
        from pydicom.pixels import apply_color_lut

        array = apply_color_lut(np.asarray(array), ds)
        if array.dtype != np.uint8:  # 16-bit table entries
            array = np.rint(array / 257.0).astype(np.uint8)
        samples = 3
    if samples > 1:  # pydicom 3 already returns YBR data converted to RGB
        top = float(2 ** int(ds.get("BitsStored", 8)) - 1)
        rgb = _to_uint8_rgb(np.asarray(array), top)
        pixels = np.asarray(array, dtype=np.float64)[..., :3] @ LUMINANCE  # in the stored units
        return LoadedImage(pixels, str(path), "dicom", str(ds.get("Modality", "")) or None,
                           _dicom_spacing(ds, info), "intensity", None, rgb, info)
    pixels = np.asarray(array, dtype=np.float64)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is None and intercept is None and "SharedFunctionalGroupsSequence" in ds:
        transform = getattr(ds.SharedFunctionalGroupsSequence[0], "PixelValueTransformationSequence", None)
        if transform:
            slope, intercept = transform[0].get("RescaleSlope"), transform[0].get("RescaleIntercept")
    modality = str(ds.get("Modality", "")) or None
    units = "intensity"
    if slope is not None or intercept is not None:
        pixels = pixels * float(slope if slope is not None else 1.0) + float(intercept or 0.0)
        if modality == "CT" and str(ds.get("RescaleType", "HU")).upper() in {"HU", ""}:
            units = "HU"
    elif "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        pixels = np.asarray(apply_modality_lut(np.asarray(array), ds), dtype=np.float64)
    window = _dicom_window(ds)
    if photometric == "MONOCHROME1" and units != "HU":
        top = pixels.max() + pixels.min()
        pixels = top - pixels  # show low values dark, like MONOCHROME2
        if window is not None:  # the VOI window, mirrored with the values: it shows the same tissue
            window = (top - window[0], window[1])
        info["inverted"] = True
    return LoadedImage(pixels, str(path), "dicom", modality, _dicom_spacing(ds, info), units, window, None, info)


def _dicom_spacing(ds: Any, info: dict) -> tuple[float, float] | None:
    spacing = ds.get("PixelSpacing")
    source = "PixelSpacing"
    if spacing is None and "SharedFunctionalGroupsSequence" in ds:
        measures = getattr(ds.SharedFunctionalGroupsSequence[0], "PixelMeasuresSequence", None)
        spacing = measures[0].get("PixelSpacing") if measures else None
    if spacing is None:
        spacing, source = ds.get("ImagerPixelSpacing"), "ImagerPixelSpacing (at the detector)"
    if spacing is None or len(spacing) != 2:
        return None
    row, column = float(spacing[0]), float(spacing[1])
    if row <= 0 or column <= 0:
        return None
    info["spacing_source"] = source
    return row, column


def _dicom_window(ds: Any) -> tuple[float, float] | None:
    from pydicom.multival import MultiValue

    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre is None or width is None:
        return None
    try:
        centre = float(centre[0] if isinstance(centre, MultiValue) else centre)
        width = float(width[0] if isinstance(width, MultiValue) else width)
    except (TypeError, ValueError, IndexError):
        return None
    return (centre, width) if width > 0 else None


def _to_uint8_rgb(array: np.ndarray, top: float) -> np.ndarray:
    array = np.asarray(array)[..., :3]
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array / top * 255.0), 0, 255).astype(np.uint8)
    return array


def _load_pillow(path: Path) -> LoadedImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            fmt = (image.format or path.suffix.lstrip(".")).lower()
            frames = getattr(image, "n_frames", 1)
            if frames > 1:  # a multi-page TIFF or animation: the middle page
                image.seek(frames // 2)
            mode = image.mode
            image.load()
            if mode in {"RGB", "RGBA", "P", "LA", "CMYK", "YCbCr", "PA"}:
                rgb = np.asarray(image.convert("RGB"))
                from skimage.color import rgb2gray

                pixels = rgb2gray(rgb) * 255.0
                is_grey = bool(np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2]))
                return LoadedImage(np.asarray(pixels, np.float64), str(path), fmt, rgb=None if is_grey else rgb,
                                   info={"frames": frames, "mode": mode})
            pixels = np.asarray(image, dtype=np.float64)
    except UnidentifiedImageError as exc:
        raise ValueError(str(exc)) from exc
    except OSError as exc:
        raise ToolError(f"cannot read image {path.name}: {exc}") from exc
    if pixels.ndim != 2:
        raise ToolError(f"image {path.name} is not a 2-D image (shape {pixels.shape})")
    return LoadedImage(pixels, str(path), fmt, info={"frames": frames, "mode": mode})


def resolve_window(window: str | tuple[float, float] | list[float] | None) -> tuple[float, float] | None:
    """A window preset name or (centre, width) pair as (centre, width); ``ToolError`` if unknown."""
    if window is None:
        return None
    if isinstance(window, str):
        key = window.strip().lower().replace("_", "-").replace(" ", "-")
        key = {"soft": "soft-tissue", "softtissue": "soft-tissue", "mediastinum": "soft-tissue",
               "abdomen": "soft-tissue"}.get(key, key)
        if key not in WINDOW_PRESETS:
            raise ToolError(f"unknown CT window {window!r}; presets: {', '.join(WINDOW_PRESETS)}")
        return WINDOW_PRESETS[key]
    centre, width = (float(v) for v in window)
    if width <= 0:
        raise ToolError(f"CT window width must be positive, got {width}")
    return centre, width


def apply_window(hu: np.ndarray, window: str | tuple[float, float]) -> np.ndarray:
    """Map HU to uint8 for display: values below centre - width/2 are black, above centre + width/2 white."""
    centre, width = resolve_window(window)  # type: ignore[misc]
    low = centre - width / 2.0
    scaled = (np.asarray(hu, dtype=np.float64) - low) / width * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def auto_window(level_hu: float) -> str:
    """A display preset for a structure of mean HU ``level_hu``: lung, bone or soft tissue."""
    if level_hu < -300:
        return "lung"
    if level_hu > 250:
        return "bone"
    return "soft-tissue"


def display_grey(image: LoadedImage, window: tuple[float, float] | None = None) -> np.ndarray:
    """The image as uint8 grey for display: CT through a window, others by their 0.5-99.5 % range."""
    if window is not None:
        return apply_window(image.pixels, window)
    pixels = image.pixels
    if pixels.dtype == np.float64 and image.format in {"png", "jpeg", "jpg", "bmp"} and pixels.max() <= 255 \
            and pixels.min() >= 0:
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    low, high = np.percentile(pixels, [0.5, 99.5])
    if high <= low:
        high = low + 1.0
    return np.clip((pixels - low) / (high - low) * 255.0, 0, 255).astype(np.uint8)


def display_image(path: str | Path) -> np.ndarray:
    """A file as it is shown to a person or a vision model (the report, the doctor's images): uint8
    RGB for colour images, else uint8 grey through the file's VOI window (DICOM; MONOCHROME1 already
    inverted by ``load_image``), or by its 0.5-99.5 % range without one. ``ToolError`` when unreadable."""
    image = load_image(path)
    if image.rgb is not None:
        return image.rgb
    return display_grey(image, image.window)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def overlay(grey: np.ndarray, mask: np.ndarray, rgb: np.ndarray | None = None,
            box: tuple[int, int, int, int] | None = None, point: tuple[int, int] | None = None) -> np.ndarray:
    """The image in colour with the mask tinted and outlined (yellow), the box (cyan) and point (magenta)."""
    from skimage.segmentation import find_boundaries

    base = (rgb if rgb is not None else np.repeat(grey[..., None], 3, axis=2)).astype(np.uint8, copy=True)
    tinted = 0.65 * base[mask] + 0.35 * np.array([255.0, 60.0, 60.0])
    base[mask] = np.clip(np.rint(tinted), 0, 255).astype(np.uint8)
    rows_in, cols_in = np.nonzero(mask)
    if rows_in.size:  # outline, computed in a window around the mask
        r0, r1 = max(0, rows_in.min() - 1), min(mask.shape[0], rows_in.max() + 2)
        c0, c1 = max(0, cols_in.min() - 1), min(mask.shape[1], cols_in.max() + 2)
        window = base[r0:r1, c0:c1]
        window[find_boundaries(mask[r0:r1, c0:c1], mode="inner")] = (255, 230, 0)
    rows, cols = mask.shape
    if box is not None:
        x0, y0, x1, y1 = box
        base[y0, x0:x1] = base[y1 - 1, x0:x1] = (0, 220, 255)
        base[y0:y1, x0] = base[y0:y1, x1 - 1] = (0, 220, 255)
    if point is not None:
        x, y = point
        base[max(0, y - 3):min(rows, y + 4), x] = (255, 0, 255)
        base[y, max(0, x - 3):min(cols, x + 4)] = (255, 0, 255)
    return base


def save_png(array: np.ndarray, path: Path) -> str:
    """Write a uint8 grey or RGB array as PNG (fast compression); returns the path."""
    from PIL import Image

    Image.fromarray(array).save(path, format="PNG", compress_level=1)
    return str(path)


def load_mask(path: str, shape: tuple[int, int]) -> np.ndarray | str:
    """A ground-truth mask as bool, or the reason it cannot be used."""
    from PIL import Image

    try:
        with Image.open(path) as handle:
            array = np.asarray(handle.convert("L"))
    except (OSError, ValueError) as exc:
        return f"cannot read ground-truth mask {Path(path).name}: {exc}"
    if array.shape != shape:
        return (f"ground-truth mask {Path(path).name} is {array.shape[1]}x{array.shape[0]}, "
                f"image is {shape[1]}x{shape[0]}")
    return array > 0
