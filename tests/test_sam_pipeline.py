"""The `sam` proposal backend end to end: a Ray actor pool running the REAL segment_anything generator.

No SAM weights can be had here, so the checkpoint is a randomly initialised vit_b saved as a state_dict and loaded
through the project's real loading code; its masks are noise, so this proves wiring, caching and provenance,
not mask quality (docs/grid-tokens.md).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.demo import generate

torch = pytest.importorskip("torch")
pytest.importorskip("segment_anything")
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_sam_backend_runs_as_ray_actor_pool_and_fills_the_cache(tmp_path):
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    ckpt = tmp_path / "sam_vit_b_random.pth"
    torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), ckpt)
    d = generate(tmp_path / "in", n_images=2, seed=5)
    cfg = {
        "run": {"name": "sam", "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"),
                "shard_size": 1, "executor": "ray", "num_cpus": 2, "progress": False, "format": "trp"},
        "sources": {"demo": {"converter": "coco", "options": {
            "instances": str(d / "annotations/instances.json"), "captions": str(d / "annotations/captions.json"),
            "image_root": str(d / "images"), "split": "train"}}},
        "proposals": {"backend": "sam", "grid_size": 2, "tau": 0.5,
                      "sam": {"checkpoint": str(ckpt), "model_type": "vit_b", "device": "cpu",
                              "points_per_batch": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0,
                              "concurrency": 1}},
        "negatives": {"enabled": False},
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pipeline.cli", "build", str(path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "out/sam/run_report.json").read_text())
    assert report["grid_quality"]["backend"] == "sam"
    assert report["grid_quality"]["model"].startswith("sam-vit_b@")
    assert report["stats"]["grid.proposal_runs"] == 2  # both images went through the generator
    cached = list((tmp_path / "cache").rglob("*"))
    assert any(p.is_file() for p in cached)
    rows = pq.read_table(tmp_path / "out/sam/data/train-00000-of-00002.parquet").to_pylist()
    assert rows and all(r["provenance"]["proposal_backend"] == "sam" for r in rows)
    card = (tmp_path / "out/sam/README.md").read_text()
    assert "Proposal backend: **sam**" in card
    # a rerun of the grid stage alone is served from the proposal cache: no generator run
    proc = subprocess.run(cmd + ["--stage", "proposals", "--executor", "local"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "grid.cache_hits=2" in proc.stderr and "grid.proposal_runs" not in proc.stderr
