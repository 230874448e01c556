"""SAM backend wiring with the REAL segment_anything code on a randomly initialised vit_b (no weights download)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pipeline.config import ProposalsConfig
from pipeline.errors import ConfigError
from pipeline.grid.sam import SamProposals, amg_params
from pipeline.grid.stage import GridStage, build_backend
from pipeline.grid.tokens import grid_points
from pipeline.records import ImageRef, Instance, Record
from pipeline.rle import bbox_xyxy, encode

torch = pytest.importorskip("torch")
pytest.importorskip("segment_anything")

SIDE, G = 64, 2


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    model = sam_model_registry["vit_b"](checkpoint=None)
    path = tmp_path_factory.mktemp("sam") / "sam_vit_b_random.pth"
    torch.save(model.state_dict(), path)
    return path


def sam_cfg(checkpoint, **extra):
    return {"checkpoint": str(checkpoint), "model_type": "vit_b", "device": "cpu", "points_per_side": G,
            "points_per_batch": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, **extra}


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    from PIL import Image

    rng = np.random.default_rng(0)
    img = (rng.random((SIDE, SIDE, 3)) * 60).astype(np.uint8)
    img[8:40, 8:40] = (220, 40, 40)
    path = tmp_path_factory.mktemp("img") / "toy.png"
    Image.fromarray(img).save(path)
    mask = np.zeros((SIDE, SIDE), bool)
    mask[8:40, 8:40] = True
    rle = encode(mask)
    return Record(id="toy/val/1", source="toy", split="val",
                  image=ImageRef(path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                                 width=SIDE, height=SIDE),
                  instances=[Instance(id="1", category="square", box=bbox_xyxy(rle), mask=rle, area=32 * 32)])


def _text(counts):
    return counts.decode("ascii") if isinstance(counts, bytes) else counts


@pytest.mark.slow
def test_random_vit_b_proposals_map_to_grid_cells(checkpoint, record, tmp_path):
    cfg = ProposalsConfig(backend="sam", grid_size=G, tau=0.5, sam=sam_cfg(checkpoint))
    stage = GridStage(cfg, tmp_path)  # loads the checkpoint through the real loading code
    backend = stage.backend
    assert isinstance(backend, SamProposals) and backend.model.startswith("sam-vit_b@")
    assert backend.params == {"points_per_side": G, "points_per_batch": 4, "pred_iou_thresh": 0.0,
                              "stability_score_thresh": 0.0}  # only what was set is passed on
    seen = []
    real_generate = backend.generator.generate

    def recording_generate(image):
        anns = real_generate(image)
        seen.append(anns)
        return anns

    backend.generator.generate = recording_generate
    stage([record])
    assert len(seen) == 1 and seen[0], "SAM returned no masks at all"
    centres = {tuple(np.round(p, 6)) for p in grid_points(SIDE, SIDE, G)}
    props = backend.to_proposals(seen[0], SIDE, SIDE)
    assert len(props) == len(seen[0])
    for ann in seen[0]:
        assert tuple(np.round(ann["point_coords"][0], 6)) in centres
    for p in props:
        assert 0 <= p.row < G and 0 <= p.col < G and tuple(p.rle.size) == (SIDE, SIDE)
        x, y = grid_points(SIDE, SIDE, G)[p.row * G + p.col]
        assert any(np.allclose(a["point_coords"][0], (x, y)) and _text(a["segmentation"]["counts"]) == p.rle.counts
                   for a in seen[0])
    grid = record.extras["grid"]
    assert grid["backend"] == "sam" and grid["model"] == backend.model
    assert "1" in grid["instances"] or any(s.reason.startswith("grid_") for s in record.skips)
    # a rerun reads the cache: SAM is not called again, and the result is the same
    before = record.extras["grid"]
    again = record.model_copy(deep=True)
    again.extras = {}
    stage([again])
    assert len(seen) == 1 and again.extras["grid"] == before
    assert again.extras["stats"]["grid.cache_hits"] == 1


@pytest.mark.slow
def test_checkpoint_problems_are_config_errors(checkpoint, tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(checkpoint.read_bytes()[:1_000_000])  # a truncated download
    with pytest.raises(ConfigError) as e:
        SamProposals(sam_cfg(corrupt), G)
    assert str(corrupt) in str(e.value) and "proposals.sam.checkpoint" in str(e.value)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ConfigError, match="garbage.pth"):
        SamProposals(sam_cfg(garbage), G)
    missing = tmp_path / "nope.pth"
    with pytest.raises(ConfigError, match="checkpoint not found: .*nope.pth"):
        build_backend(ProposalsConfig(backend="sam", grid_size=G, sam=sam_cfg(missing)))
    wrong = tmp_path / "wrong.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(1)}, wrong)
    with pytest.raises(ConfigError, match="does not fit vit_b"):
        SamProposals(sam_cfg(wrong), G)


def test_sam_options_are_validated_before_loading(tmp_path):
    with pytest.raises(ConfigError, match=r"points_per_side.*16 != proposals.grid_size 32"):
        SamProposals({"checkpoint": str(tmp_path / "x.pth"), "points_per_side": 16}, 32)
    with pytest.raises(ConfigError, match="crop_n_layers"):
        amg_params({"crop_n_layers": 1}, 32, "sources.yaml")
    with pytest.raises(ConfigError, match="point_grids"):
        amg_params({"point_grids": []}, 32, "sources.yaml")
    with pytest.raises(ConfigError, match="proposals.sam.checkpoint"):
        SamProposals({"model_type": "vit_b"}, 32)
    with pytest.raises(ConfigError, match="model_type"):
        SamProposals({"checkpoint": str(tmp_path / "x.pth"), "model_type": "vit_z"}, 32)
    assert amg_params({"box_nms_thresh": 0.5, "num_gpus": 1}, 32, "f") == {"box_nms_thresh": 0.5, "points_per_side": 32}
