"""PSG (Panoptic Scene Graph, ``psg.json`` + COCO images + panoptic PNGs) -> records with relations.

PSG is not COCO-id based: ``category_id`` indexes ``thing_classes + stuff_classes``; ``annotations[i]`` (bbox
**XYXY**) is parallel to ``segments_info[i]``; ``relations`` are ``[subject_idx, object_idx, predicate_idx]`` with
indices into ``segments_info`` and ``predicate_classes``; ``image_id`` is a string; ``file_name`` /
``pan_seg_file_name`` carry the ``train2017/`` / ``panoptic_train2017/`` prefix. An image whose id is in
``test_image_ids`` is split ``test``, every other one ``train``. Recipe: docs/sources/psg.md.

Accounting: ``inputs["image"]`` = images of the selected splits, ``"annotation"`` = their segments,
``"relation"`` = their relations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar, Literal

from pipeline.errors import InputFileError
from pipeline.images import ImageError, load_image_ref
from pipeline.records import Instance, Record, Relation, Skip, record_id

from .base import Converter, ConverterOptions, Plan, Unit, read_json
from .coco_panoptic import PanopticError, panoptic_instance, read_panoptic_png, segment_rles


class PsgOptions(ConverterOptions):
    psg_json: str  # psg.json
    image_root: str  # COCO root: file_name ("train2017/000000417720.jpg") is resolved against it
    panoptic_root: str  # COCO panoptic root: pan_seg_file_name ("panoptic_train2017/...png") is resolved against it
    splits: list[Literal["train", "test"]] | None = None  # default both


def _valid_box(box: object, w: int, h: int) -> tuple[float, float, float, float] | None:
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        return None
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1 and x1 >= -1 and y1 >= -1 and x2 <= w + 1 and y2 <= h + 1):
        return None
    return (max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2))


class PsgConverter(Converter):
    name: ClassVar[str] = "psg"
    version: ClassVar[str] = "1"
    Options = PsgOptions
    path_fields = ("psg_json", "image_root", "panoptic_root")
    options: PsgOptions

    def input_files(self) -> list[Path]:
        return [self.path(self.options.psg_json)]

    def _load(self) -> dict:
        if self._index is not None:
            return self._index
        o, src, file = self.options, self.source, str(self.path(self.options.psg_json))
        data = read_json(self.path(o.psg_json))
        need = ("data", "thing_classes", "stuff_classes", "predicate_classes")
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in need):
            raise InputFileError(file, f"expected a psg.json object with the lists {', '.join(need)}")
        classes = [str(c) for c in data["thing_classes"] + data["stuff_classes"]]
        n_thing = len(data["thing_classes"])
        test_ids = {str(i) for i in data.get("test_image_ids") or []}
        wanted = set(o.splits or ("train", "test"))
        images: dict[tuple[str, str], dict] = {}
        skips, inputs = [], defaultdict(int)
        for rec in data["data"]:
            iid = str(rec.get("image_id")) if isinstance(rec, dict) else "?"
            split = "test" if iid in test_ids else "train"
            if split not in wanted:
                continue
            inputs["image"] += 1
            segs = rec.get("segments_info") if isinstance(rec, dict) else None
            rels = rec.get("relations") if isinstance(rec, dict) else None
            inputs["annotation"] += len(segs) if isinstance(segs, list) else 0
            inputs["relation"] += len(rels) if isinstance(rels, list) else 0
            reason = ("bad_record" if not (isinstance(segs, list) and isinstance(rels, list)
                                           and isinstance(rec.get("annotations"), list))
                      else "annotations_not_parallel" if len(rec["annotations"]) != len(segs)
                      else "duplicate_image_id" if (split, iid) in images else "")
            if reason:
                skips += _skip_all(src, iid, segs, rels, reason, "")
                continue
            images[(split, iid)] = rec
        units = [Unit(split=s, key=f"{s}/{i}") for s, i in sorted(images, key=lambda k: (k[0], len(k[1]), k[1]))]
        self._index = {"images": images, "classes": classes, "n_thing": n_thing,
                       "predicates": [str(p) for p in data["predicate_classes"]],
                       "plan": Plan(units=units, skips=skips, inputs=dict(inputs))}
        return self._index

    def plan(self) -> Plan:
        return self._load()["plan"]

    def convert(self, keys: Sequence[str]) -> Iterator[Record | Skip]:
        idx = self._load()
        for key in keys:
            split, _, iid = key.partition("/")
            out = self._convert_one(idx, split, iid)
            yield from (out if isinstance(out, list) else [out])

    def image_ref(self, file_name: str, h: int, w: int):
        """Hash and check the image (overridden by the benchmark to time conversion without image IO)."""
        return load_image_ref(self.path(self.options.image_root), file_name, expect_hw=(h, w))

    def _convert_one(self, idx: dict, split: str, iid: str) -> Record | list[Skip]:
        src, o = self.source, self.options
        rec = idx["images"][(split, iid)]
        segs, rels = rec["segments_info"], rec["relations"]
        h, w = int(rec.get("height", 0)), int(rec.get("width", 0))
        try:
            ref = self.image_ref(rec.get("file_name"), h, w)
            masks = segment_rles(read_panoptic_png(self.path(o.panoptic_root), rec.get("pan_seg_file_name"), (h, w)),
                                  [s["id"] for s in segs if isinstance(s, dict) and isinstance(s.get("id"), int)])
        except (ImageError, PanopticError) as e:
            return _skip_all(src, iid, segs, rels, e.reason, e.detail)
        skips: list[Skip] = []
        by_index: dict[int, str] = {}  # segments_info index -> instance id of an emitted instance
        instances: dict[str, Instance] = {}
        for i, (seg, ann) in enumerate(zip(segs, rec["annotations"])):
            cid = seg.get("category_id") if isinstance(seg, dict) else None
            cat = None
            if isinstance(cid, int) and 0 <= cid < len(idx["classes"]):
                cat = {"id": cid, "name": idx["classes"][cid], "isthing": cid < idx["n_thing"]}
            box = _valid_box(ann.get("bbox") if isinstance(ann, dict) else None, w, h)
            if box is None:
                skips.append(Skip(source=src, kind="annotation", item_id=str(seg.get("id") if isinstance(seg, dict)
                                                                             else i),
                                  reason="bad_box", detail=f"{ann.get('bbox') if isinstance(ann, dict) else ann}"
                                                           f" (XYXY) in {w}x{h}"))
                continue
            if isinstance(seg, dict) and str(seg.get("id")) in instances:
                skips.append(Skip(source=src, kind="annotation", item_id=str(seg["id"]), reason="duplicate_segment_id"))
                continue
            inst = panoptic_instance(src, seg, cat, masks, skips, box_xyxy=box)
            if inst is not None:
                instances[inst.id] = inst
                by_index[i] = inst.id
        relations = []
        for j, rel in enumerate(rels):
            rid = f"{iid}:{j}"
            if not (isinstance(rel, list) and len(rel) == 3 and all(isinstance(v, int) for v in rel)):
                skips.append(Skip(source=src, kind="relation", item_id=rid, reason="bad_relation", detail=repr(rel)))
                continue
            s, ob, p = rel
            if not (0 <= s < len(segs) and 0 <= ob < len(segs) and 0 <= p < len(idx["predicates"])):
                skips.append(Skip(source=src, kind="relation", item_id=rid, reason="relation_index_out_of_range",
                                  detail=f"{rel} with {len(segs)} segments, {len(idx['predicates'])} predicates"))
            elif s not in by_index or ob not in by_index:
                skips.append(Skip(source=src, kind="relation", item_id=rid, reason="relation_instance_skipped",
                                  detail=repr(rel)))
            else:
                relations.append(Relation(subject=by_index[s], predicate=idx["predicates"][p], object=by_index[ob]))
        return Record(
            id=record_id(src, split, iid), source=src, split=split, image=ref, instances=list(instances.values()),
            relations=relations, skips=skips,
            provenance={"converter": f"{self.name}@{self.version}", "image_id": iid,
                        "coco_image_id": str(rec.get("coco_image_id", "")), "file_name": str(rec.get("file_name")),
                        "pan_seg_file_name": str(rec.get("pan_seg_file_name")),
                        "source_file": Path(o.psg_json).name})


def _skip_all(src: str, iid: str, segs: object, rels: object, reason: str, detail: str) -> list[Skip]:
    """An unusable image: it, its segments and its relations, each a counted skip."""
    out = [Skip(source=src, kind="image", item_id=iid, reason=reason, detail=detail)]
    for i, s in enumerate(segs if isinstance(segs, list) else []):
        out.append(Skip(source=src, kind="annotation", item_id=str(s.get("id") if isinstance(s, dict) else i),
                        reason=f"image_{reason}"))
    for j, _ in enumerate(rels if isinstance(rels, list) else []):
        out.append(Skip(source=src, kind="relation", item_id=f"{iid}:{j}", reason=f"image_{reason}"))
    return out
