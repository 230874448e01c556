"""Masks as sorted runs of foreground pixels, straight from COCO compressed RLE strings. Pure numpy.

A mask of size (h, w) is the set of column-major pixel indices in ``[0, h*w)``; its foreground is a sorted list
of disjoint half-open runs ``[start, end)``. These are exactly the odd runs of the COCO RLE, so they are read
from the compressed strings without decoding any pixel. Set sizes (``|A & B|``) are exact integers, so IoUs
computed from them equal the dense computation bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def counts_from_strings(strings: Sequence[bytes | str]) -> tuple[np.ndarray, np.ndarray]:
    """Decode many COCO compressed ``counts`` strings at once -> (counts int64, offsets): string i's counts are
    ``counts[offsets[i]:offsets[i+1]]``. Mirrors pycocotools' ``rleFrString`` (5-bit groups, continuation bit
    0x20, sign bit 0x10, counts from the third on stored as a delta to the one two before)."""
    bufs = [s.encode("ascii") if isinstance(s, str) else s for s in strings]
    n = len(bufs)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(1, np.int64)
    raw = np.frombuffer(b"".join(bufs), dtype=np.uint8).astype(np.int64) - 48
    more = (raw & 0x20) != 0
    last = np.flatnonzero(~more)  # index of the last character of every value
    first = np.concatenate([[0], last[:-1] + 1])
    k = np.arange(len(raw)) - np.repeat(first, last - first + 1)  # position of each char inside its value
    vals = np.add.reduceat((raw & 0x1F) << (5 * k), first) if len(first) else np.zeros(0, np.int64)
    neg = (raw[last] & 0x10) != 0
    vals = vals - np.where(neg, np.left_shift(1, 5 * (k[last] + 1)), 0)
    # which string each value belongs to
    char_ends = np.cumsum([len(b) for b in bufs])
    owner = np.searchsorted(char_ends, last, side="right")
    per = np.bincount(owner, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(per)])
    m = np.arange(len(vals)) - np.repeat(offsets[:-1], per)  # index of each value inside its string
    # undo the delta: for m > 2, c[m] = x[m] + c[m - 2] -> cumulative sums along the odd and the even chains
    out = vals.copy()
    owner_v = np.repeat(np.arange(n), per)
    for first_m in (2, 1):  # the even chain starts at the third value, the odd chain at the second
        sel = np.flatnonzero((m % 2 == first_m % 2) & (m >= first_m))
        if len(sel):
            cs = np.cumsum(vals[sel])
            own = owner_v[sel]
            head = np.concatenate([[True], own[1:] != own[:-1]])
            base = np.maximum.accumulate(np.where(head, np.arange(len(sel)), 0))
            out[sel] = cs - cs[base] + vals[sel][base]
    return out, offsets


def runs_from_counts(counts: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foreground runs of every mask: (starts, ends, run_offsets); mask i's runs are ``run_offsets[i]:[i+1]``."""
    n = len(offsets) - 1
    per = np.diff(offsets)
    owner = np.repeat(np.arange(n), per)
    m = np.arange(len(counts)) - np.repeat(offsets[:-1], per)
    cum0 = np.concatenate([[0], np.cumsum(counts)])
    pos = cum0[1:] - np.repeat(cum0[offsets[:-1]], per)  # end of each run, inside its own mask
    ones = np.flatnonzero((m % 2 == 1) & (counts > 0))
    ends = pos[ones]
    starts = ends - counts[ones]
    run_per = np.bincount(owner[ones], minlength=n)
    return starts, ends, np.concatenate([[0], np.cumsum(run_per)])


def combine(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], k: int):
    """Union (k=1) or intersection (k=2) of two run sets."""
    pos = np.concatenate([a[0], b[0], a[1], b[1]])
    delta = np.concatenate([np.ones(len(a[0]) + len(b[0]), np.int64), -np.ones(len(a[1]) + len(b[1]), np.int64)])
    order = np.lexsort((delta, pos))  # at one position, ends (-1) before starts (+1): touching runs stay apart
    pos, delta = pos[order], delta[order]
    cov = np.cumsum(delta)
    prev = np.concatenate([[0], cov[:-1]])
    starts = pos[(cov >= k) & (prev < k)]
    ends = pos[(cov < k) & (prev >= k)]
    keep = ends > starts
    return starts[keep], ends[keep]


class RunIndex:
    """A run set prepared for many ``F(x)`` look-ups (``F(x)`` = foreground pixels with index < x)."""

    def __init__(self, runs: tuple[np.ndarray, np.ndarray]):
        self.s, self.e = runs
        self.lens = self.e - self.s
        self.cum = np.concatenate([[0], np.cumsum(self.lens)])
        self.lo = int(self.s[0]) if len(self.s) else 0
        self.hi = int(self.e[-1]) if len(self.s) else 0

        self._table: np.ndarray | None = None

    def table(self) -> np.ndarray:
        """Prefix counts over the set's span: ``table[x - lo] = F(x)`` for lo <= x <= hi (built once)."""
        if self._table is None:
            n = self.hi - self.lo + 1
            step = np.bincount(self.s - self.lo, minlength=n) - np.bincount(self.e - self.lo, minlength=n)
            self._table = np.concatenate([[0], np.cumsum(np.cumsum(step)[:-1])])
        return self._table

    def before(self, x: np.ndarray) -> np.ndarray:
        if len(x) * 4 > self.hi - self.lo:  # many look-ups: one prefix table beats a binary search each
            return self.table()[np.minimum(np.maximum(x - self.lo, 0), self.hi - self.lo)]
        i = np.searchsorted(self.s, x, side="right") - 1
        ic = np.maximum(i, 0)
        inside = np.minimum(np.maximum(x - self.s[ic], 0), self.lens[ic])
        return np.where(i >= 0, self.cum[ic] + inside, 0)


def intersection_sizes(starts: np.ndarray, ends: np.ndarray, seg: np.ndarray, nseg: int,
                       runs: tuple[np.ndarray, np.ndarray] | RunIndex) -> np.ndarray:
    """``|P_j & X|`` for run sets P_j given as concatenated runs with segment ids ``seg`` (0..nseg-1)."""
    idx = runs if isinstance(runs, RunIndex) else RunIndex(runs)
    if len(idx.s) == 0:
        return np.zeros(nseg, np.int64)
    near = (ends > idx.lo) & (starts < idx.hi)  # runs outside X's span meet nothing
    starts, ends, seg = starts[near], ends[near], seg[near]
    f = idx.before(np.concatenate([starts, ends]))
    inter = f[len(starts):] - f[:len(starts)]
    return np.bincount(seg, weights=inter, minlength=nseg).astype(np.int64)
