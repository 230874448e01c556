"""Benchmark: greedy grid-token selection and offset labelling per target mask, RLE/OpenCV vs dense numpy.

    python bench/bench_grid.py [--quick] [--targets N] [--seed S]

Two synthetic scenes at 640 x 480 with G = 32 and 1,024 proposals, one per grid cell (see make_scene):
``objects`` (SAM-like: proposals are the objects / parts under each point, targets are the objects) and
``stress`` (random overlapping ellipses, tau rarely reached: the worst case). Times are CPU time of this process
(best of 3 for the fast versions), so other jobs on the machine distort them less. For each target both implementations run the SAME algorithm (same ranking, same acceptance rule, same
offset rule); the straightforward dense-numpy versions below are the reference. Prints ms/mask, speed-up and
whether the outputs are identical.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.grid.greedy import greedy_select  # noqa: E402
from pipeline.grid.offsets import FAR, HARD_DELETE, INSIDE, MOVES, RING, element_radius, label_points  # noqa: E402
from pipeline.grid.proposals import Proposal, ProposalSet  # noqa: E402
from pipeline.grid.tokens import grid_points, offset_step  # noqa: E402
from pipeline.rle import encode  # noqa: E402

W, H, G = 640, 480, 32


def report(name: str, value: str) -> None:
    sys.stdout.write(f"{name:<48} {value}\n")


# -- synthetic data -------------------------------------------------------------------------------------------
def ellipse(rng: np.random.Generator, cx: float, cy: float, rmin: float, rmax: float, w: int, h: int) -> np.ndarray:
    import cv2

    m = np.zeros((h, w), np.uint8)
    ax = (int(rng.uniform(rmin, rmax)), int(rng.uniform(rmin, rmax)))
    ox, oy = rng.uniform(-0.6, 0.6, 2) * np.array(ax)  # the centre moves but the prompt point stays inside
    cv2.ellipse(m, (int(cx + ox), int(cy + oy)), ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    m[int(cy), int(cx)] = 1
    return m.astype(bool)


def make_scene(seed: int, n_targets: int, w: int = W, h: int = H, grid: int = G, kind: str = "objects"):
    """``objects``: ~30 layered ellipse objects; each grid point's proposal is the object under it (35 %), a part
    of it (object & a small ellipse round the point) or a background piece; targets are the visible objects, as
    with SAM on a real photo. ``stress``: every proposal a random ellipse (radii 4-160 px) and every target a union
    of 1-4 random ellipses, so tau is rarely reached and ~all proposals overlap -- the worst case."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((grid * grid, h, w), dtype=bool)
    props = []
    label = np.zeros((h, w), np.int32)
    if kind == "objects":
        for k in range(1, 31):
            r = np.exp(rng.uniform(np.log(8), np.log(140)))
            label[ellipse(rng, rng.uniform(0, w), rng.uniform(0, h), 0.5 * r, r, w, h)] = k
    for i, (x, y) in enumerate(grid_points(w, h, grid)):
        if kind == "objects":
            obj = label == label[int(y), int(x)]
            dense[i] = obj if rng.random() < 0.35 and label[int(y), int(x)] else obj & ellipse(rng, x, y, 8, 40, w, h)
        else:
            dense[i] = ellipse(rng, x, y, 4, 160, w, h)
        props.append(Proposal(i // grid, i % grid, encode(dense[i]), float(rng.uniform(0.8, 1.0)),
                              float(rng.uniform(0.9, 1.0))))
    targets = []
    if kind == "objects":
        pts = grid_points(w, h, grid).astype(int)
        on_grid = set(np.unique(label[pts[:, 1], pts[:, 0]]).tolist())  # the stage skips masks with no centre
        ids = [k for k in np.unique(label) if k and k in on_grid]
        targets = [label == k for k in ids[:n_targets]]
    while len(targets) < n_targets:
        t = np.zeros((h, w), dtype=bool)
        for _ in range(int(rng.integers(1, 5))):
            t |= ellipse(rng, rng.uniform(0, w), rng.uniform(0, h), 6, 120, w, h)
        targets.append(t)
    return props, dense, targets


# -- dense-numpy reference implementations ----------------------------------------------------------------------
def dense_greedy(target: np.ndarray, dense: np.ndarray, props: list[Proposal], tau: float, grid: int = G):
    tf = target.reshape(-1)
    pf = dense.reshape(len(dense), -1)
    inter = (pf & tf).sum(axis=1)
    uni = (pf | tf).sum(axis=1)
    ious = np.where(uni > 0, inter / np.maximum(uni, 1), 0.0)
    rows = np.array([p.row for p in props])
    cols = np.array([p.col for p in props])
    piou = np.array([p.predicted_iou for p in props])
    stab = np.array([p.stability_score for p in props])
    order = np.lexsort((cols, rows, -stab, -piou, np.zeros(len(props)), -ious))
    union = np.zeros_like(tf)
    best, chosen = 0.0, []
    for i in order:
        if ious[i] <= 0:
            break
        cand = union | pf[i]
        value = float((cand & tf).sum() / (cand | tf).sum())
        if value > best + 1e-12:
            union, best = cand, value
            chosen.append(int(i))
            if best >= tau:
                break
    return sorted({(int(rows[i]), int(cols[i])) for i in chosen}), best


