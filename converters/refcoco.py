"""RefCOCO / RefCOCO+ / RefCOCOg (REFER ``refs(<split_by>).p`` + COCO train2014 ``instances.json``) -> records.

One unit is one (image, ref split): a Record holds every COCO annotation of the image as an instance (so other tasks
can use them) and each referring expression of that split as ``Text(kind="refexp", instance_ids=[ann_id])``. The
image file comes from ``image_id`` through ``file_pattern``, never from the ref's ``file_name`` (``..._16.jpg`` is not
a COCO file). The pickle is read by a restricted unpickler (:mod:`converters._pickle`). Recipe: docs/sources/refcoco.md.

Accounting, over the selected splits: ``inputs["image"]`` = units, ``inputs["annotation"]`` = COCO annotations on
those units' images, ``inputs["text"]`` = sentences of the selected refs (a malformed ref counts as one text).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import field_validator

from pipeline.errors import InputFileError
from pipeline.images import ImageError, load_image_ref
from pipeline.records import Instance, Record, Skip, Text, record_id

from ._pickle import load_data_pickle
from .base import Converter, ConverterOptions, Plan, Unit, read_json
from .coco import clean_text, coco_instance


class RefCocoOptions(ConverterOptions):
    refs: str  # refs(unc).p / refs(umd).p / refs(google).p
    instances: str  # the instances.json shipped beside the refs (COCO train2014 subset)
    image_root: str  # folder holding COCO train2014 images
    file_pattern: str = "COCO_train2014_{image_id:012d}.jpg"
    splits: list[str] | None = None  # ref splits to keep (train / val / testA / testB / test); default all
    text_field: Literal["sent", "raw"] = "sent"  # REFER's normalised lower-case `sent` or the annotator's `raw`

    @field_validator("file_pattern")
    @classmethod
    def _pattern_formats(cls, v: str) -> str:
        try:
            v.format(image_id=1)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"file_pattern must format with only {{image_id}}: {e}") from None
        return v


class _Index:
    def __init__(self) -> None:
        self.images: dict[int, dict] = {}
        self.anns: dict[int, list[dict]] = defaultdict(list)  # image id -> annotations
        self.ann_by_id: dict[int, dict] = {}
        self.cats: dict[int, dict] = {}
        self.refs: dict[tuple[str, int], list[dict]] = defaultdict(list)  # (split, image id) -> refs
        self.plan = Plan(units=[])


class RefCocoConverter(Converter):
    name: ClassVar[str] = "refcoco"
    version: ClassVar[str] = "1"
    Options = RefCocoOptions
    path_fields = ("refs", "instances", "image_root")
    options: RefCocoOptions

    def input_files(self) -> list[Path]:
        return [self.path(self.options.refs), self.path(self.options.instances)]

    def _load(self) -> _Index:
        if self._index is not None:
            return self._index
        o, idx, src = self.options, _Index(), self.source
        refs = load_data_pickle(self.path(o.refs))
        if not isinstance(refs, list):
            raise InputFileError(str(self.path(o.refs)), f"expected a list of refs, got {type(refs).__name__}")
        inst = read_json(self.path(o.instances))
        if not isinstance(inst, dict) or not isinstance(inst.get("images"), list):
            raise InputFileError(str(self.path(o.instances)), "expected a COCO instances file with an images list")
        idx.cats = {c["id"]: c for c in inst.get("categories", []) if isinstance(c, dict) and "id" in c}
        idx.images = {im["id"]: im for im in inst["images"] if isinstance(im, dict) and "id" in im}
        for ann in inst.get("annotations", []):
            if isinstance(ann, dict) and ann.get("image_id") in idx.images:
                idx.anns[ann["image_id"]].append(ann)
                idx.ann_by_id[ann.get("id")] = ann
        skips, inputs, wanted = idx.plan.skips, defaultdict(int), set(o.splits) if o.splits else None
        seen_sent: set = set()
        for ref in refs:
            split = ref.get("split") if isinstance(ref, dict) else None
            if wanted is not None and split not in wanted:
                continue  # not selected: out of scope, not counted
            sents = ref.get("sentences") if isinstance(ref, dict) else None
            rid = str(ref.get("ref_id")) if isinstance(ref, dict) else "?"
            if not isinstance(sents, list) or not isinstance(split, str) or not isinstance(ref.get("image_id"), int):
                inputs["text"] += 1
                skips.append(Skip(source=src, kind="text", item_id=f"ref:{rid}", reason="bad_ref",
                                  detail="needs split (str), image_id (int) and a sentences list"))
                continue
            inputs["text"] += len(sents)
            reason, good = "" if ref["image_id"] in idx.images else "unknown_image_id", []
            for s in sents:
                sid = s.get("sent_id") if isinstance(s, dict) else None
                r = reason or ("bad_sentence" if sid is None else "duplicate_sent_id" if sid in seen_sent else "")
                seen_sent.add(sid)
                if r:
                    skips.append(Skip(source=src, kind="text", item_id=f"{rid}:{sid}", reason=r,
                                      detail=str(ref["image_id"]) if r == "unknown_image_id" else ""))
                else:
                    good.append(s)
            if not reason:
                idx.refs[(split, ref["image_id"])].append({**ref, "sentences": good})
        units = sorted(idx.refs)
        inputs["image"] = len(units)
        inputs["annotation"] = sum(len(idx.anns.get(image_id, [])) for _, image_id in units)
        idx.plan.units = [Unit(split=s, key=f"{s}/{i}") for s, i in units]
        idx.plan.inputs = dict(inputs)
        self._index = idx
        return idx

    def plan(self) -> Plan:
        return self._load().plan

    def convert(self, keys: Sequence[str]) -> Iterator[Record | Skip]:
        idx = self._load()
        for key in keys:
            split, _, image_id = key.rpartition("/")
            out = self._convert_one(idx, split, int(image_id))
            if isinstance(out, list):
                yield from out
            else:
                yield out

    def _sentences(self, idx: _Index, split: str, image_id: int) -> Iterator[tuple[dict, dict]]:
        for ref in idx.refs.get((split, image_id), []):
            for s in ref["sentences"]:  # only the sentences that passed planning
                yield ref, s

    def image_ref(self, image_id: int, h: int, w: int):
        """Hash and check the image (overridden by the benchmark to time conversion without image IO)."""
        return load_image_ref(self.path(self.options.image_root), self.options.file_pattern.format(image_id=image_id),
                              expect_hw=(h, w))

    def _convert_one(self, idx: _Index, split: str, image_id: int) -> Record | list[Skip]:
        src, o, im = self.source, self.options, idx.images[image_id]
        h, w = int(im.get("height", 0)), int(im.get("width", 0))
        try:
            ref = self.image_ref(image_id, h, w)
        except ImageError as e:
            out = [Skip(source=src, kind="image", item_id=str(image_id), reason=e.reason, detail=e.detail)]
            out += [Skip(source=src, kind="annotation", item_id=str(a.get("id")), reason=f"image_{e.reason}")
                    for a in idx.anns.get(image_id, [])]
            out += [Skip(source=src, kind="text", item_id=f"{r.get('ref_id')}:{s['sent_id']}",
                         reason=f"image_{e.reason}") for r, s in self._sentences(idx, split, image_id)]
            return out
        skips: list[Skip] = []
        instances: dict[str, Instance] = {}
        for ann in idx.anns.get(image_id, []):
            cat = idx.cats.get(ann.get("category_id"))
            if cat is None:
                skips.append(Skip(source=src, kind="annotation", item_id=str(ann.get("id")),
                                  reason="unknown_category_id", detail=str(ann.get("category_id"))))
            elif str(ann.get("id")) in instances:
                skips.append(Skip(source=src, kind="annotation", item_id=str(ann.get("id")),
                                  reason="duplicate_annotation_id"))
            elif (inst := coco_instance(src, ann, cat, h, w, skips)) is not None:
                instances[inst.id] = inst
        texts = []
        for r, s in self._sentences(idx, split, image_id):
            tid, ann_id = f"{r.get('ref_id')}:{s['sent_id']}", r.get("ann_id")
            text, reason = clean_text(s.get(o.text_field))
            ann = idx.ann_by_id.get(ann_id)
            if ann is None:
                reason, text = "unknown_annotation", None
            elif ann.get("image_id") != image_id:
                reason, text = "annotation_on_other_image", None
            elif str(ann_id) not in instances:
                reason, text = "target_annotation_skipped", None
            if text is None:
                skips.append(Skip(source=src, kind="text", item_id=tid, reason=reason, detail=f"ann_id {ann_id}"))
                continue
            texts.append(Text(id=tid, kind="refexp", text=text, instance_ids=[str(ann_id)]))
        return Record(
            id=record_id(src, split, image_id), source=src, split=split, image=ref,
            instances=list(instances.values()), texts=texts, skips=skips,
            provenance={"converter": f"{self.name}@{self.version}", "image_id": str(image_id),
                        "source_file": Path(o.refs).name, "instances_file": Path(o.instances).name,
                        "ref_ids": ",".join(str(r.get("ref_id")) for r in idx.refs.get((split, image_id), []))},
        )


class RefCocoPlusConverter(RefCocoConverter):
    """RefCOCO+ (``refcoco+/refs(unc).p``): same format; only the registry key and provenance differ."""

    name: ClassVar[str] = "refcoco+"


class RefCocogConverter(RefCocoConverter):
    """RefCOCOg (``refcocog/refs(umd).p`` or ``refs(google).p``): same format, splits train / val / test."""

    name: ClassVar[str] = "refcocog"
