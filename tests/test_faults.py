"""Runs that survive faults: the real CLI in a subprocess is SIGKILLed at chosen points (the REFFORGE_FAULT hook
in pipeline/writer.py), then rerun; the result must equal an uninterrupted run byte for byte. Disk full stops the
run with a message naming the shard and leaves no partial file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import writer
from pipeline.config import load_config, with_overrides
from pipeline.demo import generate
from pipeline.runner import build
from pipeline.writer import FAULT_ENV, ShardWriteError, marker_path
from tests.helpers import write_config

ROOT = Path(__file__).resolve().parents[1]
SHARDS = [f"train-{i:05d}-of-00003" for i in range(3)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Demo input (6 images -> 3 shards of 2) and the uninterrupted reference corpus."""
    tmp = tmp_path_factory.mktemp("faults")
    generate(tmp / "in", n_images=6, seed=4)
    cfg_path = write_config(tmp, {"instances": tmp / "in/annotations/instances.json",
                                  "captions": tmp / "in/annotations/captions.json",
                                  "image_root": tmp / "in/images"}, shard_size=2)
    cfg = load_config(cfg_path)
    report = build(cfg)
    assert [s["shard"] for s in report["shards"]] == SHARDS
    return cfg_path, cfg.output_path(), report


def _cli_build(cfg_path: Path, out_dir: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env["PYTHONPATH"] = str(ROOT)
    if fault:
        env[FAULT_ENV] = fault
    cmd = [sys.executable, "-m", "pipeline.cli", "build", str(cfg_path), "--executor", "local", "--no-progress",
           "--output-dir", str(out_dir)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _corpus_bytes(out: Path) -> dict[str, bytes]:
    files = sorted((out / "data").glob("*.parquet")) + [out / "manifest.json", out / "README.md"]
    return {str(f.relative_to(out)): f.read_bytes() for f in files}


def _complete(out: Path) -> list[str]:
    return [s for s in SHARDS if marker_path(out, s).is_file() and (out / "data" / f"{s}.parquet").is_file()]


# point:n -> shards complete when the process dies
KILLS = {
    "ingest:1": [],  # during the first ingest: nothing written yet
    "ingest:2": SHARDS[:1],  # during the second shard's ingest
    "write_mid:2": SHARDS[:1],  # second shard's temp file written and fsynced, not renamed
    "after_shard:3": SHARDS,  # every shard and marker written, manifest and card not yet
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(KILLS))
def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path, setup, fault):
    cfg_path, ref_out, ref_report = setup
    out = tmp_path / "out" / ref_out.name
    killed = _cli_build(cfg_path, tmp_path / "out", fault)
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
    assert _complete(out) == KILLS[fault]
    assert not (out / "manifest.json").exists()
    temps = sorted(p.name for p in (out / "data").glob(".*.tmp-*")) if (out / "data").is_dir() else []
    if fault.startswith("write_mid"):
        assert len(temps) == 1 and temps[0].startswith(f".{SHARDS[1]}.parquet.tmp-")
        assert not (out / "data" / f"{SHARDS[1]}.parquet").exists()  # never a partial file under the final name
    else:
        assert temps == []

    rerun = _cli_build(cfg_path, tmp_path / "out")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _corpus_bytes(out) == _corpus_bytes(ref_out)
    assert list((out / "data").glob(".*.tmp-*")) == []
    report = json.loads((out / "run_report.json").read_text())
    assert report["run"]["shards_resumed"] == len(KILLS[fault])
    assert report["run"]["shards_built"] == 3 - len(KILLS[fault])
    assert report["all_accounted"] and report["unaccounted"] == ref_report["unaccounted"]
    assert report["sources"] == ref_report["sources"]  # every input counted once: resumed + rebuilt, no overlap
    assert report["sources"]["tiny"]["inputs"]["image"] == 6
    assert sorted(s["shard"] for s in report["shards"]) == SHARDS and sum(s["units"] for s in report["shards"]) == 6


def test_fault_hook_counts_occurrences_and_ignores_other_points(monkeypatch):
    monkeypatch.setattr(writer, "_fault_seen", {})
    monkeypatch.setenv(FAULT_ENV, "enospc:3")
    writer.fault_point("enospc")
    writer.fault_point("ingest")  # another point: not counted, no effect
    writer.fault_point("enospc")
    with pytest.raises(OSError) as e:
        writer.fault_point("enospc")
    assert e.value.errno == 28
    monkeypatch.delenv(FAULT_ENV)
    writer.fault_point("enospc")  # unset: nothing happens


def test_disk_full_stops_with_the_shard_named_and_no_partial_file(tmp_path, setup, monkeypatch, caplog):
    cfg_path, ref_out, _ = setup
    cfg = with_overrides(load_config(cfg_path), output_dir=str(tmp_path / "out"))
    out = cfg.output_path()
    monkeypatch.setattr(writer, "_fault_seen", {})
    monkeypatch.setenv(FAULT_ENV, "enospc:2")
    with pytest.raises(ShardWriteError) as e:
        build(cfg)
    msg = str(e.value)
    assert f"cannot write shard {SHARDS[1]}" in msg and "No space left on device" in msg and "errno 28" in msg
    assert str(out / "data" / f"{SHARDS[1]}.parquet") in msg
    assert _complete(out) == SHARDS[:1]
    assert not (out / "data" / f"{SHARDS[1]}.parquet").exists() and not marker_path(out, SHARDS[1]).exists()
    assert list((out / "data").glob(".*")) == []  # the temp file is removed too
    assert not (out / "manifest.json").exists()

    # through the CLI: exit code 2 and one clear error line, no traceback
    from pipeline.cli import main

    monkeypatch.setattr(writer, "_fault_seen", {})
    monkeypatch.setenv(FAULT_ENV, "enospc:1")  # the first shard this run writes is SHARDS[1]
    caplog.set_level(logging.ERROR)
    assert main(["build", str(cfg_path), "--executor", "local", "--no-progress", "--output-dir",
                 str(tmp_path / "out")]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and f"cannot write shard {SHARDS[1]}" in errors[0]

    monkeypatch.delenv(FAULT_ENV)
    build(cfg)  # space is back: the rerun finishes the corpus, byte-identical
    assert _corpus_bytes(out) == _corpus_bytes(ref_out)


def test_local_build_logs_rows_rate_and_eta_per_shard(tmp_path, setup, caplog):
    cfg_path, _, _ = setup
    cfg = with_overrides(load_config(cfg_path), output_dir=str(tmp_path / "out"))
    assert cfg.run.progress is False  # tests never draw progress bars
    caplog.set_level(logging.INFO, logger="pipeline.runner")
    build(cfg)
    lines = [r.getMessage() for r in caplog.records if r.name == "pipeline.runner" and "ETA" in r.getMessage()]
    assert [ln.split()[1] for ln in lines] == SHARDS
    assert all("rows/s" in ln and " rows," in ln for ln in lines)
    assert lines[-1].endswith("ETA 0 s") and "(3/3)" in lines[-1]


@pytest.mark.slow
def test_kill_9_during_the_llm_stage_then_rerun_uses_the_cache(tmp_path):
    """SIGKILL while the LLM miner is talking to a real local OpenAI-protocol server; the rerun reuses the
    responses cached before the kill and the corpus equals an uninterrupted run."""
    import signal
    import time

    import yaml

    from tests.openai_server import OpenAIServer

    generate(tmp_path / "in", n_images=6, seed=4)
    inputs = {"instances": tmp_path / "in/annotations/instances.json",
              "captions": tmp_path / "in/annotations/captions.json", "image_root": tmp_path / "in/images"}
    with OpenAIServer(delay=0.3) as server:
        def config(name: str) -> Path:
            path = write_config(tmp_path / name, inputs, shard_size=2, cache_dir=str(tmp_path / name / "cache"))
            cfg = yaml.safe_load(path.read_text())
            cfg["negatives"] = {"miner": "llm", "share": 1.0, "llm": {
                "base_url": f"http://127.0.0.1:{server.port}/v1", "model": "local-test", "api_key_env": None,
                "concurrency": 1, "max_retries": 0}}
            path.write_text(yaml.safe_dump(cfg))
            return path

        ref_cfg, cfg = config("ref"), config("killed")
        ref = _cli_build(ref_cfg, tmp_path / "ref" / "out")
        assert ref.returncode == 0, ref.stderr[-3000:]
        full_calls = len(server.chat_requests())
        assert full_calls >= 6  # one request per record at least

        env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
        env["PYTHONPATH"] = str(ROOT)
        cmd = [sys.executable, "-m", "pipeline.cli", "build", str(cfg), "--executor", "local", "--no-progress",
               "--output-dir", str(tmp_path / "killed" / "out")]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while len(server.chat_requests()) < full_calls + 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -9
        out = tmp_path / "killed" / "out" / "t"
        assert not (out / "manifest.json").exists()  # killed mid-run
        before_rerun = len(server.chat_requests())
        rerun = _cli_build(cfg, tmp_path / "killed" / "out")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        rerun_calls = len(server.chat_requests()) - before_rerun
    assert rerun_calls < full_calls  # the responses received before the kill came from the cache
    assert _corpus_bytes(out) == _corpus_bytes(tmp_path / "ref" / "out" / "t")
    report = json.loads((out / "run_report.json").read_text())
    assert report["all_accounted"] and report["sources"]["tiny"]["inputs"]["image"] == 6
