"""COCO panoptic (``panoptic_<split>.json`` + PNG folder) -> records: thing and stuff instances with masks.

Segment id of a pixel = R + 256 G + 256^2 B (0 = void). Each ``segments_info`` entry becomes an Instance
(``isthing`` from the category, ``iscrowd`` kept) whose mask is read from the PNG. The pure PNG helpers here are
shared with :mod:`converters.psg`. Recipe: docs/sources/coco_panoptic.md.

Accounting: ``inputs["image"]`` = annotated images, ``inputs["annotation"]`` = segments.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils

from pipeline import rle as rle_utils
from pipeline.errors import InputFileError
from pipeline.images import ImageError, load_image_ref, safe_join
from pipeline.records import RLE, Instance, Record, Skip, record_id

from .base import Converter, ConverterOptions, Plan, Unit, read_json


class PanopticError(ValueError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def read_panoptic_png(root: Path, file_name: str, expect_hw: tuple[int, int]) -> np.ndarray:
    """Segment-id map (int32, H x W) of a panoptic PNG; PanopticError(reason) when missing, corrupt or mis-sized."""
    try:
        path = safe_join(root, file_name)
    except ImageError as e:
        raise PanopticError(f"panoptic_{e.reason}", e.detail) from None
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise PanopticError("panoptic_png_missing", str(path)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise PanopticError("panoptic_png_corrupt", f"{path.name}: {e}") from None
    if rgb.shape[:2] != tuple(expect_hw):
        raise PanopticError("panoptic_size_mismatch",
                            f"{path.name}: PNG is {rgb.shape[0]}x{rgb.shape[1]} (h x w), image is "
                            f"{expect_hw[0]}x{expect_hw[1]}")
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)


def segment_rles(ids: np.ndarray, segment_ids: Sequence[int]) -> dict[int, tuple[RLE, int]]:
    """COCO RLE and pixel count of every listed segment id present in the map (absent ids are left out).

    Works on the runs of the column-major id sequence, so the cost is one pass over the pixels plus a little per
    run, not a full-image comparison and encoding per segment. Raises PanopticError("png_unknown_segment_ids") when
    the PNG holds a non-void id not in ``segment_ids``: PNG and json disagree, so no mask of this image is trusted.
    """
    h, w = ids.shape
    flat = np.ascontiguousarray(ids.T).ravel()  # column-major, the order COCO RLE counts run in
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [flat.size]))
    vals = flat[starts]
    wanted = [int(v) for v in dict.fromkeys(segment_ids)]
    unknown = sorted(set(np.unique(vals).tolist()) - set(wanted) - {0})
    if unknown:
        raise PanopticError("png_unknown_segment_ids", f"ids {unknown[:10]} are not in segments_info")
    found, objs, areas = [], [], []
    for sid in wanted:
        sel = np.flatnonzero(vals == sid)
        if sel.size == 0:
            continue
        st, en = starts[sel], ends[sel]
        counts = np.empty(2 * sel.size + 1, dtype=np.int64)
        counts[0::2] = np.concatenate((st, [flat.size])) - np.concatenate(([0], en))  # zeros before each run + tail
        counts[1::2] = en - st
        found.append(sid)
        objs.append({"size": [h, w], "counts": (counts if counts[-1] else counts[:-1]).tolist()})
        areas.append(int(counts[1::2].sum()))
    rles = mask_utils.frPyObjects(objs, h, w) if objs else []
    return {sid: (RLE(size=(h, w), counts=r["counts"].decode("ascii")), a) for sid, r, a in zip(found, rles, areas)}


class CocoPanopticOptions(ConverterOptions):
    panoptic_json: str  # panoptic_<split>.json
    panoptic_root: str  # folder of the PNGs named by annotations[].file_name (panoptic_<split>/)
    image_root: str  # folder of the images named by images[].file_name (<split>2017/)
    split: str = "val"


class CocoPanopticConverter(Converter):
    name: ClassVar[str] = "coco_panoptic"
    version: ClassVar[str] = "1"
    Options = CocoPanopticOptions
    path_fields = ("panoptic_json", "panoptic_root", "image_root")
    options: CocoPanopticOptions

    def input_files(self) -> list[Path]:
        return [self.path(self.options.panoptic_json)]

    def _load(self) -> dict:
        if self._index is not None:
            return self._index
        o, src, file = self.options, self.source, str(self.path(self.options.panoptic_json))
        data = read_json(self.path(o.panoptic_json))
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                                 for k in ("images", "annotations", "categories")):
            raise InputFileError(file, "expected a COCO panoptic file with images, annotations and categories lists")
        cats = {c["id"]: c for c in data["categories"] if isinstance(c, dict) and "id" in c and "name" in c}
        images = {im["id"]: im for im in data["images"] if isinstance(im, dict) and "id" in im}
        anns: dict[int, dict] = {}
        skips, inputs = [], defaultdict(int)
        for ann in data["annotations"]:
            segs = ann.get("segments_info") if isinstance(ann, dict) else None
            iid = ann.get("image_id") if isinstance(ann, dict) else None
            inputs["annotation"] += len(segs) if isinstance(segs, list) else 0
            reason = ("bad_annotation" if not isinstance(segs, list) or not isinstance(ann.get("file_name"), str)
                      else "unknown_image_id" if iid not in images
                      else "duplicate_image_annotation" if iid in anns else "")
            if not reason:
                anns[iid] = ann
                continue
            inputs["image"] += 1
            skips.append(Skip(source=src, kind="image", item_id=str(iid), reason=reason))
            skips += [Skip(source=src, kind="annotation", item_id=str(s.get("id") if isinstance(s, dict) else s),
                           reason=f"image_{reason}") for s in (segs if isinstance(segs, list) else [])]
        inputs["image"] += len(anns)
        units = [Unit(split=o.split, key=str(i)) for i in sorted(anns)]
        self._index = {"images": images, "anns": anns, "cats": cats,
                       "plan": Plan(units=units, skips=skips, inputs=dict(inputs))}
        return self._index

    def plan(self) -> Plan:
        return self._load()["plan"]

    def convert(self, keys: Sequence[str]) -> Iterator[Record | Skip]:
        idx = self._load()
        for key in keys:
            out = self._convert_one(idx, int(key))
            yield from (out if isinstance(out, list) else [out])

    def image_ref(self, file_name: str, h: int, w: int):
        """Hash and check the image (overridden by the benchmark to time conversion without image IO)."""
        return load_image_ref(self.path(self.options.image_root), file_name, expect_hw=(h, w))

    def _convert_one(self, idx: dict, image_id: int) -> Record | list[Skip]:
        src, o = self.source, self.options
        im, ann = idx["images"][image_id], idx["anns"][image_id]
        segs = ann.get("segments_info") or []
        h, w = int(im.get("height", 0)), int(im.get("width", 0))

        def skip_all(reason: str, detail: str) -> list[Skip]:
            return [Skip(source=src, kind="image", item_id=str(image_id), reason=reason, detail=detail)] + [
                Skip(source=src, kind="annotation", item_id=_seg_id(s), reason=f"image_{reason}") for s in segs]

        try:
            ref = self.image_ref(im.get("file_name"), h, w)
            masks = segment_rles(read_panoptic_png(self.path(o.panoptic_root), ann.get("file_name"), (h, w)),
                                  [s["id"] for s in segs if isinstance(s, dict) and isinstance(s.get("id"), int)])
        except (ImageError, PanopticError) as e:
            return skip_all(e.reason, e.detail)
        skips: list[Skip] = []
        instances: dict[str, Instance] = {}
        for seg in segs:
            if _seg_id(seg) in instances:
                skips.append(Skip(source=src, kind="annotation", item_id=_seg_id(seg), reason="duplicate_segment_id"))
                continue
            cat = idx["cats"].get(seg.get("category_id")) if isinstance(seg, dict) else None
            if (inst := panoptic_instance(src, seg, cat, masks, skips)) is not None:
                instances[inst.id] = inst
        return Record(
            id=record_id(src, o.split, image_id), source=src, split=o.split, image=ref,
            instances=list(instances.values()), skips=skips,
            provenance={"converter": f"{self.name}@{self.version}", "image_id": str(image_id),
                        "file_name": str(im.get("file_name")), "source_file": Path(o.panoptic_json).name,
                        "pan_seg_file_name": str(ann.get("file_name"))})


def _seg_id(seg: object) -> str:
    return str(seg.get("id")) if isinstance(seg, dict) else repr(seg)


def panoptic_instance(source: str, seg: dict, cat: dict | None, masks: dict[int, tuple[RLE, int]],
                      skips: list[Skip], box_xyxy: Sequence[float] | None = None) -> Instance | None:
    """One ``segments_info`` entry + its PNG mask -> Instance (box from the mask unless ``box_xyxy`` is given)."""
    sid = seg.get("id") if isinstance(seg, dict) else None

    def skip(reason: str, detail: str = "") -> None:
        skips.append(Skip(source=source, kind="annotation", item_id=_seg_id(seg), reason=reason, detail=detail))

    if not isinstance(sid, int):
        return skip("bad_segment_id", repr(sid))
    if cat is None:
        return skip("unknown_category_id", str(seg.get("category_id")))
    if sid not in masks:
        return skip("segment_not_in_png", f"segment {sid} has no pixels in the PNG")
    rle, area = masks[sid]
    box = tuple(float(v) for v in box_xyxy) if box_xyxy is not None else rle_utils.bbox_xyxy(rle)
    return Instance(id=str(sid), category=str(cat["name"]), category_id=cat.get("id"),
                    supercategory=cat.get("supercategory"), box=box, mask=rle, area=float(area),
                    iscrowd=bool(seg.get("iscrowd", 0)), isthing=bool(cat.get("isthing", seg.get("isthing", 1))))
