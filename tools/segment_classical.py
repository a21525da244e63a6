"""Classical segmentation for the ``segment`` tool: region growing from a point, thresholding in a
box, and automatic detection of the most lesion-like region (scikit-image and scipy).

All work on the image's own values (HU for CT) after a Gaussian smoothing of 1 pixel. Thresholds
follow the 50 % edge criterion of lesion volumetry: half-way between the finding's level and that
of its surroundings; the part connected to the seed is kept after a 1-pixel opening (which cuts
thin bridges to neighbours), holes filled. The surroundings' level is the median of a ring 2-5
pixels outside the current region, re-measured until the region stops changing, and never closer
to the finding's level than an earlier estimate (so soft edges do not shrink inwards).

- *point*: the finding's level is the median of a small disc at the seed; the first region is a
  flood within three noise deviations, the tolerance doubled (up to 4 times) while the ring
  outside still looks like the seed (textured findings). A fixed ``tolerance`` instead keeps the
  pixels within that band around the seed level.
- *box*: the finding's level is taken at the box centre (or at the point), the surroundings'
  first estimate along the box edge (Otsu's threshold inside the box when the two do not differ);
  the mask is clipped to the box.
- *automatic*: seeds are the bright and dark blobs of a multi-scale determinant-of-Hessian
  detector (strongest first, at most 60), each segmented as in box mode with a box of two blob
  radii (four when the finding reaches its edge). A candidate must be contained in its box, must
  not touch the image border or the dark background outside the patient, must span 3 mm (or 9
  pixels) to a fifth of the patient's area, be compact (solidity >= 0.8) and not a piece cut off a
  larger structure; on CT its mean must lie between -500 and 200 HU (air, lung and bone are
  anatomy, not findings, here). The winner has the highest score contrast x sqrt(area) / noise
  (Rose's detectability) x (noise / spread of its surroundings)^2 x solidity, and at least 5: the
  most conspicuous compact region inside a uniform tissue. Images over 512 pixels are searched at
  a reduced size and the winner segmented again at full size in its box.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from agentclinic.tools.base import ToolError
from agentclinic.tools.imaging import LoadedImage

SMOOTH_SIGMA = 1.0  # Gaussian smoothing (pixels) before thresholding
CT_CANDIDATE_HU = (-500.0, 200.0)
MIN_SOLIDITY = 0.8
AUTO_MAX_SIDE = 512  # automatic mode searches larger images at a reduced size, then grows at full size
MARGIN = 8  # box mode works in a window this much wider than the box: a tight box's surroundings lie outside it


# ---------------------------------------------------------------- image statistics


def smooth(pixels: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(pixels, SMOOTH_SIGMA)


def noise_level(pixels: np.ndarray, where: np.ndarray | None = None, block: int = 5) -> float:
    """Noise standard deviation: the median deviation within ``block`` x ``block`` tiles (those mostly
    inside ``where``; edges cross only a minority of tiles), at least 0.2 % of the image's range (so
    that a noise-free drawing still has a usable scale)."""
    low, high = np.percentile(pixels, [0.5, 99.5])
    floor = max(0.002 * float(high - low), 1e-6)
    rows, cols = (pixels.shape[0] // block) * block, (pixels.shape[1] // block) * block
    if rows == 0 or cols == 0:
        return max(float(pixels.std()), floor)
    tiles = pixels[:rows, :cols].reshape(rows // block, block, cols // block, block)
    deviation = tiles.std(axis=(1, 3))
    if where is not None:
        inside = where[:rows, :cols].reshape(rows // block, block, cols // block, block).mean(axis=(1, 3)) > 0.5
        if inside.any():
            deviation = deviation[inside]
    return max(float(np.median(deviation)), floor)


def background_mask(image: LoadedImage, pixels: np.ndarray) -> np.ndarray:
    """The dark surround outside the patient: low values connected to the image border."""
    from scipy import ndimage

    if image.is_ct:
        low = image.pixels < -500.0
    else:
        p1, p99 = np.percentile(pixels, [1, 99])
        low = pixels <= p1 + 0.1 * (p99 - p1)
    labels, _ = ndimage.label(low)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    border = border[border > 0]
    return np.isin(labels, border)


def _disc_level(smoothed: np.ndarray, row: int, col: int, radius: int) -> float:
    rows, cols = smoothed.shape
    r0, r1 = max(0, row - radius), min(rows, row + radius + 1)
    c0, c1 = max(0, col - radius), min(cols, col + radius + 1)
    yy, xx = np.ogrid[r0:r1, c0:c1]
    disc = (yy - row) ** 2 + (xx - col) ** 2 <= radius * radius
    return float(np.median(smoothed[r0:r1, c0:c1][disc]))


def _bounds(rows: np.ndarray, cols: np.ndarray, pad: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The window (r0, r1, c0, c1) around the pixels at ``rows``, ``cols``, ``pad`` wider each side."""
    return (max(0, rows.min() - pad), min(shape[0], rows.max() + pad + 1),
            max(0, cols.min() - pad), min(shape[1], cols.max() + pad + 1))


