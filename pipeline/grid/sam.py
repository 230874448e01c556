"""SAM proposals: ``segment_anything.SamAutomaticMaskGenerator`` prompted at exactly the grid points.

Configured by ``proposals.sam`` in sources.yaml::

    proposals:
      backend: sam
      grid_size: 32
      sam: {checkpoint: /models/sam_vit_h_4b8939.pth, model_type: vit_h, points_per_batch: 64,
            pred_iou_thresh: 0.88, device: cuda, num_gpus: 1, concurrency: 2}

Only the SAM generator parameters the user set are passed on (upstream names and defaults). ``points_per_side``
must equal ``grid_size`` (it is set to it when absent); ``crop_n_layers`` must stay 0, because crop layers prompt
at points that are not grid centres. ``num_gpus`` / ``concurrency`` are for the executor and ignored here.

The model is loaded once per instance (an actor in a Ray pool, or one object in a plain loop); each returned
mask is mapped back to its grid cell through its ``point_coords``.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, MissingExtraError
from pipeline.grid.proposals import GridError, Proposal
from pipeline.grid.tokens import nearest_cell
from pipeline.records import RLE, Record

log = logging.getLogger(__name__)

AMG_PARAMS = ("points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh",
              "stability_score_offset", "box_nms_thresh", "crop_n_layers", "min_mask_region_area")
OWN_KEYS = ("checkpoint", "model_type", "device")
EXECUTOR_KEYS = ("num_gpus", "concurrency")
MODEL_TYPES = ("vit_h", "vit_l", "vit_b")
_FIELD = "proposals.sam"


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def amg_params(sam_cfg: dict[str, Any], grid_size: int, file: str) -> dict[str, Any]:
    """The generator keyword arguments from ``proposals.sam``: the user's AMG settings only, validated."""
    unknown = sorted(set(sam_cfg) - set(AMG_PARAMS) - set(OWN_KEYS) - set(EXECUTOR_KEYS))
    if unknown:
        raise ConfigError(file, f"{_FIELD}.{unknown[0]}", "unknown SAM option",
                          f"use one of {', '.join(OWN_KEYS + AMG_PARAMS + EXECUTOR_KEYS)}")
    params = {k: sam_cfg[k] for k in AMG_PARAMS if k in sam_cfg}
    pps = params.setdefault("points_per_side", grid_size)
    if pps != grid_size:
        raise ConfigError(file, f"{_FIELD}.points_per_side", f"{pps} != proposals.grid_size {grid_size}",
                          "remove points_per_side or set it equal to grid_size: every mask must map to a grid cell")
    if params.get("crop_n_layers", 0) != 0:
        raise ConfigError(file, f"{_FIELD}.crop_n_layers", "crop layers prompt at points off the grid",
                          "remove crop_n_layers (or set 0)")
    return params


def _import_sam():
    try:
        import torch
        from segment_anything import SamAutomaticMaskGenerator, sam_model_registry
    except ImportError as e:
        raise MissingExtraError("SAM proposals (proposals.backend: sam)", "sam", e.name or "segment_anything") from e
    return torch, SamAutomaticMaskGenerator, sam_model_registry


def load_sam(checkpoint: Path, model_type: str, device: str, file: str = "sources.yaml"):
    """Build ``model_type`` and load ``checkpoint`` (a state_dict) onto ``device``; ConfigError naming the path
    when the file is missing, unreadable, not a checkpoint or does not match the model type."""
    torch, _, registry = _import_sam()
    if model_type not in registry or model_type == "default":
        raise ConfigError(file, f"{_FIELD}.model_type", f"unknown model type {model_type!r}",
                          f"use one of {', '.join(MODEL_TYPES)}")
    if not checkpoint.is_file():
        raise ConfigError(file, f"{_FIELD}.checkpoint", f"checkpoint not found: {checkpoint}",
                          "point it at a SAM .pth file (e.g. sam_vit_h_4b8939.pth)")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError, IndexError, KeyError, TypeError,
            AttributeError, zipfile.BadZipFile) as e:  # what a truncated or foreign file raises in torch.load
        raise ConfigError(file, f"{_FIELD}.checkpoint", f"cannot read checkpoint {checkpoint}: {e}",
                          "re-download the file; it is corrupt or not a PyTorch checkpoint") from e
    if not isinstance(state, dict):
        raise ConfigError(file, f"{_FIELD}.checkpoint", f"{checkpoint} holds a {type(state).__name__}, "
                          "not a state_dict", "use the official SAM checkpoint file")
    model = registry[model_type](checkpoint=None)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1:2] or [str(e)[:200]]
        raise ConfigError(file, f"{_FIELD}.model_type", f"checkpoint {checkpoint} does not fit {model_type}: "
                          f"{first[0].strip()}", "set model_type to the checkpoint's (vit_h / vit_l / vit_b)") from e
    model.to(device)
    model.eval()
    return model


