"""Write stage: rows -> one Parquet shard, atomically, then its completion marker (written last).

A shard is written to a temporary name in the same folder, fsynced and renamed; the marker
(``.markers/<shard>.json``: fingerprint, rows, sha256, shard report) is written after the rename, so a shard
without a marker is incomplete and is rebuilt by the next run. A rerun skips every shard whose marker matches its
fingerprint and whose file still has the recorded hash.

Test-only fault hook (docs/operations.md): with ``REFFORGE_FAULT=<point>:<n>`` in the environment, the process
SIGKILLs itself at the n-th (1-based) occurrence of ``<point>``: ``ingest`` (a shard's ingest starts),
``write_mid`` (a shard's temp file is written and fsynced, not yet renamed), ``after_shard`` (a shard's marker is
written). ``enospc:<n>`` makes the n-th shard write raise ``OSError(ENOSPC)`` instead. Unset, it costs one dict
lookup per shard.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import RefforgeError
from pipeline.schema import arrow_schema

ROW_GROUP_SIZE = 256
FAULT_ENV = "REFFORGE_FAULT"
WORKER_ENV = "REFFORGE_WORKER"  # "ray:<node id>", set by pipeline.execute in Ray workers; kept in each marker
_fault_seen: dict[str, int] = {}


class ShardWriteError(RefforgeError):
    """A shard could not be written (disk full, permissions); nothing is left under its final name."""

    def __init__(self, shard: str, path: Path, err: OSError):
        super().__init__(f"{path}: cannot write shard {shard}: {err.strerror or err} (errno {err.errno}); no "
                         "partial file was kept: free space or fix permissions, then rerun (finished shards are "
                         "kept)")


def fault_point(point: str) -> None:
    """Test-only: act on ``REFFORGE_FAULT=<point>:<n>`` at the n-th occurrence of `point` in this process."""
    spec = os.environ.get(FAULT_ENV)
    if not spec or spec.partition(":")[0] != point:
        return
    _fault_seen[point] = _fault_seen.get(point, 0) + 1
    if _fault_seen[point] != int(spec.partition(":")[2] or 1):
        return
    if point == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), signal.SIGKILL)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes, fault: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            if fault:
                fault_point("enospc")
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if fault:
            fault_point("write_mid")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_parquet(rows: list[dict], path: Path) -> tuple[str, int, int]:
    """Write rows with the declared schema; returns (sha256, rows, bytes). No partial file under `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=arrow_schema())
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=ROW_GROUP_SIZE, compression="zstd", write_statistics=False)
    data = sink.getvalue().to_pybytes()
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a killed run
        stale.unlink(missing_ok=True)
    try:
        atomic_write_bytes(path, data, fault=True)
    except OSError as e:
        raise ShardWriteError(path.stem, path, e) from e
    return hashlib.sha256(data).hexdigest(), table.num_rows, len(data)


def marker_path(out_dir: Path, shard_name: str) -> Path:
    return out_dir / ".markers" / f"{shard_name}.json"


def write_marker(out_dir: Path, shard_name: str, payload: dict) -> None:
    p = marker_path(out_dir, shard_name)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(p, json.dumps(payload, sort_keys=True, indent=1).encode())


def read_marker(out_dir: Path, shard_name: str) -> dict | None:
    p = marker_path(out_dir, shard_name)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a damaged marker means the shard is rebuilt


def shard_is_complete(out_dir: Path, shard_name: str, fingerprint: str) -> dict | None:
    """The marker if the shard is complete and intact for this fingerprint, else None."""
    m = read_marker(out_dir, shard_name)
    if not m or m.get("fingerprint") != fingerprint:
        return None
    f = out_dir / "data" / f"{shard_name}.parquet"
    if not f.is_file() or f.stat().st_size != m.get("bytes") or sha256_file(f) != m.get("sha256"):
        return None
    return m
