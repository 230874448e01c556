"""What a task builder is: ``build(record, rng, ctx) -> TurnSpec | NotApplicable``.

A builder is a pure function of one canonical record and a seeded generator. It picks what to ask about and
returns the user-template variables, the visual prompts, and a format-neutral answer (segments); the composer
renders templates and the chosen output format. When the record lacks what the task needs, the builder returns
``NotApplicable(reason)``, which the composer counts; it never raises for that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from pipeline.formats.segments import Seg
from pipeline.records import Instance, Record


@dataclass
class TurnSpec:
    task: str
    answer: list[Seg]
    vars: dict[str, str] = field(default_factory=dict)  # user-template variables other than image / regions
    regions: dict[str, dict] = field(default_factory=dict)  # region variable -> region prompt dict
    annotation_ids: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # goes into provenance.details


@dataclass(frozen=True)
class NotApplicable:
    reason: str


@dataclass
class TaskContext:
    output_format: str = "trp"
    grid: dict | None = None  # record.extras["grid"] when the grid stage ran


Builder = Callable[[Record, np.random.Generator, TaskContext], "TurnSpec | NotApplicable"]


def target_for(inst: Instance, unit: str, ctx: TaskContext) -> dict:
    """The targets-column entry (minus turn / phrase / index) for one instance as a given unit."""
    t: dict = {"instance_id": inst.id, "box": list(inst.box)}
    if unit == "mask" and inst.mask is not None:
        t["mask"] = {"size": list(inst.mask.size), "counts": inst.mask.counts}
    if unit in ("keypoint", "box, keypoint"):
        t["points"] = list(inst.keypoints or [])
    g = (ctx.grid or {}).get("instances", {}).get(inst.id)
    if g:
        if unit == "mask":
            t["grid_tokens"], t["grid_iou"] = list(g.get("tokens", [])), g.get("iou")
        elif unit in ("box", "box, keypoint") and g.get("box_tokens"):
            t["grid_tokens"] = list(g["box_tokens"])
    return t


def reading_order(instances: list[Instance]) -> list[Instance]:
    """Top-to-bottom, left-to-right by box centre rows of ~1/8 image height; ties by id. Deterministic."""
    return sorted(instances, key=lambda i: (round((i.box[1] + i.box[3]) / 2 / 64), (i.box[0] + i.box[2]) / 2, i.id))


def group_by_category(instances: list[Instance]) -> list[tuple[str, list[Instance]]]:
    groups: dict[str, list[Instance]] = {}
    for inst in reading_order(instances):
        groups.setdefault(inst.category, []).append(inst)
    return list(groups.items())
