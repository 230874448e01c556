"""COCO instances (+ captions, + optional keypoints) -> canonical records. One record per image.

Handles polygons, multi-polygons, compressed and uncompressed (crowd) RLE. Crowd regions are kept as instances
with ``iscrowd=True`` (counted, never answer targets). Recipe: docs/sources/coco.md.
"""

from __future__ import annotations

import math
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from pipeline import rle as rle_utils
from pipeline.images import ImageError, load_image_ref
from pipeline.records import Instance, Record, Skip, Text, record_id
from pipeline.rle import MaskError

from .base import Converter, ConverterOptions, Plan, Unit, read_json


class CocoOptions(ConverterOptions):
    instances: str  # instances_<split>.json
    image_root: str  # folder holding the images named by file_name
    captions: str | None = None  # captions_<split>.json (optional)
    keypoints: str | None = None  # person_keypoints_<split>.json (optional; adds keypoints to person instances)
    split: str = "train"  # split name written into ids and rows


def clean_text(text: object) -> tuple[str | None, str]:
    """Normalise a caption / expression. Returns (clean text or None, skip reason when None)."""
    if not isinstance(text, str):
        return None, "text_not_a_string"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None, "text_not_utf8"
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text)
    text = " ".join(text.split())
    if not text:
        return None, "text_empty"
    return text, ""


class _Index:
    def __init__(self) -> None:
        self.images: dict[int, dict] = {}
        self.anns: dict[int, list[dict]] = defaultdict(list)
        self.caps: dict[int, list[dict]] = defaultdict(list)
        self.kps: dict[int, dict] = {}  # annotation id -> keypoint annotation
        self.cats: dict[int, dict] = {}
        self.plan = Plan(units=[])


class CocoConverter(Converter):
    name: ClassVar[str] = "coco"
    version: ClassVar[str] = "1"
    Options = CocoOptions
    path_fields = ("instances", "image_root", "captions", "keypoints")
    options: CocoOptions

    def input_files(self) -> list[Path]:
        o = self.options
        return [self.path(p) for p in (o.instances, o.captions, o.keypoints) if p]

    # -- planning: whole files, read once per process --------------------------------------------------------
    def _load(self) -> _Index:
        if self._index is not None:
            return self._index
        o, idx = self.options, _Index()
        skips, inputs = idx.plan.skips, defaultdict(int)
        src = self.source
        inst = read_json(self.path(o.instances))
        for cat in inst.get("categories", []):
            idx.cats[cat["id"]] = cat
        for im in inst.get("images", []):
            inputs["image"] += 1
            if im.get("id") in idx.images:
                skips.append(Skip(source=src, kind="image", item_id=str(im.get("id")), reason="duplicate_image_id"))
                continue
            idx.images[im["id"]] = im
        seen_ann: set = set()
        for ann in inst.get("annotations", []):
            inputs["annotation"] += 1
            aid = ann.get("id")
            if aid in seen_ann:
                skips.append(Skip(source=src, kind="annotation", item_id=str(aid), reason="duplicate_annotation_id"))
            elif ann.get("image_id") not in idx.images:
                skips.append(Skip(source=src, kind="annotation", item_id=str(aid), reason="unknown_image_id",
                                  detail=str(ann.get("image_id"))))
            elif ann.get("category_id") not in idx.cats:
                skips.append(Skip(source=src, kind="annotation", item_id=str(aid), reason="unknown_category_id",
                                  detail=str(ann.get("category_id"))))
            else:
                idx.anns[ann["image_id"]].append(ann)
            seen_ann.add(aid)
        if o.captions:
            seen_cap: set = set()
            for cap in read_json(self.path(o.captions)).get("annotations", []):
                inputs["text"] += 1
                cid = cap.get("id")
                if cid in seen_cap:
                    skips.append(Skip(source=src, kind="text", item_id=str(cid), reason="duplicate_caption_id"))
                elif cap.get("image_id") not in idx.images:
                    skips.append(Skip(source=src, kind="text", item_id=str(cid), reason="unknown_image_id",
                                      detail=str(cap.get("image_id"))))
                else:
                    idx.caps[cap["image_id"]].append(cap)
                seen_cap.add(cid)
        if o.keypoints:
            for ann in read_json(self.path(o.keypoints)).get("annotations", []):
                idx.kps[ann.get("id")] = ann  # joined onto instances by annotation id; not counted twice
        idx.plan.inputs = dict(inputs)
        idx.plan.units = [Unit(split=o.split, key=str(i)) for i in sorted(idx.images)]
        self._index = idx
        return idx

    def plan(self) -> Plan:
        return self._load().plan

    # -- conversion: one image at a time ---------------------------------------------------------------------
    def convert(self, keys: Sequence[str]) -> Iterator[Record | Skip]:
        idx = self._load()
        for key in keys:
            out = self._convert_one(idx, int(key))
            if isinstance(out, list):
                yield from out
            else:
                yield out

    def _skip_all(self, idx: _Index, image_id: int, reason: str, detail: str) -> list[Skip]:
        """An unusable image: skip it, and its annotations and captions with it, each counted."""
        out = [Skip(source=self.source, kind="image", item_id=str(image_id), reason=reason, detail=detail)]
        out += [Skip(source=self.source, kind="annotation", item_id=str(a.get("id")), reason=f"image_{reason}")
                for a in idx.anns.get(image_id, [])]
        out += [Skip(source=self.source, kind="text", item_id=str(c.get("id")), reason=f"image_{reason}")
                for c in idx.caps.get(image_id, [])]
        return out

    def _convert_one(self, idx: _Index, image_id: int) -> Record | list[Skip]:
        o, im = self.options, idx.images[image_id]
        h, w = int(im.get("height", 0)), int(im.get("width", 0))
        try:
            ref = load_image_ref(self.path(o.image_root), im.get("file_name"), expect_hw=(h, w))
        except ImageError as e:
            return self._skip_all(idx, image_id, e.reason, e.detail)
        skips: list[Skip] = []
        instances = []
        for ann in idx.anns.get(image_id, []):
            inst = self._instance(ann, idx, h, w, skips)
            if inst is not None:
                instances.append(inst)
        texts = []
        for cap in idx.caps.get(image_id, []):
            text, reason = clean_text(cap.get("caption"))
            if text is None:
                skips.append(Skip(source=self.source, kind="text", item_id=str(cap.get("id")), reason=reason))
                continue
            texts.append(Text(id=str(cap["id"]), kind="caption", text=text))
        return Record(
            id=record_id(self.source, o.split, image_id), source=self.source, split=o.split, image=ref,
            instances=instances, texts=texts, skips=skips,
            provenance={"converter": f"{self.name}@{self.version}", "image_id": str(image_id),
                        "file_name": str(im.get("file_name")), "source_file": Path(o.instances).name,
                        "licence_id": str(im.get("license", ""))},
        )

    def _instance(self, ann: dict, idx: _Index, h: int, w: int, skips: list[Skip]) -> Instance | None:
        kp = idx.kps.get(ann.get("id"))
        return coco_instance(self.source, ann, idx.cats[ann["category_id"]], h, w, skips,
                             keypoints_ann=kp if kp is not None else ann)


