"""Region-prompted tasks: REG, interactive grounding (box / mask) and SPR-style region queries.

Each picks an object (or a group of nearby objects), turns it into a visual prompt with
:mod:`pipeline.tasks.prompts`, and answers with an expression (REG) or grounded phrases (IG, region query).
"""

from __future__ import annotations

import numpy as np

from pipeline.formats.segments import Ground
from pipeline.records import Instance, Record

from .base import NotApplicable, TaskContext, TurnSpec, group_by_category, target_for
from .language import article, clean_category, counted, join, sanitize
from .prompts import KINDS, random_prompt

REGION_QUERY_MAX = 5  # SPR Sec. 3.1: expansion stops once more than four objects are in the region
INSIDE_FRACTION = 0.9  # an object is "in" the queried area when this share of its box lies inside it


def expressions(record: Record) -> list[tuple[str, Instance, str]]:
    """(expression, instance, text id) for REG: RefCOCO refexps, else single-box Flickr phrases, else 'a <category>'
    for every targetable instance. Expressions are sanitised; empty ones are dropped."""
    ok = {i.id: i for i in record.targetable()}
    refexps, phrases = [], []
    for t in record.texts:
        if t.kind == "refexp" and len(t.instance_ids) == 1 and t.instance_ids[0] in ok:
            refexps.append((sanitize(t.text), ok[t.instance_ids[0]], t.id))
        elif t.kind == "grounded_caption":
            for s in t.spans:
                if len(s.instance_ids) == 1 and s.instance_ids[0] in ok and s.phrase_type != "notvisual":
                    phrases.append((sanitize(t.text[s.start:s.end]), ok[s.instance_ids[0]], t.id))
    for found in (refexps, phrases):
        found = [f for f in found if f[0]]
        if found:
            return found
    return [(article(sanitize(i.category)), i, "") for i in ok.values() if sanitize(clean_category(i.category))]


def phrase_grounded_only(record: Record) -> bool:
    """True when the instances exist only as boxes of grounded phrases (Flickr30k Entities): their `category`
    is a phrase type ("people", "other"), not a class name, and objects no phrase mentions are not annotated."""
    return any(t.kind == "grounded_caption" for t in record.texts) and all(
        i.category_id is None for i in record.instances)


def phrase_names(record: Record) -> dict[str, str]:
    """Instance id -> the first single-box phrase that refers to it (sentence-initial capital lowered)."""
    out: dict[str, str] = {}
    for t in record.texts:
        if t.kind != "grounded_caption":
            continue
        for s in t.spans:
            if len(s.instance_ids) == 1 and s.instance_ids[0] not in out and s.phrase_type != "notvisual":
                words = sanitize(t.text[s.start:s.end])
                if words:
                    out[s.instance_ids[0]] = words[:1].lower() + words[1:] if s.start == 0 else words
    return out


def reg(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    cands = expressions(record)
    if not cands:
        return NotApplicable("no_instances")
    expr, inst, text_id = cands[int(rng.integers(len(cands)))]
    region = random_prompt(inst, rng, record.image.width, record.image.height, KINDS)
    return TurnSpec("reg", [expr], regions={"region": region},
                    annotation_ids=[inst.id] + ([text_id] if text_id else []),
                    details={"prompt": region["kind"]})


def _interactive(task: str, unit: str, record: Record, rng: np.random.Generator, ctx: TaskContext):
    insts = [i for i in record.targetable() if unit != "mask" or i.mask is not None]
    if not insts:
        return NotApplicable("no_masks" if unit == "mask" else "no_instances")
    if phrase_grounded_only(record):
        names = phrase_names(record)
        reason = "no_single_box_phrases"
    else:
        names = {i.id: sanitize(clean_category(i.category)) for i in insts}
        reason = "no_category_names"
    insts = [i for i in insts if names.get(i.id)]
    if not insts:
        return NotApplicable(reason)
    inst = insts[int(rng.integers(len(insts)))]
    kinds = tuple(k for k in KINDS if k != unit)  # never prompt with the very answer (box -> box, mask -> mask)
    region = random_prompt(inst, rng, record.image.width, record.image.height, kinds)
    answer = [Ground([names[inst.id]], unit, [target_for(inst, unit, ctx)])]
    return TurnSpec(task, answer, regions={"region": region}, annotation_ids=[inst.id],
                    details={"prompt": region["kind"]})


def ig_box(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    return _interactive("ig_box", "box", record, rng, ctx)


def ig_mask(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    return _interactive("ig_mask", "mask", record, rng, ctx)


def grow_group(boxes: np.ndarray, start: int, size: int) -> list[int]:
    """SPR region growth: from ``start``, repeatedly add the object whose box centre is nearest to any member's
    (ties: lowest index) until ``size`` objects are in. Returns indices in the order they joined."""
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    d = np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=-1)
    group = [start]
    nearest = d[start].copy()
    nearest[start] = np.inf
    while len(group) < min(size, len(boxes)):
        k = int(np.argmin(nearest))
        group.append(k)
        nearest = np.minimum(nearest, d[k])
        nearest[group] = np.inf
    return group


def _inside_fraction(boxes: np.ndarray, area: tuple[float, float, float, float]) -> np.ndarray:
    ix = np.clip(np.minimum(boxes[:, 2], area[2]) - np.maximum(boxes[:, 0], area[0]), 0, None)
    iy = np.clip(np.minimum(boxes[:, 3], area[3]) - np.maximum(boxes[:, 1], area[1]), 0, None)
    own = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-9)
    return ix * iy / own


def region_query(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    if phrase_grounded_only(record):
        return NotApplicable("objects_not_exhaustive")
    things = [i for i in record.targetable() if i.isthing and sanitize(clean_category(i.category))]
    if not things:
        return NotApplicable("no_objects")
    boxes = np.array([i.box for i in things], dtype=np.float64)
    start = int(rng.integers(len(things)))
    size = int(rng.integers(1, min(REGION_QUERY_MAX, len(things)) + 1))
    group = grow_group(boxes, start, size)
    sel = boxes[group]
    area = (float(sel[:, 0].min()), float(sel[:, 1].min()), float(sel[:, 2].max()), float(sel[:, 3].max()))
    inside = [things[k] for k in np.flatnonzero(_inside_fraction(boxes, area) >= INSIDE_FRACTION)]
    inside = list({i.id: i for i in [things[k] for k in group] + inside}.values())
    phrases = [Ground([counted(sanitize(cat), len(g))], "box", [target_for(i, "box", ctx) for i in g])
               for cat, g in group_by_category(inside)]
    answer = ["The area contains ", *join(phrases), "."]
    region = {"kind": "box", "instance_id": ",".join(things[k].id for k in group), "box": list(area), "points": []}
    return TurnSpec("region_query", answer, regions={"region": region}, annotation_ids=[i.id for i in inside],
                    details={"group": [things[k].id for k in group], "size": size})
