"""Walking-skeleton benchmark: ingest, compose and write throughput, and peak memory, at two input sizes.

Inputs: generated COCO-format instances + captions, ~7 instances per image (polygons), tiny JPEGs.
Figures: ingest records/s (one process), compose + write dialogues/s per core (Ray, summed stage time), wall
dialogues/s, peak RSS summed over the driver and every Ray process, and the same build with the plain-loop
executor as the reference. Time should grow linearly with size and memory stay flat (shards stream).

    python bench/bench_pipeline.py [--quick] [--sizes 10000 40000]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import PeakRSS, Timer, report  # noqa: E402

CATS = [(1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (18, "dog", "animal"),
        (17, "cat", "animal"), (44, "bottle", "kitchen"), (62, "chair", "furniture"), (64, "potted plant", "furniture")]


def make_input(root: Path, n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=80)
    data = buf.getvalue()
    images, anns, caps = [], [], []
    aid = 1
    for i in range(n):
        fn = f"{i:09d}.jpg"
        (root / "images" / fn).write_bytes(data)
        images.append({"id": i, "file_name": fn, "width": 128, "height": 96})
        for _ in range(int(rng.integers(5, 10))):
            cid = CATS[int(rng.integers(len(CATS)))][0]
            x, y = float(rng.uniform(0, 90)), float(rng.uniform(0, 60))
            w, h = float(rng.uniform(8, 128 - x)), float(rng.uniform(8, 96 - y))
            anns.append({"id": aid, "image_id": i, "category_id": cid, "iscrowd": 0, "area": w * h,
                         "bbox": [x, y, w, h], "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
            aid += 1
        caps += [{"id": 2 * i + k, "image_id": i, "caption": f"A generated scene number {i}, caption {k}."}
                 for k in range(2)]
    cats = [{"id": c, "name": nm, "supercategory": sc} for c, nm, sc in CATS]
    (root / "instances.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (root / "captions.json").write_text(json.dumps({"images": images, "annotations": caps}))
    return {"images": n, "annotations": len(anns)}


def config(root: Path, executor: str, name: str) -> Path:
    cfg = {"run": {"name": name, "output_dir": str(root / "out"), "cache_dir": str(root / "cache"),
                   "shard_size": 1000, "executor": executor, "num_cpus": 2, "progress": False,
                   "dialogues_per_image": 1, "max_turns": 4},
           "sources": {"bench": {"converter": "coco", "options": {
               "instances": str(root / "instances.json"), "captions": str(root / "captions.json"),
               "image_root": str(root / "images"), "split": "train"}}},
           "proposals": {"enabled": False}, "negatives": {"enabled": False}}
    p = root / f"{name}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def run_size(n: int, tmp: Path) -> dict:
    from pipeline.config import load_config
    from pipeline.runner import build

    root = tmp / f"n{n}"
    counts = make_input(root, n)
    with Timer() as t_ing:
        build(load_config(config(root, "local", "ingest")), stage="ingest")
    with PeakRSS() as mem, Timer() as t_ray:
        ray_rep = build(load_config(config(root, "ray", "viaray")))
    from pipeline.execute import shutdown

    shutdown()
    with Timer() as t_loc:
        loc_rep = build(load_config(config(root, "local", "vialocal")))
    rows = ray_rep["rows"]
    cw = ray_rep["timings"].get("compose", 0) + ray_rep["timings"].get("write", 0)
    same = [s["sha256"] for s in ray_rep["shards"]] == [s["sha256"] for s in loc_rep["shards"]]
    shutil.rmtree(root)
    return {
        f"n={n}: images / annotations": f"{counts['images']} / {counts['annotations']}",
        f"n={n}: ingest records/s (1 process)": n / t_ing.seconds,
        f"n={n}: compose+write dialogues/s per core (stage time)": rows / cw if cw else float("nan"),
        f"n={n}: ray wall seconds (2 cores)": t_ray.seconds,
        f"n={n}: ray wall dialogues/s": rows / t_ray.seconds,
        f"n={n}: reference plain loop wall seconds": t_loc.seconds,
        f"n={n}: ray speed-up vs plain loop": t_loc.seconds / t_ray.seconds,
        f"n={n}: peak RSS MB, driver + Ray processes": mem.peak_mb,
        f"n={n}: ray shards == plain-loop shards (bytes)": same,
        f"n={n}: accounted": ray_rep["all_accounted"],
        "_wall": t_ray.seconds, "_mem": mem.peak_mb,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size, JSON on stdout
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.one:
        tmp = Path(tempfile.mkdtemp(prefix="refforge-bench-"))
        try:
            sys.stdout.write("RESULT " + json.dumps(run_size(args.one, tmp)) + "\n")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    sizes = args.sizes or ([1000, 4000] if args.quick else [10000, 40000])
    res = []
    for n in sizes:  # one process per size: a fresh Ray and a clean memory baseline each time
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True, text=True,
                             check=True).stdout
        res.append(json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:]))
    figures = {k: v for r in res for k, v in r.items() if not k.startswith("_")}
    figures[f"time ratio {sizes[-1]}/{sizes[0]} (linear = {sizes[-1] / sizes[0]:.0f})"] = \
        res[-1]["_wall"] / res[0]["_wall"]
    figures[f"memory ratio {sizes[-1]}/{sizes[0]} (flat = 1)"] = res[-1]["_mem"] / res[0]["_mem"]
    report("pipeline" + ("_quick" if args.quick else ""), figures)


if __name__ == "__main__":
    main()
