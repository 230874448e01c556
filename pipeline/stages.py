"""The stages as plain transforms over one shard. The executor (local loop or Ray Data) only strings them.

    ingest(spec) -> ShardWork          converters -> canonical records + source accounting
    grid(work) -> work                 proposals, greedy grid tokens, offset labels   (optional)
    negatives(work) -> work            hard negatives                                  (optional)
    compose(work) -> work with rows    dialogues rendered and round-trip checked
    write(work) -> summary             Parquet shard + completion marker

Heavy stages (SAM, LLM) are callable classes that load once; Ray runs them as actor pools.
"""

from __future__ import annotations

import os
import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from pipeline.compose import Composer
from pipeline.config import Config
from pipeline.grid.quality import collect_values
from pipeline.plan import ShardSpec, build_converters
from pipeline.records import Record
from pipeline.report import account_ingest, stage_skip_stats
from pipeline.writer import WORKER_ENV, fault_point, write_marker, write_parquet

_CONVERTERS: dict[str, dict] = {}  # per worker process: converters with their loaded indexes, by config file


@dataclass
class ShardWork:
    spec: ShardSpec
    records: list[Record] = field(default_factory=list)
    acc: dict = field(default_factory=dict)
    stats: Counter = field(default_factory=Counter)
    timings: dict = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    grid_values: dict = field(default_factory=dict)  # raw IoU / token counts for the run's grid-quality report
    negatives_meta: dict = field(default_factory=dict)


def _timed(work: ShardWork, name: str, t0: float) -> None:
    work.timings[name] = work.timings.get(name, 0.0) + time.perf_counter() - t0


class Ingest:
    def __init__(self, cfg: Config, only_source: str | None = None):
        self.cfg, self.only_source = cfg, only_source

    def _converters(self) -> dict:
        key = f"{self.only_source}:{hashlib.sha256(self.cfg.model_dump_json().encode()).hexdigest()}"
        if key not in _CONVERTERS:
            _CONVERTERS[key] = build_converters(self.cfg, self.only_source)
        return _CONVERTERS[key]

    def __call__(self, spec: ShardSpec) -> ShardWork:
        fault_point("ingest")  # test-only hook (pipeline.writer.fault_point)
        t0 = time.perf_counter()
        convs = self._converters()
        items = []
        for source, group in groupby(spec.units, key=lambda u: u[0]):
            items.extend(convs[source].convert([k for _, k in group]))
        work = ShardWork(spec=spec)
        work.records, work.acc = account_ingest(items)
        _timed(work, "ingest", t0)
        return work


_STAGES: dict[str, object] = {}


class RecordStage:
    """Adapts a heavy per-record stage (grid, negatives) to shards; built lazily from a picklable factory, so a
    Ray actor builds it once and a plain task or the local loop builds it on first use."""

    def __init__(self, name: str, factory, key: str):
        self.name, self.factory, self.key = name, factory, key  # key: the config it was built from

    def __call__(self, work: ShardWork) -> ShardWork:
        t0 = time.perf_counter()
        if self.key not in _STAGES:  # per process: an actor or a reused task worker builds it once
            _STAGES[self.key] = self.factory()
        work.records = _STAGES[self.key](work.records)
        _timed(work, self.name, t0)
        return work


_COMPOSERS: dict[str, Composer] = {}  # per worker process: templates compiled once, reused by every shard


class Compose:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.key = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()

    def __call__(self, work: ShardWork) -> ShardWork:
        t0 = time.perf_counter()
        if self.key not in _COMPOSERS:
            _COMPOSERS[self.key] = Composer(self.cfg)
        work.rows, stats = _COMPOSERS[self.key](work.records)
        work.stats.update(stats)
        work.stats.update(stage_skip_stats(work.records))
        work.grid_values = collect_values(work.records)
        work.negatives_meta = next((r.extras["negatives_meta"] for r in work.records
                                    if r.extras.get("negatives_meta")), {})
        _timed(work, "compose", t0)
        return work


class Write:
    def __init__(self, out_dir: Path):
        self.out_dir = out_dir

    def __call__(self, work: ShardWork) -> dict:
        t0 = time.perf_counter()
        spec = work.spec
        sha, rows, nbytes = write_parquet(work.rows, self.out_dir / "data" / f"{spec.name}.parquet")
        _timed(work, "write", t0)
        summary = {
            "shard": spec.name, "split": spec.split, "fingerprint": spec.fingerprint, "rows": rows,
            "sha256": sha, "bytes": nbytes, "units": len(spec.units), "acc": work.acc,
            "stats": dict(work.stats), "timings": work.timings, "grid_values": work.grid_values,
            "negatives_meta": work.negatives_meta,
            "worker": os.environ.get(WORKER_ENV, "local"),  # which node wrote it (pipeline.execute sets it)
        }
        write_marker(self.out_dir, spec.name, summary)  # last: the shard counts as complete from here
        fault_point("after_shard")  # test-only hook (pipeline.writer.fault_point)
        return summary


def summary_without_write(work: ShardWork) -> dict:
    """For stage-only runs (e.g. fill the proposal cache): accounting and stats, no shard."""
    work.stats.update(stage_skip_stats(work.records))
    work.grid_values = collect_values(work.records)
    return {"shard": work.spec.name, "split": work.spec.split, "fingerprint": work.spec.fingerprint, "rows": 0,
            "units": len(work.spec.units), "acc": work.acc, "stats": dict(work.stats), "timings": work.timings,
            "grid_values": work.grid_values}
