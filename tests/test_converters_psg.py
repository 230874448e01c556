"""PSG converter.

REAL: ../shared/realdata/psg/psg_excerpt.json (record 107902 + the official class lists); its image and panoptic PNG
are not available, so it must be a counted image_missing skip. FIXTURE: psg.json + image + panoptic PNG written by
tests/fixtures_sources.psg_fixture (3 segments, 3 relations), which must convert fully.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fixtures_sources import assert_reconciled, psg_fixture, write_panoptic_png

from converters.psg import PsgConverter, PsgOptions
from pipeline import rle as rle_utils
from pipeline.errors import InputFileError
from pipeline.records import Record, Skip


@pytest.fixture(scope="module")
def classes(realdata):
    doc = json.loads((realdata / "psg/psg_excerpt.json").read_text())
    return doc["thing_classes"], doc["stuff_classes"], doc["predicate_classes"]


def _conv(fx: dict, **opts) -> PsgConverter:
    return PsgConverter("psg", PsgOptions(psg_json=str(fx["psg_json"]), image_root=str(fx["image_root"]),
                                          panoptic_root=str(fx["panoptic_root"]), **opts), Path("."))


def _run(conv):
    plan = conv.plan()
    return plan, list(conv.convert([u.key for u in plan.units]))


def test_real_excerpt_is_a_counted_image_missing_skip(realdata, tmp_path):
    fx = {"psg_json": realdata / "psg/psg_excerpt.json", "image_root": realdata / "images",
          "panoptic_root": tmp_path}
    plan, out = _run(_conv(fx))
    assert [u.key for u in plan.units] == ["train/107902"]  # test_image_ids is empty in the excerpt
    assert plan.inputs == {"image": 1, "annotation": 7, "relation": 6}
    assert all(isinstance(s, Skip) for s in out)
    assert out[0].kind == "image" and out[0].reason == "image_missing" and "000000417720.jpg" in out[0].detail
    assert Counter(s.kind for s in out) == {"image": 1, "annotation": 7, "relation": 6}
    assert assert_reconciled(plan, out) == {"annotation": (7, 0, 7), "image": (1, 0, 1), "relation": (6, 0, 6)}


def test_fixture_converts_fully_with_relations(classes, tmp_path):
    fx = psg_fixture(tmp_path, *classes)
    plan, out = _run(_conv(fx))
    assert len(out) == 1 and isinstance(out[0], Record)
    rec = out[0]
    segs = fx["doc"]["data"][0]["segments_info"]
    assert rec.id == "psg/train/9000" and rec.skips == []
    assert [(i.id, i.category, i.isthing) for i in rec.instances] == [
        (str(segs[0]["id"]), "person", True), (str(segs[1]["id"]), "umbrella", True),
        (str(segs[2]["id"]), "grass-merged", False)]
    for inst, seg, ann in zip(rec.instances, segs, fx["doc"]["data"][0]["annotations"]):
        assert inst.area == seg["area"] and rle_utils.area(inst.mask) == seg["area"]
        assert inst.box == tuple(ann["bbox"])  # XYXY kept as is
        assert rle_utils.bbox_xyxy(inst.mask) == inst.box
    ids = [i.id for i in rec.instances]
    assert [(r.subject, r.predicate, r.object) for r in rec.relations] == [
        (ids[0], "holding", ids[1]), (ids[0], "standing on", ids[2]), (ids[1], "over", ids[0])]
    assert assert_reconciled(plan, out) == {"annotation": (3, 3, 0), "image": (1, 1, 0), "relation": (3, 3, 0)}


def test_test_image_ids_give_the_official_split(classes, tmp_path):
    fx = psg_fixture(tmp_path, *classes, n_images=3, test_ids=("9001",))
    plan, out = _run(_conv(fx))
    assert [u.key for u in plan.units] == ["test/9001", "train/9000", "train/9002"]
    assert [r.split for r in out] == ["test", "train", "train"]
    plan, out = _run(_conv(fx, splits=["test"]))
    assert [r.id for r in out] == ["psg/test/9001"] and plan.inputs["relation"] == 3


def test_relation_indices_out_of_range_are_counted(classes, tmp_path):
    fx = psg_fixture(tmp_path, *classes)
    fx["doc"]["data"][0]["relations"] += [[0, 7, 1], [0, 1, 56], [-1, 0, 0], [0, 1]]
    fx["psg_json"].write_text(json.dumps(fx["doc"]))
    plan, out = _run(_conv(fx))
    assert len(out[0].relations) == 3
    assert Counter(s.reason for s in out[0].skips) == {"relation_index_out_of_range": 3, "bad_relation": 1}
    assert assert_reconciled(plan, out)["relation"] == (7, 3, 4)


def test_png_with_unknown_segment_ids_skips_the_image(classes, tmp_path):
    fx = psg_fixture(tmp_path, *classes)
    png = fx["panoptic_root"] / fx["doc"]["data"][0]["pan_seg_file_name"]
    ids = np.zeros((30, 40), dtype=np.int64)
    ids[:5, :5] = 4242  # an id the json does not list
    write_panoptic_png(png, ids)
    plan, out = _run(_conv(fx))
    assert out[0].kind == "image" and out[0].reason == "png_unknown_segment_ids" and "4242" in out[0].detail
    assert_reconciled(plan, out)


def test_wrong_size_png_and_bad_box_and_skipped_instance_relations(classes, tmp_path):
    fx = psg_fixture(tmp_path, *classes, n_images=2)
    png = fx["panoptic_root"] / fx["doc"]["data"][0]["pan_seg_file_name"]
    write_panoptic_png(png, np.zeros((31, 40), dtype=np.int64))
    fx["doc"]["data"][1]["annotations"][1]["bbox"] = [20.0, 2.0, 80.0, 12.0]  # x2 beyond the 40-px image
    fx["psg_json"].write_text(json.dumps(fx["doc"]))
    plan, out = _run(_conv(fx))
    assert out[0].reason == "panoptic_size_mismatch"
    rec = out[-1]
    assert isinstance(rec, Record) and len(rec.instances) == 2
    assert Counter(s.reason for s in rec.skips) == {"bad_box": 1, "relation_instance_skipped": 2}
    assert_reconciled(plan, out)


def test_whole_file_problems_raise(tmp_path):
    p = tmp_path / "psg.json"
    p.write_text('{"data": []}')
    with pytest.raises(InputFileError, match="thing_classes"):
        _conv({"psg_json": p, "image_root": tmp_path, "panoptic_root": tmp_path}).plan()
    p.write_text('{"data": [')
    with pytest.raises(InputFileError, match=r"psg\.json: invalid JSON"):
        _conv({"psg_json": p, "image_root": tmp_path, "panoptic_root": tmp_path}).plan()
