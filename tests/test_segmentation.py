"""The segment tool, the image reader and the generated phantoms."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

import agentclinic.tools.segment_sam as segment_sam
import agentclinic.tools.segmentation  # noqa: F401  (registers segment)
from agentclinic.tools import TOOLS, ToolArgumentError, ToolContext, ToolError, call_tool, tool_functions
from agentclinic.tools.imaging import WINDOW_PRESETS, apply_window, load_image, resolve_window
from agentclinic.tools.phantoms import PHANTOMS, render
from agentclinic.tools.phantoms import main as phantoms_main

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "scenarios" / "radiology" / "assets"
INDEX = json.loads((ASSETS / "phantoms.json").read_text())["phantoms"]
SKIMAGE_DATA = Path(__import__("skimage.data", fromlist=["data"]).__file__).parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def phantom_context(tmp_path: Path, **extra: dict) -> ToolContext:
    images = {name: {"id": name, "path": str(ASSETS / entry["image"]), "modality": "CT", "available": True,
                     "mask": str(ASSETS / entry["mask"])} for name, entry in INDEX.items()}
    return ToolContext(images=images | extra, out_dir=tmp_path)


def segment(arguments: dict, context: ToolContext):
    result, _ = asyncio.run(call_tool("segment", arguments, context))
    return result


# ---------------------------------------------------------------- registration and arguments


def test_registered_with_a_described_schema():
    assert "segment" in TOOLS
    function = next(f["function"] for f in tool_functions() if f["function"]["name"] == "segment")
    properties = function["parameters"]["properties"]
    assert function["parameters"]["required"] == ["image_id"]
    assert {"image_id", "box", "point", "method", "window", "tolerance"} <= set(properties)
    assert all(properties[name].get("description") for name in properties)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"image_id": "nope"}, "unknown image id 'nope'; the case's images: abdomen-ct-liver-lesion, chest-ct-nodule"),
    ({"image_id": "chest-ct-nodule", "box": [10, 10, 10, 40]}, "zero area"),
    ({"image_id": "chest-ct-nodule", "box": [40, 10, 20, 40]}, "zero area"),
    ({"image_id": "chest-ct-nodule", "box": [-1, 10, 20, 40]}, "outside image 'chest-ct-nodule', which is 512 x 512"),
    ({"image_id": "chest-ct-nodule", "box": [500, 10, 513, 40]}, "outside image"),
    ({"image_id": "chest-ct-nodule", "point": [512, 3]}, "point [512.0, 3.0] is outside image"),
    ({"image_id": "head-ct-haemorrhage", "point": [10, -2]}, "outside image 'head-ct-haemorrhage', which is 256 x 256"),
    ({"image_id": "chest-ct-nodule", "box": [10, 10, 50, 50], "point": [60, 20]}, "outside the box"),
    ({"image_id": "chest-ct-nodule", "box": [1, 2, 3]}, "box: List should have at least 4 items"),
    ({"image_id": "chest-ct-nodule", "method": "magic"}, "method"),
    ({"image_id": "chest-ct-nodule", "window": "liver-ish"}, "window"),
    ({"image_id": "chest-ct-nodule", "colour": "red"}, "colour"),
])
def test_argument_errors(tmp_path, arguments, message):
    with pytest.raises(ToolArgumentError) as caught:
        segment(arguments, phantom_context(tmp_path))
    assert message in str(caught.value)


def test_unavailable_and_unreadable_images(tmp_path):
    garbage = tmp_path / "broken.png"
    garbage.write_text("not an image")
    context = phantom_context(tmp_path, remote={"path": None, "available": False,
                                                "reason": "remote asset, unavailable offline"},
                              broken={"path": str(garbage), "available": True},
                              gone={"path": str(tmp_path / "missing.dcm"), "available": True})
    with pytest.raises(ToolError, match="image 'remote' is not available: remote asset, unavailable offline"):
        segment({"image_id": "remote"}, context)
    with pytest.raises(ToolError, match="cannot read image broken.png"):
        segment({"image_id": "broken"}, context)
    with pytest.raises(ToolError, match="image file not found"):
        segment({"image_id": "gone"}, context)


# ---------------------------------------------------------------- accuracy on the phantoms


def _prompts(entry: dict) -> dict[str, dict]:
    lesion = entry["lesion"]
    x0, y0, x1, y1 = lesion["bbox"]
    mx, my = (x1 - x0) // 4, (y1 - y0) // 4
    return {"point": {"point": lesion["centre"]},
            "box": {"box": [x0 - mx, y0 - my, x1 + mx, y1 + my]},
            "tight-box": {"box": lesion["bbox"]},
            "automatic": {}}


@pytest.mark.parametrize("mode", ["point", "box", "tight-box", "automatic"])
@pytest.mark.parametrize("name", sorted(INDEX))
def test_area_within_five_percent_of_the_truth(tmp_path, name, mode):
    entry = INDEX[name]
    result = segment({"image_id": name, **_prompts(entry)[mode]}, phantom_context(tmp_path))
    truth = entry["lesion"]["area_mm2"]
    assert abs(result.data["area_mm2"] - truth) / truth < 0.05
    assert result.data["dice"] > 0.93
    assert result.data["mode"] == ("automatic" if mode == "automatic" else mode.replace("tight-", ""))
    spacing = entry["pixel_spacing_mm"]
    assert result.data["area_mm2"] == pytest.approx(result.data["area_px"] * spacing[0] * spacing[1], abs=0.01)
    cx, cy = result.data["centroid"]
    assert math.dist((cx, cy), entry["lesion"]["centre"]) < 2.0
    assert abs(result.data["core_mean_hu"] - entry["lesion"]["hu"]) < 10
    assert result.data["mean_hu"] == result.data["mean_intensity"]
    assert abs(result.data["equivalent_diameter_mm"] - entry["lesion"]["diameter_mm"]) < 1.0
    assert "dice" not in result.text and "mm²" in result.text and "HU" in result.text


def test_nodule_measurements_in_the_text_and_window(tmp_path):
    result = segment({"image_id": "chest-ct-nodule", "point": INDEX["chest-ct-nodule"]["lesion"]["centre"]},
                     phantom_context(tmp_path))
    assert result.data["window"] == {"centre": -600.0, "width": 1500.0, "source": "file"}
    assert 13.0 < result.data["long_axis_mm"] < 15.5 and 13.0 < result.data["short_axis_mm"] < 15.5
    assert result.data["pixel_spacing_mm"] == [0.7, 0.7]
    assert result.text.startswith("Segmented chest-ct-nodule (CT, classical method) from the point")
    assert "equivalent diameter 13.9 mm" in result.text or "equivalent diameter 14.0 mm" in result.text


def test_box_and_point_together_keep_the_component_at_the_point(tmp_path):
    entry = INDEX["abdomen-ct-liver-lesion"]
    x0, y0, x1, y1 = entry["lesion"]["bbox"]
    result = segment({"image_id": "abdomen-ct-liver-lesion", "box": [x0 - 6, y0 - 6, x1 + 6, y1 + 6],
                      "point": entry["lesion"]["centre"]}, phantom_context(tmp_path))
    assert result.data["mode"] == "box+point" and result.data["dice"] > 0.93
    assert "in the box [" in result.text and "at the point [" in result.text


def test_window_clips_before_segmenting_and_is_recorded(tmp_path):
    centre = INDEX["head-ct-haemorrhage"]["lesion"]["centre"]
    result = segment({"image_id": "head-ct-haemorrhage", "point": centre, "window": "brain"},
                     phantom_context(tmp_path))
    assert result.data["window"] == {"centre": 40.0, "width": 80.0, "source": "brain"}
    assert abs(result.data["area_mm2"] - INDEX["head-ct-haemorrhage"]["lesion"]["area_mm2"]) < 25
    assert result.data["max_intensity"] > 80  # measurements use the unclipped HU


def test_fixed_tolerance_grows_a_band_around_the_seed(tmp_path):
    entry = INDEX["abdomen-ct-liver-lesion"]
    narrow = segment({"image_id": "abdomen-ct-liver-lesion", "point": entry["lesion"]["centre"], "tolerance": 4},
                     phantom_context(tmp_path))
    wide = segment({"image_id": "abdomen-ct-liver-lesion", "point": entry["lesion"]["centre"], "tolerance": 25},
                   phantom_context(tmp_path))
    assert narrow.data["details"]["rule"] == "fixed tolerance"
    assert narrow.data["area_px"] < wide.data["area_px"]
    assert wide.data["area_px"] <= entry["lesion"]["area_px"] * 1.1  # 25 HU stays off the liver (43 HU away)


def test_overlay_and_mask_files(tmp_path):
    entry = INDEX["head-ct-haemorrhage"]
    result = segment({"image_id": "head-ct-haemorrhage", "box": entry["lesion"]["bbox"]}, phantom_context(tmp_path))
    overlay_path, mask_path = (Path(p) for p in result.images)
    assert overlay_path == Path(result.data["overlay_path"]) and overlay_path.parent == tmp_path
    for path in (overlay_path, mask_path):
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    mask = np.asarray(Image.open(mask_path))
    overlay = np.asarray(Image.open(overlay_path))
    assert mask.shape == (256, 256) and set(np.unique(mask)) == {0, 255}
    assert int((mask > 0).sum()) == result.data["area_px"]
    assert overlay.shape == (256, 256, 3)
    inside = overlay[mask > 0]
    assert (inside[:, 0] > inside[:, 2]).mean() > 0.9  # tinted red / outlined yellow
    assert np.all(overlay[entry["lesion"]["bbox"][1], entry["lesion"]["bbox"][0]] == (0, 220, 255))  # box corner


def test_dice_only_with_a_usable_ground_truth(tmp_path):
    small_mask = tmp_path / "small-mask.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(small_mask)
    path = str(ASSETS / "head-ct-haemorrhage.dcm")
    context = phantom_context(tmp_path, plain={"path": path, "available": True},
                              wrong={"path": path, "available": True, "mask": str(small_mask)})
    point = INDEX["head-ct-haemorrhage"]["lesion"]["centre"]
    assert "dice" not in segment({"image_id": "plain", "point": point}, context).data
    data = segment({"image_id": "wrong", "point": point}, context).data
    assert "dice" not in data and "is 10x10, image is 256x256" in data["dice_error"]


def test_concurrent_calls_agree(tmp_path):
    context = phantom_context(tmp_path)

    async def both():
        return await asyncio.gather(*(call_tool("segment", {"image_id": name}, context) for name in sorted(INDEX)))

    results = asyncio.run(both())
    for (result, seconds), name in zip(results, sorted(INDEX)):
        assert result.data["image_id"] == name and seconds > 0
        assert result.data["dice"] > 0.93


# ---------------------------------------------------------------- real package images


def test_ct_small_spacing_and_hounsfield_units(tmp_path):
    context = ToolContext(images={"ct": {"path": get_testdata_file("CT_small.dcm"), "available": True}},
                          out_dir=tmp_path)
    result = segment({"image_id": "ct", "box": [30, 30, 100, 100]}, context)
    data = result.data
    assert data["pixel_spacing_mm"] == pytest.approx([0.661468, 0.661468])
    assert data["units"] == "HU" and data["modality"] == "CT"
    low, high = data["image_hu_range"]
    assert low < -800 and high > 1000  # air and bone (RescaleIntercept -1024 applied)
    assert data["area_mm2"] == pytest.approx(data["area_px"] * 0.661468 ** 2, abs=0.01)
    assert "mm²" in result.text and " HU" in result.text
    automatic = segment({"image_id": "ct"}, context).data
    assert -500 <= automatic["mean_hu"] <= 200 and automatic["area_px"] >= 9


def test_mr_small_in_mm_without_hounsfield_units(tmp_path):
    context = ToolContext(images={"mr": {"path": get_testdata_file("MR_small.dcm"), "available": True}},
                          out_dir=tmp_path)
    result = segment({"image_id": "mr", "point": [32, 32]}, context)
    assert result.data["pixel_spacing_mm"] == [0.3125, 0.3125]
    assert result.data["units"] == "intensity" and "mean_hu" not in result.data
    assert result.data["area_mm2"] == pytest.approx(result.data["area_px"] * 0.3125 ** 2, abs=0.01)
    assert " HU" not in result.text and "mm²" in result.text


@pytest.mark.parametrize("filename", ["cell.png", "microaneurysms.png", "retina.jpg"])
def test_package_photographs_are_measured_in_pixels(tmp_path, filename):
    context = ToolContext(images={"photo": {"path": str(SKIMAGE_DATA / filename), "available": True}},
                          out_dir=tmp_path)
    result = segment({"image_id": "photo"}, context)
    width, height = result.data["size"]
    assert result.data["pixel_spacing_mm"] is None and "area_mm2" not in result.data
    assert "pixels only" in result.text
    assert 9 <= result.data["area_px"] < 0.2 * width * height
    x0, y0, x1, y1 = result.data["bbox"]
    assert 0 < x0 < x1 < width and 0 < y0 < y1 < height  # not touching the border
    overlay = np.asarray(Image.open(result.data["overlay_path"]))
    assert overlay.shape == (height, width, 3)


def test_retina_microaneurysm_found_automatically(tmp_path):
    context = ToolContext(images={"eye": {"path": str(SKIMAGE_DATA / "microaneurysms.png"), "available": True}},
                          out_dir=tmp_path)
    data = segment({"image_id": "eye"}, context).data
    assert data["details"]["polarity"] == "darker" and data["area_px"] < 60  # a small dark dot


def test_noise_free_drawing_found_automatically(tmp_path):
    pixels = np.full((64, 64), 160, np.uint8)
    yy, xx = np.mgrid[:64, :64]
    oval = ((yy - 30) / 9) ** 2 + ((xx - 34) / 12) ** 2 <= 1
    pixels[oval] = 40
    Image.fromarray(pixels).save(tmp_path / "drawing.png")
    Image.fromarray((oval * 255).astype(np.uint8)).save(tmp_path / "drawing-mask.png")
    context = ToolContext(images={"d": {"path": str(tmp_path / "drawing.png"), "available": True,
                                        "mask": str(tmp_path / "drawing-mask.png")}}, out_dir=tmp_path)
    data = segment({"image_id": "d"}, context).data
    assert data["details"]["polarity"] == "darker" and data["mean_intensity"] == 40.0
    assert abs(data["area_px"] - int(oval.sum())) <= 0.05 * oval.sum() and data["dice"] > 0.97


# ---------------------------------------------------------------- the image reader


def _write_dicom(path: Path, pixels: np.ndarray, **attributes) -> None:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if pixels.ndim == 4 or attributes.get("SamplesPerPixel") == 3 \
        else pixels.shape[-2:]
    ds.BitsAllocated = ds.BitsStored = 8 if pixels.dtype == np.uint8 else 16
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_multiframe_dicom_uses_the_middle_frame(tmp_path):
    frames = np.stack([np.full((8, 10), 100 * i, dtype=np.uint16) for i in range(5)])
    path = tmp_path / "cine.dcm"
    _write_dicom(path, frames, NumberOfFrames=5, Modality="US", PixelSpacing=[0.2, 0.25])
    image = load_image(path)
    assert image.shape == (8, 10) and np.all(image.pixels == 200)
    assert image.info["frame_used"] == 2 and image.spacing_mm == (0.2, 0.25) and image.units == "intensity"


def test_colour_dicom_becomes_grey_and_keeps_its_colours(tmp_path):
    rgb = np.zeros((6, 7, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    path = tmp_path / "photo.dcm"
    _write_dicom(path, rgb, SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0,
                 Modality="XC")
    image = load_image(path)
    assert image.shape == (6, 7) and image.rgb is not None and image.rgb.shape == (6, 7, 3)
    assert np.allclose(image.pixels, 0.2125 * 200, atol=1.0)  # luminance of pure red


def test_sixteen_bit_png_keeps_its_values(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.arange(0, 4000, 10, dtype=np.uint16).reshape(20, 20)).save(path)
    image = load_image(path)
    assert image.format == "png" and image.spacing_mm is None
    assert image.pixels.max() == 3990 and image.pixels.dtype == np.float64


def test_multipage_tiff_uses_the_middle_page(tmp_path):
    pages = [Image.fromarray(np.full((5, 6), 10 * i, np.uint8)) for i in range(5)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    image = load_image(tmp_path / "stack.tif")
    assert image.format == "tiff" and image.info["frames"] == 5 and np.all(image.pixels == 20)


def test_windowing():
    hu = np.array([-2000.0, -1350.0, -600.0, 150.0, 3000.0])
    assert apply_window(hu, "lung").tolist() == [0, 0, 128, 255, 255]
    assert apply_window(np.array([0.0, 40.0, 80.0]), "brain").tolist() == [0, 128, 255]
    assert set(WINDOW_PRESETS) == {"lung", "soft-tissue", "bone", "brain"}
    assert resolve_window("Soft tissue") == WINDOW_PRESETS["soft-tissue"]
    assert resolve_window((50, 350)) == (50.0, 350.0)
    with pytest.raises(ToolError, match="unknown CT window 'liver-ish'"):
        resolve_window("liver-ish")


# ---------------------------------------------------------------- phantoms


@pytest.mark.parametrize("name", sorted(INDEX))
def test_phantom_files_are_valid_and_match_the_index(name):
    entry = INDEX[name]
    path = ASSETS / entry["image"]
    assert path.stat().st_size < 600_000
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.Modality == "CT" and "SYNTHETIC" in ds.SeriesDescription
    assert [float(v) for v in ds.PixelSpacing] == entry["pixel_spacing_mm"]
    assert ds.RescaleIntercept == -1024 and ds.RescaleSlope == 1
    assert [ds.Rows, ds.Columns] == entry["size"] and ds.pixel_array.dtype == np.int16
    hu = ds.pixel_array.astype(np.float64) + float(ds.RescaleIntercept)
    mask = np.asarray(Image.open(ASSETS / entry["mask"])) > 0
    lesion = entry["lesion"]
    spacing = entry["pixel_spacing_mm"][0]
    assert mask.shape == hu.shape and int(mask.sum()) == lesion["area_px"]
    assert lesion["area_mm2"] == pytest.approx(lesion["area_px"] * spacing ** 2, abs=0.01)
    assert lesion["diameter_mm"] == pytest.approx(2 * math.sqrt(lesion["area_mm2"] / math.pi), abs=0.01)
    rows, cols = np.nonzero(mask)
    assert lesion["bbox"] == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    assert lesion["centre"] == pytest.approx([cols.mean(), rows.mean()], abs=0.01)
    assert abs(np.median(hu[mask]) - lesion["hu"]) < 10  # the lesion has the density the index states
    assert hu.min() >= -1024 and (hu < -900).mean() > 0.2  # air around the patient


def test_nodule_phantom_anatomy():
    ds = pydicom.dcmread(ASSETS / "chest-ct-nodule.dcm")
    hu = ds.pixel_array.astype(np.float64) - 1024
    lesion = INDEX["chest-ct-nodule"]["lesion"]
    assert 13.5 < lesion["diameter_mm"] < 14.5
    x, y = (int(v) for v in lesion["centre"])
    lung = hu[y - 30:y + 30, x - 30:x + 30][~_disc(60, 17)]
    assert -880 < np.median(lung) < -820  # the nodule sits in aerated lung at about -850 HU


def _disc(size: int, radius: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - size / 2
    return yy ** 2 + xx ** 2 <= radius ** 2


def test_phantoms_command_reproduces_the_assets(tmp_path, capsys):
    assert phantoms_main([str(tmp_path)]) == 0
    assert "chest-ct-nodule: solid pulmonary nodule" in capsys.readouterr().out
    assert json.loads((tmp_path / "phantoms.json").read_text())["phantoms"] == INDEX
    for spec in PHANTOMS:
        fresh = pydicom.dcmread(tmp_path / f"{spec.name}.dcm")
        stored = pydicom.dcmread(ASSETS / f"{spec.name}.dcm")
        assert fresh.SOPInstanceUID == stored.SOPInstanceUID
        assert np.abs(fresh.pixel_array.astype(int) - stored.pixel_array.astype(int)).max() <= 1
        assert (tmp_path / f"{spec.name}-mask.png").read_bytes() == (ASSETS / f"{spec.name}-mask.png").read_bytes()
    assert phantoms_main([]) == 2


def test_render_gives_image_and_mask():
    image, mask = render(PHANTOMS[-1])
    assert image.dtype == np.int16 and mask.dtype == bool and image.shape == mask.shape == (256, 256)
    assert 500 < mask.sum() < 700 and abs(np.median(image[mask]) - PHANTOMS[-1].lesion_hu) < 5


# ---------------------------------------------------------------- SAM through transformers


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory) -> Path:
    """A randomly initialised, tiny SamModel with its processor (64-pixel input), saved like a checkpoint."""
    import torch
    from transformers import SamConfig, SamMaskDecoderConfig, SamModel, SamProcessor, SamPromptEncoderConfig, \
        SamVisionConfig
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    size = 64
    config = SamConfig(
        vision_config=SamVisionConfig(hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                                      image_size=size, patch_size=8, window_size=4, global_attn_indexes=[1],
                                      mlp_dim=64, num_pos_feats=8),
        prompt_encoder_config=SamPromptEncoderConfig(hidden_size=16, image_size=size, patch_size=8,
                                                     mask_input_channels=4),
        mask_decoder_config=SamMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_hidden_layers=2,
                                                 num_attention_heads=2, iou_head_hidden_dim=16))
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-sam")
    SamModel(config).save_pretrained(folder)
    processor = SamProcessor(image_processor=SamImageProcessorPil(
        size={"longest_edge": size}, pad_size={"height": size, "width": size},
        mask_size={"longest_edge": size // 4}, mask_pad_size={"height": size // 4, "width": size // 4}))
    processor.save_pretrained(folder)
    return folder


@pytest.fixture
def sam_env(tiny_sam, monkeypatch):
    monkeypatch.setenv(segment_sam.SAM_PATH_ENV, str(tiny_sam))
    segment_sam._SAM_CACHE.clear()
    yield tiny_sam
    segment_sam._SAM_CACHE.clear()


def test_sam_needs_a_checkpoint_folder(tmp_path, monkeypatch):
    segment_sam._SAM_CACHE.clear()
    monkeypatch.delenv(segment_sam.SAM_PATH_ENV, raising=False)
    with pytest.raises(ToolError, match="AGENTCLINIC_SAM_PATH"):
        segment({"image_id": "chest-ct-nodule", "method": "sam", "point": [144, 272]}, phantom_context(tmp_path))
    monkeypatch.setenv(segment_sam.SAM_PATH_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ToolError, match="no SAM checkpoint there"):
        segment({"image_id": "chest-ct-nodule", "method": "sam", "point": [144, 272]}, phantom_context(tmp_path))


def test_sam_box_prompt_end_to_end(tmp_path, sam_env):
    entry = INDEX["chest-ct-nodule"]
    result = segment({"image_id": "chest-ct-nodule", "method": "sam", "box": [100, 230, 190, 320]},
                     phantom_context(tmp_path))
    data = result.data
    assert data["method"] == "sam" and data["mode"] == "box"
    scores = data["details"]["iou_scores"]
    assert len(scores) == 3 and data["details"]["chosen"] == int(np.argmax(scores))
    assert data["details"]["checkpoint"] == str(Path(sam_env).resolve())
    mask = np.asarray(Image.open(data["mask_path"])) > 0
    assert mask.shape == tuple(entry["size"]) and int(mask.sum()) == data["area_px"] > 0
    assert 0.0 <= data["dice"] <= 1.0 and "SAM's predicted IoU" in result.text


def test_sam_point_and_automatic_prompts_share_one_model(tmp_path, sam_env):
    context = phantom_context(tmp_path)
    point = segment({"image_id": "head-ct-haemorrhage", "method": "sam", "point": [92, 133]}, context)
    model = segment_sam._SAM_CACHE["model"]
    automatic = segment({"image_id": "head-ct-haemorrhage", "method": "sam"}, context)
    assert segment_sam._SAM_CACHE["model"] is model  # loaded once per process
    assert point.data["mode"] == "point" and automatic.data["mode"] == "automatic"
    x0, y0, x1, y1 = automatic.data["details"]["proposed_box"]
    truth = INDEX["head-ct-haemorrhage"]["lesion"]["bbox"]
    assert x0 <= truth[0] and y0 <= truth[1] and x1 >= truth[2] and y1 >= truth[3]  # the detector's box
    assert np.asarray(Image.open(automatic.data["mask_path"])).shape == (256, 256)
