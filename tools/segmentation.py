"""The ``segment`` tool: outline a finding on a case image and measure it.

Prompts: a box, a point, both, or neither (automatic mode). Methods: ``classical`` (the default;
thresholds and region growing, ``segment_classical``) and ``sam`` (a SAM / MedSAM checkpoint,
``segment_sam``; in automatic mode the classical detector proposes the box). A CT ``window``
clips the values before segmenting.

The result gives area (pixels, and mm^2 from the pixel spacing), mean intensity (HU for CT),
bounding box, centroid, equivalent and axis diameters; it writes the mask and an overlay PNG to
the context's output folder and, when the image has a ground-truth mask, adds the Dice score to
``data`` (never to the doctor's text).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from agentclinic.tools.base import ToolArgumentError, ToolArguments, ToolContext, ToolError, ToolResult
from agentclinic.tools.imaging import (LoadedImage, auto_window, dice, display_grey, load_image, load_mask, overlay,
                                       resolve_window, save_png)
from agentclinic.tools.registry import register_tool
from agentclinic.tools.segment_classical import (background_mask, detect, grow_from_point, noise_level, segment_box,
                                                 smooth)
from agentclinic.tools.segment_sam import load_sam, segment_sam


class SegmentArguments(ToolArguments):
    image_id: str = Field(max_length=200, description="Id of the case image to segment, as listed with the "
                                                      "case's images.")
    box: list[float] | None = Field(
        None, min_length=4, max_length=4,
        description="Box around the finding, [x0, y0, x1, y1] in pixels: x is the column and y the row, "
                    "counted from the top-left corner; x1 and y1 are exclusive, so the box needs x1 > x0, y1 > y0.")
    point: list[float] | None = Field(
        None, min_length=2, max_length=2,
        description="A pixel inside the finding, [x, y] (column, row from the top-left corner).")
    method: Literal["classical", "sam"] = Field(
        "classical", description="'classical' (thresholds and region growing, the default) or 'sam' "
                                 "(a SAM/MedSAM model, when one is installed).")
    window: Literal["lung", "soft-tissue", "bone", "brain"] | None = Field(
        None, description="CT window: values outside it are clipped before segmenting and it is used for "
                          "the overlay. Default: the file's window, else one chosen from the finding's HU.")
    tolerance: float | None = Field(
        None, gt=0, description="Point prompts, classical method: grow over pixels within this many "
                                "intensity units (HU for CT) of the seed. Default: adaptive half-way threshold.")


@dataclass
class Segmentation:
    """A mask and how it was obtained."""

    mask: np.ndarray
    mode: str  # "point", "box", "box+point", "automatic"
    method: str  # "classical" or "sam"
    details: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- measuring


def measure(mask: np.ndarray, image: LoadedImage) -> dict[str, Any]:
    """Area, intensity (over the mask and over its core, one pixel in), box, centroid and diameters."""
    from scipy import ndimage
    from skimage.measure import regionprops

    rows, cols = np.nonzero(mask)
    values = image.pixels[mask]
    area_px = int(mask.sum())
    out: dict[str, Any] = {
        "area_px": area_px,
        "bbox": [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1],
        "centroid": [round(float(cols.mean()), 2), round(float(rows.mean()), 2)],
        "mean_intensity": round(float(values.mean()), 2),
        "std_intensity": round(float(values.std()), 2),
        "min_intensity": round(float(values.min()), 2),
        "max_intensity": round(float(values.max()), 2),
        "units": image.units,
        "solidity": round(float(regionprops(mask.astype(np.uint8))[0].solidity), 3),
    }
    core = ndimage.binary_erosion(mask, iterations=1)  # away from the partial-volume edge
    if core.sum() >= 4:
        out["core_mean_intensity"] = round(float(image.pixels[core].mean()), 2)
    if image.is_ct:
        out["mean_hu"] = out["mean_intensity"]
        if "core_mean_intensity" in out:
            out["core_mean_hu"] = out["core_mean_intensity"]
    sy, sx = image.spacing_mm if image.spacing_mm else (1.0, 1.0)
    area = area_px * sy * sx
    coords = np.stack([cols * sx, rows * sy]).astype(np.float64)
    if area_px > 1:
        eigen = np.sort(np.linalg.eigvalsh(np.cov(coords)))[::-1]
        long_axis, short_axis = (4.0 * math.sqrt(max(e, 0.0) + (sx * sy) / 12.0) for e in eigen)
    else:
        long_axis = short_axis = math.sqrt(sx * sy)
    key = "mm" if image.spacing_mm else "px"
    if image.spacing_mm:
        out["area_mm2"] = round(area, 2)
    out[f"equivalent_diameter_{key}"] = round(2.0 * math.sqrt(area / math.pi), 2)
    out[f"long_axis_{key}"] = round(long_axis, 2)
    out[f"short_axis_{key}"] = round(short_axis, 2)
    return out


# ---------------------------------------------------------------- the tool


def _pixel_prompts(args: SegmentArguments, shape: tuple[int, int], image_id: str
                   ) -> tuple[tuple[int, int, int, int] | None, tuple[int, int] | None]:
    rows, cols = shape
    box = point = None
    if args.box is not None:
        x0, y0, x1, y1 = (int(math.floor(v + 0.5)) for v in args.box)
        if x1 <= x0 or y1 <= y0:
            raise ToolArgumentError(f"box {args.box} on {image_id!r} has zero area: it needs x1 > x0 and y1 > y0")
        if x0 < 0 or y0 < 0 or x1 > cols or y1 > rows:
            raise ToolArgumentError(f"box {args.box} is outside image {image_id!r}, which is {cols} x {rows} "
                                    f"pixels (x in 0..{cols}, y in 0..{rows})")
        if (x1 - x0) < 3 or (y1 - y0) < 3:
            raise ToolArgumentError(f"box {args.box} on {image_id!r} is too small: at least 3 x 3 pixels")
        box = (x0, y0, x1, y1)
    if args.point is not None:
        x, y = (int(math.floor(v)) for v in args.point)
        if not (0 <= x < cols and 0 <= y < rows):
            raise ToolArgumentError(f"point {args.point} is outside image {image_id!r}, which is {cols} x {rows} "
                                    f"pixels (x in 0..{cols - 1}, y in 0..{rows - 1})")
        if box is not None and not (box[0] <= x < box[2] and box[1] <= y < box[3]):
            raise ToolArgumentError(f"point {args.point} is outside the box {args.box}")
        point = (x, y)
    return box, point


def segment_image(image: LoadedImage, args: SegmentArguments, image_id: str) -> tuple[Segmentation, dict]:
    """Run the requested segmentation on a loaded image; returns it and the window used for display."""
    box, point = _pixel_prompts(args, image.shape, image_id)
    work = image.pixels
    window = resolve_window(args.window) if args.window else None
    if window is not None and image.is_ct:
        centre, width = window
        work = np.clip(work, centre - width / 2.0, centre + width / 2.0)
    smoothed = smooth(work)
    background = background_mask(image, work)
    patient = ~background
    noise_raw = noise_level(work, patient)
    noise_smooth = noise_level(smoothed, patient)
    mode = "box+point" if box and point else "box" if box else "point" if point else "automatic"
    details: dict[str, Any] = {}
    if mode == "automatic":
        best, count = detect(image, work, smoothed, noise_raw, noise_smooth, background, image_id)
        details = {"candidates": count, "score": round(best["score"], 2),
                   "contrast": round(best["contrast"], 2), "polarity": best["polarity"],
                   "seed": [best["seed"][1], best["seed"][0]]}
        if args.method == "classical":
            return Segmentation(best["mask"], mode, "classical", details), _display_window(image, args, best["mask"])
        rows, cols = np.nonzero(best["mask"])
        margin = max(3, int(0.1 * max(np.ptp(rows), np.ptp(cols))))
        box = (max(0, int(cols.min()) - margin), max(0, int(rows.min()) - margin),
               min(image.shape[1], int(cols.max()) + 1 + margin), min(image.shape[0], int(rows.max()) + 1 + margin))
        details["proposed_box"] = list(box)
    if args.method == "sam":
        shown = _display_window(image, args, None)
        grey = display_grey(image, shown["window"] if image.is_ct else image.window)  # as display_image shows it
        rgb = image.rgb if image.rgb is not None else np.repeat(grey[..., None], 3, axis=2)
        mask, sam_details = segment_sam(rgb, box, point)
        details |= sam_details
        if not mask.any():
            raise ToolError(f"the SAM model returned an empty mask for {image_id!r}; try another prompt")
        return Segmentation(mask, mode, "sam", details), _display_window(image, args, mask)
    if box is not None:
        mask, found = segment_box(smoothed, box, noise_smooth, None if point is None else (point[1], point[0]))
    else:
        assert point is not None
        mask, found = grow_from_point(smoothed, point[1], point[0], noise_smooth, args.tolerance)
    details |= {k: round(v, 2) if isinstance(v, float) else v for k, v in found.items()}
    if not mask.any():
        raise ToolError(f"no region found at the prompt on {image_id!r}")
    return Segmentation(mask, mode, "classical", details), _display_window(image, args, mask)


def _display_window(image: LoadedImage, args: SegmentArguments, mask: np.ndarray | None) -> dict:
    if not image.is_ct:
        return {"window": None, "source": None}
    if args.window:
        return {"window": resolve_window(args.window), "source": args.window}
    if image.window is not None:
        return {"window": image.window, "source": "file"}
    level = float(image.pixels[mask].mean()) if mask is not None and mask.any() else 40.0
    preset = auto_window(level)
    return {"window": resolve_window(preset), "source": preset}


def _numbers(values: list[float] | None) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values or []) + "]"


def _describe(image_id: str, image: LoadedImage, seg: Segmentation, m: dict, args: SegmentArguments) -> str:
    box, point = _numbers(args.box), _numbers(args.point)
    where = {"point": f"from the point {point}", "box": f"in the box {box}",
             "box+point": f"in the box {box} at the point {point}",
             "automatic": "found automatically (most lesion-like region)"}[seg.mode]
    modality = image.modality or image.format.upper()
    if image.spacing_mm:
        sy, sx = image.spacing_mm
        size = (f"area {m['area_mm2']:.1f} mm² ({m['area_px']} pixels at {sx:.3g} x {sy:.3g} mm), "
                f"equivalent diameter {m['equivalent_diameter_mm']:.1f} mm "
                f"(long axis {m['long_axis_mm']:.1f} mm, short axis {m['short_axis_mm']:.1f} mm)")
    else:
        size = (f"area {m['area_px']} pixels (pixels only: the image has no physical pixel spacing), "
                f"equivalent diameter {m['equivalent_diameter_px']:.1f} pixels")
    unit = " HU" if image.is_ct else ""
    core = f", core {m['core_mean_intensity']:.1f}{unit}" if "core_mean_intensity" in m else ""
    intensity = (f"mean {m['mean_intensity']:.1f}{unit} (sd {m['std_intensity']:.1f}, "
                 f"range {m['min_intensity']:.0f} to {m['max_intensity']:.0f}{unit}{core})")
    x0, y0, x1, y1 = m["bbox"]
    text = (f"Segmented {image_id} ({modality}, {seg.method} method) {where}: {size}; {intensity}; "
            f"bounding box [{x0}, {y0}, {x1}, {y1}], centroid ({m['centroid'][0]:.0f}, {m['centroid'][1]:.0f}).")
    if seg.details.get("low_contrast"):
        text += " The region hardly differs from its surroundings, so its edge is uncertain."
    if seg.method == "sam":
        text += f" SAM's predicted IoU: {seg.details.get('predicted_iou')}."
    return text


class SegmentTool:
    """Outline a finding on a case image (point, box or automatic) and measure it."""

    name: ClassVar[str] = "segment"
    description: ClassVar[str] = (
        "Segment a finding on one of the case's images and measure it: give a point inside the finding, "
        "a box around it, or neither to let the tool find the most lesion-like region. Returns the area "
        "(mm² when the image has a pixel spacing, e.g. DICOM), mean intensity (HU on CT), bounding box, "
        "centroid and diameters, and saves the mask and an overlay image.")
    Arguments: ClassVar[type[ToolArguments]] = SegmentArguments

    def run(self, arguments: SegmentArguments, context: ToolContext) -> ToolResult:  # CPU-bound: in a thread
        info = context.images.get(arguments.image_id)
        if info is None:
            known = ", ".join(sorted(context.images)) or "none"
            raise ToolArgumentError(f"unknown image id {arguments.image_id!r}; the case's images: {known}")
        if not info.get("available", info.get("path") is not None) or not info.get("path"):
            reason = info.get("reason") or "no local file"
            raise ToolError(f"image {arguments.image_id!r} is not available: {reason}")
        return self._run(arguments, info, context.output_dir())

    def _run(self, args: SegmentArguments, info: dict, out_dir: Path) -> ToolResult:
        if args.method == "sam":
            load_sam()  # fail fast when no checkpoint is configured
        image = load_image(info["path"])
        seg, shown = segment_image(image, args, args.image_id)
        m = measure(seg.mask, image)
        window = shown["window"]
        grey = display_grey(image, window if image.is_ct else image.window)  # as display_image shows it
        box, point = _pixel_prompts(args, image.shape, args.image_id)
        stem = _file_stem(args)
        mask_path = save_png((seg.mask * 255).astype(np.uint8), out_dir / f"{stem}-mask.png")
        overlay_path = save_png(overlay(grey, seg.mask, image.rgb, box, point), out_dir / f"{stem}-overlay.png")
        data: dict[str, Any] = {
            "image_id": args.image_id, "mode": seg.mode, "method": seg.method, "modality": image.modality,
            "format": image.format, "size": [image.shape[1], image.shape[0]],
            "pixel_spacing_mm": list(image.spacing_mm) if image.spacing_mm else None,
            **m, "mask_path": mask_path, "overlay_path": overlay_path,
            "details": _jsonable(seg.details),
        }
        if window is not None:
            data["window"] = {"centre": window[0], "width": window[1], "source": shown["source"]}
        if image.is_ct:
            data["image_hu_range"] = [round(float(image.pixels.min()), 1), round(float(image.pixels.max()), 1)]
        if info.get("mask"):
            truth = load_mask(info["mask"], image.shape)
            if isinstance(truth, str):
                data["dice_error"] = truth
            else:
                data["dice"] = round(dice(seg.mask, truth), 4)
        return ToolResult(text=_describe(args.image_id, image, seg, m, args), data=data,
                          images=[overlay_path, mask_path])


def _file_stem(args: SegmentArguments) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", args.image_id).strip("-") or "image"
    digest = hashlib.sha1(json.dumps(args.model_dump(), sort_keys=True).encode()).hexdigest()[:8]
    return f"segment-{safe}-{digest}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return round(float(value), 4)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


register_tool(SegmentTool())
