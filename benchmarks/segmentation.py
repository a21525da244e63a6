"""Accuracy and speed of the ``segment`` tool on the generated phantoms and on package images.

    .venv/bin/python benchmarks/segmentation.py [--repeat 5] [--sam]

For each phantom in ``scenarios/radiology/assets`` and each prompt (the lesion's centre point, a box a
quarter wider than the lesion on each side, the lesion's tight bounding box, automatic mode)
prints the true area, the measured area, the error, the Dice score against the ground-truth mask
and the median time per call through ``call_tool`` (after one warm-up call that pays for imports).
Then the same tool on real images shipped in packages (pydicom's CT_small and MR_small,
scikit-image's cell, microaneurysms and retina photographs): area, spacing, mean intensity, time.
``--sam`` adds SAM rows, with the checkpoint in ``$AGENTCLINIC_SAM_PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import skimage.data
from pydicom.data import get_testdata_file

import agentclinic.tools.segmentation  # noqa: F401 - registers the tool
from agentclinic.tools import ToolContext, ToolError, call_tool

ASSETS = Path(__file__).resolve().parents[1] / "scenarios" / "radiology" / "assets"


async def timed(arguments: dict, context: ToolContext, repeat: int) -> tuple[dict | str, float]:
    """The result's data (or the error) and the median milliseconds per call."""
    try:
        await call_tool("segment", arguments, context)  # warm-up
    except ToolError as exc:
        return str(exc), float("nan")
    times, data = [], {}
    for _ in range(repeat):
        started = time.perf_counter()
        result, _ = await call_tool("segment", arguments, context)
        times.append(time.perf_counter() - started)
        data = result.data
    return data, statistics.median(times) * 1000


def prompts(lesion: dict) -> dict[str, dict]:
    x0, y0, x1, y1 = lesion["bbox"]
    mx, my = (x1 - x0) // 4, (y1 - y0) // 4
    return {"point": {"point": lesion["centre"]}, "box": {"box": [x0 - mx, y0 - my, x1 + mx, y1 + my]},
            "tight box": {"box": lesion["bbox"]}, "automatic": {}}


async def phantoms(repeat: int, methods: list[str], out: Path) -> None:
    index = json.loads((ASSETS / "phantoms.json").read_text())["phantoms"]
    images = {name: {"path": str(ASSETS / e["image"]), "available": True, "mask": str(ASSETS / e["mask"])}
              for name, e in index.items()}
    context = ToolContext(images=images, out_dir=out)
    print(f"{'phantom':26} {'method':9} {'mode':10} {'true mm2':>9} {'measured':>9} {'error %':>8} "
          f"{'Dice':>6} {'ms/call':>8}")
    for name, entry in index.items():
        truth = entry["lesion"]["area_mm2"]
        for method in methods:
            for mode, arguments in prompts(entry["lesion"]).items():
                data, ms = await timed({"image_id": name, "method": method, **arguments}, context, repeat)
                if isinstance(data, str):
                    print(f"{name:26} {method:9} {mode:10} {truth:9.1f}  error: {data}")
                    continue
                error = (data["area_mm2"] - truth) / truth * 100
                print(f"{name:26} {method:9} {mode:10} {truth:9.1f} {data['area_mm2']:9.1f} {error:8.2f} "
                      f"{data['dice']:6.3f} {ms:8.1f}")


async def package_images(repeat: int, out: Path) -> None:
    folder = Path(skimage.data.__file__).parent
    cases = [("CT_small.dcm", get_testdata_file("CT_small.dcm"), {}),
             ("CT_small.dcm", get_testdata_file("CT_small.dcm"), {"box": [30, 30, 100, 100]}),
             ("MR_small.dcm", get_testdata_file("MR_small.dcm"), {}),
             ("MR_small.dcm", get_testdata_file("MR_small.dcm"), {"point": [32, 32]}),
             ("cell.png", folder / "cell.png", {}),
             ("microaneurysms.png", folder / "microaneurysms.png", {}),
             ("retina.jpg", folder / "retina.jpg", {})]
    print(f"\n{'image':20} {'prompt':22} {'size':>10} {'spacing mm':>11} {'area px':>8} {'area mm2':>9} "
          f"{'mean':>8} {'units':>9} {'ms/call':>8}")
    for label, path, arguments in cases:
        context = ToolContext(images={"image": {"path": str(path), "available": True}}, out_dir=out)
        data, ms = await timed({"image_id": "image", **arguments}, context, repeat)
        prompt = json.dumps(arguments) if arguments else "automatic"
        if isinstance(data, str):
            print(f"{label:20} {prompt:22} error: {data}")
            continue
        size = "x".join(str(v) for v in data["size"])
        spacing = f"{data['pixel_spacing_mm'][0]:.3f}" if data["pixel_spacing_mm"] else "none"
        area_mm2 = f"{data['area_mm2']:.1f}" if "area_mm2" in data else "-"
        print(f"{label:20} {prompt:22} {size:>10} {spacing:>11} {data['area_px']:8d} {area_mm2:>9} "
              f"{data['mean_intensity']:8.1f} {data['units']:>9} {ms:8.1f}")
        if "image_hu_range" in data:
            print(f"{'':20} HU range of the image: {data['image_hu_range']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per row (median reported)")
    parser.add_argument("--sam", action="store_true", help="also run method 'sam' ($AGENTCLINIC_SAM_PATH)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentclinic-segment-bench-") as out:
        methods = ["classical", "sam"] if options.sam else ["classical"]
        asyncio.run(phantoms(options.repeat, methods, Path(out)))
        asyncio.run(package_images(options.repeat, Path(out)))


if __name__ == "__main__":
    main()