def dense_offsets(mask: np.ndarray, grid: int = G):
    """The offset rule of pipeline/grid/offsets.py written out on the whole image, with a brute-force EDT."""
    from numpy.lib.stride_tricks import sliding_window_view

    h, w = mask.shape
    rx, ry = element_radius(w, h, grid)
    sx, sy = offset_step(w, h, grid)
    pad = np.pad(mask, ((ry, ry), (rx, rx)))
    win = sliding_window_view(pad, (2 * ry + 1, 2 * rx + 1))
    er, di = win.all(axis=(2, 3)), win.any(axis=(2, 3))
    zy, zx = np.nonzero(~np.pad(mask, 1))
    zy, zx = zy - 1, zx - 1  # background pixels, the ring outside the image included

    def edt(y: int, x: int) -> float:
        return float(np.sqrt(((zy - y) ** 2 + (zx - x) ** 2).min())) if mask[y, x] else 0.0

    n = grid * grid
    cat = np.full(n, FAR, np.int8)
    mv = np.zeros((n, 2), np.int8)
    depth = np.zeros(n)
    for i, (x, y) in enumerate(grid_points(w, h, grid)):
        xi, yi = int(np.floor(x)), int(np.floor(y))
        depth[i] = edt(yi, xi)
        if er[yi, xi]:
            cat[i] = INSIDE
        elif di[yi, xi]:
            best, best_d = None, -1.0
            for dx, dy in MOVES:
                lx, ly = int(np.floor(x + dx * sx)), int(np.floor(y + dy * sy))
                if 0 <= lx < w and 0 <= ly < h and er[ly, lx]:
                    d = edt(ly, lx)
                    if d > best_d:
                        best, best_d = (dx, dy), d
            if best is None:
                cat[i] = HARD_DELETE
            else:
                cat[i], mv[i] = RING, best
    return cat, mv, depth


# -- the run ----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 targets per scene (CI); default 20")
    ap.add_argument("--targets", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tau", type=float, default=0.85)
    args = ap.parse_args(argv)
    n_targets = args.targets or (4 if args.quick else 20)

    ok = True
    for kind in ("objects", "stress"):
        ok &= run_scene(kind, args.seed, n_targets, args.tau)
    return 0 if ok else 1


def run_scene(kind: str, seed: int, n_targets: int, tau: float) -> bool:
    t0 = time.perf_counter()
    props, dense, targets = make_scene(seed, n_targets, kind=kind)
    report(f"[{kind}] scene", f"{W}x{H}, G={G}, {len(props)} proposals, {len(targets)} targets, "
                              f"built in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    pset = ProposalSet(props, (H, W))
    report(f"[{kind}] ProposalSet packing (once per image)", f"{(time.perf_counter() - t0) * 1e3:.1f} ms")
    target_rles = [encode(t) for t in targets]
    # CPU time of this process (robust when other jobs share the cores); each fast run repeated, best kept
    clock = time.process_time
    fast_g, fast_o, ref_g, ref_o, tokens, ious = [], [], [], [], [], []
    same_g = same_o = True
    for t, trle in zip(targets, target_rles):
        tg, to = [], []
        for _ in range(3):
            a = clock()
            res = greedy_select(trle, pset, tau, G)
            b = clock()
            lab = label_points(t, G)
            c = clock()
            tg.append(b - a), to.append(c - b)
        c = clock()
        cells, iou = dense_greedy(t, dense, props, tau)
        d = clock()
        cat, mv, depth = dense_offsets(t)
        e = clock()
        fast_g.append(min(tg)), fast_o.append(min(to)), ref_g.append(d - c), ref_o.append(e - d)
        tokens.append(res.count), ious.append(res.iou)
        same_g &= cells == res.cells and abs(iou - res.iou) < 1e-12
        same_o &= bool((cat == lab.category).all() and (mv == lab.move).all()
                       and np.allclose(depth, lab.depth, atol=1e-3))
    ms = lambda v: 1e3 * float(np.mean(v))  # noqa: E731
    report(f"[{kind}] greedy, runs (pipeline.grid.greedy)", f"{ms(fast_g):.2f} ms/mask (max {1e3 * max(fast_g):.2f})")
    report(f"[{kind}] greedy, dense numpy reference", f"{ms(ref_g):.1f} ms/mask")
    report(f"[{kind}] greedy speed-up", f"{ms(ref_g) / ms(fast_g):.0f}x")
    report(f"[{kind}] greedy outputs identical", str(same_g))
    report(f"[{kind}] tokens/mask mean, max; IoU mean", f"{np.mean(tokens):.1f}, {max(tokens)}; {np.mean(ious):.3f}")
    report(f"[{kind}] offsets, OpenCV crop (offsets.py)", f"{ms(fast_o):.2f} ms/mask (max {1e3 * max(fast_o):.2f})")
    report(f"[{kind}] offsets, dense numpy reference", f"{ms(ref_o):.1f} ms/mask")
    report(f"[{kind}] offsets speed-up", f"{ms(ref_o) / ms(fast_o):.0f}x")
    report(f"[{kind}] offsets outputs identical", str(same_o))
    del dense
    return same_g and same_o


if __name__ == "__main__":
    raise SystemExit(main())