class SamProposals:
    """Callable backend; the model is loaded once, at construction (ConfigError there for a bad setup)."""

    name = "sam"
    cacheable = True

    def __init__(self, sam_cfg: dict[str, Any], grid_size: int, file: str = "sources.yaml"):
        torch, generator_cls, _ = _import_sam()
        self.grid_size = grid_size
        self.params = amg_params(sam_cfg, grid_size, file)
        if "checkpoint" not in sam_cfg:
            raise ConfigError(file, f"{_FIELD}.checkpoint", "missing", "set the path of a SAM checkpoint, "
                              "or use proposals.backend: annotations")
        self.checkpoint = Path(str(sam_cfg["checkpoint"])).expanduser()
        self.model_type = str(sam_cfg.get("model_type", "vit_h"))
        self.device = str(sam_cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = load_sam(self.checkpoint, self.model_type, self.device, file)
        self.checkpoint_sha256 = file_sha256(self.checkpoint)
        self.model = f"sam-{self.model_type}@{self.checkpoint_sha256[:12]}"
        self._torch = torch
        self.generator = generator_cls(model, output_mode="coco_rle", **self.params)
        log.info("SAM %s loaded on %s with %s", self.model, self.device, self.params)

    def cache_parts(self, record: Record) -> dict[str, Any]:
        return {"image": record.image.sha256, "backend": self.name, "checkpoint": self.checkpoint_sha256,
                "model_type": self.model_type, "params": dict(sorted(self.params.items()))}

    def _image(self, record: Record) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(record.image.path) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise GridError("grid_image_unreadable", f"{record.image.path}: {e}") from None
        if arr.shape[:2] != (record.image.height, record.image.width):
            raise GridError("grid_image_size_mismatch", f"{record.image.path} is {arr.shape[1]}x{arr.shape[0]}, "
                            f"record says {record.image.width}x{record.image.height}")
        return arr

    def __call__(self, record: Record) -> list[Proposal]:
        image = self._image(record)
        with self._torch.inference_mode():
            anns = self.generator.generate(image)
        return self.to_proposals(anns, image.shape[1], image.shape[0])

    def to_proposals(self, anns: list[dict], w: int, h: int) -> list[Proposal]:
        """SAM's ``coco_rle`` annotations -> proposals, each tied to the grid cell of its ``point_coords``."""
        out: list[Proposal] = []
        for ann in anns:
            x, y = ann["point_coords"][0]
            cell = nearest_cell(float(x), float(y), w, h, self.grid_size)
            if cell is None:  # cannot happen with crop_n_layers = 0; refuse rather than guess a cell
                raise GridError("grid_proposal_off_grid", f"SAM point ({x}, {y}) is no cell centre")
            seg = ann["segmentation"]
            counts = seg["counts"].decode("ascii") if isinstance(seg["counts"], bytes) else seg["counts"]
            out.append(Proposal(cell[0], cell[1], RLE(size=(int(seg["size"][0]), int(seg["size"][1])),
                                                      counts=counts),
                                float(ann["predicted_iou"]), float(ann["stability_score"])))
        out.sort(key=lambda p: (p.row, p.col, -p.predicted_iou, -p.stability_score, p.rle.counts))
        return out
