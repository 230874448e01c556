"""Grid-token quality for the run report and the dataset card: IoU reached and tokens per mask, per source.

``grid_quality(records)`` reads ``record.extras["grid"]`` and the ``grid_*`` skips::

    {"backend": "annotations", "model": "none", "grid_size": 32, "tau": 0.85,
     "iou_hist": {"edges": [...], "counts": [...]}, "tokens_hist": {"edges": [...], "counts": [...]},
     "summary": {"masks": n, "skipped": n, "iou_mean": .., "iou_median": .., "tokens_mean": .., "tokens_median": ..,
                 "reached_tau": share},
     "skips": {reason: n}, "sources": {source: {same keys but backend / model}}}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

from pipeline.records import Record

IOU_EDGES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
TOKEN_EDGES = [1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100, 1025]


def _hist(values: list[float], edges: list[float]) -> dict:
    counts, _ = np.histogram(np.asarray(values, dtype=float), bins=np.asarray(edges, dtype=float))
    return {"edges": list(edges), "counts": [int(c) for c in counts]}


def _block(ious: list[float], counts: list[int], skips: Counter, tau: float | None) -> dict:
    summary = {"masks": len(ious), "skipped": int(sum(skips.values()))}
    if ious:
        summary.update(iou_mean=round(float(np.mean(ious)), 4), iou_median=round(float(np.median(ious)), 4),
                       tokens_mean=round(float(np.mean(counts)), 3), tokens_median=float(np.median(counts)))
        if tau is not None:
            summary["reached_tau"] = round(float(np.mean(np.asarray(ious) >= tau - 1e-9)), 4)
    return {"iou_hist": _hist(ious, IOU_EDGES), "tokens_hist": _hist(counts, TOKEN_EDGES), "summary": summary,
            "skips": dict(sorted(skips.items()))}


def grid_quality(records: Iterable[Record]) -> dict:
    per: dict[str, tuple[list[float], list[int], Counter]] = {}
    head: dict = {}
    for rec in records:
        grid = rec.extras.get("grid")
        if not isinstance(grid, dict):
            continue
        for k in ("backend", "model", "grid_size", "tau"):
            head.setdefault(k, grid.get(k))
        ious, counts, skips = per.setdefault(rec.source, ([], [], Counter()))
        for entry in grid.get("instances", {}).values():
            ious.append(float(entry["iou"]))
            counts.append(int(entry["count"]))
        skips.update(s.reason for s in rec.skips if s.reason.startswith("grid_"))
    if not per:
        return {}
    all_ious = [v for i, _, _ in per.values() for v in i]
    all_counts = [v for _, c, _ in per.values() for v in c]
    all_skips = sum((s for _, _, s in per.values()), Counter())
    out = {**head, **_block(all_ious, all_counts, all_skips, head.get("tau"))}
    out["sources"] = {src: _block(i, c, s, head.get("tau")) for src, (i, c, s) in sorted(per.items())}
    return out


def format_quality(q: dict) -> list[str]:
    """Markdown lines: one summary row per source."""
    if not q:
        return ["grid stage not run"]
    lines = [f"backend **{q.get('backend')}** ({q.get('model')}), G = {q.get('grid_size')}, tau = {q.get('tau')}", "",
             "| source | masks | skipped | IoU mean | IoU median | reached tau | tokens mean | tokens median |",
             "|---|---|---|---|---|---|---|---|"]
    for src, b in q["sources"].items():
        s = b["summary"]
        lines.append(f"| {src} | {s['masks']} | {s['skipped']} | {s.get('iou_mean', '-')} | {s.get('iou_median', '-')}"
                     f" | {s.get('reached_tau', '-')} | {s.get('tokens_mean', '-')} | {s.get('tokens_median', '-')} |")
    return lines


def collect_values(records: Iterable[Record]) -> dict:
    """Mergeable raw values of one shard: {"head": {...}, "sources": {src: {"iou": [], "count": [], "skips": {}}}}."""
    out: dict = {"head": {}, "sources": {}}
    for rec in records:
        grid = rec.extras.get("grid")
        if not isinstance(grid, dict):
            continue
        for k in ("backend", "model", "grid_size", "tau"):
            out["head"].setdefault(k, grid.get(k))
        src = out["sources"].setdefault(rec.source, {"iou": [], "count": [], "skips": {}})
        for entry in grid.get("instances", {}).values():
            src["iou"].append(round(float(entry["iou"]), 5))
            src["count"].append(int(entry["count"]))
        for s in rec.skips:
            if s.reason.startswith("grid_"):
                src["skips"][s.reason] = src["skips"].get(s.reason, 0) + 1
    return out


def merge_values(into: dict, other: dict) -> dict:
    for k, v in (other.get("head") or {}).items():
        into.setdefault("head", {}).setdefault(k, v)
    for src, vals in (other.get("sources") or {}).items():
        t = into.setdefault("sources", {}).setdefault(src, {"iou": [], "count": [], "skips": {}})
        t["iou"] += vals["iou"]
        t["count"] += vals["count"]
        for r, n in vals["skips"].items():
            t["skips"][r] = t["skips"].get(r, 0) + n
    return into


def quality_from_values(values: dict) -> dict:
    """The same report as :func:`grid_quality`, from merged shard values (sources in sorted order)."""
    per = values.get("sources") or {}
    if not per:
        return {}
    head = values.get("head") or {}
    tau = head.get("tau")
    all_i = [v for s in sorted(per) for v in per[s]["iou"]]
    all_c = [v for s in sorted(per) for v in per[s]["count"]]
    all_s = sum((Counter(per[s]["skips"]) for s in per), Counter())
    out = {**head, **_block(all_i, all_c, all_s, tau)}
    out["sources"] = {s: _block(per[s]["iou"], per[s]["count"], Counter(per[s]["skips"]), tau) for s in sorted(per)}
    return out
