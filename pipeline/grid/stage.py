"""The grid stage: proposals (cached) -> greedy grid tokens -> offset labels, for every non-crowd mask.

``GridStage(proposals_config, cache_dir)`` loads its backend once; calling it on a list of records fills
``record.extras["grid"]``::

    {"backend": "annotations" | "sam", "grid_size": G, "tau": tau, "model": "none" | "sam-vit_h@<sha12>",
     "instances": {instance_id: {"tokens": [...], "iou": float, "count": int,
                                 "offsets": [[point_token, offset_token], ...], "box_tokens": [tl, br]}}}

and adds flat ``"grid.<name>": int`` counters to ``record.extras["stats"]``. A mask that gets no tokens is a
``Skip(kind="annotation")`` in ``record.skips`` with one of the reasons ``grid_empty_mask``,
``grid_mask_smaller_than_cell`` (no grid centre inside it, and the proposals' union does not reach tau: every
proposal is prompted at a centre, so what overlaps such a mask is mostly something bigger around it),
``grid_no_overlapping_proposal``,
``grid_proposal_size_mismatch``, ``grid_image_unreadable`` / ``grid_image_size_mismatch`` (SAM only); never an
empty token list. A mask with no grid centre inside whose proposals' union does reach tau keeps its tokens
(counter ``grid.small_mask_tokenised``). Box tokens need no proposal: compose can always build them.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

import numpy as np

from pipeline.config import ProposalsConfig
from pipeline.grid.cache import ProposalCache, cache_key
from pipeline.grid.greedy import greedy_select
from pipeline.grid.offsets import CATEGORY_NAMES, label_points, offset_pairs, sample_points
from pipeline.grid.proposals import AnnotationProposals, GridError, Proposal, ProposalBackend, ProposalSet
from pipeline.grid.tokens import box_to_tokens, grid_points
from pipeline.records import Record, Skip
from pipeline.rle import bbox_xyxy, decode
from pipeline.seeds import rng_for

log = logging.getLogger(__name__)


def build_backend(cfg: ProposalsConfig, file: str = "sources.yaml") -> ProposalBackend:
    if cfg.backend == "sam":
        from pipeline.grid.sam import SamProposals  # torch / segment_anything only when asked for

        return SamProposals(cfg.sam, cfg.grid_size, file)
    return AnnotationProposals(cfg.grid_size)


class GridStage:
    """Callable on a list of records; one instance = one loaded backend (a Ray actor, or a plain object)."""

    def __init__(self, config: ProposalsConfig, cache_dir: str | os.PathLike, seed: int = 0,
                 offsets_per_mask: int = 8, config_file: str = "sources.yaml",
                 backend: ProposalBackend | None = None):
        self.cfg = config
        self.grid = config.grid_size
        self.tau = config.tau
        self.seed = seed
        self.offsets_per_mask = offsets_per_mask
        self.backend = backend if backend is not None else build_backend(config, config_file)
        self.cache = ProposalCache(cache_dir)

    def proposals(self, record: Record) -> tuple[list[Proposal], bool]:
        """The record's proposals and whether they came from the disk cache."""
        if not getattr(self.backend, "cacheable", True):
            return self.backend(record), False
        parts = self.backend.cache_parts(record)
        key = cache_key(parts)
        cached = self.cache.get(key)
        if cached is not None:
            return cached, True
        props = self.backend(record)
        self.cache.put(key, props, parts)
        return props, False

    def __call__(self, records: list[Record]) -> list[Record]:
        for record in records:
            self.process(record)
        return records

    def process(self, record: Record) -> Record:
        h, w = record.image.height, record.image.width
        stats: Counter = Counter()
        out = {"backend": self.backend.name, "grid_size": self.grid, "tau": self.tau, "model": self.backend.model,
               "instances": {}}
        record.provenance["grid_backend"] = self.backend.name
        record.provenance["grid_model"] = self.backend.model
        targets = [i for i in record.targetable() if i.mask is not None]
        stats["records"] += 1
        stats["no_mask"] += sum(1 for i in record.targetable() if i.mask is None)
        stats["masks"] += len(targets)

        def skip(inst_id: str, reason: str, detail: str) -> None:
            record.skips.append(Skip(source=record.source, kind="annotation", item_id=inst_id, reason=reason,
                                     detail=detail))
            stats[f"skip.{reason}"] += 1

        pset = None
        if targets:
            try:
                props, hit = self.proposals(record)
                stats["cache_hits" if hit else "proposal_runs"] += 1
                stats["proposals"] += len(props)
                pset = ProposalSet(props, (h, w))
            except GridError as e:
                log.warning("%s: %s", record.id, e)
                for inst in targets:
                    skip(inst.id, e.reason, e.detail)
        pts = grid_points(w, h, self.grid)
        xi, yi = np.minimum(pts[:, 0].astype(int), w - 1), np.minimum(pts[:, 1].astype(int), h - 1)
        for inst in targets if pset is not None else []:
            has_centre = True
            try:
                dense = decode(inst.mask)
                if dense.shape != (h, w):
                    raise GridError("grid_proposal_size_mismatch",
                                    f"mask is {list(dense.shape)}, image is [{h}, {w}] (h, w)")
                has_centre = bool(dense[yi, xi].any())
                labels = label_points(dense, self.grid)
                res = greedy_select(inst.mask, pset, self.tau, self.grid, prefer=labels.depth)
                if not has_centre and res.iou < self.tau:
                    raise GridError("grid_mask_smaller_than_cell",
                                    f"no grid centre inside; best proposal union IoU {res.iou:.3f} < tau {self.tau}")
            except GridError as e:
                reason = e.reason
                if reason == "grid_no_overlapping_proposal" and not has_centre:
                    reason = "grid_mask_smaller_than_cell"
                skip(inst.id, reason, e.detail)
                continue
            picks = sample_points(labels, self.offsets_per_mask, rng_for(self.seed, "grid-offsets", record.id, inst.id))
            pairs = offset_pairs(labels, picks, self.grid)
            try:
                box_tokens = box_to_tokens(inst.box, w, h, self.grid)
            except ValueError:  # a degenerate annotated box: the mask's own box (it has pixels) stands in
                box_tokens = box_to_tokens(bbox_xyxy(inst.mask), w, h, self.grid)
            out["instances"][inst.id] = {"tokens": res.tokens, "iou": round(res.iou, 6), "count": res.count,
                                         "offsets": pairs, "box_tokens": box_tokens}
            stats["tokenised"] += 1
            stats["tokens"] += res.count
            stats["small_mask_tokenised"] += int(not has_centre)
            for i in picks:
                stats[f"offsets.{CATEGORY_NAMES[int(labels.category[i])]}"] += 1
        record.extras["grid"] = out
        flat = record.extras.setdefault("stats", {})
        for k, v in stats.items():
            flat[f"grid.{k}"] = int(flat.get(f"grid.{k}", 0)) + int(v)
        return record
