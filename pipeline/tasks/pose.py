"""Keypoint tasks: every person's 17 COCO keypoints (``<Unit>keypoint</Unit>``), alone or with their box
(``<Unit>box, keypoint</Unit>``). One ``<REF>`` per person with at least one labelled keypoint, in reading order;
the target's ``points`` are the flat ``[x, y, v] * 17`` list as annotated (v = 0: not labelled)."""

from __future__ import annotations

import numpy as np

from pipeline.formats.segments import Ground
from pipeline.records import Instance, Record

from .base import NotApplicable, TaskContext, TurnSpec, reading_order, target_for
from .language import counted, sanitize


def people_with_keypoints(record: Record) -> list[Instance]:
    return reading_order([i for i in record.targetable() if i.keypoints and len(i.keypoints) % 3 == 0
                          and any(v > 0 for v in i.keypoints[2::3])])


def _pose(task: str, unit: str, record: Record, ctx: TaskContext) -> TurnSpec | NotApplicable:
    people = people_with_keypoints(record)
    if not people:
        return NotApplicable("no_keypoints")
    phrase = Ground([counted(sanitize(people[0].category), len(people))], unit,
                    [target_for(p, unit, ctx) for p in people])
    return TurnSpec(task, ["The image shows ", phrase, "."], annotation_ids=[p.id for p in people])


def keypoints(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    return _pose("keypoints", "keypoint", record, ctx)


def box_keypoints(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    return _pose("box_keypoints", "box, keypoint", record, ctx)
