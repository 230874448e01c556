"""Disk cache of proposals: one gzip'd JSON file per key under ``<cache_dir>/proposals/``.

The key is the sha256 of the backend's ``cache_parts(record)`` (image sha256, backend, checkpoint hash, the SAM
parameters that were set, grid size) plus :data:`CACHE_VERSION`. Files are written to a temporary file in the
same folder and moved into place with ``os.replace``, so a reader never sees half a file; an unreadable file is
logged, counted and recomputed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from pipeline.grid.proposals import Proposal
from pipeline.records import RLE

log = logging.getLogger(__name__)

CACHE_VERSION = "1"


def cache_key(parts: dict[str, Any]) -> str:
    blob = json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class ProposalCache:
    def __init__(self, cache_dir: str | os.PathLike):
        self.root = Path(cache_dir) / "proposals"
        self.hits = self.misses = self.corrupt = 0

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json.gz"

    def get(self, key: str) -> list[Proposal] | None:
        p = self.path(key)
        if not p.is_file():
            self.misses += 1
            return None
        try:
            with gzip.open(p, "rt", encoding="utf-8") as f:
                doc = json.load(f)
            masks = [RLE(size=(int(s[0]), int(s[1])), counts=c) for s, c in doc["masks"]]
            props = [Proposal(int(r), int(c), masks[int(m)], float(piou), float(stab))
                     for r, c, m, piou, stab in doc["proposals"]]
        except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError) as e:
            log.warning("proposal cache file %s unreadable (%s): recomputing", p, e)
            self.corrupt += 1
            self.misses += 1
            return None
        if doc.get("key") != key:
            log.warning("proposal cache file %s holds key %s: recomputing", p, doc.get("key"))
            self.corrupt += 1
            self.misses += 1
            return None
        self.hits += 1
        return props

    def put(self, key: str, proposals: list[Proposal], parts: dict[str, Any]) -> Path:
        index: dict[tuple[tuple[int, int], str], int] = {}
        masks: list[list] = []
        rows = []
        for p in proposals:  # annotation-style proposals repeat one mask at many cells: store it once
            k = (tuple(p.rle.size), p.rle.counts)
            if k not in index:
                index[k] = len(masks)
                masks.append([list(p.rle.size), p.rle.counts])
            rows.append([p.row, p.col, index[k], p.predicted_iou, p.stability_score])
        doc = {"key": key, "version": CACHE_VERSION, "parts": parts, "masks": masks, "proposals": rows}
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}-", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                gz.write(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8"))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target
