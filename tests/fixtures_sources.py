"""Fixture builders for the source-converter tests: tiny inputs written to the published formats.

Everything here is a FIXTURE (generated), not real data; the real samples are read from ../shared/realdata through
the conftest fixtures. Formats followed:
- REFER ``refs(*).p``: a list of ref dicts (sent_ids, file_name, ann_id, ref_id, image_id, split, sentences
  [{tokens, raw, sent_id, sent}], category_id), written by :func:`py2_pickle` as a Python-2 protocol-2 pickle
  (Python 2 ``str`` -> SHORT_BINSTRING / BINSTRING opcodes, so values load as bytes as they do from the real files).
- Flickr30k Entities ``Annotations/<id>.xml``: the layout read by the official ``flickr30k_entities_utils.py``
  ``get_annotations``: ``<annotation><filename/><size><width/><height/><depth/></size>`` then one ``<object>`` per
  box with one or more ``<name>``chain id``</name>`` and ``<bndbox><xmin/><ymin/><xmax/><ymax/></bndbox>`` (1-based
  pixels), or ``<name>`` + ``<nobndbox>`` + ``<scene>`` flags.
- PSG / COCO panoptic: json as described in PROVENANCE.md "Format gotchas"; PNG id = R + 256 G + 256^2 B.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.records import Record, Skip


# -- Python-2 protocol-2 pickle writer (data only) -------------------------------------------------------------
def _py2(obj: object, out: bytearray) -> None:
    if obj is None:
        out += b"N"
    elif obj is True or obj is False:
        out += b"\x88" if obj else b"\x89"
    elif isinstance(obj, int):
        if -(2**31) <= obj < 2**31:
            out += b"J" + struct.pack("<i", obj)
        else:
            n = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
            out += b"\x8a" + bytes([len(n)]) + n
    elif isinstance(obj, float):
        out += b"G" + struct.pack(">d", obj)
    elif isinstance(obj, str):  # a Python 2 `str`: raw bytes, UTF-8 as the REFER files hold them
        b = obj.encode("utf-8")
        out += (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b
    elif isinstance(obj, list):
        out += b"]("
        for v in obj:
            _py2(v, out)
        out += b"e"
    elif isinstance(obj, tuple):
        out += b"("
        for v in obj:
            _py2(v, out)
        out += b"t"
    elif isinstance(obj, dict):
        out += b"}("
        for k, v in obj.items():
            _py2(k, out)
            _py2(v, out)
        out += b"u"
    else:
        raise TypeError(f"py2_pickle: unsupported {type(obj).__name__}")


def py2_pickle(obj: object) -> bytes:
    out = bytearray(b"\x80\x02")
    _py2(obj, out)
    return bytes(out + b".")


# -- images ----------------------------------------------------------------------------------------------------
def write_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def write_panoptic_png(path: Path, ids: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path


# -- RefCOCO -----------------------------------------------------------------------------------------------------
def _poly(x: float, y: float, w: float, h: float) -> list[list[float]]:
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def refcoco_fixture(root: Path, n_images: int = 4, width: int = 64, height: int = 48, image_ids: list[int] | None = None,
                    write_images: bool = True) -> dict:
    """instances.json (train2014 style) + refs list; images named COCO_train2014_<id:012d>.jpg. Returns paths/data."""
    image_ids = image_ids or [101 + i for i in range(n_images)]
    splits = ["train", "val", "testA", "testB"]
    images, anns, refs = [], [], []
    aid, rid, sid = 1000, 0, 0
    for k, iid in enumerate(image_ids):
        images.append({"license": 1, "file_name": f"COCO_train2014_{iid:012d}.jpg", "height": height, "width": width,
                       "id": iid})
        if write_images:
            write_image(root / "train2014" / f"COCO_train2014_{iid:012d}.jpg", width, height, seed=iid)
        for j, (cat, box) in enumerate([(1, (2.0, 3.0, 20.0, 30.0)), (18, (30.0, 5.0, 25.0, 20.0)),
                                        (1, (10.0, 25.0, 40.0, 20.0))]):
            anns.append({"segmentation": _poly(*box), "area": box[2] * box[3], "iscrowd": 0, "image_id": iid,
                         "bbox": list(box), "category_id": cat, "id": aid})
            if j < 2:  # two referred objects per image, two sentences each
                sents = [{"tokens": ["the", "left", "one"], "raw": "The LEFT one", "sent_id": sid, "sent": "the left one"},
                         {"tokens": ["obj", str(j)], "raw": f"obj {j} caf\u00e9", "sent_id": sid + 1,
                          "sent": f"obj {j} caf\u00e9"}]
                refs.append({"sent_ids": [sid, sid + 1], "file_name": f"COCO_train2014_{iid:012d}_{j}.jpg",
                             "ann_id": aid, "ref_id": rid, "image_id": iid, "split": splits[k % len(splits)],
                             "sentences": sents, "category_id": cat})
                rid, sid = rid + 1, sid + 2
            aid += 1
    inst = {"images": images, "annotations": anns,
            "categories": [{"supercategory": "person", "id": 1, "name": "person"},
                           {"supercategory": "animal", "id": 18, "name": "dog"}]}
    (root / "instances.json").write_text(json.dumps(inst))
    (root / "refs(unc).p").write_bytes(py2_pickle(refs))
    return {"instances": root / "instances.json", "refs": root / "refs(unc).p", "image_root": root / "train2014",
            "refs_data": refs, "inst_data": inst}


# -- Flickr30k Entities xml ----------------------------------------------------------------------------------------
def flickr_xml(file_name: str, width: int, height: int, objects: list[dict]) -> str:
    """objects: {"names": [...], "box": (xmin, ymin, xmax, ymax) 1-based} or {"names": [...], "scene": 0/1,
    "nobndbox": 0/1}. Layout as read by the official get_annotations."""
    lines = ["<annotation>", f"\t<filename>{file_name}</filename>", "\t<size>", f"\t\t<width>{width}</width>",
             f"\t\t<height>{height}</height>", "\t\t<depth>3</depth>", "\t</size>"]
    for obj in objects:
        lines.append("\t<object>")
        lines += [f"\t\t<name>{n}</name>" for n in obj["names"]]
        if "box" in obj:
            lines.append("\t\t<bndbox>")
            lines += [f"\t\t\t<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), obj["box"])]
            lines.append("\t\t</bndbox>")
        else:
            lines += [f"\t\t<nobndbox>{obj.get('nobndbox', 0)}</nobndbox>", f"\t\t<scene>{obj.get('scene', 0)}</scene>"]
        lines.append("\t</object>")
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


# -- PSG ---------------------------------------------------------------------------------------------------------
def psg_fixture(root: Path, thing_classes: list[str], stuff_classes: list[str], predicate_classes: list[str],
                n_images: int = 1, test_ids: tuple[str, ...] = (), width: int = 40, height: int = 30) -> dict:
    """psg.json + images (train2017/) + panoptic PNGs (panoptic_train2017/): 3 segments, 3 relations per image."""
    data = []
    for k in range(n_images):
        coco_id = 500 + k
        ids = np.zeros((height, width), dtype=np.int64)
        seg_ids = [0x102030 + k, 0x405060 + k, 0x0A0B0C + k]
        ids[5:20, 4:15] = seg_ids[0]  # person
        ids[2:12, 20:36] = seg_ids[1]  # umbrella
        ids[22:, :] = seg_ids[2]  # grass (stuff)
        write_image(root / "coco" / "train2017" / f"{coco_id:012d}.jpg", width, height, seed=coco_id)
        write_panoptic_png(root / "coco" / "panoptic_train2017" / f"{coco_id:012d}.png", ids)
        cats = [0, 25, len(thing_classes) + 45]
        boxes = [[4.0, 5.0, 15.0, 20.0], [20.0, 2.0, 36.0, 12.0], [0.0, 22.0, float(width), float(height)]]
        data.append({"file_name": f"train2017/{coco_id:012d}.jpg", "height": height, "width": width,
                     "image_id": str(9000 + k), "pan_seg_file_name": f"panoptic_train2017/{coco_id:012d}.png",
                     "segments_info": [{"id": s, "category_id": c, "iscrowd": 0, "isthing": int(c < len(thing_classes)),
                                        "area": int((ids == s).sum())} for s, c in zip(seg_ids, cats)],
                     "relations": [[0, 1, 21], [0, 2, 14], [1, 0, 0]],
                     "annotations": [{"bbox": b, "bbox_mode": 0, "category_id": c} for b, c in zip(boxes, cats)],
                     "coco_image_id": str(coco_id)})
    doc = {"data": data, "thing_classes": thing_classes, "stuff_classes": stuff_classes,
           "predicate_classes": predicate_classes, "test_image_ids": list(test_ids)}
    (root / "psg.json").write_text(json.dumps(doc))
    return {"psg_json": root / "psg.json", "image_root": root / "coco", "panoptic_root": root / "coco", "doc": doc}


# -- accounting ----------------------------------------------------------------------------------------------------
def reconcile(plan, outputs: list) -> dict[str, tuple[int, int, int]]:
    """Per input kind: (inputs, emitted, skipped). Emitted: records / instances / texts / relations."""
    emitted, skipped = Counter(), Counter(s.kind for s in plan.skips)
    for out in outputs:
        if isinstance(out, Skip):
            skipped[out.kind] += 1
        elif isinstance(out, Record):
            emitted["image"] += 1
            emitted["annotation"] += len(out.instances)
            emitted["text"] += len(out.texts)
            emitted["relation"] += len(out.relations)
            skipped.update(s.kind for s in out.skips)
        else:
            raise TypeError(type(out))
    kinds = set(plan.inputs) | {k for k, v in emitted.items() if v} | set(skipped)
    return {k: (plan.inputs.get(k, 0), emitted[k], skipped[k]) for k in sorted(kinds)}


def assert_reconciled(plan, outputs: list) -> dict:
    table = reconcile(plan, outputs)
    bad = {k: v for k, v in table.items() if v[0] != v[1] + v[2]}
    if bad:
        raise AssertionError(f"inputs != emitted + skipped for {bad} (full table {table})")
    return table
