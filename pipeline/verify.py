"""`refforge verify out/<name>`: re-check a written corpus without trusting anything the run said.

Checks: every manifest shard exists with its recorded sha256 and row count; no unlisted shard; each file's
Arrow schema is the declared one (with the `huggingface` metadata key); every row round-trips through the parser
of its own output format against its `targets`; ids are unique across the corpus; no temporary file of an
interrupted write is left in ``data/``. A damaged file is reported as a problem, never raised. Returns the
problems found.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.formats import roundtrip_problem
from pipeline.schema import arrow_schema
from pipeline.writer import sha256_file

log = logging.getLogger(__name__)

_COLUMNS = ["id", "width", "height", "messages", "targets", "provenance"]


def _check_rows(path: Path, seen: set[str], grid_size: int) -> list[str]:
    problems: list[str] = []
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=512, columns=_COLUMNS):
            problems += _check_batch(path, batch, seen, grid_size)
    except (pa.ArrowException, OSError) as e:  # a damaged page: report it with the shard, keep verifying
        problems.append(f"{path.name}: unreadable rows ({type(e).__name__}: {e})")
    return problems


def _check_batch(path: Path, batch, seen: set[str], grid_size: int) -> list[str]:
    problems = []
    for row in batch.to_pylist():
        rid = row["id"]
        if rid in seen:
            problems.append(f"{path.name}: duplicate id {rid}")
        seen.add(rid)
        fmt = row["provenance"]["output_format"]
        details = json.loads(row["provenance"]["details"] or "{}")
        g = details.get("grid", {}).get("grid_size", grid_size)
        p = roundtrip_problem(fmt, row["messages"], row["targets"], row["width"], row["height"], g)
        if p:
            problems.append(f"{path.name}: row {rid}: {p}")
    return problems


def verify(corpus: Path, grid_size: int = 32) -> list[str]:
    problems: list[str] = []
    manifest_path = corpus / "manifest.json"
    if not manifest_path.is_file():
        return [f"{manifest_path}: missing (not a refforge corpus, or the run did not finish)"]
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as e:
        return [f"{manifest_path}: invalid JSON at line {e.lineno}: {e.msg}"]
    listed = {s["shard"] for s in manifest["shards"]}
    on_disk = {p.stem for p in (corpus / "data").glob("*.parquet")}
    problems += [f"data/{s}.parquet: not listed in manifest.json" for s in sorted(on_disk - listed)]
    problems += [f"data/{p.name}: temporary file of an interrupted write (delete it; rerun the build if a shard "
                 "is missing)" for p in sorted((corpus / "data").glob(".*.tmp-*"))]
    t0 = time.perf_counter()
    want_schema = arrow_schema()
    seen: set[str] = set()
    total = 0
    for shard in manifest["shards"]:
        path = corpus / "data" / f"{shard['shard']}.parquet"
        if not path.is_file():
            problems.append(f"{path.name}: missing")
            continue
        if sha256_file(path) != shard["sha256"]:
            problems.append(f"{path.name}: sha256 differs from manifest.json (corrupted or modified)")
            continue
        try:
            meta = pq.read_metadata(path)
            schema = pq.read_schema(path)
        except Exception as e:  # pyarrow raises several types for damaged files; report, never hide
            problems.append(f"{path.name}: unreadable Parquet ({type(e).__name__}: {e})")
            continue
        if meta.num_rows != shard["rows"]:
            problems.append(f"{path.name}: {meta.num_rows} rows, manifest says {shard['rows']}")
        if not schema.equals(want_schema, check_metadata=False) or b"huggingface" not in (schema.metadata or {}):
            problems.append(f"{path.name}: schema differs from the declared schema")
            continue
        problems += _check_rows(path, seen, grid_size)
        total += meta.num_rows
    if total != manifest.get("rows", total):
        problems.append(f"manifest.json: rows {manifest['rows']} but shards hold {total}")
    dt = time.perf_counter() - t0
    log.info("verified %d shards, %d rows in %.2f s (%.0f rows/s)", len(manifest["shards"]), total, dt,
             total / dt if dt else 0.0)
    return problems
