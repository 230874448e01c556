"""COCO keypoints through converters/coco.py, on the REAL person_keypoints_val2017 sample (118 persons, 50 with
num_keypoints 0, 1 crowd), both ways: keypoints file as `instances`, and joined onto instances via `keypoints`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from fixtures_sources import assert_reconciled

from converters.coco import CocoConverter, CocoOptions


def _run(conv):
    plan = conv.plan()
    return plan, list(conv.convert([u.key for u in plan.units]))


def test_keypoints_file_as_instances(coco_real):
    conv = CocoConverter("kp", CocoOptions(instances=str(coco_real["keypoints"]),
                                           image_root=str(coco_real["image_root"]), split="val"), Path("."))
    plan, out = _run(conv)
    raw = {str(a["id"]): a for a in json.loads(coco_real["keypoints"].read_text())["annotations"]}
    persons = [i for r in out for i in r.instances]
    assert len(out) == 79 and len(persons) == 118  # every image of the split is listed, 39 have a person
    assert sum(1 for r in out if r.instances) == 39
    assert sum(i.iscrowd for i in persons) == 1
    no_kp = [i for i in persons if i.keypoints is None]
    assert len(no_kp) == 50 and all(raw[i.id]["num_keypoints"] == 0 and i.num_keypoints == 0 for i in no_kp)
    for inst in persons:
        if inst.keypoints is not None:
            assert inst.keypoints == [float(v) for v in raw[inst.id]["keypoints"]] and len(inst.keypoints) == 51
            assert inst.num_keypoints == raw[inst.id]["num_keypoints"] > 0
            assert set(inst.keypoints[2::3]) <= {0.0, 1.0, 2.0}
    crowd = next(i for i in persons if i.iscrowd)
    assert crowd.keypoints is None and crowd.mask is not None  # crowd: uncompressed RLE, no keypoints
    assert assert_reconciled(plan, out) == {"annotation": (118, 118, 0), "image": (79, 79, 0)}


def test_keypoints_joined_onto_instances(coco_real_records, coco_real):
    raw = {str(a["id"]): a for a in json.loads(coco_real["keypoints"].read_text())["annotations"]}
    persons = [i for r in coco_real_records for i in r.instances if i.category == "person"]
    assert {i.id for i in persons} == set(raw)  # the same 118 annotation ids
    with_kp = [i for i in persons if i.keypoints is not None]
    assert len(with_kp) == 68
    assert all(i.keypoints == [float(v) for v in raw[i.id]["keypoints"]] for i in with_kp)
    assert Counter(i.num_keypoints > 0 for i in persons) == {True: 68, False: 50}
    assert all(i.keypoints is None for r in coco_real_records for i in r.instances if i.category != "person")


def test_coco_instances_captions_real_sample_reconciles(coco_real):
    """Accounting on the REAL instances + captions sample: 79 images, 624 annotations, 395 captions."""
    conv = CocoConverter("coco", CocoOptions(instances=str(coco_real["instances"]), captions=str(coco_real["captions"]),
                                             image_root=str(coco_real["image_root"]), split="val"), Path("."))
    plan, out = _run(conv)
    assert assert_reconciled(plan, out) == {"annotation": (624, 624, 0), "image": (79, 79, 0), "text": (395, 395, 0)}
