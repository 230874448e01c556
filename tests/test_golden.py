"""Golden dialogues: a handful of rendered dialogues per task, compared byte for byte with tests/golden/<task>.json.

Each task is composed alone (`pipeline.compose.Composer` with every other task disabled), seed 7, trp format, from
the records of tests/test_tasks_records.py (REAL samples where the source has them, FIXTURES otherwise). Mask RLE
counts longer than 64 characters are stored as their sha1 to keep the files readable. A difference fails the test;
regenerate deliberately with `make golden` (REFFORGE_UPDATE_GOLDEN=1) and review the diff before committing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from test_tasks_records import flickr_with_boxes, nested_record, psg_fixture_records, psg_real, refcoco_records

from pipeline.compose import Composer
from pipeline.config import Config, RunConfig, TaskConfig
from pipeline.templates import TemplateBank

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("REFFORGE_UPDATE_GOLDEN") == "1"
PLAN = {  # task -> (source, how many records) in order
    "reg": [("refcoco", 2), ("psg_fixture", 1), ("flickr", 1)],
    "ig_box": [("refcoco", 2), ("flickr", 1)],
    "ig_mask": [("refcoco", 2), ("psg_fixture", 1)],
    "region_query": [("refcoco", 2), ("coco", 2)],
    "gcg_box": [("flickr", 2), ("nested", 1)],
    "gcg_mask": [("psg_fixture", 1), ("psg", 1), ("refcoco", 1)],
    "keypoints": [("coco_people", 2)],
    "box_keypoints": [("coco_people", 2)],
    "relation": [("psg_fixture", 1), ("psg", 1)],
    "relation_description": [("psg_fixture", 1), ("psg", 1)],
    "relation_qa": [("psg_fixture", 1), ("psg", 1)],
    "relation_mcq": [("psg_fixture", 1), ("psg", 1)],
}


@pytest.fixture(scope="module")
def golden_sources(realdata, coco_real_records, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("golden_sources")
    people = [r for r in coco_real_records if any(i.keypoints for i in r.instances)]
    return {"refcoco": refcoco_records(tmp / "r"), "psg_fixture": psg_fixture_records(realdata, tmp / "pf"),
            "psg": psg_real(realdata, tmp / "p"), "flickr": flickr_with_boxes(realdata, tmp / "f"),
            "nested": [nested_record()], "coco": coco_real_records, "coco_people": people}


@pytest.fixture(scope="module")
def bank():
    return TemplateBank.load()


def _compact(value):
    if isinstance(value, dict):
        if set(value) == {"size", "counts"} and len(value["counts"]) > 64:
            return {"size": value["size"], "counts": "sha1:" + hashlib.sha1(value["counts"].encode()).hexdigest()}
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def render_task(task: str, bank: TemplateBank, sources: dict) -> tuple[list[dict], Counter]:
    tasks = {t: TaskConfig(enabled=(t == task)) for t in bank.tasks()}
    cfg = Config(run=RunConfig(seed=7, format="trp", dialogues_per_image=2, max_turns=4), sources={}, tasks=tasks)
    composer = Composer(cfg, bank)
    stats: Counter = Counter()
    rows = []
    for source, n in PLAN[task]:
        for rec in sources[source][:n]:
            for d in range(cfg.run.dialogues_per_image):
                row = composer.dialogue(rec, d, stats)
                if row is not None:
                    rows.append(_compact({k: row[k] for k in ("id", "messages", "regions", "targets", "turns")}
                                         | {"annotation_ids": row["provenance"]["annotation_ids"]}))
    return rows, stats


@pytest.mark.parametrize("task", sorted(PLAN))
def test_golden_dialogues(task, bank, golden_sources):
    rows, stats = render_task(task, bank, golden_sources)
    assert rows and not any(k.startswith("dialogue.rejected") for k in stats), stats
    assert all([t["task"] for t in r["turns"]] == [task] for r in rows)  # one task enabled: one turn of it
    text = json.dumps(rows, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    path = GOLDEN / f"{task}.json"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make golden` (REFFORGE_UPDATE_GOLDEN=1) and review it")
    want = path.read_text(encoding="utf-8")
    assert text == want, f"{task} dialogues changed; if intended, run `make golden` and review the diff of {path}"


def test_every_builder_task_has_a_golden_plan(bank):
    from pipeline.tasks import TASKS

    new = set(TASKS) - {"caption", "detection", "segmentation", "counting", "rec", "res"}
    assert new <= set(PLAN) and set(PLAN) <= set(bank.tasks())
