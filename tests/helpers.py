"""Builders for tiny inputs written by the tests themselves (never copies of ../shared data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def write_image(path: Path, w: int = 64, h: int = 48, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def tiny_coco(tmp: Path, annotations: list[dict] | None = None, images: list[dict] | None = None,
              captions: list | None = None, categories: list[dict] | None = None) -> dict[str, Path]:
    """A COCO instances + captions pair with real image files under tmp/images."""
    images = images if images is not None else [
        {"id": 1, "file_name": "a.png", "width": 64, "height": 48},
        {"id": 2, "file_name": "b.png", "width": 64, "height": 48},
    ]
    for im in images:
        fn = im.get("file_name")
        if isinstance(fn, str) and "/" not in fn and not fn.startswith("missing"):
            write_image(tmp / "images" / fn, im.get("width", 64), im.get("height", 48), seed=int(im["id"]))
    categories = categories or [{"id": 1, "name": "dog", "supercategory": "animal"},
                                {"id": 2, "name": "cat", "supercategory": "animal"}]
    if annotations is None:
        annotations = [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [2, 2, 20, 20], "iscrowd": 0,
             "segmentation": [[2, 2, 22, 2, 22, 22, 2, 22]], "area": 400},
            {"id": 11, "image_id": 1, "category_id": 2, "bbox": [30, 10, 20, 30], "iscrowd": 0,
             "segmentation": [[30, 10, 50, 10, 50, 40, 30, 40]], "area": 600},
            {"id": 12, "image_id": 2, "category_id": 1, "bbox": [5, 5, 30, 30], "iscrowd": 0,
             "segmentation": [[5, 5, 35, 5, 35, 35]], "area": 450},
        ]
    captions = captions if captions is not None else [
        {"id": 100, "image_id": 1, "caption": "A dog and a cat."},
        {"id": 101, "image_id": 2, "caption": "  A dog\nalone. "},
    ]
    ann_dir = tmp / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    (ann_dir / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}))
    (ann_dir / "captions.json").write_text(json.dumps({"images": images, "annotations": captions}))
    return {"instances": ann_dir / "instances.json", "captions": ann_dir / "captions.json",
            "image_root": tmp / "images"}


def write_config(tmp: Path, coco: dict[str, Path], **run) -> Path:
    """A sources.yaml for one COCO source, output and cache inside tmp."""
    import yaml

    cfg = {
        "run": {"name": "t", "output_dir": str(tmp / "out"), "cache_dir": str(tmp / "cache"), "seed": 0,
                "shard_size": 1, "executor": "local", "progress": False, **run},
        "sources": {"tiny": {"converter": "coco", "options": {
            "instances": str(coco["instances"]), "captions": str(coco["captions"]),
            "image_root": str(coco["image_root"]), "split": "train"}}},
    }
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
