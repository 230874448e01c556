"""Planning: build converters from the config, list their units, cut them into shards, fingerprint each shard.

Shards are per split: ``data/<split>-NNNNN-of-MMMMM.parquet``; units are taken in `sources.yaml` order, each
source's units in its own sorted order, so the same input and config always give the same shards.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel

from converters import Converter, build_converter
from pipeline import __version__
from pipeline.config import Config
from pipeline.errors import ConfigError
from pipeline.records import RECORD_VERSION
from pipeline.report import _add_skip, new_source_acc
from pipeline.schema import SCHEMA_VERSION


class ShardSpec(BaseModel):
    split: str
    index: int
    count: int
    units: list[tuple[str, str]]  # (source, unit key)
    fingerprint: str = ""

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:05d}-of-{self.count:05d}"


def build_converters(cfg: Config, only_source: str | None = None) -> dict[str, Converter]:
    if only_source is not None and only_source not in cfg.sources:
        raise ConfigError(cfg.file, "sources", f"no source named {only_source!r}",
                          f"use one of: {', '.join(cfg.sources)}")
    out = {}
    for name, sc in cfg.sources.items():
        if (only_source is None and not sc.enabled) or (only_source is not None and name != only_source):
            continue
        out[name] = build_converter(name, sc.converter, sc.options, Path(cfg.base_dir), cfg.file)
    if not out:
        raise ConfigError(cfg.file, "sources", "every source is disabled", "set enabled: true on one")
    return out


def run_fingerprint(cfg: Config, converters: dict[str, Converter], templates_digest: str) -> str:
    run = cfg.run.model_dump(exclude={"name", "output_dir", "cache_dir", "executor", "num_cpus", "progress"})
    payload = {
        "versions": [__version__, RECORD_VERSION, SCHEMA_VERSION],
        "run": run,
        "tasks": {k: v.model_dump() for k, v in sorted(cfg.tasks.items())},
        "proposals": cfg.proposals.model_dump(),
        "negatives": cfg.negatives.model_dump(),
        "converters": {k: c.fingerprint() for k, c in sorted(converters.items())},
        "templates": templates_digest,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def plan_shards(cfg: Config, converters: dict[str, Converter], fingerprint: str) -> tuple[list[ShardSpec], dict]:
    """All shards of the run plus the plan-level accounting (inputs read, items dropped while planning)."""
    acc: dict[str, dict] = {}
    by_split: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name, conv in converters.items():
        plan = conv.plan()
        a = acc.setdefault(name, new_source_acc())
        a["inputs"] = dict(plan.inputs)
        for s in plan.skips:
            _add_skip(a, s)
        for u in plan.units:
            by_split[u.split].append((name, u.key))
    shards: list[ShardSpec] = []
    size = cfg.run.shard_size
    for split in sorted(by_split):
        units = by_split[split]
        count = max(1, -(-len(units) // size))
        for i in range(count):
            chunk = units[i * size : (i + 1) * size]
            fp = hashlib.sha256((fingerprint + json.dumps(chunk)).encode()).hexdigest()
            shards.append(ShardSpec(split=split, index=i, count=count, units=chunk, fingerprint=fp))
    return shards, acc
