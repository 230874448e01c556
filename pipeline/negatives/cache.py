"""Content-addressed cache of LLM replies, and the run-level call budget, in one SQLite file.

- key = sha256 of (model, the rendered messages, the sampling parameters); never the API key or the base URL.
- WAL mode + a busy timeout: any number of threads and processes (Ray actors) read and write it at once;
  ``INSERT OR IGNORE`` makes two workers that raced on the same key agree on the first reply.
- The budget is one row per run id, incremented by a single conditional ``UPDATE``, so ``max_calls`` holds across
  threads and processes sharing the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, prompt_hash TEXT NOT NULL, "
    "request TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS budget (run_id TEXT PRIMARY KEY, used INTEGER NOT NULL)",
)
_LOCK_TRIES = 50  # opening races (journal-mode switch) that SQLite reports as "locked" without waiting


def cache_key(model: str, messages: list[dict], params: dict) -> str:
    """sha256 of the model, the rendered messages and the sampling parameters (canonical JSON)."""
    blob = json.dumps({"model": model, "messages": messages, "params": params}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """One SQLite file; a connection per (process, thread), opened lazily (safe to pickle to Ray actors)."""

    def __init__(self, path: str | os.PathLike, busy_timeout_s: float = 60.0):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._opened: list[tuple[int, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"path": self.path, "busy_timeout_s": self.busy_timeout_s}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["busy_timeout_s"])

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(_LOCK_TRIES):
            try:
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                                       check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                for stmt in _SCHEMA:
                    conn.execute(stmt)
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or attempt == _LOCK_TRIES - 1:
                    raise
                conn.close()
                time.sleep(0.02 * (attempt + 1))
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._lock:
            self._opened.append((os.getpid(), conn))
        return conn

    # -- replies ---------------------------------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        row = self._conn().execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, model: str, prompt_hash: str, request: list[dict], response: str) -> None:
        row = (key, model, prompt_hash, json.dumps(request, ensure_ascii=False), response, time.time())
        conn = self._conn()
        with self._write_lock:  # threads of one process queue here, not in SQLite's sleeping busy handler
            conn.execute("INSERT OR IGNORE INTO responses (key, model, prompt_hash, request, response, created) "
                         "VALUES (?, ?, ?, ?, ?, ?)", row)

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    # -- the run budget --------------------------------------------------------------------------------------
    def acquire(self, run_id: str, max_calls: int) -> bool:
        """Take one call from the run's budget; False once ``max_calls`` calls were taken (by anyone)."""
        conn = self._conn()
        with self._write_lock:
            conn.execute("INSERT OR IGNORE INTO budget (run_id, used) VALUES (?, 0)", (run_id,))
            cur = conn.execute("UPDATE budget SET used = used + 1 WHERE run_id = ? AND used < ?",
                               (run_id, max_calls))
            return cur.rowcount == 1

    def used(self, run_id: str) -> int:
        row = self._conn().execute("SELECT used FROM budget WHERE run_id = ?", (run_id,)).fetchone()
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        """Close every connection this process opened (from any thread)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for pid, conn in opened:
            if pid == os.getpid():
                conn.close()
        self._local = threading.local()
