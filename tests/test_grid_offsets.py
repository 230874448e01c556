"""Offset-region labelling: the ordered rule of pipeline/grid/offsets.py on controlled masks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from pipeline.grid.offsets import (CATEGORY_NAMES, FAR, HARD_DELETE, INSIDE, RING, element_radius, label_points,
                                   offset_pairs, sample_points)
from pipeline.seeds import rng_for

W, H, G = 640, 480, 32  # cells 20 x 15 px, centres x = 10, 30, ..., y = 7.5, 22.5, ...; step (10, 7.5)


def idx(r, c):
    return r * G + c


@pytest.fixture(scope="module")
def scene():
    m = np.zeros((H, W), bool)
    m[55:300, 193:400] = True  # left edge 3 px right of the centre column x = 190 (c = 9), top 2.5 px below y = 52.5
    m[60:300, 449:452] = True  # a 3 px line around x = 450 (c = 22): thinner than the element
    return m, label_points(m, G)


def test_element_is_half_a_step():
    assert element_radius(W, H, G) == (5, 3)  # floor(10 / 2), floor(7.5 / 2)


def test_every_category_appears_with_the_documented_labels(scene):
    m, lab = scene
    counts = lab.counts()
    assert all(counts[name] > 0 for name in CATEGORY_NAMES), counts
    # (r=10, c=15): x=310, y=157.5, deep inside -> Inside, <OFF0,0>
    assert lab.category[idx(10, 15)] == INSIDE and lab.token(idx(10, 15)) == "<OFF0,0>"
    # (r=10, c=9): x=190 is 3 px outside the left edge (within the halo); one step right lands at 200, inside E
    assert not m[157, 190] and lab.category[idx(10, 9)] == RING
    assert lab.token(idx(10, 9)) == "<OFF1,0>"  # the diagonals land as deep; the axis move comes first
    # (r=3, c=9): x=190, y=52.5: outside both edges, in the halo; only the diagonal down-right lands in E
    assert lab.category[idx(3, 9)] == RING and lab.token(idx(3, 9)) == "<OFF1,1>"
    # the 3 px line has an empty eroded core: its centres are Hard-Delete, not Inside
    assert m[157, 450] and lab.category[idx(10, 22)] == HARD_DELETE and lab.token(idx(10, 22)) == "<DELETE>"
    # (r=10, c=5): x=110, far from everything
    assert lab.category[idx(10, 5)] == FAR and lab.token(idx(10, 5)) == "<DELETE>"
    assert lab.depth[idx(10, 15)] > 50 and lab.depth[idx(10, 5)] == 0


def test_rim_point_inside_the_mask_is_moved_deeper():
    m = np.zeros((H, W), bool)
    m[60:300, 187:400] = True  # centre column x = 190 is 3 px inside the edge: not in E, one step right is
    lab = label_points(m, G)
    assert lab.category[idx(10, 9)] == RING and lab.token(idx(10, 9)) == "<OFF1,0>"


def test_image_border_counts_as_background():
    m = np.ones((H, W), bool)
    lab = label_points(m, G)
    assert (lab.category == INSIDE).all()  # centres are half a cell (10 / 7.5 px) from the border > radius
    m2 = np.zeros((H, W), bool)
    m2[:, :8] = True  # a strip at the left border, narrower than the element: no Inside
    lab2 = label_points(m2, G)
    assert INSIDE not in set(lab2.category.tolist()) and lab2.category[idx(10, 0)] == HARD_DELETE


def test_matches_the_dense_reference_on_random_masks():
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_grid.py"
    spec = importlib.util.spec_from_file_location("bench_grid", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(7)
    for _ in range(4):
        m = np.zeros((120, 160), bool)
        for _ in range(3):
            m |= bench.ellipse(rng, rng.uniform(0, 160), rng.uniform(0, 120), 2, 40, 160, 120)
        lab = label_points(m, 16)
        cat, mv, depth = bench.dense_offsets(m, grid=16)
        np.testing.assert_array_equal(lab.category, cat)
        np.testing.assert_array_equal(lab.move, mv)
        np.testing.assert_allclose(lab.depth, depth, atol=1e-3)


def test_sampling_keeps_every_category_is_biased_and_seeded(scene):
    _, lab = scene
    picks = sample_points(lab, 8, rng_for(0, "rec", "inst"))
    assert len(picks) == 8 and len(set(picks)) == 8
    assert {int(lab.category[i]) for i in picks} == {INSIDE, RING, HARD_DELETE, FAR}
    assert picks == sample_points(lab, 8, rng_for(0, "rec", "inst"))  # same seed and keys: same points
    draws = [sample_points(lab, 8, rng_for(s, "rec", "inst")) for s in range(30)]
    assert len({tuple(d) for d in draws}) > 1
    cats = np.array([lab.category[i] for d in draws for i in d[4:]])  # the weighted part, after one of each
    far_share = float((cats == FAR).mean())
    assert float(np.isin(cats, [INSIDE, RING]).mean()) > 0.6 and far_share < 0.3
    pairs = offset_pairs(lab, picks, G)
    assert all(p[0].startswith("<g_") and (p[1].startswith("<OFF") or p[1] == "<DELETE>") for p in pairs)


def test_empty_mask_is_all_far():
    lab = label_points(np.zeros((H, W), bool), G)
    assert (lab.category == FAR).all()
    assert sample_points(lab, 4, np.random.default_rng(0)) and all(lab.category[i] == FAR
                                                                   for i in sample_points(lab, 4, np.random.default_rng(0)))
