"""Generated CT phantoms with a known ground truth: anatomy drawn from simple shapes, one lesion each.

Each phantom is rendered on a 4x finer grid and averaged down (partial volume at edges), blurred by
a small point-spread function and given correlated, seeded noise, then written as a valid DICOM CT
slice (HU = stored value - 1024) plus a PNG mask of the lesion. ``phantoms.json`` records, per
phantom, the lesion's true area (pixels of the mask x pixel area), diameter, centre, bounding box,
pixel spacing and a description. Output is deterministic (fixed seeds, fixed UIDs and dates).

    python -m agentclinic.tools.phantoms scenarios/radiology/assets
    python -m agentclinic.tools.phantoms scenarios/geriatrics/assets geriatrics   # another folder's set
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUPERSAMPLE = 4
UID_ENTROPY = "agentclinic synthetic phantom"


@dataclass(frozen=True)
class PhantomSpec:
    """One phantom: name, grid, noise, the painter that draws it, and what it shows."""

    name: str
    size: int  # rows = columns
    spacing_mm: float
    noise_hu: float
    seed: int
    painter: Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]
    description: str
    lesion: str
    lesion_hu: float
    surrounding: str
    window: tuple[float, float]  # display window centre, width (HU)
    body_part: str


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float,
             angle_deg: float = 0.0) -> np.ndarray:
    """Points inside an ellipse centred at (cx, cy) mm with semi-axes ax, ay mm, rotated by angle."""
    a = math.radians(angle_deg)
    dx, dy = x - cx, y - cy
    u = dx * math.cos(a) + dy * math.sin(a)
    v = -dx * math.sin(a) + dy * math.cos(a)
    return (u / ax) ** 2 + (v / ay) ** 2 <= 1.0


def _chest(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Axial chest slice: fat and muscle wall, ribs, two lungs, mediastinum, spine, aorta, vessels,
    and a solid 14 mm nodule in the right lung (image left, radiological convention)."""
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    body = _ellipse(x, y, 0, 5, 160, 112)
    hu[body] = -100  # subcutaneous fat
    hu[_ellipse(x, y, 0, 5, 148, 100)] = 45  # chest wall muscle
    for deg in (-150, -125, -100, -80, -55, -30, 30, 55, 125, 150):  # ribs, just inside the wall
        t = math.radians(deg)
        hu[_ellipse(x, y, 140 * math.cos(t), 5 + 93 * math.sin(t), 6, 4, angle_deg=deg + 90)] = 650
    lungs = _ellipse(x, y, -70, 0, 62, 82) | _ellipse(x, y, 70, 0, 60, 80)
    hu[lungs] = -850
    hu[_ellipse(x, y, 12, -5, 38, 55, angle_deg=-20)] = 40  # heart / mediastinum
    hu[_ellipse(x, y, -8, -60, 14, 14)] = 45  # ascending aorta / great vessels
    hu[_ellipse(x, y, 0, 75, 20, 18)] = 250  # vertebral body (cancellous)
    ring = _ellipse(x, y, 0, 75, 20, 18) & ~_ellipse(x, y, 0, 75, 17, 15)
    hu[ring] = 700  # cortex
    hu[_ellipse(x, y, 27, 52, 13, 13)] = 45  # descending aorta, beside the spine
    nodule_centre = (-78.0, 12.0)
    for _ in range(14):  # pulmonary vessels: small round cross-sections inside the lungs
        while True:
            cx, cy = rng.uniform(-125, 125), rng.uniform(-70, 70)
            r = rng.uniform(1.2, 2.2)
            inside = _ellipse(np.array([cx]), np.array([cy]), -70, 0, 50, 70)[0] or \
                _ellipse(np.array([cx]), np.array([cy]), 70, 0, 48, 68)[0]
            if inside and math.dist((cx, cy), nodule_centre) > 22 and abs(cx - 12) > 45:
                break
        hu[_ellipse(x, y, cx, cy, r, r)] = 35
    lesion = _ellipse(x, y, *nodule_centre, 7.0, 7.0)
    hu[lesion] = 35
    return hu, lesion


