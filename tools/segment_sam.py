"""The SAM / MedSAM path of the ``segment`` tool: a checkpoint in transformers format from the folder
in ``$AGENTCLINIC_SAM_PATH``, loaded once per process; box and/or point prompts; of the masks
predicted, the one with the best predicted IoU is kept."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from agentclinic.tools.base import ToolError

SAM_PATH_ENV = "AGENTCLINIC_SAM_PATH"
_SAM_LOCK = threading.Lock()
_SAM_CACHE: dict[str, Any] = {}


def load_sam(path: str | None = None) -> tuple[Any, Any, str]:
    """The SAM model and processor from ``path`` or ``$AGENTCLINIC_SAM_PATH``; one per process."""
    folder = path or os.environ.get(SAM_PATH_ENV)
    if not folder:
        raise ToolError(f"method 'sam' needs a local SAM or MedSAM checkpoint folder in ${SAM_PATH_ENV} "
                        "(transformers format: config.json, weights, processor config); use method 'classical'")
    resolved = str(Path(folder).expanduser().resolve())
    if not Path(resolved, "config.json").is_file():
        raise ToolError(f"{SAM_PATH_ENV}={folder}: no SAM checkpoint there (config.json missing)")
    with _SAM_LOCK:
        if _SAM_CACHE.get("path") != resolved:
            import torch
            from transformers import SamModel, SamProcessor

            try:
                model = SamModel.from_pretrained(resolved)
                processor = SamProcessor.from_pretrained(resolved)
            except Exception as exc:  # noqa: BLE001 - bad or partial checkpoints raise many types
                raise ToolError(f"cannot load the SAM checkpoint in {resolved}: {type(exc).__name__}: {exc}") from exc
            device = "cuda" if torch.cuda.is_available() else "cpu"
            _SAM_CACHE.clear()
            _SAM_CACHE.update(path=resolved, model=model.to(device).eval(), processor=processor, device=device)
        return _SAM_CACHE["model"], _SAM_CACHE["processor"], _SAM_CACHE["device"]


def segment_sam(display_rgb: np.ndarray, box: tuple[int, int, int, int] | None,
                point: tuple[int, int] | None) -> tuple[np.ndarray, dict]:
    """SAM's best mask (highest predicted IoU) for a box and/or point (x, y) prompt on an RGB image."""
    import torch

    model, processor, device = load_sam()
    kwargs: dict[str, Any] = {}
    if box is not None:
        kwargs["input_boxes"] = [[[float(v) for v in box]]]
    if point is not None:
        kwargs["input_points"] = [[[float(point[0]), float(point[1])]]]
        kwargs["input_labels"] = [[1]]
    inputs = processor(images=display_rgb, return_tensors="pt", **kwargs)
    with _SAM_LOCK, torch.inference_mode():
        outputs = model(**{k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()},
                        multimask_output=True)
    masks = processor.image_processor.post_process_masks(
        outputs.pred_masks.cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"])[0]
    scores = outputs.iou_scores.float().cpu()[0, 0]
    best = int(torch.argmax(scores))
    mask = masks[0, best].numpy().astype(bool)
    return mask, {"iou_scores": [round(float(s), 4) for s in scores], "chosen": best,
                  "predicted_iou": round(float(scores[best]), 4), "checkpoint": _SAM_CACHE.get("path")}
