"""COCO RLE helpers: pure functions over pycocotools, no model, no Ray.

Every mask in the pipeline is a compressed-string RLE (:class:`pipeline.records.RLE`). Input comes as polygons
(list of flat ``[x, y, ...]`` lists), uncompressed RLE (``counts`` a list of ints, column-major) or compressed
RLE (``counts`` a string); :func:`to_rle` normalises all three.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from pipeline.records import RLE

# pycocotools' mask.area raises OverflowError for >= 256 RLEs in one call (see docs/platform-notes.md)
_AREA_CHUNK = 128


class MaskError(ValueError):
    """A single annotation's mask cannot be used; the message is the skip reason's detail."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _from_coco(obj: dict) -> RLE:
    counts = obj["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return RLE(size=(int(obj["size"][0]), int(obj["size"][1])), counts=counts)


def to_coco(rle: RLE) -> dict:
    return {"size": [rle.size[0], rle.size[1]], "counts": rle.counts.encode("ascii")}


def to_rle(segmentation: object, height: int, width: int) -> RLE:
    """Normalise a COCO ``segmentation`` value to a compressed RLE of size (height, width).

    Raises :class:`MaskError` with a named reason for anything unusable.
    """
    if isinstance(segmentation, list):
        polys = []
        for poly in segmentation:
            if not isinstance(poly, list) or len(poly) % 2 != 0:
                raise MaskError("bad_polygon", "polygon is not a flat list of x, y pairs")
            if len(poly) < 6:
                raise MaskError("polygon_too_few_points", f"{len(poly) // 2} points, need at least 3")
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in poly):
                raise MaskError("bad_polygon", "non-numeric or non-finite coordinate")
            polys.append([float(v) for v in poly])
        if not polys:
            raise MaskError("empty_segmentation", "polygon list is empty")
        merged = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
        return _from_coco(merged)
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        size = segmentation["size"]
        if list(size) != [height, width]:
            raise MaskError("mask_size_mismatch", f"RLE size {list(size)} != image [h, w] {[height, width]}")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if sum(counts) != height * width:
                raise MaskError("bad_rle", f"uncompressed counts sum {sum(counts)} != h*w {height * width}")
            return _from_coco(mask_utils.frPyObjects(segmentation, height, width))
        if isinstance(counts, (str, bytes)):
            return _from_coco({"size": size, "counts": counts})
        raise MaskError("bad_rle", f"counts of type {type(counts).__name__}")
    raise MaskError("bad_segmentation", f"unsupported segmentation of type {type(segmentation).__name__}")


def encode(mask: np.ndarray) -> RLE:
    """Encode a 2-D boolean / uint8 mask."""
    return _from_coco(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))


def decode(rle: RLE) -> np.ndarray:
    return mask_utils.decode(to_coco(rle)).astype(bool)


def area(rle: RLE) -> int:
    return int(mask_utils.area(to_coco(rle)))


def areas(rles: Sequence[RLE]) -> np.ndarray:
    """Areas of many RLEs, chunked around the pycocotools overflow bug."""
    out = np.zeros(len(rles), dtype=np.int64)
    objs = [to_coco(r) for r in rles]
    for start in range(0, len(objs), _AREA_CHUNK):
        chunk = objs[start : start + _AREA_CHUNK]
        if chunk:
            out[start : start + len(chunk)] = mask_utils.area(chunk)
    return out


def bbox_xyxy(rle: RLE) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in mask_utils.toBbox(to_coco(rle)))
    return (x, y, x + w, y + h)


def iou(a: RLE, b: RLE) -> float:
    return float(mask_utils.iou([to_coco(a)], [to_coco(b)], [0])[0][0])


def union(rles: Sequence[RLE]) -> RLE:
    return _from_coco(mask_utils.merge([to_coco(r) for r in rles], intersect=0))
