"""The output row schema, declared once as `datasets.Features` (never inferred from data).

Parquet written with ``FEATURES.arrow_schema`` carries the ``huggingface`` metadata key, so
``datasets.load_dataset("parquet")`` restores the ``Image`` feature and the typed nested lists.
"""

from __future__ import annotations

from functools import lru_cache

SCHEMA_VERSION = "1"


@lru_cache(maxsize=1)
def features():
    from datasets import Features, Image, List, Value

    rle = {"size": List(Value("int32")), "counts": Value("string")}
    return Features({
        "id": Value("string"),
        "source": Value("string"),
        "split": Value("string"),
        "image": Image(),
        "width": Value("int32"),
        "height": Value("int32"),
        "messages": List({"role": Value("string"), "content": Value("string")}),
        # the visual prompts that <region> placeholders in user turns refer to, in order
        "regions": List({
            "turn": Value("int32"),
            "kind": Value("string"),  # point / box / scribble / mask
            "instance_id": Value("string"),
            "box": List(Value("float64")),  # xyxy pixels (box prompts; the instance box otherwise)
            "points": List(Value("float64")),  # flat x, y pairs (point / scribble prompts)
            "mask": rle,
        }),
        # what each <REF> in assistant turns points at, in order
        "targets": List({
            "turn": Value("int32"),  # index into messages
            "phrase": Value("string"),
            "index": Value("int32"),  # the [i] of its <REF>
            "unit": Value("string"),  # box / mask / point / keypoint / "box, keypoint"
            "instance_id": Value("string"),
            "box": List(Value("float64")),
            "points": List(Value("float64")),  # point: [x, y]; keypoints: flat [x, y, v] * K
            "mask": rle,
            "grid_tokens": List(Value("string")),
            "grid_iou": Value("float64"),
        }),
        "turns": List({"task": Value("string"), "template_id": Value("string"),
                       "answer_template_id": Value("string")}),
        "provenance": {
            "record_id": Value("string"),
            "converter": Value("string"),
            "annotation_ids": List(Value("string")),
            "seed": Value("int64"),
            "output_format": Value("string"),
            "pipeline_version": Value("string"),
            "templates_digest": Value("string"),
            "proposal_backend": Value("string"),
            "negative_miner": Value("string"),
            "details": Value("string"),  # JSON: model / prompt hashes, cache keys, grid parameters
        },
    })


def arrow_schema():
    return features().arrow_schema


EMPTY_RLE = {"size": [], "counts": ""}


def normalise_target(t: dict) -> dict:
    """Fill every schema field so rows never depend on which optional keys a task set."""
    return {
        "turn": int(t["turn"]), "phrase": t["phrase"], "index": int(t["index"]), "unit": t["unit"],
        "instance_id": str(t.get("instance_id", "")),
        "box": [float(v) for v in t.get("box") or []],
        "points": [float(v) for v in t.get("points") or []],
        "mask": t.get("mask") or EMPTY_RLE,
        "grid_tokens": list(t.get("grid_tokens") or []),
        "grid_iou": t.get("grid_iou"),
    }


def normalise_region(r: dict) -> dict:
    return {
        "turn": int(r["turn"]), "kind": r["kind"], "instance_id": str(r.get("instance_id", "")),
        "box": [float(v) for v in r.get("box") or []],
        "points": [float(v) for v in r.get("points") or []],
        "mask": r.get("mask") or EMPTY_RLE,
    }
