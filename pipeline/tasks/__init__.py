"""Task builders. The registry below names every task; `sources.yaml` `tasks:` enables and weights them."""

from __future__ import annotations

from . import basic
from .base import Builder, NotApplicable, TaskContext, TurnSpec

TASKS: dict[str, Builder] = {
    "caption": basic.caption,
    "detection": basic.detection,
    "segmentation": basic.segmentation,
    "counting": basic.counting,
    "rec": basic.rec,
    "res": basic.res,
}

__all__ = ["TASKS", "Builder", "NotApplicable", "TaskContext", "TurnSpec"]
