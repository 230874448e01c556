"""Resume and verify benchmark: a rerun of a completed run should cost < 5 % of the first run.

Input: the generated COCO-format input of bench/bench_pipeline.py (imported, not copied). The corpus is built with
the plain-loop executor (a rerun with nothing to build never starts Ray either), then built again unchanged: the
rerun only plans, checks every shard's marker and file hash, and rewrites manifest, card and run report. Then
`verify` re-reads every row (hashes, schema, round-trip of each row) and its throughput is reported.

    python bench/bench_resume.py [--quick] [--images 10000]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_pipeline import config, make_input  # noqa: E402
from bench.common import Timer, report  # noqa: E402


def run(n: int, tmp: Path) -> dict:
    from pipeline.config import load_config
    from pipeline.runner import build
    from pipeline.verify import verify

    root = tmp / f"n{n}"
    counts = make_input(root, n)
    cfg = load_config(config(root, "local", "resume"))
    with Timer() as first:
        r1 = build(cfg)
    with Timer() as second:
        r2 = build(cfg)
    with Timer() as ver:
        problems = verify(cfg.output_path())
    rows = r1["rows"]
    return {
        "images / annotations": f"{counts['images']} / {counts['annotations']}",
        "shards / rows": f"{r1['run']['shards_total']} / {rows}",
        "first run wall seconds": first.seconds,
        "rerun wall seconds (all shards complete)": second.seconds,
        "rerun / first run (target < 0.05)": second.seconds / first.seconds,
        "rerun shards resumed / built": f"{r2['run']['shards_resumed']} / {r2['run']['shards_built']}",
        "rerun plan seconds (converters index the inputs)": r2["timings"].get("plan", float("nan")),
        "verify seconds": ver.seconds,
        "verify rows/s": rows / ver.seconds,
        "verify problems": len(problems),
        "same shard hashes after rerun": [s["sha256"] for s in r1["shards"]] == [s["sha256"] for s in r2["shards"]],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1,000 images instead of 10,000")
    ap.add_argument("--images", type=int)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    n = args.images or (1000 if args.quick else 10000)
    tmp = Path(tempfile.mkdtemp(prefix="refforge-bench-resume-"))
    try:
        figures = run(n, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report("resume" + ("_quick" if args.quick else ""), {f"n={n}: {k}": v for k, v in figures.items()})


if __name__ == "__main__":
    main()
