"""Offset-region labelling of grid points (GETok Sec. 3.2.2 / App. C.2). Pure numpy + OpenCV.

Notation: M the target mask; s = (sx, sy) = (W/2G, H/2G) the offset step (half a cell); K the structuring
element, a (2*floor(sx/2)+1) x (2*floor(sy/2)+1) rectangle -- a square of side ~ s in grid units, i.e. radius
half a step; E = erode(M, K), D = dilate(M, K) (outside the image counts as background); p the grid centre
pixel (floor of the centre); hit(p) = the one-step moves delta in the 8-neighbourhood with p + delta * s in E.

The ONE ordered rule (first match wins):

1. **Inside**      p in E                        -> ``<OFF0,0>``
2. **Ring**        p in D \\ E and hit(p) != {}    -> the move in hit(p) whose landing pixel is deepest in M
                                                    (Euclidean distance transform, image border = background),
                                                    ties in :data:`pipeline.grid.tokens.OFFSET_STEPS` order
3. **Hard-Delete** p in D \\ E                    -> ``<DELETE>`` (within half a step of the boundary, no single
                                                    move reaches the stable interior: thin parts, tips, gaps)
4. **Far**         otherwise (p outside D)       -> ``<DELETE>``

D \\ E is the band of +- half a step around the boundary: the positions the 2G offset lattice cannot resolve.
A point there is either moved into the stable interior E or dropped. Ring therefore also holds points on the
object's rim that one step moves deeper. A mask thinner than K has an empty E: all of its points are Hard-Delete
or Far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.grid.tokens import DELETE, OFFSET_STEPS, grid_token, offset_step, offset_token

INSIDE, RING, HARD_DELETE, FAR = 0, 1, 2, 3
CATEGORY_NAMES = ("inside", "ring", "hard_delete", "far")
MOVES = np.array(OFFSET_STEPS[1:], dtype=np.int64)  # the 8 one-step moves, in tie-break order
DEFAULT_WEIGHTS = (0.4, 0.4, 0.1, 0.1)  # sampling weight of inside, ring, hard_delete, far


@dataclass(frozen=True)
class OffsetLabels:
    category: np.ndarray  # (G*G,) int8, row-major cells
    move: np.ndarray  # (G*G, 2) int8 (dx, dy); (0, 0) for Inside and for the DELETE categories
    depth: np.ndarray  # (G*G,) float32: distance transform of M at each grid centre (0 outside M)

    def token(self, i: int) -> str:
        cat = int(self.category[i])
        if cat in (HARD_DELETE, FAR):
            return DELETE
        return offset_token(int(self.move[i, 0]), int(self.move[i, 1]))

    def counts(self) -> dict[str, int]:
        return {name: int((self.category == k).sum()) for k, name in enumerate(CATEGORY_NAMES)}


def element_radius(w: int, h: int, grid: int) -> tuple[int, int]:
    sx, sy = offset_step(w, h, grid)
    return max(1, int(sx // 2)), max(1, int(sy // 2))


def _cv2():
    try:
        import cv2
    except ImportError as e:
        from pipeline.errors import MissingExtraError

        raise MissingExtraError("offset labelling", "grid", "cv2") from e
    return cv2


def label_points(mask: np.ndarray, grid: int) -> OffsetLabels:
    """Categorise all ``G*G`` grid centres against the boolean mask ``mask`` (h, w) by the rule above."""
    cv2 = _cv2()
    h, w = mask.shape
    n = grid * grid
    category = np.full(n, FAR, dtype=np.int8)
    move = np.zeros((n, 2), dtype=np.int8)
    depth = np.zeros(n, dtype=np.float32)
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(ys):
        return OffsetLabels(category, move, depth)
    rx, ry = element_radius(w, h, grid)
    sx, sy = offset_step(w, h, grid)
    # work on a crop: the mask's box plus the halo, plus one step of landing room, plus the erosion's reach
    mx, my = rx + int(np.ceil(sx)) + rx + 1, ry + int(np.ceil(sy)) + ry + 1
    x0, x1 = max(0, xs[0] - mx), min(w, xs[-1] + 1 + mx)
    y0, y1 = max(0, ys[0] - my), min(h, ys[-1] + 1 + my)
    crop = mask[y0:y1, x0:x1].astype(np.uint8)
    k = np.ones((2 * ry + 1, 2 * rx + 1), np.uint8)
    er = cv2.erode(crop, k, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    di = cv2.dilate(crop, k, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    # zero padding: the image border counts as background; inside the image the crop's rim is background
    dist = cv2.distanceTransform(np.pad(crop, 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]

    cx = (np.arange(grid) + 0.5) * (w / grid)
    cy = (np.arange(grid) + 0.5) * (h / grid)
    px = np.tile(cx, grid)
    py = np.repeat(cy, grid)
    pxi, pyi = np.floor(px).astype(np.int64) - x0, np.floor(py).astype(np.int64) - y0
    inb = (pxi >= 0) & (pxi < x1 - x0) & (pyi >= 0) & (pyi < y1 - y0)
    idx = np.flatnonzero(inb)
    in_e = er[pyi[idx], pxi[idx]]
    in_d = di[pyi[idx], pxi[idx]]
    category[idx[in_e]] = INSIDE
    depth[idx] = dist[pyi[idx], pxi[idx]]
    band = idx[in_d & ~in_e]
    if len(band):
        category[band] = HARD_DELETE
        lx = np.floor(px[band, None] + MOVES[None, :, 0] * sx).astype(np.int64) - x0  # (b, 8)
        ly = np.floor(py[band, None] + MOVES[None, :, 1] * sy).astype(np.int64) - y0
        ok = (lx >= 0) & (lx < x1 - x0) & (ly >= 0) & (ly < y1 - y0)
        lxc, lyc = np.where(ok, lx, 0), np.where(ok, ly, 0)
        hit = ok & er[lyc, lxc]
        has = hit.any(axis=1)
        if has.any():
            land = np.where(hit, dist[lyc, lxc], -1.0)
            best = np.argmax(land, axis=1)  # first maximum = earliest in the fixed move order
            rows = band[has]
            category[rows] = RING
            move[rows] = MOVES[best[has]]
    return OffsetLabels(category, move, depth)


def sample_points(labels: OffsetLabels, n: int, rng: np.random.Generator,
                  weights: tuple[float, float, float, float] = DEFAULT_WEIGHTS) -> list[int]:
    """Pick up to ``n`` grid points: first one of every category present (Inside, Ring, Hard-Delete, Far), then
    the rest by drawing a category with probability proportional to its weight (among categories with points
    left) and a point of it uniformly, without replacement."""
    pools = [list(rng.permutation(np.flatnonzero(labels.category == k))) for k in range(len(CATEGORY_NAMES))]
    out: list[int] = []
    for pool in pools:
        if pool and len(out) < n:
            out.append(int(pool.pop()))
    w = np.asarray(weights, dtype=float)
    while len(out) < n:
        avail = np.array([bool(p) for p in pools])
        if not avail.any():
            break
        p = np.where(avail, w, 0.0)
        p = p / p.sum() if p.sum() > 0 else avail / avail.sum()
        k = int(rng.choice(len(pools), p=p))
        out.append(int(pools[k].pop()))
    return out


def offset_pairs(labels: OffsetLabels, picks: list[int], grid: int) -> list[list[str]]:
    """``[[grid_token, offset_token], ...]`` for the picked points, in pick order."""
    return [[grid_token(i // grid, i % grid), labels.token(i)] for i in picks]