def _full_size(index: int, factor: int, size: int) -> int:
    """A pixel index at ``factor`` times reduced size, back at full size (the centre of its block)."""
    return int(min(size - 1, index * factor + factor // 2))


def _component_at(binary: np.ndarray, row: int, col: int, info: dict | None = None) -> np.ndarray:
    """The 4-connected component of ``binary`` holding (row, col) (the nearest one if the seed is off),
    after a 1-pixel opening when that keeps the seed (cuts thin bridges to neighbours), holes filled.
    ``info["unopened_px"]`` receives the component's size before the opening."""
    from scipy import ndimage

    cross = ndimage.generate_binary_structure(2, 1)
    labels, count = ndimage.label(binary, cross)
    if count == 0:
        return np.zeros_like(binary)
    label = labels[row, col]
    if label == 0:
        _, (near_r, near_c) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
        label = labels[near_r[row, col], near_c[row, col]]
        row, col = int(near_r[row, col]), int(near_c[row, col])
    component = labels == label
    rows, cols = np.nonzero(component)
    if info is not None:
        info["unopened_px"] = int(rows.size)
    r0, r1, c0, c1 = _bounds(rows, cols, 2, binary.shape)
    window = component[r0:r1, c0:c1]
    opened = ndimage.binary_opening(window, np.ones((3, 3), dtype=bool))
    if opened[row - r0, col - c0]:
        sub, _ = ndimage.label(opened, cross)
        window = sub == sub[row - r0, col - c0]
    result = np.zeros_like(binary)
    result[r0:r1, c0:c1] = ndimage.binary_fill_holes(window)
    return result


def _ring(mask: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """Pixels more than ``inner`` and at most ``outer`` pixels away from ``mask`` (computed in a window)."""
    from scipy import ndimage

    ring = np.zeros_like(mask)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return ring
    r0, r1, c0, c1 = _bounds(rows, cols, int(math.ceil(outer)) + 1, mask.shape)
    distance = ndimage.distance_transform_edt(~mask[r0:r1, c0:c1])
    ring[r0:r1, c0:c1] = (distance > inner) & (distance <= outer)
    return ring


def _touches_edge(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def refine_half_way(smoothed: np.ndarray, row: int, col: int, level: float, region: np.ndarray, noise: float,
                    clip: np.ndarray | None = None, outside: float | None = None,
                    max_iterations: int = 8) -> tuple[np.ndarray, dict]:
    """Threshold half-way between ``level`` (the finding's) and its surroundings, keep the component
    holding (row, col), and repeat until the region stops changing. The surroundings' level is the
    median of a ring 2-5 pixels outside the region, or ``outside`` (e.g. the box edge's level), whichever
    differs more from ``level`` on the same side: so a finding with a soft edge does not shrink inwards."""
    details: dict[str, Any] = {}
    for iteration in range(max_iterations):
        ring = _ring(region, 2, 5)
        if not ring.any():
            break
        surround = float(np.median(smoothed[ring]))
        if outside is not None and (outside - level) * (surround - level) > 0 \
                and abs(outside - level) >= abs(surround - level):
            surround = outside
        outside = surround if outside is None or (outside - level) * (surround - level) > 0 else outside
        details |= {"surround_level": surround, "iterations": iteration + 1}
        if abs(level - surround) < 3.0 * noise:
            details["low_contrast"] = True
            break
        threshold = (level + surround) / 2.0
        binary = smoothed >= threshold if level > surround else smoothed <= threshold
        if not binary[row, col]:
            break
        updated = _component_at(binary, row, col, details)
        if clip is not None:
            updated &= clip
        details |= {"threshold": threshold, "polarity": "brighter" if level > surround else "darker"}
        if np.array_equal(updated, region):
            break
        region = updated
    return region, details


def grow_from_point(smoothed: np.ndarray, row: int, col: int, noise: float,
                    tolerance: float | None = None) -> tuple[np.ndarray, dict]:
    """Region growing from a seed (see the module docstring); returns the mask and details."""
    from skimage.segmentation import flood

    seed = _disc_level(smoothed, row, col, 2)
    if tolerance is not None:
        band = np.abs(smoothed - seed) <= tolerance
        region = _component_at(band, row, col) if band[row, col] else flood(smoothed, (row, col), tolerance=tolerance)
        return region, {"seed_level": seed, "tolerance": tolerance, "rule": "fixed tolerance"}
    start, tolerance = _textured_flood(smoothed, row, col, seed, noise)
    if tolerance > 3.0 * noise:  # textured: the finding's level is that of the whole flooded region
        seed = float(np.median(smoothed[start]))
    region, details = refine_half_way(smoothed, row, col, seed, start, noise)
    return region, {"seed_level": seed, "rule": "half-way threshold", "flood_tolerance": tolerance} | details


def _textured_flood(smoothed: np.ndarray, row: int, col: int, seed: float, noise: float,
                    doublings: int = 4) -> tuple[np.ndarray, float]:
    """Flood from the seed within 3 noise deviations; while the ring just outside still looks like the
    seed (a textured finding), double the tolerance, up to ``doublings`` times."""
    from skimage.segmentation import flood

    tolerance = 3.0 * noise
    region = flood(smoothed, (row, col), tolerance=tolerance, connectivity=1)
    for _ in range(doublings):
        ring = _ring(region, 2, 5)
        if not ring.any() or abs(float(np.median(smoothed[ring])) - seed) >= 3.0 * noise:
            break
        if _touches_edge(region):
            break
        tolerance *= 2.0
        region = flood(smoothed, (row, col), tolerance=tolerance, connectivity=1)
    return region, tolerance


def segment_box(smoothed: np.ndarray, box: tuple[int, int, int, int], noise: float,
                seed: tuple[int, int] | None = None) -> tuple[np.ndarray, dict]:
    """Threshold inside ``box`` (x0, y0, x1, y1) and keep the component at its centre or ``seed`` (row, col),
    then refine the threshold against the region's own surroundings as in point mode."""
    from skimage.filters import threshold_otsu

    x0, y0, x1, y1 = box
    rows, cols = smoothed.shape
    m = MARGIN
    wx0, wy0, wx1, wy1 = max(0, x0 - m), max(0, y0 - m), min(cols, x1 + m), min(rows, y1 + m)
    wide = smoothed[wy0:wy1, wx0:wx1]
    clip = np.zeros(wide.shape, dtype=bool)
    clip[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0] = True
    crop = smoothed[y0:y1, x0:x1]
    row, col = ((y1 - y0 - 1) // 2 + y0, (x1 - x0 - 1) // 2 + x0) if seed is None else seed
    row, col = row - wy0, col - wx0
    inside = _disc_level(wide, row, col, max(1, min(crop.shape) // 8))
    outside = float(np.median(np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])))
    details: dict[str, Any] = {"inside_level": inside, "edge_level": outside}
    if abs(inside - outside) >= 3.0 * noise:
        threshold, bright = (inside + outside) / 2.0, inside > outside
        details["rule"] = "half-way between the centre and its surroundings"
    else:
        threshold = float(threshold_otsu(crop)) if np.ptp(crop) > 0 else float(crop.min())
        bright = bool(wide[row, col] >= threshold)
        details["rule"] = "Otsu (centre and box edge alike)"
    binary = wide >= threshold if bright else wide <= threshold
    region = _component_at(binary, row, col) & clip
    if details["rule"].startswith("half-way") and region.any():
        region, refined = refine_half_way(wide, row, col, inside, region, noise, clip=clip, outside=outside)
        details |= refined
    details.setdefault("threshold", threshold)
    details.setdefault("polarity", "brighter" if bright else "darker")
    mask = np.zeros(smoothed.shape, dtype=bool)
    mask[wy0:wy1, wx0:wx1] = region
    return mask, details


# ---------------------------------------------------------------- automatic mode


def _blob_seeds(image: np.ndarray, sigmas: np.ndarray, threshold: float) -> list[tuple[float, int, int, float]]:
    """Bright and dark blobs, strongest first, as (signed strength, row, column, sigma): local maxima of
    the scale-normalised determinant of the Hessian (which, unlike the Laplacian, ignores straight
    edges), its square root taken so that strength scales with contrast; bright where the trace < 0."""
    from scipy import ndimage
    from skimage.feature import peak_local_max

    signed = []
    for s in sigmas:
        dyy = ndimage.gaussian_filter(image, s, order=(2, 0))
        dxx = ndimage.gaussian_filter(image, s, order=(0, 2))
        dxy = ndimage.gaussian_filter(image, s, order=(1, 1))
        det = (s ** 4) * (dxx * dyy - dxy * dxy)
        signed.append(np.sqrt(np.maximum(det, 0.0)) * -np.sign(dxx + dyy))
    stack = np.stack(signed)
    seeds = []
    for sign in (1.0, -1.0):
        polar = sign * stack
        best = polar.argmax(axis=0)
        strength = np.take_along_axis(polar, best[None], axis=0)[0]
        for y, x in peak_local_max(strength, min_distance=2, threshold_abs=threshold, exclude_border=1):
            seeds.append((sign * float(strength[y, x]), int(y), int(x), float(sigmas[best[y, x]])))
    seeds.sort(key=lambda seed: abs(seed[0]), reverse=True)
    return seeds


def _grow_in_box(smoothed: np.ndarray, r: int, c: int, radius: float, noise: float, max_half: int
                 ) -> tuple[np.ndarray, dict, tuple[int, int, int, int]]:
    """Segment a blob as in box mode, with a box of twice its radius around it (four times if the
    finding reaches the box's edge); returns the region in its window and the window."""
    rows, cols = smoothed.shape
    half = int(np.clip(2 * radius, 6, max_half))
    m = MARGIN
    for _ in range(2):
        r0, r1 = max(0, r - half - m), min(rows, r + half + m + 1)
        c0, c1 = max(0, c - half - m), min(cols, c + half + m + 1)
        window = smoothed[r0:r1, c0:c1]
        box = (max(0, c - half) - c0, max(0, r - half) - r0, min(cols, c + half + 1) - c0, min(rows, r + half + 1) - r0)
        mask, details = segment_box(window, box, noise, seed=(r - r0, c - c0))
        x0, y0, x1, y1 = box
        inner = mask[y0:y1, x0:x1]
        if not _touches_edge(inner):
            return mask, details, (r0, r1, c0, c1)
        half = min(2 * half, max_half)
    return mask, details | {"reached_edge": True}, (r0, r1, c0, c1)


def find_candidates(image: LoadedImage, work: np.ndarray, smoothed: np.ndarray, noise_raw: float,
                    noise_smooth: float, background: np.ndarray, limit: int = 60,
                    rejected: list | None = None) -> list[dict]:
    """Lesion-like candidates, best first (the rule is in the module docstring); ``rejected``, when
    given, receives the seeds turned down and why."""
    from scipy import ndimage
    from skimage.measure import regionprops
    from skimage.transform import downscale_local_mean

    rows, cols = work.shape
    pixel_mm = math.sqrt(image.spacing_mm[0] * image.spacing_mm[1]) if image.spacing_mm else None
    factor = max(1, round(max(rows, cols) / 256))
    small = downscale_local_mean(smoothed, (factor, factor)) / max(noise_raw, 1e-9)
    r_min = max(2.0, 1.5 / pixel_mm) if pixel_mm else 2.0
    r_max = min(40.0 / pixel_mm, max(rows, cols) / 8) if pixel_mm else max(rows, cols) / 8
    min_area = max(9.0, math.pi * (1.5 / pixel_mm) ** 2) if pixel_mm else 9.0
    patient_area = float((~background).sum())
    max_half = int(min(max(rows, cols) // 4, 1.5 * r_max + 12))
    sigmas = np.geomspace(max(0.7, r_min / math.sqrt(2) / factor), max(1.0, r_max / math.sqrt(2) / factor), 6)
    blobs = []
    for response, y, x, sigma in _blob_seeds(small, sigmas, threshold=1.0):
        r, c = _full_size(y, factor, rows), _full_size(x, factor, cols)
        if background[r, c] or image.is_ct and not CT_CANDIDATE_HU[0] <= smoothed[r, c] <= CT_CANDIDATE_HU[1]:
            continue
        blobs.append((1.0 if response > 0 else -1.0, r, c, sigma * factor * math.sqrt(2)))
        if len(blobs) == limit:
            break
    candidates: list[dict] = []
    covered = np.zeros(work.shape, dtype=bool)
    for sign, r, c, radius in blobs:
        if covered[r, c]:
            continue
        region, details, (r0, r1, c0, c1) = _grow_in_box(smoothed, r, c, radius, noise_smooth, max_half)
        if details.get("low_contrast") or not region.any():
            continue
        area = float(region.sum())
        work_c, background_c = work[r0:r1, c0:c1], background[r0:r1, c0:c1]
        reason = None
        if details.get("reached_edge"):
            reason = "reaches the edge of its box"
        elif area < min_area or area > 0.2 * max(patient_area, 1.0):
            reason = f"area {area:.0f} px out of range"
        elif (ndimage.binary_dilation(region) & background_c).any():
            reason = "touches the background"
        elif details.get("unopened_px", 0) > 2 * area:
            reason = "a piece of a larger structure (cut off by the opening)"
        if reason is None:
            mean_in = float(work_c[region].mean())
            solidity = float(regionprops(region.astype(np.uint8))[0].solidity)
            ring = _ring(region, 2, 5) & ~background_c
            if image.is_ct and not CT_CANDIDATE_HU[0] <= mean_in <= CT_CANDIDATE_HU[1]:
                reason = f"mean {mean_in:.0f} HU outside the soft-tissue range"
            elif solidity < MIN_SOLIDITY:
                reason = f"solidity {solidity:.2f}"
            elif not ring.any():
                reason = "no surroundings"
        if reason is None:
            contrast = abs(mean_in - float(work_c[ring].mean()))
            spread = max(noise_raw, float(work_c[ring].std()))
            homogeneity = (noise_raw / spread) ** 2  # surroundings busier than noise count twice
            score = contrast * math.sqrt(area) / noise_raw * homogeneity * solidity
            if score < 5.0:  # below the Rose criterion: not reliably visible
                reason = f"score {score:.1f} below 5"
        if reason is not None:
            if rejected is not None:
                rejected.append({"seed": (r, c), "radius": radius, "area_px": int(area), "reason": reason})
            continue
        full = np.zeros(work.shape, dtype=bool)
        full[r0:r1, c0:c1] = region
        covered |= full
        candidates.append({"mask": full, "score": score, "seed": (r, c), "contrast": contrast,
                           "surround_spread": spread, "solidity": solidity, "area_px": int(area),
                           "polarity": details.get("polarity", "brighter" if sign > 0 else "darker")})
    candidates.sort(key=lambda item: item["score"], reverse=True)
    return candidates


def detect(image: LoadedImage, work: np.ndarray, smoothed: np.ndarray, noise_raw: float, noise_smooth: float,
           background: np.ndarray, image_id: str) -> tuple[dict, int]:
    """Automatic mode: the best candidate (with its full-resolution mask) and how many there were."""
    from skimage.transform import downscale_local_mean

    factor = math.ceil(max(work.shape) / AUTO_MAX_SIDE)
    if factor > 1:
        small = downscale_local_mean(work, (factor, factor))
        spacing = (image.spacing_mm[0] * factor, image.spacing_mm[1] * factor) if image.spacing_mm else None
        view = replace(image, pixels=small if not image.is_ct else downscale_local_mean(image.pixels, (factor, factor)),
                       spacing_mm=spacing, rgb=None)
        small_smooth = smooth(small)
        small_background = background_mask(view, small)
        candidates = find_candidates(view, small, small_smooth, noise_level(small, ~small_background),
                                     noise_level(small_smooth, ~small_background), small_background)
    else:
        candidates = find_candidates(image, work, smoothed, noise_raw, noise_smooth, background)
    if not candidates:
        raise ToolError(f"automatic mode found no compact, lesion-like region in {image_id!r}; "
                        "give a point or a box on the finding")
    best = candidates[0]
    if factor > 1:  # segment again at full size, in the candidate's box widened by a quarter each side
        rows, cols = work.shape
        row, col = _full_size(best["seed"][0], factor, rows), _full_size(best["seed"][1], factor, cols)
        ys, xs = np.nonzero(best["mask"])
        y0, y1, x0, x1 = ys.min() * factor, (ys.max() + 1) * factor, xs.min() * factor, (xs.max() + 1) * factor
        my, mx = max(2, (y1 - y0) // 4), max(2, (x1 - x0) // 4)
        box = (max(0, x0 - mx), max(0, y0 - my), min(cols, x1 + mx), min(rows, y1 + my))
        mask, _ = segment_box(smoothed, box, noise_smooth, seed=(row, col))
        best = best | {"mask": mask, "seed": (row, col)}
    return best, len(candidates)
