"""Shared fixtures. Tests never need a GPU or the internet.

`shared` fixtures read the real samples in ../shared/realdata: they skip with a reason when that folder is absent,
and fail instead when REQUIRE_SHARED_DATA=1 (CI sets it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REFFORGE_SHARED", ROOT.parent / "shared")) / "realdata"


def _need_shared() -> Path:
    if SHARED.is_dir():
        return SHARED
    msg = f"real sample data not found at {SHARED} (set REFFORGE_SHARED or place ../shared beside the repo)"
    if os.environ.get("REQUIRE_SHARED_DATA") == "1":
        pytest.fail(msg + "; REQUIRE_SHARED_DATA=1 makes this a failure")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Path of ../shared/realdata (skips, or fails under REQUIRE_SHARED_DATA=1, when absent)."""
    return _need_shared()


@pytest.fixture(scope="session")
def coco_real(realdata: Path) -> dict[str, Path]:
    return {
        "instances": realdata / "coco_instances/annotations/instances_val2017.json",
        "captions": realdata / "coco_captions/annotations/captions_val2017.json",
        "keypoints": realdata / "coco_keypoints/annotations/person_keypoints_val2017.json",
        "image_root": realdata / "images/coco_val2017",
    }


@pytest.fixture(scope="session")
def coco_real_records(coco_real):
    """All 79 real COCO val2017 records (instances + captions + keypoints), converted once per session."""
    from converters.coco import CocoConverter, CocoOptions

    conv = CocoConverter("coco_val", CocoOptions(instances=str(coco_real["instances"]),
                                                  captions=str(coco_real["captions"]),
                                                  keypoints=str(coco_real["keypoints"]),
                                                  image_root=str(coco_real["image_root"]), split="val"), ROOT)
    plan = conv.plan()
    return [r for r in conv.convert([u.key for u in plan.units]) if hasattr(r, "instances")]
