"""Shared benchmark helpers: peak RSS summed over a process tree, figure printing, results files."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(root: int, extra_roots: tuple[str, ...] = ("raylet", "gcs_server")) -> int:
    """RSS of `root` and all descendants, plus any Ray daemons (they may be re-parented)."""
    seen, stack, total = set(), [root], 0
    if extra_roots:
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/comm") as fh:
                        comm = fh.read().strip()
                    if comm in extra_roots or comm.startswith("ray::"):
                        stack.append(int(d))
                except OSError:
                    continue
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _rss_kb(pid)
        stack.extend(_children(pid))
    return total


class PeakRSS:
    """Samples the summed RSS of this process tree every `interval` seconds; `.peak_mb` after exit."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak_kb, self._stop = interval, 0, threading.Event()

    def __enter__(self):
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, tree_rss_kb(os.getpid()))
            self._stop.wait(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak_kb = max(self.peak_kb, tree_rss_kb(os.getpid()))

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def report(name: str, figures: dict) -> None:
    """Print figures as aligned lines and keep them in bench/results/<name>.json."""
    out = sys.stdout
    out.write(f"\n== {name} ==\n")
    for k, v in figures.items():
        out.write(f"  {k:58s} {v:.4g}\n" if isinstance(v, float) else f"  {k:58s} {v}\n")
    out.flush()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=1, default=str))
