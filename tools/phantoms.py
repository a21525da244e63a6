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


def _upper_abdomen(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Axial upper-abdomen slice (portal venous phase) at the level of the adrenals and gallbladder:
    fat, muscle wall, liver, spleen, stomach, upper renal poles, crura, spine, aorta and IVC."""
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    hu[_ellipse(x, y, 0, 0, 150, 110)] = -100  # subcutaneous fat
    hu[_ellipse(x, y, 0, 0, 134, 95)] = 50  # abdominal wall muscle
    hu[_ellipse(x, y, 0, 0, 127, 88)] = -90  # intra-abdominal fat
    inside = _ellipse(x, y, 0, 0, 126, 87)
    hu[(_ellipse(x, y, -60, -5, 66, 74, angle_deg=15) | _ellipse(x, y, 0, -45, 45, 25)) & inside] = 105  # liver
    hu[_ellipse(x, y, 90, 30, 24, 42, angle_deg=-35) & inside] = 110  # spleen
    stomach = _ellipse(x, y, 55, -30, 32, 24, angle_deg=20)
    hu[stomach] = 15
    hu[stomach & (y < -40)] = -1000
    for side in (-1, 1):
        hu[_ellipse(x, y, side * 72, 62, 22, 18, angle_deg=side * 25)] = 160  # upper renal poles
        hu[_ellipse(x, y, side * 38, 82, 22, 13)] = 50  # paraspinal muscles
        hu[_ellipse(x, y, side * 14, 38, 5, 14, angle_deg=side * 10)] = 50  # diaphragmatic crura
    hu[_ellipse(x, y, 0, 62, 20, 17)] = 250  # vertebral body
    hu[_ellipse(x, y, 0, 62, 20, 17) & ~_ellipse(x, y, 0, 62, 17, 14)] = 700
    hu[_ellipse(x, y, 6, 34, 11, 11)] = 170  # aorta
    hu[_ellipse(x, y, -24, 22, 13, 9)] = 150  # IVC
    hu[_ellipse(x, y, 28, 46, 2.5, 12, angle_deg=15)] = 45  # left adrenal limb
    return hu


def _adrenal_mass(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 42 mm heterogeneous right adrenal mass (enhancing solid rim, low-density centre) behind the
    IVC, between the liver and the right crus; the lesion is the whole mass."""
    hu = _upper_abdomen(x, y)
    mass = _ellipse(x, y, -42, 44, 21, 19, angle_deg=-20)
    hu[_ellipse(x, y, -42, 44, 26, 24, angle_deg=-20) & ~_ellipse(x, y, 0, 62, 20, 17)] = -90  # retroperitoneal fat
    hu[_ellipse(x, y, -24, 22, 13, 9)] = 150  # IVC, in front of the mass
    hu[mass] = 140  # avidly enhancing tumour
    hu[_ellipse(x, y, -40, 45, 9, 7, angle_deg=-20)] = 30  # central necrosis
    return hu, mass


def _gallbladder(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A distended gallbladder in the liver bed with a thick enhancing wall, dependent calcified stones
    and a rim of pericholecystic fluid; the lesion is the gallbladder to its outer wall."""
    hu = _upper_abdomen(x, y)
    outer = _ellipse(x, y, -38, -52, 26, 18, angle_deg=-25)
    hu[_ellipse(x, y, -38, -52, 30, 22, angle_deg=-25) & ~outer & (y < -50)] = 8  # pericholecystic fluid
    hu[outer] = 75  # thickened, enhancing wall
    hu[_ellipse(x, y, -38, -52, 20, 12.5, angle_deg=-25)] = 12  # bile
    for cx, cy in ((-30, -46), (-40, -44), (-48, -48)):
        hu[_ellipse(x, y, cx, cy, 3.5, 3.5)] = 420  # calcified stones, dependent (posterior)
    return hu, outer


def _thorax(x: np.ndarray, y: np.ndarray, contrast: bool = False) -> np.ndarray:
    """Axial mid-chest slice without a lesion: fat and muscle wall, ribs, lungs, heart (blood pool
    enhanced when ``contrast``), spine and descending aorta."""
    blood = 170.0 if contrast else 40.0
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    hu[_ellipse(x, y, 0, 5, 160, 112)] = -100  # subcutaneous fat
    hu[_ellipse(x, y, 0, 5, 148, 100)] = 45  # chest wall muscle
    for deg in (-150, -125, -100, -80, -55, -30, 30, 55, 125, 150):
        t = math.radians(deg)
        hu[_ellipse(x, y, 140 * math.cos(t), 5 + 93 * math.sin(t), 6, 4, angle_deg=deg + 90)] = 650
    hu[_ellipse(x, y, -70, 0, 62, 82) | _ellipse(x, y, 70, 0, 60, 80)] = -850  # lungs
    hu[_ellipse(x, y, 12, -5, 38, 55, angle_deg=-20)] = 40  # heart
    hu[_ellipse(x, y, 12, -5, 30, 46, angle_deg=-20)] = blood  # cardiac chambers
    hu[_ellipse(x, y, 0, 75, 20, 18)] = 250  # vertebral body
    hu[_ellipse(x, y, 0, 75, 20, 18) & ~_ellipse(x, y, 0, 75, 17, 15)] = 700
    hu[_ellipse(x, y, 27, 52, 13, 13)] = blood  # descending aorta
    return hu


def _great_vessels(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Contrast-enhanced upper-chest slice at the great vessels: lungs, trachea, ascending and
    descending aorta, superior vena cava, spine."""
    hu = _thorax(x, y, contrast=True)
    hu[_ellipse(x, y, 12, -5, 38, 55, angle_deg=-20) & ~_ellipse(x, y, -70, 0, 62, 82)
       & ~_ellipse(x, y, 70, 0, 60, 80)] = -90  # mediastinal fat above the heart
    hu[_ellipse(x, y, -5, -5, 30, 60)] = -90
    hu[_ellipse(x, y, -12, -18, 15, 15)] = 170  # ascending aorta
    hu[_ellipse(x, y, 27, 48, 13, 13)] = 170  # descending aorta
    hu[_ellipse(x, y, -35, -22, 9, 10)] = 170  # superior vena cava
    hu[_ellipse(x, y, 0, 25, 10, 9)] = -1000  # trachea
    return hu


def _mediastinal_mass(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bulky lobulated anterior mediastinal soft-tissue mass (55 HU) in front of the enhancing great
    vessels, bulging into both lungs and squeezing the superior vena cava to a slit."""
    hu = _great_vessels(x, y)
    mass = (_ellipse(x, y, 0, -55, 50, 27) | _ellipse(x, y, -32, -45, 20, 17) | _ellipse(x, y, 30, -48, 18, 15)
            | _ellipse(x, y, -36, -24, 12, 12)) & _ellipse(x, y, 0, 5, 147, 99) & ~_ellipse(x, y, -12, -18, 17, 17)
    svc = _ellipse(x, y, -40, -18, 2.5, 7, angle_deg=20)
    hu[mass] = 55
    hu[svc] = 170  # compressed superior vena cava
    return hu, mass & ~svc


def _hilar_nodes(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Contrast-enhanced slice at the hila: symmetrical enlarged hilar nodes and a subcarinal node,
    with small nodules along the fissures and vessels; the lesion is the right hilar node mass."""
    hu = _great_vessels(x, y)
    hu[_ellipse(x, y, 8, -30, 15, 13)] = 170  # main pulmonary artery
    for side in (-1, 1):
        hu[_ellipse(x, y, side * 30, -10, 6, 6)] = 170  # right and left pulmonary arteries
        hu[_ellipse(x, y, side * 20, 24, 5, 5)] = -1000  # main bronchi
    right = _ellipse(x, y, -46, 2, 14, 18) | _ellipse(x, y, -40, 18, 9, 8)
    hu[right] = 50
    hu[_ellipse(x, y, 46, 2, 13, 16) | _ellipse(x, y, 40, 17, 8, 7)] = 50  # left hilar nodes
    hu[_ellipse(x, y, 0, 40, 11, 7)] = 50  # subcarinal node
    for _ in range(40):  # perilymphatic micronodules, 2-3 mm
        side = rng.choice((-1, 1))
        cx, cy = side * rng.uniform(80, 115), rng.uniform(-50, 50)
        hu[_ellipse(x, y, cx, cy, 1.3, 1.3)] = 30
    return hu, right


def _cavity(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Thick-walled cavity (air lumen) in the right lung with surrounding branching nodules; the
    lesion is the whole cavitating mass, wall and lumen."""
    hu = _thorax(x, y)
    lesion = _ellipse(x, y, -78, -30, 17, 15, angle_deg=15)
    hu[lesion] = 40
    hu[_ellipse(x, y, -76, -32, 9, 7, angle_deg=15)] = -950  # air in the cavity
    for _ in range(25):  # tree-in-bud nodules around it
        cx, cy = rng.uniform(-115, -45), rng.uniform(-70, 20)
        if math.dist((cx, cy), (-78, -30)) > 24 and _ellipse(np.array([cx]), np.array([cy]), -70, 0, 55, 75)[0]:
            hu[_ellipse(x, y, cx, cy, 1.5, 1.5)] = 30
            hu[_ellipse(x, y, cx + 2, cy + 2, 2.5, 0.6, angle_deg=45)] = 30
    return hu, lesion


def _pericardial(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unenhanced mid-chest slice: a large fluid collection (10 HU) encircling the heart, about
    20 mm deep; the lesion is the fluid ring."""
    hu = _thorax(x, y)
    sac = _ellipse(x, y, 12, -5, 58, 74, angle_deg=-20)
    heart = _ellipse(x, y, 10, -3, 36, 50, angle_deg=-20)
    hu[sac] = 10
    hu[heart] = 40
    hu[sac & ~_ellipse(x, y, 12, -5, 60, 76, angle_deg=-20)] = 40
    return hu, sac & ~heart


def _child_consolidation(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Child's chest at the lung bases (the top slice of an abdominal CT), two-thirds adult size: dense
    consolidation with air bronchograms in the posterior right lower lobe."""
    s = 0.65
    hu = _thorax(x / s, y / s)
    lesion = _ellipse(x, y, -46, 22, 24, 20, angle_deg=20) & _ellipse(x, y, -70 * s, 0, 60 * s, 80 * s)
    hu[lesion] = 35
    for dx in (-8, 2, 10):  # air bronchograms, branching tubes
        hu[_ellipse(x, y, -46 + dx, 22 - dx / 2, 10, 1.0, angle_deg=30 + 4 * dx) & lesion] = -900
    return hu, lesion


def _torsed_ovary(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Axial pelvic slice: bladder, uterus, iliac bones and sacrum, a normal left ovary, an enlarged
    oedematous right ovary with peripheral follicles, a twisted pedicle and a little free fluid."""
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    hu[_ellipse(x, y, 0, 5, 150, 100)] = -100
    hu[_ellipse(x, y, 0, 5, 138, 90)] = 45  # wall and gluteal muscle
    hu[_ellipse(x, y, 0, 5, 118, 72)] = -90  # pelvic fat
    for side in (-1, 1):
        hu[_ellipse(x, y, side * 112, 22, 12, 42, angle_deg=side * 15)] = 650  # iliac bone
        hu[_ellipse(x, y, side * 90, 15, 10, 20)] = 50  # iliacus
    hu[_ellipse(x, y, 0, 68, 34, 16)] = 350  # sacrum
    hu[_ellipse(x, y, 0, -45, 38, 24)] = 5  # bladder, urine
    hu[_ellipse(x, y, 10, 8, 27, 20)] = 45  # uterus
    hu[_ellipse(x, y, 48, 18, 15, 10)] = 35  # left ovary
    for cx, cy in ((44, 16), (52, 21)):
        hu[_ellipse(x, y, cx, cy, 3, 3)] = 8
    ovary = _ellipse(x, y, -55, 10, 33, 27, angle_deg=-10)
    hu[ovary] = 30
    for k in range(10):  # small follicles pushed to the periphery
        t = 2 * math.pi * k / 10
        hu[_ellipse(x, y, -55 + 25 * math.cos(t), 10 + 19 * math.sin(t), 3.5, 3.5)] = 8
    hu[_ellipse(x, y, -22, 4, 8, 6) & ~ovary] = 40  # twisted pedicle
    hu[_ellipse(x, y, -22, 4, 4, 3)] = 15
    hu[_ellipse(x, y, -15, 45, 18, 8)] = 12  # free fluid in the pouch of Douglas
    return hu, ovary


def _orbits(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Axial slice through the orbits: globes with lenses, orbital fat, optic nerves, ethmoid air
    cells; the right ethmoid cells are opacified, a lentiform collection lies against the right medial
    orbital wall, and the right globe is pushed forward with swollen eyelids."""
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    hu[_ellipse(x, y, 0, 5, 74, 92)] = 40  # soft tissue
    hu[_ellipse(x, y, 0, 8, 69, 86)] = 1000  # skull
    hu[_ellipse(x, y, 0, 8, 64, 81)] = 35  # brain: temporal lobes and brain stem
    hu[_ellipse(x, y, -10, -70, 30, 20)] = 45  # right eyelids and cheek, swollen
    for side, forward in ((-1, 5.0), (1, 0.0)):
        cx = side * 33
        hu[_ellipse(x, y, cx, -42, 19, 30)] = -90  # orbital fat cone
        hu[_ellipse(x, y, cx, -62 - forward, 12, 12)] = 10  # globe
        hu[_ellipse(x, y, cx, -62 - forward, 12, 12) & ~_ellipse(x, y, cx, -62 - forward, 11, 11)] = 60
        hu[_ellipse(x, y, cx, -72 - forward, 4, 1.6)] = 120  # lens
        hu[_ellipse(x, y, cx * 0.85, -34, 2.2, 12, angle_deg=side * -12)] = 35  # optic nerve
        hu[_ellipse(x, y, cx - side * 14, -42, 2, 22)] = 35  # medial rectus
        hu[_ellipse(x, y, cx + side * 17, -40, 2, 20)] = 35  # lateral rectus
    ethmoid = _ellipse(x, y, 0, -45, 11, 22)
    hu[ethmoid] = -1000
    hu[ethmoid & (x < 0)] = 25  # right ethmoid cells opacified
    hu[_ellipse(x, y, 0, -45, 0.8, 22)] = 400  # septum
    for wall in (-11.5, 11.5):
        hu[_ellipse(x, y, wall, -45, 0.7, 22)] = 500  # lamina papyracea
    collection = _ellipse(x, y, -16.5, -46, 4, 12)
    hu[collection] = 22
    return hu, collection


def _extradural(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Axial head slice: a biconvex hyperdense extra-axial collection over the right temporal
    convexity under a fracture of the squamous temporal bone, with scalp swelling and a small midline
    shift to the left."""
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    hu[_ellipse(x, y, 0, 0, 78, 96)] = 40
    hu[_ellipse(x, y, -78, -8, 8, 22)] = 50  # scalp haematoma
    hu[_ellipse(x, y, 0, 0, 73, 91)] = 1100
    inner = _ellipse(x, y, 0, 0, 66, 84)
    lens = inner & _ellipse(x, y, -104, -8, 50, 50)
    shift = 4.0
    hu[inner] = 40
    hu[inner & _ellipse(x, y, shift, 0, 61, 79)] = 28
    for side in (-1, 1):
        hu[_ellipse(x, y, shift + side * 9, -22, 5, 16, angle_deg=side * -20)] = 8
    hu[_ellipse(x, y, shift, 20, 3, 6)] = 8
    hu[(np.abs(y + 10) < 0.6) & (x < -64) & (x > -75)] = 40  # fracture line through the skull
    hu[lens] = 68
    return hu, lens


def _polycystic(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unenhanced slice at the renal hila: both kidneys enlarged and replaced by many fluid-density
    cysts, a few liver cysts, and one hyperdense (60 HU) 30 mm cyst in the left kidney (the lesion)."""
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    hu[_ellipse(x, y, 0, 0, 150, 108)] = -100
    hu[_ellipse(x, y, 0, 0, 134, 94)] = 50
    hu[_ellipse(x, y, 0, 0, 127, 87)] = -90
    liver = _ellipse(x, y, -62, -28, 60, 46) & _ellipse(x, y, 0, 0, 126, 86)
    hu[liver] = 58
    for cx, cy, r in ((-80, -40, 7), (-50, -20, 5), (-40, -50, 4)):
        hu[_ellipse(x, y, cx, cy, r, r)] = 5  # liver cysts
    hu[_ellipse(x, y, 20, -55, 16, 13)] = 35  # bowel
    hu[_ellipse(x, y, 0, 62, 20, 17)] = 250
    hu[_ellipse(x, y, 0, 62, 20, 17) & ~_ellipse(x, y, 0, 62, 17, 14)] = 700
    hu[_ellipse(x, y, 12, 30, 10, 10)] = 40  # aorta
    hu[_ellipse(x, y, -18, 32, 11, 8)] = 38  # IVC
    for side in (-1, 1):
        hu[_ellipse(x, y, side * 40, 82, 20, 12)] = 50  # paraspinal muscles
        kidney = _ellipse(x, y, side * 80, 30, 36, 52, angle_deg=side * 25)
        hu[kidney] = 32
        placed = 0
        while placed < 14:  # simple cysts of many sizes
            cx, cy, r = side * 80 + rng.uniform(-30, 30), 30 + rng.uniform(-45, 45), rng.uniform(4, 11)
            if _ellipse(np.array([cx]), np.array([cy]), side * 80, 30, 34 - r, 50 - r, angle_deg=side * 25)[0] \
                    and math.dist((cx, cy), (88, 40)) > r + 17:
                hu[_ellipse(x, y, cx, cy, r, r)] = 6
                placed += 1
    lesion = _ellipse(x, y, 88, 40, 15, 15)
    hu[lesion] = 60
    return hu, lesion


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
    "endocrinology": (
        PhantomSpec("abdomen-ct-adrenal-mass", 512, 0.7, 14.0, 808, _adrenal_mass,
                    "Synthetic contrast-enhanced axial upper-abdomen CT: a 42 mm heterogeneous, avidly enhancing "
                    "right adrenal mass with a low-density centre.",
                    "right adrenal mass", 140, "retroperitoneal fat, liver and IVC", (40, 400), "ABDOMEN"),
    ),
    "general-surgery": (
        PhantomSpec("abdomen-ct-gallbladder", 512, 0.7, 14.0, 909, _gallbladder,
                    "Synthetic contrast-enhanced axial upper-abdomen CT: a distended gallbladder with a thick "
                    "enhancing wall, calcified stones and a rim of pericholecystic fluid.",
                    "distended thick-walled gallbladder", 12, "liver and pericholecystic fat", (40, 400), "ABDOMEN"),
    ),
    "neurosurgery": (
        PhantomSpec("head-ct-extradural-collection", 256, 0.9, 5.0, 701, _extradural,
                    "Synthetic unenhanced axial head CT: a biconvex hyperdense extra-axial collection over the "
                    "right temporal convexity beneath a skull fracture, with scalp swelling.",
                    "biconvex hyperdense extra-axial collection", 68, "cortex (about 40 HU) and skull", (40, 80),
                    "HEAD"),
    ),
    "urology": (
        PhantomSpec("abdomen-ct-renal-cysts", 512, 0.7, 12.0, 702, _polycystic,
                    "Synthetic unenhanced axial CT at the renal hila: both kidneys enlarged and replaced by "
                    "cysts, small liver cysts, and a 30 mm hyperdense cyst in the left kidney.",
                    "hyperdense (haemorrhagic) renal cyst", 60, "renal parenchyma and simple cysts", (40, 400),
                    "ABDOMEN"),
    ),
    "haematology-oncology": (
        PhantomSpec("chest-ct-mediastinal-mass", 512, 0.7, 14.0, 703, _mediastinal_mass,
                    "Synthetic contrast-enhanced axial chest CT at the great vessels: a bulky lobulated anterior "
                    "mediastinal soft-tissue mass.",
                    "anterior mediastinal soft-tissue mass", 55, "mediastinal fat and enhancing vessels", (40, 400),
                    "CHEST"),
    ),
    "pulmonology": (
        PhantomSpec("chest-ct-hilar-nodes", 512, 0.7, 14.0, 704, _hilar_nodes,
                    "Synthetic contrast-enhanced axial chest CT at the hila: enlarged symmetrical hilar and "
                    "subcarinal lymph nodes with small perilymphatic lung nodules.",
                    "right hilar lymph node mass", 50, "aerated lung and enhancing pulmonary arteries", (40, 400),
                    "CHEST"),
    ),
    "tropical-medicine": (
        PhantomSpec("chest-ct-cavity", 512, 0.7, 18.0, 705, _cavity,
                    "Synthetic axial chest CT (lung window): a thick-walled cavitating lesion in the right lung "
                    "with surrounding branching micronodules.",
                    "thick-walled cavitating lesion", 40, "aerated lung (about -850 HU)", (-600, 1500), "CHEST"),
    ),
    "emergency-medicine": (
        PhantomSpec("chest-ct-pericardial-fluid", 512, 0.7, 14.0, 706, _pericardial,
                    "Synthetic unenhanced axial chest CT: a large fluid-density collection encircling the heart.",
                    "circumferential pericardial fluid", 10, "myocardium (about 40 HU) and lung", (40, 400),
                    "CHEST"),
    ),
    "paediatrics": (
        PhantomSpec("chest-ct-child-lung-base", 512, 0.5, 14.0, 707, _child_consolidation,
                    "Synthetic axial CT of a child's lung bases (lung window): dense consolidation with air "
                    "bronchograms in the posterior right lower lobe.",
                    "consolidated lung with air bronchograms", 35, "aerated lung (about -850 HU)", (-600, 1500),
                    "CHEST"),
    ),
    "obstetrics-gynaecology": (
        PhantomSpec("pelvis-ct-adnexal-mass", 512, 0.7, 12.0, 708, _torsed_ovary,
                    "Synthetic unenhanced axial pelvic CT: an enlarged right adnexal structure with peripheral "
                    "follicles, a twisted pedicle towards the uterus and a little free fluid.",
                    "enlarged right ovary", 30, "pelvic fat and uterus", (40, 400), "PELVIS"),
    ),
    "ophthalmology": (
        PhantomSpec("orbit-ct-medial-collection", 512, 0.45, 8.0, 709, _orbits,
                    "Synthetic contrast-enhanced axial CT of the orbits: opacified right ethmoid cells, a "
                    "lentiform collection along the right medial orbital wall and right proptosis.",
                    "lentiform collection against the right lamina papyracea", 22, "orbital fat (about -90 HU)",
                    (40, 400), "HEAD"),
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
