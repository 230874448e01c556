"""Run accounting: every input item ends as emitted or skipped with a named reason, per source and kind.

Shard workers produce :class:`ShardReport` dicts (plain JSON, stored in each shard's completion marker so a
resumed run can still account for shards it did not recompute); the driver merges them with the plan-level skips
into ``run_report.json``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from pipeline.records import Record, Skip

KINDS = ("image", "annotation", "text", "relation")


def new_source_acc() -> dict:
    return {"inputs": {}, "emitted": {}, "skipped": {}, "crowd_instances": 0}


def account_ingest(items: Iterable[Record | Skip]) -> tuple[list[Record], dict[str, dict]]:
    """Split converter output into records and per-source accounting; clears the records' converter skips."""
    acc: dict[str, dict] = defaultdict(new_source_acc)
    records: list[Record] = []
    for item in items:
        if isinstance(item, Skip):
            _add_skip(acc[item.source], item)
            continue
        a = acc[item.source]
        em = a["emitted"]
        em["image"] = em.get("image", 0) + 1
        em["annotation"] = em.get("annotation", 0) + len(item.instances)
        em["text"] = em.get("text", 0) + len(item.texts)
        em["relation"] = em.get("relation", 0) + len(item.relations)
        a["crowd_instances"] += sum(1 for i in item.instances if i.iscrowd)
        for s in item.skips:
            _add_skip(a, s)
        item.skips = []
        records.append(item)
    return records, dict(acc)


def _add_skip(a: dict, s: Skip) -> None:
    by_kind = a["skipped"].setdefault(s.kind, {})
    by_kind[s.reason] = by_kind.get(s.reason, 0) + 1


def merge_acc(into: dict, other: dict) -> dict:
    for src, a in other.items():
        t = into.setdefault(src, new_source_acc())
        for part in ("inputs", "emitted"):
            for k, v in a.get(part, {}).items():
                t[part][k] = t[part].get(k, 0) + v
        for kind, reasons in a.get("skipped", {}).items():
            tk = t["skipped"].setdefault(kind, {})
            for r, v in reasons.items():
                tk[r] = tk.get(r, 0) + v
        t["crowd_instances"] += a.get("crowd_instances", 0)
    return into


def reconcile(acc: dict) -> dict[str, dict[str, int]]:
    """Per source and kind: inputs - emitted - skipped. All zeros means every input is accounted for."""
    out: dict[str, dict[str, int]] = {}
    for src, a in acc.items():
        gaps = {}
        for kind in sorted(set(a["inputs"]) | set(a["emitted"]) | set(a["skipped"])):
            if kind == "file":
                continue
            skipped = sum(a["skipped"].get(kind, {}).values())
            gap = a["inputs"].get(kind, 0) - a["emitted"].get(kind, 0) - skipped
            if gap:
                gaps[kind] = gap
        out[src] = gaps
    return out


def stage_skip_stats(records: Iterable[Record]) -> Counter:
    """Skips that stages after ingest appended (grid, negatives): counted as stats, not source accounting."""
    c: Counter = Counter()
    for r in records:
        for s in r.skips:
            c[f"skips.{s.kind}.{s.reason}"] += 1
        for k, v in (r.extras.get("stats") or {}).items():
            c[k] += int(v)
    return c


def sorted_counter(c: Counter | dict) -> dict:
    return {k: c[k] for k in sorted(c)}
