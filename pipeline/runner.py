"""The driver: plan, skip completed shards, run the stages (local loop or Ray), merge the reports, and write
the manifest, the run report and the dataset card."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

from pipeline import __version__
from pipeline.config import Config
from pipeline.grid.quality import merge_values, quality_from_values
from pipeline.plan import ShardSpec, build_converters, plan_shards, run_fingerprint
from pipeline.report import merge_acc, reconcile, sorted_counter
from pipeline.stages import Compose, Ingest, Write, summary_without_write
from pipeline.templates import TemplateBank
from pipeline.writer import atomic_write_bytes, shard_is_complete

log = logging.getLogger(__name__)

STAGES = ("ingest", "proposals", "negatives", "all")


def _stage_list(cfg: Config, stage: str, only_source: str | None, out_dir: Path, fingerprint: str) -> list:
    """(name, fn, actor_options) in order; the last one returns the shard summary."""
    stages: list = [("ingest", Ingest(cfg, only_source), None)]
    stages += extra_stages(cfg, stage, fingerprint)
    if stage == "all":
        stages += [("compose", Compose(cfg), None), ("write", Write(out_dir), None)]
    else:
        stages += [("summary", summary_without_write, None)]
    return stages


def extra_stages(cfg: Config, stage: str, fingerprint: str) -> list:
    """Optional stages between ingest and compose: grid tokens (SAM as a GPU actor pool), hard negatives (LLM as
    an actor pool). The offline / annotations variants are cheap and run as plain tasks."""
    from functools import partial

    from pipeline.grid.stage import GridStage
    from pipeline.negatives.select import NegativeSelector
    from pipeline.negatives.stage import NegativeStage
    from pipeline.stages import RecordStage
    from pipeline.templates import default_root

    out = []
    p, n = cfg.proposals, cfg.negatives
    if p.enabled and stage in ("proposals", "all"):
        factory = partial(GridStage, p, cfg.cache_path(), seed=cfg.run.seed, config_file=cfg.file)
        actor = None
        if p.backend == "sam":
            factory()  # fail at start on a missing / corrupt checkpoint, before any work is scheduled
            actor = {"size": int(p.sam.get("concurrency", 1)), "num_gpus": float(p.sam.get("num_gpus", 0))}
        out.append(("grid", RecordStage("grid", factory, f"grid:{fingerprint}:{cfg.cache_path()}"), actor))
    if n.enabled and stage in ("negatives", "all"):
        select = NegativeSelector(cfg.run.seed, n.share, cfg.run.dialogues_per_image)
        factory = partial(NegativeStage, n, cfg.cache_path(), default_root(), seed=cfg.run.seed,
                          run_id=fingerprint[:16], config_file=cfg.file, select=select)
        actor = None
        if n.miner == "llm" or n.verify.get("checkpoint"):
            factory()  # configuration problems (server settings, key variable, checkpoint) fail at start
            actor = {"size": int(n.llm.get("actors", 1)), "num_cpus": 0.5,  # IO-bound: half a CPU each
                     "num_gpus": float(n.verify.get("num_gpus", 0))}
        out.append(("negatives", RecordStage("negatives", factory, f"negatives:{fingerprint}:{cfg.cache_path()}"), actor))
    return out


def _run_local(specs: list[ShardSpec], stages: list, progress: bool) -> list[dict]:
    from tqdm import tqdm

    built = [(name, fn) for name, fn, _ in stages]
    out = []
    t0, rows = time.perf_counter(), 0
    for k, spec in enumerate(tqdm(specs, desc="shards", unit="shard", disable=not progress), 1):
        obj = spec
        for _, fn in built:
            obj = fn(obj)
        out.append(obj)
        rows += obj.get("rows") or 0
        elapsed = time.perf_counter() - t0
        log.info("shard %s done (%d/%d): %d rows, %d rows so far, %.1f rows/s, ETA %.0f s", spec.name, k,
                 len(specs), obj.get("rows") or 0, rows, rows / elapsed if elapsed else 0.0,
                 elapsed / k * (len(specs) - k))
    return out


def build(cfg: Config, stage: str = "all", only_source: str | None = None) -> dict:
    """Run the pipeline; returns the run report (also written to <out>/run_report.json for stage 'all')."""
    t_start = time.perf_counter()
    out_dir = cfg.output_path()
    converters = build_converters(cfg, only_source)
    bank = TemplateBank.load()
    fingerprint = run_fingerprint(cfg, converters, bank.digest())
    t0 = time.perf_counter()
    specs, acc = plan_shards(cfg, converters, fingerprint)
    plan_seconds = time.perf_counter() - t0
    done, todo = [], []
    for spec in specs:
        marker = shard_is_complete(out_dir, spec.name, spec.fingerprint) if stage == "all" else None
        if marker:
            done.append({**marker, "_resumed": True})
        else:
            todo.append(spec)
    log.info("%d shards planned, %d already complete, %d to build", len(specs), len(done), len(todo))
    stages = _stage_list(cfg, stage, only_source, out_dir, fingerprint)
    if todo and cfg.run.executor == "ray":
        from pipeline import execute

        summaries = execute.run_ray(cfg, todo, stages)
    else:
        summaries = _run_local(todo, stages, cfg.run.progress) if todo else []
    report = _merge(cfg, specs, done, summaries, acc, fingerprint, stage)
    report["timings"]["plan"] = round(plan_seconds, 4)
    report["timings"]["total_wall"] = round(time.perf_counter() - t_start, 4)
    if stage == "all":
        from pipeline.card import write_card, write_manifest

        _stale_cleanup(out_dir, {s.name for s in specs})
        write_manifest(out_dir, report)
        write_card(out_dir, cfg, report)
        atomic_write_bytes(out_dir / "run_report.json", json.dumps(report, indent=1, sort_keys=True).encode())
    return report


def _merge(cfg, specs, done, summaries, plan_acc, fingerprint, stage) -> dict:
    acc: dict = {}
    merge_acc(acc, plan_acc)
    stats: Counter = Counter()
    timings: Counter = Counter()
    shards = []
    grid_values: dict = {}
    neg_meta: dict = {}
    for s in list(done) + list(summaries):
        merge_values(grid_values, s.get("grid_values") or {})
        neg_meta = neg_meta or s.get("negatives_meta") or {}
        merge_acc(acc, s["acc"])
        stats.update(s["stats"])
        timings.update(s.get("timings", {}))
        shards.append({k: s.get(k) for k in ("shard", "split", "rows", "sha256", "bytes", "units")}
                      | {"resumed": s in done})
    shards.sort(key=lambda x: x["shard"])
    gaps = reconcile(acc)
    return {
        "run": {"name": cfg.run.name, "stage": stage, "seed": cfg.run.seed, "format": cfg.run.format,
                "fingerprint": fingerprint, "pipeline_version": __version__, "executor": cfg.run.executor,
                "shards_total": len(specs), "shards_resumed": len(done), "shards_built": len(summaries)},
        "sources": acc,
        "unaccounted": gaps,
        "all_accounted": all(not g for g in gaps.values()),
        "stats": sorted_counter(stats),
        "shards": shards,
        "rows": sum(s["rows"] or 0 for s in shards),
        "grid_quality": quality_from_values(grid_values),
        "negatives_info": neg_meta,
        "timings": {k: round(v, 4) for k, v in sorted(timings.items())},
    }


def _stale_cleanup(out_dir: Path, keep: set[str]) -> None:
    """Remove shards (and markers) from an earlier run of this corpus with another shard layout."""
    data = out_dir / "data"
    if data.is_dir():
        for f in data.glob("*.parquet"):
            if f.stem not in keep:
                log.info("removing stale shard %s", f.name)
                f.unlink()
    for m in (out_dir / ".markers").glob("*.json") if (out_dir / ".markers").is_dir() else []:
        if m.stem not in keep:
            m.unlink()
