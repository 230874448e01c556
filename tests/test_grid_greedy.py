"""Greedy mask-to-grid-token selection on controlled masks, and the run-length arithmetic under it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pipeline.grid.greedy import greedy_select
from pipeline.grid.proposals import GridError, Proposal, ProposalSet
from pipeline.grid.runs import combine, counts_from_strings, intersection_sizes, runs_from_counts
from pipeline.rle import encode

H, W, G = 64, 64, 8  # 8 px cells, centres at 4, 12, 20, ...


def box_mask(y0, y1, x0, x1, h=H, w=W):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def load_bench():
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_grid.py"
    spec = importlib.util.spec_from_file_location("bench_grid", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_runs_match_pycocotools():
    rng = np.random.default_rng(3)
    masks = [rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40)))) < p for p in rng.random(40)]
    masks += [np.zeros((480, 640), bool), box_mask(100, 400, 50, 600, 480, 640)]
    strings = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"] for m in masks]
    s, e, off = runs_from_counts(*counts_from_strings(strings))
    for i, m in enumerate(masks):
        flat = np.zeros(m.size, bool)
        for a, b in zip(s[off[i]:off[i + 1]], e[off[i]:off[i + 1]]):
            flat[a:b] = True
        np.testing.assert_array_equal(flat, m.reshape(-1, order="F"))
    a, b = masks[-1].reshape(-1, order="F"), box_mask(300, 480, 0, 200, 480, 640).reshape(-1, order="F")
    rb = runs_from_counts(*counts_from_strings([encode(box_mask(300, 480, 0, 200, 480, 640)).counts]))[:2]
    ra = (s[off[-2]:off[-1]], e[off[-2]:off[-1]])
    for k, want in ((1, a | b), (2, a & b)):
        cs, ce = combine(ra, rb, k)
        got = np.zeros(a.size, bool)
        for x, y in zip(cs, ce):
            got[x:y] = True
        np.testing.assert_array_equal(got, want)
    assert intersection_sizes(rb[0], rb[1], np.zeros(len(rb[0]), int), 1, ra)[0] == (a & b).sum()


def test_union_of_two_parts_is_selected_and_stops_at_tau():
    left, right = box_mask(8, 40, 0, 24), box_mask(8, 40, 24, 48)
    target = left | right
    props = [Proposal(2, 1, encode(left), 0.9, 0.9), Proposal(2, 4, encode(right), 0.9, 0.9),
             Proposal(7, 7, encode(box_mask(56, 64, 56, 64)), 0.99, 0.99),  # elsewhere: never tried
             Proposal(3, 3, encode(box_mask(0, 64, 0, 64)), 0.9, 0.9)]  # the whole image: IoU 0.375
    pset = ProposalSet(props, (H, W))
    res = greedy_select(encode(target), pset, tau=0.99, grid=G)
    assert res.cells == [(2, 1), (2, 4)] and res.iou == 1.0 and res.count == 2
    assert res.tokens == ["<g_2_1>", "<g_2_4>"]
    # tau reached by the first (largest-IoU) part alone: stop there
    res = greedy_select(encode(target), pset, tau=0.5, grid=G)
    assert res.count == 1 and res.iou == pytest.approx(0.5)


def test_a_proposal_that_lowers_the_iou_is_not_added():
    target = box_mask(0, 32, 0, 32)
    inner = box_mask(0, 32, 0, 24)  # IoU 0.75
    spill = box_mask(0, 32, 24, 64)  # covers the rest of the target but doubles the outside: union IoU 0.5
    pset = ProposalSet([Proposal(1, 1, encode(inner)), Proposal(1, 5, encode(spill))], (H, W))
    res = greedy_select(encode(target), pset, tau=0.95, grid=G)
    assert res.cells == [(1, 1)] and res.iou == pytest.approx(0.75)


def test_ties_go_to_the_preferred_cell_then_the_scores_then_row_col():
    target = box_mask(0, 32, 0, 32)
    same = encode(target)
    pset = ProposalSet([Proposal(0, 0, same, 0.9, 0.9), Proposal(1, 1, same, 0.9, 0.9), Proposal(2, 2, same, 0.9, 0.95)],
                       (H, W))
    assert greedy_select(same, pset, 0.85, G).cells == [(2, 2)]  # higher stability
    prefer = np.zeros(G * G)
    prefer[1 * G + 1] = 5.0
    assert greedy_select(same, pset, 0.85, G, prefer=prefer).cells == [(1, 1)]


def test_empty_target_no_overlap_and_size_mismatch_are_named_errors():
    pset = ProposalSet([Proposal(0, 0, encode(box_mask(0, 8, 0, 8)))], (H, W))
    with pytest.raises(GridError) as e:
        greedy_select(encode(np.zeros((H, W), bool)), pset, 0.85, G)
    assert e.value.reason == "grid_empty_mask"
    with pytest.raises(GridError) as e:
        greedy_select(encode(box_mask(40, 50, 40, 50)), pset, 0.85, G)
    assert e.value.reason == "grid_no_overlapping_proposal"
    with pytest.raises(GridError) as e:
        greedy_select(encode(box_mask(0, 8, 0, 8, 32, 32)), pset, 0.85, G)
    assert e.value.reason == "grid_proposal_size_mismatch"
    with pytest.raises(GridError) as e:  # a wrong-size proposal among right-size ones
        ProposalSet([Proposal(0, 0, encode(box_mask(0, 8, 0, 8))), Proposal(0, 1, encode(box_mask(0, 8, 0, 8, 32, 64)))],
                    (H, W))
    assert e.value.reason == "grid_proposal_size_mismatch" and "1 of 2" in e.value.detail
    with pytest.raises(GridError) as e:
        greedy_select(encode(box_mask(0, 8, 0, 8)), ProposalSet([], (H, W)), 0.85, G)
    assert e.value.reason == "grid_no_overlapping_proposal"


def test_target_smaller_than_a_cell_gets_only_what_overlaps_it():
    tiny = box_mask(5, 7, 5, 7)  # 2 x 2 px, holds no cell centre (4 or 12)
    big = box_mask(0, 16, 0, 16)
    pset = ProposalSet([Proposal(0, 0, encode(big))], (H, W))
    res = greedy_select(encode(tiny), pset, 0.85, G)
    assert res.cells == [(0, 0)] and res.iou == pytest.approx(4 / 256)  # far below tau: the stage skips it


def test_equals_the_dense_reference_on_random_scenes():
    bench = load_bench()
    for seed, kind in ((1, "stress"), (2, "objects")):
        props, dense, targets = bench.make_scene(seed, 3, w=160, h=120, grid=16, kind=kind)
        pset = ProposalSet(props, (120, 160))
        for t in targets:
            res = greedy_select(encode(t), pset, 0.85, 16)
            cells, iou = bench.dense_greedy(t, dense, props, 0.85, grid=16)
            assert res.cells == cells and res.iou == iou
