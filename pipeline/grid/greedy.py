"""Greedy mask-to-grid-token selection (GETok Sec. 3.2.1), on run-length masks.

Given a target mask T and proposals (M_i, cell_i):

1. compute IoU(T, M_i) for every proposal (only those whose box meets T's box can be non-zero);
2. sort by IoU descending -- ties by an optional per-cell preference desc (the stage: depth of the cell centre
   inside T), predicted_iou desc, stability_score desc, row, col (a total order: deterministic);
3. walk the list with U = empty, best = 0: if IoU(U | M_i, T) > best, set U = U | M_i, best = that IoU and
   select cell_i; stop as soon as best >= tau;
4. the mask's tokens are the selected cells, sorted row-major (the paper's set is unordered).

Proposals with IoU 0 cannot raise the union's IoU and are never tried. Masks stay run-length encoded
(:mod:`pipeline.grid.runs`): with I = |U & T| and S = |U | T|, adding M gives IoU (I + a) / (S + b) where
a = |M & T| - |M & U & T| and b = |M| - |M & T| - |M & U| + |M & U & T|; these sizes are exact integers computed
for a chunk of candidates at once, so no union is built for a candidate that is rejected, and the IoUs equal the
dense computation bit for bit (bench/bench_grid.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from pipeline.grid.proposals import GridError, ProposalSet
from pipeline.grid.runs import RunIndex, combine, counts_from_strings, intersection_sizes, runs_from_counts
from pipeline.grid.tokens import grid_token
from pipeline.records import RLE
from pipeline.rle import to_coco

_EPS = 1e-12  # a union must raise the IoU by more than this to be kept
_CHUNK = 16  # candidates evaluated together against the current union


@dataclass(frozen=True)
class GreedyResult:
    cells: list[tuple[int, int]]  # selected cells, sorted
    iou: float  # IoU of the union of the selected proposals with the target
    order: list[int]  # indices into the ProposalSet, in the order they were selected

    @property
    def count(self) -> int:
        return len(self.cells)

    @property
    def tokens(self) -> list[str]:
        return [grid_token(r, c) for r, c in self.cells]


def rank_proposals(ious: np.ndarray, props: ProposalSet, idx: np.ndarray, grid: int,
                   prefer: np.ndarray | None = None) -> np.ndarray:
    """Positions into ``idx`` (proposal indices with IoU ``ious``) in greedy order."""
    cells = props.cells[idx]
    pref = np.zeros(len(idx)) if prefer is None else -np.asarray(prefer, dtype=float)[cells[:, 0] * grid + cells[:, 1]]
    return np.lexsort((cells[:, 1], cells[:, 0], -props.stability[idx], -props.predicted_iou[idx], pref, -ious))


def greedy_select(target: RLE, props: ProposalSet, tau: float, grid: int,
                  prefer: np.ndarray | None = None) -> GreedyResult:
    """Select grid cells whose proposals' union covers ``target`` up to IoU ``tau``.

    ``prefer`` (optional, ``(G*G,)`` row-major) breaks IoU ties before the proposals' own scores: the stage
    passes the depth of each grid centre inside the target, so among equally good proposals the one prompted
    deepest inside the object wins (with the annotations backend that picks the single token).

    Raises :class:`GridError` with reason ``grid_proposal_size_mismatch`` (target and proposals differ in size),
    ``grid_empty_mask`` (target has no pixel) or ``grid_no_overlapping_proposal`` (no proposal meets it).
    """
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    if tuple(target.size) != props.size:
        raise GridError("grid_proposal_size_mismatch",
                        f"target mask is {list(target.size)}, proposals are {list(props.size)} (h, w)")
    ts, te, _ = runs_from_counts(*counts_from_strings([target.counts]))
    t_runs = (ts, te)
    t_area = int((te - ts).sum())
    if t_area == 0:
        raise GridError("grid_empty_mask", "target mask has no pixel")
    bx, by, bw, bh = (float(v) for v in mask_utils.toBbox([to_coco(target)])[0])
    x0, y0, x1, y1 = bx, by, bx + bw, by + bh
    b = props.boxes
    near = np.flatnonzero(props.nonempty & (b[:, 0] < x1) & (b[:, 2] > x0) & (b[:, 1] < y1) & (b[:, 3] > y0))
    if len(near):
        uniq, inv = np.unique(props.mask_id[near], return_inverse=True)
        us, ue, useg = props.runs_of(uniq)
        pt = intersection_sizes(us, ue, useg, len(uniq), RunIndex(t_runs))[inv.reshape(-1)]
        keep = pt > 0
        near, pt = near[keep], pt[keep]
    if not len(near):
        raise GridError("grid_no_overlapping_proposal", f"none of {len(props)} proposals overlaps the target")
    area = props.areas[near]
    ious = pt / (area + t_area - pt)
    pos = rank_proposals(ious, props, near, grid, prefer)
    near, pt, area = near[pos], pt[pos], area[pos]
    mids = props.mask_id[near]

    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    u_runs, ut_runs = empty, empty
    inter, uni, best = 0, t_area, 0.0
    chosen: list[int] = []
    todo = np.arange(len(near))  # positions still to try, in greedy order
    while len(todo):
        # a candidate can only help if a * S > b * I; with a <= |M & T| and b >= |M - T| - |U - T| most of the
        # remaining candidates are ruled out without touching their runs
        lower_b = np.maximum(area[todo] - pt[todo] - (uni - t_area), 0)
        todo = todo[pt[todo] * uni > lower_b * inter]
        if not len(todo):
            break
        chunk = todo[:_CHUNK]
        if inter == 0:  # empty union: the first candidate always raises the IoU
            a, bb = pt[chunk[:1]], area[chunk[:1]] - pt[chunk[:1]]
        else:
            cs, ce, cseg = props.runs_of(mids[chunk])
            pu = intersection_sizes(cs, ce, cseg, len(chunk), u_idx)
            put = intersection_sizes(cs, ce, cseg, len(chunk), ut_idx)
            a = pt[chunk] - put
            bb = area[chunk] - pt[chunk] - pu + put
        vals = (inter + a) / (uni + bb)
        hits = np.flatnonzero(vals > best + _EPS)
        if not len(hits):
            todo = todo[len(chunk):]
            continue
        h = int(hits[0])
        q = int(chunk[h])
        p_runs = props.mask_runs(int(mids[q]))
        u_runs = combine(u_runs, p_runs, 1)
        ut_runs = combine(ut_runs, combine(p_runs, t_runs, 2), 1)
        u_idx, ut_idx = RunIndex(u_runs), RunIndex(ut_runs)
        inter, uni, best = inter + int(a[h]), uni + int(bb[h]), float(vals[h])
        chosen.append(int(near[q]))
        if best >= tau:
            break
        todo = todo[h + 1:]
    cells = sorted({(int(props.cells[i, 0]), int(props.cells[i, 1])) for i in chosen})
    return GreedyResult(cells=cells, iou=best, order=chosen)
