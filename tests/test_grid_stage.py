"""The grid stage with the annotations backend on the real COCO sample; the proposal cache; quality report."""

from __future__ import annotations

import copy
import gzip
import logging

import numpy as np
import pytest

from pipeline.config import ProposalsConfig
from pipeline.grid.cache import ProposalCache, cache_key
from pipeline.grid.proposals import AnnotationProposals, Proposal
from pipeline.grid.quality import format_quality, grid_quality
from pipeline.grid.stage import GridStage
from pipeline.grid.tokens import grid_points, parse_grid_token
from pipeline.records import RLE
from pipeline.rle import decode, encode

log = logging.getLogger(__name__)
GRID_REASONS = {"grid_empty_mask", "grid_mask_smaller_than_cell", "grid_no_overlapping_proposal",
                "grid_proposal_size_mismatch"}


@pytest.fixture(scope="module")
def gridded(coco_real_records, tmp_path_factory):
    records = copy.deepcopy(coco_real_records)
    stage = GridStage(ProposalsConfig(), tmp_path_factory.mktemp("cache"), seed=0)
    return stage(records)


def test_every_non_crowd_mask_gets_tokens_or_a_named_skip(gridded):
    n_masks = n_tok = 0
    for rec in gridded:
        grid = rec.extras["grid"]
        assert grid["backend"] == "annotations" and grid["model"] == "none" and grid["grid_size"] == 32
        assert rec.provenance["grid_backend"] == "annotations"
        skipped = {s.item_id: s.reason for s in rec.skips if s.reason.startswith("grid_")}
        assert set(skipped.values()) <= GRID_REASONS
        for inst in rec.targetable():
            if inst.mask is None:
                continue
            n_masks += 1
            entry = grid["instances"].get(inst.id)
            assert (entry is None) != (inst.id not in skipped), inst.id  # exactly one of the two
            if entry is None:
                continue
            n_tok += 1
            assert entry["tokens"] and entry["count"] == len(entry["tokens"]) and 0 < entry["iou"] <= 1
            assert entry["tokens"] == sorted(entry["tokens"], key=parse_grid_token)
            assert len(entry["box_tokens"]) == 2 and len(entry["offsets"]) == 8
            # annotations backend: the instance's own mask is a proposal, so the chosen cell lies inside it
            r, c = parse_grid_token(entry["tokens"][0])
            x, y = grid_points(rec.image.width, rec.image.height, 32)[r * 32 + c]
            assert decode(inst.mask)[int(y), int(x)]
        for iid in grid["instances"]:
            assert not rec.instance(iid).iscrowd
        stats = rec.extras["stats"]
        assert stats["grid.tokenised"] == len(grid["instances"])
        assert stats["grid.masks"] == stats["grid.tokenised"] + sum(v for k, v in stats.items()
                                                                    if k.startswith("grid.skip."))
    assert n_masks > 500 and n_tok / n_masks > 0.8
    q = grid_quality(gridded)
    log.info("COCO sample, annotations backend: %s", q["summary"])
    assert q["summary"]["masks"] == n_tok and q["backend"] == "annotations"
    assert sum(q["iou_hist"]["counts"]) == n_tok and sum(q["tokens_hist"]["counts"]) == n_tok
    assert "coco_val" in q["sources"] and any("coco_val" in line for line in format_quality(q))


def test_skips_are_real_small_masks(gridded):
    for rec in gridded:
        pts = grid_points(rec.image.width, rec.image.height, 32).astype(int)
        for s in rec.skips:
            if s.reason == "grid_mask_smaller_than_cell":
                m = decode(rec.instance(s.item_id).mask)
                assert not m[pts[:, 1], pts[:, 0]].any()  # really holds no grid centre


def test_stage_is_deterministic(coco_real_records, gridded, tmp_path):
    again = GridStage(ProposalsConfig(), tmp_path, seed=0)(copy.deepcopy(coco_real_records[:5]))
    for a, b in zip(again, gridded[:5]):
        assert a.extras["grid"] == b.extras["grid"]
    other = GridStage(ProposalsConfig(), tmp_path, seed=1)(copy.deepcopy(coco_real_records[:5]))
    assert any(a.extras["grid"] != b.extras["grid"] for a, b in zip(other, gridded[:5]))


def test_size_mismatch_and_empty_masks_become_skips(coco_real_records, tmp_path):
    rec = copy.deepcopy(coco_real_records[0])
    inst = rec.targetable()[0]
    inst.mask = encode(np.zeros((rec.image.height, rec.image.width), bool))
    rec.instances.append(inst.model_copy(update={"id": "wrong-size", "mask": encode(np.ones((10, 10), bool))}))
    GridStage(ProposalsConfig(), tmp_path)([rec])
    reasons = {s.item_id: s.reason for s in rec.skips}
    assert reasons[inst.id] == "grid_empty_mask" and reasons["wrong-size"] == "grid_proposal_size_mismatch"
    assert rec.extras["stats"]["grid.skip.grid_empty_mask"] == 1


class CountingAnnotations(AnnotationProposals):
    """The real annotations backend, cached like SAM and counting its runs."""

    cacheable = True

    def __init__(self, grid_size):
        super().__init__(grid_size)
        self.calls = 0

    def __call__(self, record):
        self.calls += 1
        return super().__call__(record)


def test_cache_is_reused_and_survives_a_corrupt_file(coco_real_records, tmp_path):
    recs = copy.deepcopy(coco_real_records[:3])
    backend = CountingAnnotations(32)
    first = GridStage(ProposalsConfig(), tmp_path, backend=backend)(copy.deepcopy(recs))
    assert backend.calls == 3
    files = sorted((tmp_path / "proposals").rglob("*.json.gz"))
    assert len(files) == 3 and not list((tmp_path / "proposals").rglob("*.tmp"))
    second = GridStage(ProposalsConfig(), tmp_path, backend=backend)(copy.deepcopy(recs))
    assert backend.calls == 3  # nothing recomputed
    assert [r.extras["grid"] for r in second] == [r.extras["grid"] for r in first]
    assert second[0].extras["stats"]["grid.cache_hits"] == 1
    files[0].write_bytes(b"not gzip")
    third = GridStage(ProposalsConfig(), tmp_path, backend=backend)(copy.deepcopy(recs))
    assert backend.calls == 4 and [r.extras["grid"] for r in third] == [r.extras["grid"] for r in first]
    with gzip.open(files[0], "rb") as f:  # rewritten whole
        assert f.read(1) == b"{"


def test_cache_round_trip_and_key():
    parts = {"image": "ab" * 32, "backend": "sam", "checkpoint": "cd" * 32, "params": {"points_per_side": 4}}
    assert cache_key(parts) == cache_key(dict(reversed(list(parts.items()))))
    assert cache_key(parts) != cache_key({**parts, "params": {"points_per_side": 8}})


def test_cache_put_get(tmp_path):
    cache = ProposalCache(tmp_path)
    rle = RLE(size=(4, 4), counts="04L0")
    props = [Proposal(0, 1, rle, 0.5, 0.25), Proposal(1, 1, rle, 0.75, 1.0)]
    key = cache_key({"x": 1})
    cache.put(key, props, {"x": 1})
    assert cache.get(key) == props and cache.hits == 1
    assert cache.get(cache_key({"x": 2})) is None and cache.misses == 1
    assert np.isclose(props[0].predicted_iou, 0.5)