def coco_instance(source: str, ann: dict, cat: dict, h: int, w: int, skips: list[Skip],
                  keypoints_ann: dict | None = None) -> Instance | None:
    """One COCO annotation -> Instance, or None with a named Skip appended. Shared by the COCO-based converters.

    Boxes may overshoot the image by a pixel of float rounding (clipped); more is `box_out_of_bounds`.
    """
    aid = str(ann.get("id"))

    def skip(reason: str, detail: str = "") -> None:
        skips.append(Skip(source=source, kind="annotation", item_id=aid, reason=reason, detail=detail))

    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
        return skip("bad_box", repr(bbox))
    x, y, bw, bh = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, bw, bh)) or bw <= 0 or bh <= 0:
        return skip("zero_area_box", repr(bbox))
    tol = 1.0
    if x < -tol or y < -tol or x + bw > w + tol or y + bh > h + tol:
        return skip("box_out_of_bounds", f"{bbox} in {w}x{h}")
    box = (max(0.0, x), max(0.0, y), min(float(w), round(x + bw, 3)), min(float(h), round(y + bh, 3)))
    mask = None
    if ann.get("segmentation") not in (None, [], {}):
        try:
            mask = rle_utils.to_rle(ann["segmentation"], h, w)
        except MaskError as e:
            return skip(e.reason, e.detail)
    keypoints = None
    if keypoints_ann is not None and keypoints_ann.get("num_keypoints", 0) > 0:
        keypoints = [float(v) for v in keypoints_ann.get("keypoints", [])]
    return Instance(
        id=aid, category=str(cat.get("name")), category_id=int(cat["id"]), supercategory=cat.get("supercategory"),
        box=box, mask=mask, area=float(rle_utils.area(mask)) if mask is not None else bw * bh,
        iscrowd=bool(ann.get("iscrowd", 0)), keypoints=keypoints,
        num_keypoints=sum(1 for v in keypoints[2::3] if v > 0) if keypoints else 0,
    )
