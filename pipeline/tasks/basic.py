"""Image-level tasks: caption, freeform detection / segmentation, counting, REC / RES."""

from __future__ import annotations

import numpy as np

from pipeline.formats.segments import Ground
from pipeline.records import Record

from .base import NotApplicable, TaskContext, TurnSpec, group_by_category, target_for
from .language import clean_category, counted, join, plural


def caption(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    caps = [t for t in record.texts if t.kind in ("caption", "grounded_caption")]
    if not caps:
        return NotApplicable("no_captions")
    text = caps[int(rng.integers(len(caps)))]
    return TurnSpec("caption", [text.text], annotation_ids=[text.id])


def _freeform(task: str, unit: str, record: Record, ctx: TaskContext) -> TurnSpec | NotApplicable:
    insts = record.targetable()
    if unit == "mask":
        insts = [i for i in insts if i.mask is not None]
    if not insts:
        return NotApplicable("no_masks" if unit == "mask" else "no_instances")
    phrases = [Ground([counted(cat, len(group))], unit, [target_for(i, unit, ctx) for i in group])
               for cat, group in group_by_category(insts)]
    answer = ["The image shows ", *join(phrases), "."]
    return TurnSpec(task, answer, annotation_ids=[i.id for i in insts])


def detection(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    return _freeform("detection", "box", record, ctx)


def segmentation(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    return _freeform("segmentation", "mask", record, ctx)


def counting(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    groups = group_by_category(record.targetable())
    if not groups:
        return NotApplicable("no_instances")
    cat, group = groups[int(rng.integers(len(groups)))]
    n = len(group)
    phrase = Ground([counted(cat, n)], "box", [target_for(i, "box", ctx) for i in group])
    answer = [f"There {'is' if n == 1 else 'are'} ", phrase, "."]
    return TurnSpec("counting", answer, vars={"category": plural(cat)},
                    annotation_ids=[i.id for i in group])


def _refer(task: str, unit: str, record: Record, rng: np.random.Generator, ctx: TaskContext):
    """Referring expression -> one object: real expressions when the source has them (RefCOCO, Flickr
    phrases), else the category name of a category with exactly one instance."""
    candidates: list[tuple[str, str, str]] = []  # (expression, instance id, text id)
    ok = {i.id for i in record.targetable() if unit != "mask" or i.mask is not None}
    for t in record.texts:
        if t.kind == "refexp" and len(t.instance_ids) == 1 and t.instance_ids[0] in ok:
            candidates.append((t.text, t.instance_ids[0], t.id))
    if not candidates:
        for cat, group in group_by_category([record.instance(i) for i in sorted(ok)]):
            if len(group) == 1 and not any(o.category == cat for o in record.instances if o.iscrowd):
                candidates.append((f"the {clean_category(cat)}", group[0].id, ""))
    if not candidates:
        return NotApplicable("no_unique_referent" if ok else ("no_masks" if unit == "mask" else "no_instances"))
    expr, inst_id, text_id = candidates[int(rng.integers(len(candidates)))]
    inst = record.instance(inst_id)
    answer = [Ground([expr], unit, [target_for(inst, unit, ctx)])]
    return TurnSpec(task, answer, vars={"expression": expr},
                    annotation_ids=[inst_id] + ([text_id] if text_id else []))


def rec(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    return _refer("rec", "box", record, rng, ctx)


def res(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    return _refer("res", "mask", record, rng, ctx)
