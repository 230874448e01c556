"""Visual prompts (point, scribble, box, mask) drawn from one instance: seeded and biased to the interior.

A region prompt is the dict the composer writes to the row's ``regions`` column (minus ``turn``):
``{kind, instance_id, box, points, mask}``. ``box`` is the prompt box for ``box`` prompts and the instance box
otherwise; ``points`` is one ``x, y`` pair (point) or a flat polyline ``x0, y0, x1, y1, ...`` (scribble);
``mask`` is the instance RLE for ``mask`` prompts only.

How the interior is found (pure numpy + OpenCV, no full-image decode): the instance box is sampled on a grid of at
most :data:`MAX_SIDE` x :data:`MAX_SIDE` pixel centres; each sample is looked up in the RLE's runs (column-major,
read straight from the compressed counts), so a 640 x 480 mask costs a few thousand lookups, not a decode. The
grid is padded with background and passed to ``cv2.distanceTransform`` (L2), so the distance to the mask edge (or
to the box edge when there is no mask) is known for every sample.

- point: a sample drawn with probability proportional to ``distance ** 2`` (deeper is likelier), then jittered
  uniformly inside its grid cell and snapped back to the sample when the jitter leaves the mask.
- scribble: a random walk of 3-7 vertices that starts at a point drawn like the above and at each step turns by
  at most 60 degrees, stepping ~1/6 of the box's longer side (or half that), choosing among the candidate steps
  that land on samples at least 0.35 times as deep as the deepest one (weight ``distance ** 2``); it stops early
  when none does.
- box: the instance box, each edge moved by N(0, 0.03 * side) (clipped to the image, never inverted).
- mask: the instance RLE.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.records import Instance

MAX_SIDE = 48  # samples along the longer box side
KINDS = ("point", "scribble", "box", "mask")
BOX_JITTER = 0.03  # sd of each box edge's move, as a fraction of the box side
_TURNS = tuple(math.radians(t) for t in (-60.0, -30.0, 0.0, 30.0, 60.0))


def _cv2():
    try:
        import cv2
    except ImportError as e:  # opencv is a base dependency; this names the fix if an install lost it
        from pipeline.errors import MissingExtraError

        raise MissingExtraError("opencv-python-headless", "visual prompts (point / scribble)") from e
    return cv2


def interior(inst: Instance, img_w: int, img_h: int):
    """(distance grid [ny, nx] float32, xs [nx], ys [ny], run ends or None): pixel-centre sample coordinates over the
    instance box, each sample's L2 distance (in samples) to the nearest background sample (mask absent: to the box
    edge), and the mask's cumulative run ends (:func:`run_ends`) for further lookups."""
    x1, y1, x2, y2 = inst.box
    x1, y1 = max(0.0, x1), max(0.0, y1)
    x2, y2 = min(float(img_w), max(x2, x1 + 1)), min(float(img_h), max(y2, y1 + 1))
    step = max(x2 - x1, y2 - y1) / MAX_SIDE
    step = max(step, 1.0)
    nx, ny = max(1, int(np.ceil((x2 - x1) / step))), max(1, int(np.ceil((y2 - y1) / step)))
    xs = np.minimum(np.floor(x1 + (np.arange(nx) + 0.5) * step), img_w - 1).astype(np.int64)
    ys = np.minimum(np.floor(y1 + (np.arange(ny) + 0.5) * step), img_h - 1).astype(np.int64)
    ends = run_ends(inst.mask.counts) if inst.mask is not None else None
    if ends is not None:
        inside = _lookup(ends, int(inst.mask.size[0]), xs, ys)
    else:
        inside = np.ones((ny, nx), dtype=bool)
    padded = np.zeros((ny + 2, nx + 2), dtype=np.uint8)
    padded[1:-1, 1:-1] = inside
    dist = _cv2().distanceTransform(padded, _cv2().DIST_L2, 3)[1:-1, 1:-1]
    return dist, xs.astype(np.float64) + 0.5, ys.astype(np.float64) + 0.5, ends


def run_ends(counts: str) -> np.ndarray:
    """Cumulative run ends of a compressed COCO RLE string (pycocotools' ``rleFrString``: 5-bit groups,
    continuation bit 0x20, sign bit 0x10, counts from the third on stored as a delta to the one two before)."""
    raw = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    last = np.flatnonzero((raw & 0x20) == 0)
    if len(last) == len(raw):  # every value fits one character
        vals = (raw & 0x1F) - np.where(raw & 0x10, 32, 0)
    else:
        first = np.concatenate([[0], last[:-1] + 1])
        k = np.arange(len(raw)) - np.repeat(first, last - first + 1)
        vals = np.add.reduceat((raw & 0x1F) << (5 * k), first)
        vals = vals - np.where(raw[last] & 0x10, np.left_shift(1, 5 * (k[last] + 1)), 0)
    c = vals.copy()
    c[1::2] = np.cumsum(vals[1::2])
    c[2::2] = np.cumsum(vals[2::2])
    return np.cumsum(c)