def _abdomen(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Axial upper-abdomen slice (unenhanced): fat, muscle wall, liver, spleen, stomach with an
    air-fluid level, spine with paraspinal muscles, aorta, IVC, and a hypodense liver lesion."""
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    hu[_ellipse(x, y, 0, 0, 150, 112)] = -100  # subcutaneous fat
    hu[_ellipse(x, y, 0, 0, 133, 96)] = 50  # abdominal wall muscle
    hu[_ellipse(x, y, 0, 0, 126, 89)] = -90  # intra-abdominal fat
    liver = (_ellipse(x, y, -55, -5, 72, 78, angle_deg=15) | _ellipse(x, y, 5, -40, 50, 30)) & \
        _ellipse(x, y, 0, 0, 124, 87)
    hu[liver] = 58
    hu[_ellipse(x, y, 88, 35, 26, 45, angle_deg=-35) & _ellipse(x, y, 0, 0, 124, 87)] = 48  # spleen
    stomach = _ellipse(x, y, 60, -30, 34, 28, angle_deg=20)
    hu[stomach] = 12  # fluid
    hu[stomach & (y < -42)] = -1000  # gas above the fluid level (anterior)
    hu[_ellipse(x, y, -38, 72, 22, 16) | _ellipse(x, y, 38, 72, 22, 16)] = 50  # paraspinal muscles
    hu[_ellipse(x, y, 0, 58, 20, 18)] = 250  # vertebral body
    hu[_ellipse(x, y, 0, 58, 20, 18) & ~_ellipse(x, y, 0, 58, 17, 15)] = 700
    hu[_ellipse(x, y, 9, 28, 12, 12)] = 40  # aorta, on the front of the vertebra
    hu[_ellipse(x, y, -24, 24, 13, 9)] = 38  # IVC, against the liver
    lesion = _ellipse(x, y, -62, -12, 16.0, 11.5, angle_deg=25)
    hu[lesion] = 15
    return hu, lesion


def _head(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Axial head slice: scalp, skull, cortex and white matter, frontal horns of the lateral
    ventricles, and an acute intraparenchymal haematoma with a thin rim of oedema."""
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    hu[_ellipse(x, y, 0, 0, 78, 96)] = 40  # scalp
    hu[_ellipse(x, y, 0, 0, 73, 91)] = 1100  # skull
    brain = _ellipse(x, y, 0, 0, 66, 84)
    hu[brain] = 40  # cortex
    hu[_ellipse(x, y, 0, 0, 61, 79)] = 28  # white matter
    for side in (-1, 1):  # frontal horns
        hu[_ellipse(x, y, side * 9, -22, 5, 16, angle_deg=side * -20)] = 8
    hu[_ellipse(x, y, 0, 20, 3, 6)] = 8  # third ventricle
    bleed = _ellipse(x, y, -32, 4, 14, 9, angle_deg=30) | _ellipse(x, y, -27, 12, 8, 7) | \
        _ellipse(x, y, -38, -3, 7, 6)
    oedema = _ellipse(x, y, -32, 5, 20, 15, angle_deg=30) & ~bleed
    hu[oedema] = 20
    hu[bleed] = 72
    return hu, bleed


def _lower_abdomen(x: np.ndarray, y: np.ndarray, aorta_radius: float = 9.0) -> np.ndarray:
    """Axial lower-abdomen slice (L3-L4, contrast-enhanced): fat, muscle wall, bowel loops, lower
    renal poles, psoas muscles, spine, aorta (lumen radius ``aorta_radius`` mm) and IVC."""
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    hu[_ellipse(x, y, 0, 0, 150, 108)] = -100  # subcutaneous fat
    hu[_ellipse(x, y, 0, 0, 134, 94)] = 50  # abdominal wall muscle
    hu[_ellipse(x, y, 0, 0, 127, 87)] = -90  # intra-abdominal fat
    for cx, cy, r in ((-60, -35, 17), (-25, -55, 15), (20, -50, 16), (55, -30, 18), (-5, -20, 13), (40, 5, 14)):
        loop = _ellipse(x, y, cx, cy, r, r * 0.8)
        hu[loop] = 35  # bowel wall
        hu[_ellipse(x, y, cx, cy, r - 3, r * 0.8 - 3)] = 10  # fluid content
        hu[_ellipse(x, y, cx, cy - r * 0.35, r - 5, r * 0.25)] = -1000  # gas, non-dependent
    for side in (-1, 1):
        hu[_ellipse(x, y, side * 78, 40, 20, 16, angle_deg=side * 30)] = 150  # lower renal pole (enhancing)
        hu[_ellipse(x, y, side * 30, 50, 14, 17)] = 50  # psoas
        hu[_ellipse(x, y, side * 40, 80, 22, 14)] = 50  # paraspinal muscles
    hu[_ellipse(x, y, 0, 62, 20, 17)] = 250  # vertebral body
    hu[_ellipse(x, y, 0, 62, 20, 17) & ~_ellipse(x, y, 0, 62, 17, 14)] = 700
    hu[_ellipse(x, y, 12, 30, aorta_radius, aorta_radius)] = 230  # aortic lumen, left of midline
    hu[_ellipse(x, y, -18, 32, 11, 8)] = 150  # IVC
    return hu


def _aortic_aneurysm(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Infrarenal abdominal aorta 68 mm across with an eccentric mural thrombus and a left
    retroperitoneal haematoma beside it; the lesion is the whole aneurysm sac to its outer wall."""
    hu = _lower_abdomen(x, y)
    sac = _ellipse(x, y, 14, 8, 34, 33)
    haematoma = (_ellipse(x, y, 50, 30, 26, 34, angle_deg=-25) | _ellipse(x, y, 36, 52, 14, 12)) & ~sac & \
        _ellipse(x, y, 0, 0, 126, 86) & ~_ellipse(x, y, 0, 62, 20, 17)
    hu[haematoma] = 62  # acute blood in the left retroperitoneum
    hu[_ellipse(x, y, 30, 50, 12, 15)] = 50  # left psoas, displaced but intact
    hu[sac] = 45  # aortic wall and laminated thrombus
    hu[_ellipse(x, y, 6, 5, 17, 16)] = 230  # residual lumen, eccentric
    return hu, sac


def _psoas_abscess(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Right psoas enlarged by a rim-enhancing low-density collection; the lesion is the collection
    with its rim. Aorta and the left psoas are normal."""
    hu = _lower_abdomen(x, y)
    swollen = _ellipse(x, y, -34, 48, 21, 24, angle_deg=10)
    hu[swollen] = 55  # oedematous right psoas
    collection = _ellipse(x, y, -36, 48, 15, 18, angle_deg=10)
    hu[collection] = 95  # enhancing rim
    hu[_ellipse(x, y, -36, 48, 12, 15, angle_deg=10)] = 18  # pus
    return hu, collection


def _subdural(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Axial head slice with a crescentic hypodense collection over the left convexity, compressing
    the left hemisphere and shifting the midline to the right."""
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    hu[_ellipse(x, y, 0, 0, 78, 96)] = 40  # scalp
    hu[_ellipse(x, y, 0, 0, 73, 91)] = 1100  # skull
    inner = _ellipse(x, y, 0, 0, 66, 84)
    shift = -6.0  # midline displaced towards the patient's right (image left)
    brain = inner & _ellipse(x, y, shift, 0, 62, 83)
    collection = inner & ~brain & (x > 0)
    hu[inner] = 8  # CSF over the convexity where the brain does not reach
    hu[brain] = 40  # cortex
    hu[brain & _ellipse(x, y, shift, 0, 57, 78)] = 28  # white matter
    for side, squeeze in ((-1, 1.0), (1, 0.55)):  # frontal horns; the left one effaced
        hu[_ellipse(x, y, shift + side * 9, -22, 5 * squeeze, 16 * squeeze, angle_deg=side * -20)] = 8
    hu[_ellipse(x, y, shift, 20, 3, 6)] = 8  # third ventricle
    for _ in range(30):  # effaced sulci on the right only
        t = rng.uniform(math.pi / 2 + 0.3, 3 * math.pi / 2 - 0.3)
        hu[_ellipse(x, y, shift + 60 * math.cos(t), 81 * math.sin(t), 1.2, 1.2)] = 8
    hu[collection] = 20  # chronic subdural fluid
    return hu, collection


PHANTOMS: tuple[PhantomSpec, ...] = (
    PhantomSpec("chest-ct-nodule", 512, 0.7, 18.0, 101, _chest,
                "Synthetic axial chest CT (lung window): a solid 14 mm nodule in the right middle zone.",
                "solid pulmonary nodule", 35, "aerated lung (about -850 HU)", (-600, 1500), "CHEST"),
    PhantomSpec("abdomen-ct-liver-lesion", 512, 0.7, 14.0, 202, _abdomen,
                "Synthetic unenhanced axial upper-abdomen CT: a 32 x 23 mm hypodense lesion in the right liver lobe.",
                "hypodense liver lesion", 15, "liver parenchyma (about 58 HU)", (40, 400), "ABDOMEN"),
    PhantomSpec("head-ct-haemorrhage", 256, 0.9, 5.0, 303, _head,
                "Synthetic unenhanced axial head CT: an acute right-sided intraparenchymal haemorrhage "
                "(about 72 HU) with a thin rim of oedema.",
                "acute intraparenchymal haemorrhage", 72, "white matter and oedema (20-28 HU)", (40, 80), "HEAD"),
)


# Phantoms for cases outside radiology, by scenario folder (each written into scenarios/<folder>/assets).
FOLDER_PHANTOMS: dict[str, tuple[PhantomSpec, ...]] = {
    "radiology": PHANTOMS,
    "vascular-surgery": (
        PhantomSpec("abdomen-ct-aortic-aneurysm", 512, 0.7, 14.0, 404, _aortic_aneurysm,
                    "Synthetic contrast-enhanced axial lower-abdomen CT: infrarenal aorta 68 mm across with "
                    "eccentric mural thrombus and a left retroperitoneal haematoma.",
                    "aneurysmal aortic sac (lumen and thrombus)", 45, "retroperitoneal fat and blood", (40, 400),
                    "ABDOMEN"),
    ),
    "infectious-disease": (
        PhantomSpec("abdomen-ct-psoas-collection", 512, 0.7, 14.0, 505, _psoas_abscess,
                    "Synthetic contrast-enhanced axial lower-abdomen CT: a rim-enhancing low-density "
                    "collection within an enlarged right psoas muscle.",
                    "rim-enhancing psoas collection", 18, "psoas muscle (about 50 HU)", (40, 400), "ABDOMEN"),
    ),
    "geriatrics": (
        PhantomSpec("head-ct-subdural-collection", 256, 0.9, 5.0, 606, _subdural,
                    "Synthetic unenhanced axial head CT: a crescentic hypodense extra-axial collection over the "
                    "left convexity with midline shift to the right.",
                    "crescentic hypodense extra-axial collection", 20, "cortex (about 40 HU) and skull",
                    (40, 80), "HEAD"),
    ),
}


def render(spec: PhantomSpec) -> tuple[np.ndarray, np.ndarray]:
    """The phantom's HU image (int16 after rounding) and lesion mask (bool), both ``size`` square."""
    from scipy import ndimage

    rng = np.random.default_rng(spec.seed)
    fine = spec.size * SUPERSAMPLE
    step = spec.spacing_mm / SUPERSAMPLE
    coords = (np.arange(fine, dtype=np.float32) - (fine - 1) / 2) * step
    x, y = np.meshgrid(coords, coords)  # x: columns (patient's left to the right), y: rows (posterior down)
    hu_fine, lesion_fine = spec.painter(x, y, rng)
    shape = (spec.size, SUPERSAMPLE, spec.size, SUPERSAMPLE)
    hu = hu_fine.reshape(shape).mean(axis=(1, 3), dtype=np.float64)
    fraction = lesion_fine.reshape(shape).mean(axis=(1, 3), dtype=np.float64)
    mask = fraction >= 0.5
    hu = ndimage.gaussian_filter(hu, 0.5)  # scanner point-spread
    noise = ndimage.gaussian_filter(rng.standard_normal(hu.shape), 0.7)  # correlated quantum noise
    noise *= spec.noise_hu / noise.std()
    inside = hu > -990  # noise on the patient, much less in the air
    image = hu + np.where(inside, noise, noise * 0.2)
    return np.clip(np.rint(image), -1024, 3071).astype(np.int16), mask


def _dicom(spec: PhantomSpec, image: np.ndarray, path: Path) -> None:
    """Write ``image`` (HU) as an explicit-VR little-endian CT Image Storage file."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    def uid(kind: str) -> str:
        return generate_uid(entropy_srcs=[UID_ENTROPY, spec.name, kind])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = uid("sop")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=[UID_ENTROPY, "implementation"])
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid("series")
    ds.FrameOfReferenceUID = uid("frame")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.Modality = "CT"
    ds.Manufacturer = "agentclinic (synthetic)"
    ds.PatientName = "SYNTHETIC^PHANTOM"
    ds.PatientID = spec.name
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.StudyDescription = "agentclinic synthetic phantom"
    ds.SeriesDescription = f"SYNTHETIC PHANTOM - not a patient: {spec.name}"
    ds.ImageComments = spec.description
    ds.BodyPartExamined = spec.body_part
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = "1", 1, 1, 1
    ds.ReferringPhysicianName = ds.AccessionNumber = ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.SliceLocation = 0.0
    ds.ImagePositionPatient = [-(spec.size - 1) * spec.spacing_mm / 2] * 2 + [0.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = 1.0
    ds.KVP = 120
    ds.PixelSpacing = [spec.spacing_mm, spec.spacing_mm]
    ds.Rows = ds.Columns = spec.size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = spec.window
    ds.PixelData = (image.astype(np.int32) + 1024).astype("<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def _geometry(mask: np.ndarray, spacing: float) -> dict:
    rows, cols = np.nonzero(mask)
    area_px = int(mask.sum())
    area_mm2 = area_px * spacing * spacing
    return {
        "area_px": area_px,
        "area_mm2": round(area_mm2, 2),
        "diameter_mm": round(2 * math.sqrt(area_mm2 / math.pi), 2),  # equivalent-circle diameter
        "centre": [round(float(cols.mean()), 2), round(float(rows.mean()), 2)],  # [x, y] pixels
        "bbox": [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1],  # x1, y1 exclusive
    }


def write_phantoms(folder: str | Path, specs: tuple[PhantomSpec, ...] = PHANTOMS) -> dict:
    """Write each phantom's DICOM, mask PNG and ``phantoms.json`` into ``folder``; returns the index."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index: dict = {"note": "Synthetic CT phantoms generated by agentclinic.tools.phantoms; not patient data.",
                   "phantoms": {}}
    for spec in specs:
        image, mask = render(spec)
        _dicom(spec, image, folder / f"{spec.name}.dcm")
        Image.fromarray((mask * 255).astype(np.uint8), mode="L").save(folder / f"{spec.name}-mask.png", optimize=True)
        index["phantoms"][spec.name] = {
            "image": f"{spec.name}.dcm",
            "mask": f"{spec.name}-mask.png",
            "modality": "CT",
            "description": spec.description,
            "size": [spec.size, spec.size],
            "pixel_spacing_mm": [spec.spacing_mm, spec.spacing_mm],
            "noise_hu": spec.noise_hu,
            "window": {"centre": spec.window[0], "width": spec.window[1]},
            "lesion": {"kind": spec.lesion, "hu": spec.lesion_hu, "surrounding": spec.surrounding}
            | _geometry(mask, spec.spacing_mm),
        }
    (folder / "phantoms.json").write_text(json.dumps(index, indent=2) + "\n")
    return index


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2) or (len(args) == 2 and args[1] not in FOLDER_PHANTOMS):
        print("usage: python -m agentclinic.tools.phantoms OUTPUT_FOLDER [SET]\n"
              f"  SET: the scenario folder whose phantoms to write ({', '.join(FOLDER_PHANTOMS)}; default radiology)",
              file=sys.stderr)
        return 2
    index = write_phantoms(args[0], FOLDER_PHANTOMS[args[1]] if len(args) == 2 else PHANTOMS)
    for name, entry in index["phantoms"].items():
        lesion = entry["lesion"]
        print(f"{name}: {lesion['kind']}, {lesion['area_mm2']} mm2, diameter {lesion['diameter_mm']} mm")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
