"""The SQLite reply cache and run budget: keys, WAL mode, and several processes writing at once."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

from pipeline.negatives.cache import ResponseCache, cache_key

MSG = [{"role": "user", "content": "rewrite: a dog"}]


def test_key_depends_on_model_prompt_and_params_only():
    base = cache_key("m", MSG, {"temperature": 0.2})
    assert base == cache_key("m", [dict(MSG[0])], {"temperature": 0.2})
    assert len(base) == 64 and int(base, 16) >= 0
    assert base != cache_key("m2", MSG, {"temperature": 0.2})
    assert base != cache_key("m", [{"role": "user", "content": "rewrite: a cat"}], {"temperature": 0.2})
    assert base != cache_key("m", MSG, {"temperature": 0.3})


def test_put_get_first_writer_wins_and_wal(tmp_path):
    c = ResponseCache(tmp_path / "c.sqlite3")
    assert c.get("k") is None
    c.put("k", "m", "h", MSG, "one")
    c.put("k", "m", "h", MSG, "two")
    assert c.get("k") == "one" and len(c) == 1
    mode = sqlite3.connect(tmp_path / "c.sqlite3").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    row = sqlite3.connect(tmp_path / "c.sqlite3").execute("SELECT model, prompt_hash FROM responses").fetchone()
    assert row == ("m", "h")
    c.close()


def test_budget_is_exact(tmp_path):
    c = ResponseCache(tmp_path / "c.sqlite3")
    assert [c.acquire("run", 3) for _ in range(5)] == [True, True, True, False, False]
    assert c.used("run") == 3 and c.acquire("other-run", 1)


def _hammer(path: str, worker: int, n: int, q) -> None:
    c = ResponseCache(path)
    granted = 0
    for i in range(n):
        key = f"k{i % 150}"  # overlapping keys across workers
        if c.get(key) is None:
            c.put(key, "m", "h", MSG, f"reply-{i % 150}")
        if c.acquire("shared-run", 77):
            granted += 1
    q.put(granted)


def test_concurrent_processes_share_cache_and_budget(tmp_path):
    path = str(tmp_path / "c.sqlite3")
    ResponseCache(path).get("warm-up")  # create the file once (the workers race on everything else)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(path, w, 200, q)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    assert sum(q.get(timeout=5) for _ in procs) == 77  # the budget held across processes
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = dict(conn.execute("SELECT key, response FROM responses").fetchall())
    assert rows == {f"k{i}": f"reply-{i}" for i in range(150)}
    assert conn.execute("SELECT used FROM budget WHERE run_id = 'shared-run'").fetchone()[0] == 77
