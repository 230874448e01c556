"""Task builders. The registry below names every task; `sources.yaml` `tasks:` enables and weights them.

The `negative` and `refine` turns are not builders here: the composer adds them from the negatives and grid
stages. docs/tasks.md lists every task with its sources, unit and an example turn.
"""

from __future__ import annotations

from . import basic, gcg, pose, regions, relations
from .base import Builder, NotApplicable, TaskContext, TurnSpec

TASKS: dict[str, Builder] = {
    "caption": basic.caption,
    "detection": basic.detection,
    "segmentation": basic.segmentation,
    "counting": basic.counting,
    "rec": basic.rec,
    "res": basic.res,
    "reg": regions.reg,
    "ig_box": regions.ig_box,
    "ig_mask": regions.ig_mask,
    "region_query": regions.region_query,
    "gcg_box": gcg.gcg_box,
    "gcg_mask": gcg.gcg_mask,
    "keypoints": pose.keypoints,
    "box_keypoints": pose.box_keypoints,
    "relation": relations.relation,
    "relation_description": relations.relation_description,
    "relation_qa": relations.relation_qa,
    "relation_mcq": relations.relation_mcq,
}

__all__ = ["TASKS", "Builder", "NotApplicable", "TaskContext", "TurnSpec"]
