"""Visual prompts (pipeline.tasks.prompts) on REAL COCO masks: inside the object, biased to its interior,
seeded, and read from the RLE without a full decode."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline import rle as rle_utils
from pipeline.records import Instance
from pipeline.tasks import prompts


@pytest.fixture(scope="module")
def masked(coco_real_records):
    """(record, instance, dense mask) for real non-crowd instances of at least 400 pixels (first 40)."""
    out = []
    for rec in coco_real_records:
        for inst in rec.targetable():
            if inst.mask is not None and inst.area >= 400:
                out.append((rec, inst, rle_utils.decode(inst.mask)))
    return out[:40]


def test_rle_lookup_matches_a_full_decode(masked):
    for rec, inst, dense in masked:
        xs = np.arange(0, rec.image.width, 7)
        ys = np.arange(0, rec.image.height, 5)
        got = prompts._lookup(prompts.run_ends(inst.mask.counts), rec.image.height, xs, ys)
        assert np.array_equal(got, dense[np.ix_(ys, xs)])


def test_points_fall_inside_the_mask_and_prefer_its_interior(masked):
    inside = deeper = 0
    for rec, inst, dense in masked:
        depth = cv2.distanceTransform(np.pad(dense, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
        for seed in range(5):
            x, y = prompts.point_prompt(inst, np.random.default_rng(seed), rec.image.width, rec.image.height)
            inside += bool(dense[int(y), int(x)])
            deeper += depth[int(y), int(x)] > depth[dense].mean()
    n = 5 * len(masked)
    assert inside == n  # jitter that leaves the mask snaps back to the sample
    assert deeper / n > 0.75  # a uniform pick inside the mask would be deeper than the mean about half the time


def test_scribbles_are_polylines_through_the_interior(masked):
    lengths = []
    for rec, inst, dense in masked:
        pts = prompts.scribble_prompt(inst, np.random.default_rng(3), rec.image.width, rec.image.height)
        assert len(pts) % 2 == 0 and 2 <= len(pts) // 2 <= 7
        xy = np.array(pts).reshape(-1, 2)
        assert all(dense[int(y), int(x)] for x, y in xy)
        lengths.append(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())
    assert np.median(lengths) > 5  # real strokes, not one point repeated


def test_prompts_are_deterministic_by_seed(masked):
    rec, inst, _ = masked[0]
    w, h = rec.image.width, rec.image.height
    for kind in prompts.KINDS:
        a = prompts.region_prompt(inst, kind, np.random.default_rng(11), w, h)
        b = prompts.region_prompt(inst, kind, np.random.default_rng(11), w, h)
        assert a == b and a["kind"] == kind and a["instance_id"] == inst.id
    many = {tuple(prompts.point_prompt(inst, np.random.default_rng(s), w, h)) for s in range(10)}
    assert len(many) > 5


def test_box_prompt_is_a_small_jitter_inside_the_image(masked):
    for rec, inst, _ in masked:
        b = prompts.box_prompt(inst, np.random.default_rng(0), rec.image.width, rec.image.height)
        assert 0 <= b[0] < b[2] <= rec.image.width and 0 <= b[1] < b[3] <= rec.image.height
        ix = max(0.0, min(b[2], inst.box[2]) - max(b[0], inst.box[0]))
        iy = max(0.0, min(b[3], inst.box[3]) - max(b[1], inst.box[1]))
        inter = ix * iy
        union = (b[2] - b[0]) * (b[3] - b[1]) + (inst.box[2] - inst.box[0]) * (inst.box[3] - inst.box[1]) - inter
        assert inter / union > 0.6


def test_mask_prompt_carries_the_rle_and_needs_a_mask(masked):
    rec, inst, _ = masked[0]
    region = prompts.region_prompt(inst, "mask", np.random.default_rng(0), rec.image.width, rec.image.height)
    assert region["mask"] == {"size": list(inst.mask.size), "counts": inst.mask.counts}
    boxed = Instance(id="b", category="dog", box=(10.0, 20.0, 50.0, 40.0))
    with pytest.raises(ValueError, match="no mask"):
        prompts.region_prompt(boxed, "mask", np.random.default_rng(0), 100, 100)
    assert {prompts.choose_kind(boxed, np.random.default_rng(s)) for s in range(30)} == {"point", "scribble", "box"}
    with pytest.raises(ValueError, match="unknown prompt kind"):
        prompts.region_prompt(inst, "lasso", np.random.default_rng(0), 100, 100)


def test_box_only_instances_get_centre_biased_points_and_scribbles():
    inst = Instance(id="b", category="dog", box=(10.0, 20.0, 110.0, 60.0))
    for s in range(30):
        x, y = prompts.point_prompt(inst, np.random.default_rng(s), 200, 100)
        assert 10 <= x <= 110 and 20 <= y <= 60
        xy = np.array(prompts.scribble_prompt(inst, np.random.default_rng(s), 200, 100)).reshape(-1, 2)
        assert (xy[:, 0] >= 10).all() and (xy[:, 0] <= 110).all() and (xy[:, 1] >= 20).all() and (xy[:, 1] <= 60).all()
    pts = np.array([prompts.point_prompt(inst, np.random.default_rng(s), 200, 100) for s in range(200)])
    assert abs(pts[:, 0].mean() - 60) < 6 and abs(pts[:, 1].mean() - 40) < 4
    assert np.abs(pts[:, 1] - 40).mean() < 10  # closer to the centre line than uniform (mean 10)


def test_sliver_masks_still_give_two_scribble_vertices():
    mask = np.zeros((30, 30), dtype=bool)
    mask[10, 5:8] = True
    inst = Instance(id="s", category="wire", box=(5.0, 10.0, 8.0, 11.0), mask=rle_utils.encode(mask))
    pts = prompts.scribble_prompt(inst, np.random.default_rng(0), 30, 30)
    xy = np.array(pts).reshape(-1, 2)
    assert len(xy) >= 2 and all(mask[int(y), int(x)] for x, y in xy)