def _lookup(ends: np.ndarray, h: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Foreground flags of the pixels (ys x xs) of a column-major RLE given its :func:`run_ends`, no decode."""
    idx = (xs[None, :] * h + ys[:, None]).ravel()
    run = np.searchsorted(ends, idx, side="right")
    return (run % 2 == 1).reshape(len(ys), len(xs))


def _pick(weights: np.ndarray, rng: np.random.Generator) -> int:
    cum = np.cumsum(weights)
    if cum[-1] <= 0:
        return int(rng.integers(len(weights)))
    return min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), len(weights) - 1)


def _deep_sample(dist: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    flat = dist.ravel().astype(np.float64)
    if flat.max() <= 0:  # empty mask inside its box (should not happen): the box centre sample
        return dist.shape[0] // 2, dist.shape[1] // 2
    k = _pick(flat**2, rng)
    return divmod(k, dist.shape[1])


def point_prompt(inst: Instance, rng: np.random.Generator, img_w: int, img_h: int) -> list[float]:
    dist, xs, ys, ends = interior(inst, img_w, img_h)
    r, c = _deep_sample(dist, rng)
    step = (xs[1] - xs[0]) if len(xs) > 1 else 1.0
    jx, jy = rng.uniform(-0.45, 0.45, 2) * step
    x, y = float(xs[c] + jx), float(ys[r] + jy)
    if ends is not None:
        idx = min(max(int(x), 0), img_w - 1) * int(inst.mask.size[0]) + min(max(int(y), 0), img_h - 1)
        if int(np.searchsorted(ends, idx, side="right")) % 2 == 0:  # the jitter left the mask
            x, y = float(xs[c]), float(ys[r])
    return [round(float(x), 2), round(float(y), 2)]


def scribble_prompt(inst: Instance, rng: np.random.Generator, img_w: int, img_h: int) -> list[float]:
    dist, xs, ys, _ = interior(inst, img_w, img_h)
    ny, nx = dist.shape
    r, c = _deep_sample(dist, rng)
    floor = max(0.35 * float(dist.max()), 1.0)
    length = max(1.0, max(nx, ny) / 6.0)
    n_vertices = int(rng.integers(3, 8))
    angle = float(rng.uniform(0, 2 * math.pi))
    path = [(r, c)]
    misses = 0
    while len(path) < n_vertices and misses < 4:  # scalar Python: ten candidates a step beat small-array numpy
        pr, pc = path[-1]
        cands, weights = [], []
        for step in (length, max(1.0, length / 2)):  # a full step, or half when blocked
            for turn in _TURNS:
                a = angle + turn
                rr, cc = int(round(pr + step * math.sin(a))), int(round(pc + step * math.cos(a)))
                if 0 <= rr < ny and 0 <= cc < nx and (rr, cc) != (pr, pc):
                    d = float(dist[rr, cc])
                    if d >= floor:
                        cands.append((rr, cc, a))
                        weights.append(d * d)
        if not cands:
            if len(path) >= 2:
                break
            misses += 1
            angle += math.pi / 2  # a dead end at the start: try the next heading
            continue
        rr, cc, angle = cands[_pick(np.array(weights), rng)]
        path.append((rr, cc))
    if len(path) < 2:  # a sliver: the nearest other foreground sample, else the start twice
        fr, fc = np.nonzero(dist > 0)
        d2 = (fr - r) ** 2 + (fc - c) ** 2
        d2[d2 == 0] = np.iinfo(d2.dtype).max
        path.append((int(fr[d2.argmin()]), int(fc[d2.argmin()])) if len(fr) > 1 else path[0])
    out: list[float] = []
    for pr, pc in path:
        out += [round(float(xs[pc]), 2), round(float(ys[pr]), 2)]
    return out


def box_prompt(inst: Instance, rng: np.random.Generator, img_w: int, img_h: int) -> list[float]:
    x1, y1, x2, y2 = inst.box
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    d = rng.normal(0.0, BOX_JITTER, 4) * np.array([bw, bh, bw, bh])
    nx1, ny1 = min(max(0.0, x1 + d[0]), img_w - 1.0), min(max(0.0, y1 + d[1]), img_h - 1.0)
    nx2, ny2 = max(min(float(img_w), x2 + d[2]), nx1 + 1.0), max(min(float(img_h), y2 + d[3]), ny1 + 1.0)
    return [round(float(v), 2) for v in (nx1, ny1, nx2, ny2)]


def region_prompt(inst: Instance, kind: str, rng: np.random.Generator, img_w: int, img_h: int) -> dict:
    """One region prompt of ``kind`` for ``inst`` (see the module docstring for the dict)."""
    region: dict = {"kind": kind, "instance_id": inst.id, "box": [float(v) for v in inst.box], "points": []}
    if kind == "point":
        region["points"] = point_prompt(inst, rng, img_w, img_h)
    elif kind == "scribble":
        region["points"] = scribble_prompt(inst, rng, img_w, img_h)
    elif kind == "box":
        region["box"] = box_prompt(inst, rng, img_w, img_h)
    elif kind == "mask":
        if inst.mask is None:
            raise ValueError(f"instance {inst.id} has no mask for a mask prompt")
        region["mask"] = {"size": list(inst.mask.size), "counts": inst.mask.counts}
    else:
        raise ValueError(f"unknown prompt kind {kind!r}; known: {KINDS}")
    return region


def choose_kind(inst: Instance, rng: np.random.Generator, kinds: tuple[str, ...] = KINDS) -> str:
    """A prompt kind among ``kinds`` the instance supports (mask prompts need a mask), uniformly."""
    usable = [k for k in kinds if k != "mask" or inst.mask is not None]
    return usable[int(rng.integers(len(usable)))]


def random_prompt(inst: Instance, rng: np.random.Generator, img_w: int, img_h: int,
                  kinds: tuple[str, ...] = KINDS) -> dict:
    return region_prompt(inst, choose_kind(inst, rng, kinds), rng, img_w, img_h)
