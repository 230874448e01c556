"""Task-builder throughput: dialogues/s on one core for each task family, and the mean rendered length.

    python bench/bench_tasks.py            # 4,000 records per task
    python bench/bench_tasks.py --quick    # 400 records per task, < 30 s

Each task is composed alone (`pipeline.compose.Composer` with every other task disabled, templates compiled once,
trp format, one dialogue per record) over real records replicated under new ids (so every dialogue draws its own
seeds): COCO val2017 with keypoints, the COCO panoptic sample, Flickr30k sentences with fixture xml boxes, the PSG
excerpt with painted masks, and the RefCOCO fixture (tests/test_tasks_records.py), only those sources where the
task applies. Timed: `Composer.dialogue` (builder + template render + answer render + round-trip check) in one
process, so dialogues/s is per core; best of --repeat runs (CPU time). A family's figure is the total over its
tasks. Also printed: each builder alone (us per call) and the composer's floor (the trivial caption task), which
bounds every task. Target: >= 2,000 / s / core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]
REALDATA = Path(os.environ.get("REFFORGE_SHARED", ROOT.parent / "shared")) / "realdata"

from common import report  # noqa: E402
from test_tasks_records import flickr_with_boxes, panoptic_real, psg_real, refcoco_records  # noqa: E402

from pipeline.compose import Composer  # noqa: E402
from pipeline.config import Config, RunConfig, TaskConfig  # noqa: E402
from pipeline.seeds import rng_for  # noqa: E402
from pipeline.tasks import TASKS, TaskContext  # noqa: E402
from pipeline.templates import TemplateBank  # noqa: E402

FAMILIES = {
    "region": ["reg", "ig_box", "ig_mask", "region_query"],
    "gcg": ["gcg_box", "gcg_mask"],
    "pose": ["keypoints", "box_keypoints"],
    "relation": ["relation", "relation_description", "relation_qa", "relation_mcq"],
}
SOURCES = {
    "reg": ["coco", "panoptic", "flickr", "psg", "refcoco"], "ig_box": ["coco", "panoptic", "flickr", "psg"],
    "ig_mask": ["coco", "panoptic", "psg", "refcoco"], "region_query": ["coco", "panoptic", "psg", "refcoco"],
    "gcg_box": ["flickr"], "gcg_mask": ["panoptic", "psg"], "keypoints": ["coco_people"],
    "box_keypoints": ["coco_people"], "relation": ["psg"], "relation_description": ["psg"], "relation_qa": ["psg"],
    "relation_mcq": ["psg"],
}


def load_sources(tmp: Path) -> dict:
    from converters.coco import CocoConverter, CocoOptions

    conv = CocoConverter("coco_val", CocoOptions(
        instances=str(REALDATA / "coco_instances/annotations/instances_val2017.json"),
        captions=str(REALDATA / "coco_captions/annotations/captions_val2017.json"),
        keypoints=str(REALDATA / "coco_keypoints/annotations/person_keypoints_val2017.json"),
        image_root=str(REALDATA / "images/coco_val2017"), split="val"), ROOT)
    coco = [r for r in conv.convert([u.key for u in conv.plan().units]) if hasattr(r, "instances")]
    return {"coco": coco, "coco_people": [r for r in coco if any(i.keypoints for i in r.instances)],
            "panoptic": panoptic_real(REALDATA), "flickr": flickr_with_boxes(REALDATA, tmp / "f"),
            "psg": psg_real(REALDATA, tmp / "p"), "refcoco": refcoco_records(tmp / "r")}


def replicate(records: list, n: int) -> list:
    return [records[k % len(records)].model_copy(update={"id": f"{records[k % len(records)].id}~{k}"})
            for k in range(n)]


def bench_task(task: str, bank: TemplateBank, records: list) -> dict:
    tasks = {t: TaskConfig(enabled=(t == task)) for t in bank.tasks()}
    composer = Composer(Config(run=RunConfig(seed=0, format="trp"), sources={}, tasks=tasks), bank)
    stats: Counter = Counter()
    chars = answer_chars = n = 0
    t0 = time.process_time()
    for rec in records:
        row = composer.dialogue(rec, 0, stats)
        if row is not None:
            n += 1
            chars += sum(len(m["content"]) for m in row["messages"])
            answer_chars += sum(len(m["content"]) for m in row["messages"] if m["role"] == "assistant")
    cpu = time.process_time() - t0
    ctx = TaskContext(output_format="trp")
    t1 = time.process_time()
    for k, rec in enumerate(records):
        TASKS[task](rec, rng_for(0, rec.id, k), ctx)
    builder_us = (time.process_time() - t1) / max(len(records), 1) * 1e6
    rejected = sum(v for k, v in stats.items() if k.startswith("dialogue.rejected"))
    return {"dialogues": n, "cpu_s": cpu, "per_s": n / cpu if cpu else 0.0, "mean_chars": chars / max(n, 1),
            "mean_answer_chars": answer_chars / max(n, 1), "rejected": rejected,
            "builder_us": builder_us}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="runs per task; the fastest counts (shared machines)")
    ap.add_argument("--records", type=int, default=None, help="records per task (default 4000, quick 400)")
    args = ap.parse_args()
    n = args.records or (400 if args.quick else 4000)
    if not REALDATA.is_dir():
        sys.stderr.write(f"real samples not found at {REALDATA} (set REFFORGE_SHARED)\n")
        return 2
    bank = TemplateBank.load()
    with tempfile.TemporaryDirectory() as tmp:
        sources = load_sources(Path(tmp))
        figures: dict = {"records_per_task": n}
        floor = min((bench_task("caption", bank, replicate(sources["coco"], n)) for _ in range(args.repeat)),
                    key=lambda r: r["cpu_s"])
        figures["composer floor (caption task): dialogues/s/core"] = round(floor["per_s"], 1)
        for family, tasks in FAMILIES.items():
            total_n = total_cpu = 0.0
            for task in tasks:
                recs = replicate([r for s in SOURCES[task] for r in sources[s]], n)
                f = min((bench_task(task, bank, recs) for _ in range(args.repeat)), key=lambda r: r["cpu_s"])
                total_n, total_cpu = total_n + f["dialogues"], total_cpu + f["cpu_s"]
                figures[f"{task}: dialogues/s/core"] = round(f["per_s"], 1)
                figures[f"{task}: builder alone, us/call"] = round(f["builder_us"], 1)
                figures[f"{task}: mean rendered chars (answer)"] = (f"{f['mean_chars']:.0f} "
                                                                   f"({f['mean_answer_chars']:.0f})")
                if f["rejected"]:
                    figures[f"{task}: REJECTED dialogues"] = f["rejected"]
            figures[f"FAMILY {family}: dialogues/s/core"] = round(total_n / total_cpu, 1) if total_cpu else 0.0
    report("tasks" + ("_quick" if args.quick else ""), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
