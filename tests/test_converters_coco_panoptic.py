"""COCO panoptic converter and its PNG helpers.

REAL: ../shared/realdata/coco_panoptic (image 439180, 32 segments) must convert fully. FIXTURE: small PNGs written
here for the bad-input cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_sources import assert_reconciled, write_image, write_panoptic_png
from PIL import Image

from converters import build_converter
from converters.coco_panoptic import CocoPanopticConverter, CocoPanopticOptions, PanopticError, read_panoptic_png
from pipeline import rle as rle_utils
from pipeline.records import Record


@pytest.fixture(scope="module")
def real(realdata):
    base = realdata / "coco_panoptic/annotations"
    return {"panoptic_json": base / "panoptic_val2017.json", "panoptic_root": base / "panoptic_val2017",
            "image_root": realdata / "images/coco_val2017"}


def _conv(paths: dict) -> CocoPanopticConverter:
    return CocoPanopticConverter("pan", CocoPanopticOptions(**{k: str(v) for k, v in paths.items()}), Path("."))


def _run(conv):
    plan = conv.plan()
    return plan, list(conv.convert([u.key for u in plan.units]))


def test_real_sample_converts_fully(real):
    plan, out = _run(_conv(real))
    assert len(out) == 1 and isinstance(out[0], Record)
    rec = out[0]
    doc = json.loads(real["panoptic_json"].read_text())
    segs = {s["id"]: s for s in doc["annotations"][0]["segments_info"]}
    cats = {c["id"]: c for c in doc["categories"]}
    assert len(rec.instances) == 32 and rec.skips == []
    assert sum(i.isthing for i in rec.instances) == 28 and sum(not i.isthing for i in rec.instances) == 4
    assert sum(i.iscrowd for i in rec.instances) == 2
    for inst in rec.instances:
        seg = segs[int(inst.id)]
        x, y, w, h = seg["bbox"]
        assert inst.area == seg["area"] == rle_utils.area(inst.mask)  # PNG pixel counts match the json
        assert inst.box == (x, y, x + w, y + h)
        assert inst.category == cats[seg["category_id"]]["name"] and inst.isthing == bool(cats[seg["category_id"]]["isthing"])
    masks = np.stack([rle_utils.decode(i.mask) for i in rec.instances])
    assert masks.sum(axis=0).max() == 1  # panoptic segments never overlap
    assert (masks.sum(axis=0) == 0).sum() == 7189  # void pixels, PROVENANCE.md
    assert assert_reconciled(plan, out) == {"annotation": (32, 32, 0), "image": (1, 1, 0)}


def test_registry_builds_it(real, tmp_path):
    conv = build_converter("pan", "coco_panoptic", {k: str(v) for k, v in real.items()}, tmp_path, "sources.yaml")
    assert isinstance(conv, CocoPanopticConverter)


def _fixture(tmp_path: Path, png_ids: np.ndarray, segs: list[dict], hw=(10, 12)) -> dict:
    write_image(tmp_path / "img" / "1.jpg", hw[1], hw[0])
    write_panoptic_png(tmp_path / "pan" / "1.png", png_ids)
    doc = {"images": [{"id": 1, "file_name": "1.jpg", "height": hw[0], "width": hw[1]}],
           "annotations": [{"image_id": 1, "file_name": "1.png", "segments_info": segs}],
           "categories": [{"id": 1, "name": "person", "isthing": 1, "supercategory": "person"},
                          {"id": 184, "name": "tree-merged", "isthing": 0, "supercategory": "plant"}]}
    (tmp_path / "pan.json").write_text(json.dumps(doc))
    return {"panoptic_json": tmp_path / "pan.json", "panoptic_root": tmp_path / "pan", "image_root": tmp_path / "img"}


def test_png_of_wrong_size_skips_the_image(tmp_path):
    paths = _fixture(tmp_path, np.full((9, 12), 5), [{"id": 5, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 12, 9]}])
    plan, out = _run(_conv(paths))
    assert [(s.kind, s.reason) for s in out] == [("image", "panoptic_size_mismatch"),
                                                 ("annotation", "image_panoptic_size_mismatch")]
    assert "9x12" in out[0].detail
    assert_reconciled(plan, out)


def test_png_ids_not_in_segments_info_skip_the_image(tmp_path):
    ids = np.zeros((10, 12), dtype=np.int64)
    ids[:5] = 5
    ids[5:] = 70000  # uses the B channel: 70000 = 112 + 17*256 + 1*65536
    paths = _fixture(tmp_path, ids, [{"id": 5, "category_id": 1, "iscrowd": 0}])
    plan, out = _run(_conv(paths))
    assert out[0].reason == "png_unknown_segment_ids" and "70000" in out[0].detail
    assert_reconciled(plan, out)


def test_segment_without_pixels_and_unknown_category_are_counted(tmp_path):
    ids = np.zeros((10, 12), dtype=np.int64)
    ids[2:6, 3:9] = 70000
    ids[7:, :] = 9
    segs = [{"id": 70000, "category_id": 1, "iscrowd": 1}, {"id": 8, "category_id": 184, "iscrowd": 0},
            {"id": 9, "category_id": 999, "iscrowd": 0}]
    plan, out = _run(_conv(_fixture(tmp_path, ids, segs)))
    rec = out[0]
    assert [(i.id, i.box, i.area, i.iscrowd) for i in rec.instances] == [("70000", (3.0, 2.0, 9.0, 6.0), 24.0, True)]
    assert [(s.item_id, s.reason) for s in rec.skips] == [("8", "segment_not_in_png"), ("9", "unknown_category_id")]
    assert assert_reconciled(plan, out) == {"annotation": (3, 1, 2), "image": (1, 1, 0)}


def test_read_panoptic_png_decodes_three_channels(tmp_path):
    ids = np.array([[0, 1, 256], [65536, 16777215, 123456]])
    write_panoptic_png(tmp_path / "p.png", ids)
    assert (read_panoptic_png(tmp_path, "p.png", (2, 3)) == ids).all()
    with pytest.raises(PanopticError, match="panoptic_png_missing"):
        read_panoptic_png(tmp_path, "nope.png", (2, 3))
    with pytest.raises(PanopticError, match="panoptic_unsafe_path"):
        read_panoptic_png(tmp_path, "../p.png", (2, 3))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(PanopticError, match="panoptic_png_corrupt"):
        read_panoptic_png(tmp_path, "bad.png", (2, 3))
    Image.fromarray(np.zeros((2, 3), np.uint8)).save(tmp_path / "gray.png")  # 1-channel: R only, still decodes
    assert (read_panoptic_png(tmp_path, "gray.png", (2, 3)) == 0).all()


def test_json_without_lists_raises(tmp_path):
    from pipeline.errors import InputFileError

    (tmp_path / "pan.json").write_text('{"images": []}')
    (tmp_path / "x").mkdir()
    with pytest.raises(InputFileError, match="annotations"):
        _conv({"panoptic_json": tmp_path / "pan.json", "panoptic_root": tmp_path / "x",
               "image_root": tmp_path / "x"}).plan()


def test_segment_rles_match_dense_encoding():
    from converters.coco_panoptic import segment_rles

    rng = np.random.default_rng(3)
    ids = rng.choice(np.array([0, 7, 300, 70000]), size=(23, 17), p=[0.4, 0.3, 0.2, 0.1])
    ids[:, 0] = 300  # runs that cross column boundaries
    out = segment_rles(ids, [7, 300, 70000, 5])
    assert sorted(out) == [7, 300, 70000]  # 5 is listed but absent
    for sid, (rle, area) in out.items():
        assert rle == rle_utils.encode(ids == sid) and area == int((ids == sid).sum())
    with pytest.raises(PanopticError, match="png_unknown_segment_ids"):
        segment_rles(ids, [7, 300])
