"""Mask proposals tied to grid cells, behind one interface.

A proposal is ``(row, col, RLE mask, predicted_iou, stability_score)``: a mask that the proposer produced when
prompted at the centre of grid cell ``(row, col)``. Backends are callables ``backend(record) -> list[Proposal]``
with ``name`` (written to provenance), ``model`` (a model id) and ``cache_parts(record)`` (what the result depends
on, for the disk cache in :mod:`pipeline.grid.cache`):

- :class:`AnnotationProposals` (``backend: annotations``, no model): at every grid point, every annotated instance
  mask of the record that contains the point (thing and stuff, crowd or not) stands in for SAM's masks.
- :class:`pipeline.grid.sam.SamProposals` (``backend: sam``): SAM's automatic mask generator prompted at exactly
  the grid points.

:class:`ProposalSet` packs one image's proposals once (distinct masks as runs, cells, boxes) so the greedy selection
of every target mask in the image reuses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pycocotools import mask as mask_utils

from pipeline.grid.runs import counts_from_strings, runs_from_counts
from pipeline.grid.tokens import grid_points
from pipeline.records import RLE, Record
from pipeline.rle import to_coco


class GridError(ValueError):
    """One target mask cannot be tokenised; ``reason`` becomes the skip reason (``grid_...``)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Proposal:
    row: int
    col: int
    rle: RLE
    predicted_iou: float = 1.0
    stability_score: float = 1.0


class ProposalBackend(Protocol):
    name: str
    model: str

    def __call__(self, record: Record) -> list[Proposal]: ...

    def cache_parts(self, record: Record) -> dict[str, Any] | None: ...


class ProposalSet:
    """One image's proposals, packed for repeated greedy selection.

    Raises :class:`GridError` ``grid_proposal_size_mismatch`` when a proposal's mask is not ``size`` (h, w).
    """

    def __init__(self, proposals: Sequence[Proposal], size: tuple[int, int]):
        self.size = (int(size[0]), int(size[1]))
        bad = [p for p in proposals if tuple(p.rle.size) != self.size]
        if bad:
            raise GridError("grid_proposal_size_mismatch",
                            f"{len(bad)} of {len(proposals)} proposals are {list(bad[0].rle.size)}, image is "
                            f"{list(self.size)} (h, w)")
        self.proposals = list(proposals)
        n = len(self.proposals)
        # one entry per distinct mask (the annotations backend repeats a mask at every cell inside it)
        index: dict[str, int] = {}
        self.mask_id = np.array([index.setdefault(p.rle.counts, len(index)) for p in self.proposals],
                                dtype=np.int64).reshape(n)
        strings = list(index)
        self.cells = np.array([(p.row, p.col) for p in self.proposals], dtype=np.int64).reshape(n, 2)
        self.predicted_iou = np.array([p.predicted_iou for p in self.proposals], dtype=float)
        self.stability = np.array([p.stability_score for p in self.proposals], dtype=float)
        if strings:
            coco = [{"size": list(self.size), "counts": c.encode("ascii")} for c in strings]
            xywh = np.asarray(mask_utils.toBbox(coco), dtype=float).reshape(len(strings), 4)[self.mask_id]
        else:
            xywh = np.zeros((0, 4))
        self.boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        self.nonempty = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
        # foreground runs of every distinct mask, read from the RLE strings (no pixel decode)
        self.starts, self.ends, self.run_offsets = runs_from_counts(*counts_from_strings(strings))
        owner = np.repeat(np.arange(len(strings)), np.diff(self.run_offsets))
        mask_area = np.bincount(owner, weights=self.ends - self.starts, minlength=len(strings)).astype(np.int64)
        self.areas = mask_area[self.mask_id]

    def runs_of(self, mask_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Runs of the masks ``mask_ids`` concatenated: (starts, ends, position in mask_ids)."""
        lo, hi = self.run_offsets[mask_ids], self.run_offsets[mask_ids + 1]
        per = hi - lo
        off = np.concatenate([[0], np.cumsum(per)])
        flat = np.arange(off[-1]) - np.repeat(off[:-1] - lo, per)
        return self.starts[flat], self.ends[flat], np.repeat(np.arange(len(mask_ids)), per)

    def mask_runs(self, mask_id: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.run_offsets[mask_id], self.run_offsets[mask_id + 1]
        return self.starts[lo:hi], self.ends[lo:hi]

    def __len__(self) -> int:
        return len(self.proposals)


def _masks_digest(record: Record) -> str:
    h = hashlib.sha256()
    for inst in record.instances:
        if inst.mask is not None:
            h.update(f"{inst.id}\x00{list(inst.mask.size)}\x00{inst.mask.counts}\x01".encode())
    return h.hexdigest()


class AnnotationProposals:
    """No model: every annotated mask containing a grid point is that point's proposal (iou = stability = 1).

    Caveat (docs/grid-tokens.md): the target's own annotated mask is among the proposals, so a target that
    contains a grid centre is reached with one token at IoU 1.0; a token set selected this way cannot be decoded
    back into the mask by SAM the way the paper's are.
    """

    name = "annotations"
    model = "none"
    cacheable = False  # decoding the record's own RLEs is cheaper than reading a cache file

    def __init__(self, grid_size: int):
        self.grid_size = grid_size

    def cache_parts(self, record: Record) -> dict[str, Any]:
        return {"image": record.image.sha256, "backend": self.name, "masks": _masks_digest(record),
                "grid_size": self.grid_size}

    def __call__(self, record: Record) -> list[Proposal]:
        g = self.grid_size
        w, h = record.image.width, record.image.height
        pts = grid_points(w, h, g)
        xi = np.minimum(pts[:, 0].astype(int), w - 1)
        yi = np.minimum(pts[:, 1].astype(int), h - 1)
        hits: list[tuple[int, int, RLE]] = []
        for inst in record.instances:
            if inst.mask is None or tuple(inst.mask.size) != (h, w):
                continue  # a size mismatch cannot come from the converters; the stage reports it per target
            dense = mask_utils.decode(to_coco(inst.mask))
            for idx in np.flatnonzero(dense[yi, xi]):
                hits.append((int(idx), len(hits), inst.mask))
        hits.sort(key=lambda t: (t[0], t[1]))  # by cell, then annotation order
        return [Proposal(i // g, i % g, rle) for i, _, rle in hits]
