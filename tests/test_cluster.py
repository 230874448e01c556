"""A real two-node Ray cluster on this machine (both nodes on 127.0.0.1): the CLI build with RAY_ADDRESS runs work
on both nodes and writes the same bytes as the plain-loop executor.

Clean-up does not use `ray stop --force`: that kills every Ray process on the machine, other users' too. The
nodes are started with a private temp dir and a marker variable in their environment; the processes carrying the
marker (raylets, GCS, workers: all inherit it) are stopped by pid.

Every node runs with the loopback environment of pipeline.execute (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 among it),
which makes `ray start --address=...` refuse to add a node. The second node is therefore started through the same
entry point as the venv's `ray` script with only that CLI guard lifted (see LIFT_GUARD); its raylet and workers
inherit the variable at 0, and the test checks that every node registered as 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.demo import generate
from pipeline.execute import loopback_env
from pipeline.runner import build
from tests.helpers import write_config

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
# what the venv's `ray` script runs, with only the multi-node guard of `ray start` lifted (through a copy of
# ray_constants seen by the CLI module alone): Ray's own address resolution still sees the variable at 0 and keeps
# 127.0.0.1 instead of swapping it for the machine's interface address
LIFT_GUARD = ("import sys, types; from ray._private import ray_constants as c; import ray.scripts.scripts as s; "
              "p = types.ModuleType('ray_constants'); p.__dict__.update(c.__dict__); p.ENABLE_RAY_CLUSTER = True; "
              "s.ray_constants = p; sys.argv = sys.argv[1:]; sys.exit(s.main())")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_with(token: str) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as fh:
                if token.encode() in fh.read():
                    pids.append(int(d))
        except OSError:
            continue
    return pids


def _stop_cluster(token: str) -> list[int]:
    """SIGTERM, then SIGKILL, exactly the processes this test's `ray start` calls spawned; returns survivors."""
    for sig, wait in ((signal.SIGTERM, 8.0), (signal.SIGKILL, 3.0)):
        for pid in _pids_with(token):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + wait
        while _pids_with(token) and time.monotonic() < deadline:
            time.sleep(0.2)
    return _pids_with(token)


def _ray(args: list[str], env: dict, add_node: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(RAY)] if not add_node else [sys.executable, "-c", LIFT_GUARD, "ray"]
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=180)


def _corpus_bytes(out: Path) -> dict[str, bytes]:
    files = sorted((out / "data").glob("*.parquet")) + [out / "manifest.json", out / "README.md"]
    return {str(f.relative_to(out)): f.read_bytes() for f in files}


@pytest.mark.slow
def test_two_node_cluster_build_uses_both_nodes_and_equals_local(tmp_path):
    if not RAY.is_file():
        pytest.fail(f"the venv's ray executable is missing: {RAY}")
    generate(tmp_path / "in", n_images=8, seed=5)
    cfg_path = write_config(tmp_path, {"instances": tmp_path / "in/annotations/instances.json",
                                       "captions": tmp_path / "in/annotations/captions.json",
                                       "image_root": tmp_path / "in/images"}, shard_size=2)
    local = load_config(cfg_path).output_path()
    build(load_config(cfg_path))

    token = f"REFFORGE_TEST_CLUSTER={uuid.uuid4().hex}"
    ray_tmp = Path(tempfile.mkdtemp(prefix="rf-ray-", dir="/tmp"))  # short: Ray's unix sockets live under it
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "REFFORGE_FAULT")}
    env.update(loopback_env(tmp_path / "ray_home"), PYTHONPATH=str(ROOT))
    env[token.split("=")[0]] = token.split("=")[1]
    port = _free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=150000000",
              "--disable-usage-stats"]
    try:
        head = _ray(["start", "--head", f"--port={port}", f"--temp-dir={ray_tmp}", "--include-dashboard=false",
                     '--resources={"head": 1}', *common], env)
        assert head.returncode == 0, head.stdout[-2000:] + head.stderr[-2000:]
        second = _ray(["start", f"--address=127.0.0.1:{port}", '--resources={"second": 1}', *common], env,
                      add_node=True)
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
        assert "Local node IP: 127.0.0.1" in second.stdout + second.stderr
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "build", str(cfg_path), "--executor", "ray", "--no-progress",
             "--output-dir", str(tmp_path / "viacluster")],
            cwd=ROOT, env={**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert "connecting to the Ray cluster at 127.0.0.1" in proc.stderr
    finally:
        survivors = _stop_cluster(token.split("=")[1])
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert survivors == [], f"Ray processes still running after clean-up: {survivors}"
    out = tmp_path / "viacluster" / local.name
    markers = [json.loads(p.read_text()) for p in sorted((out / ".markers").glob("*.json"))]
    workers = {m["worker"] for m in markers}
    assert len(markers) == 4 and all(w.startswith("ray:") for w in workers)
    assert len(workers) == 2, f"every shard ran on one node: {workers}"
    assert _corpus_bytes(out) == _corpus_bytes(local)
    report = json.loads((out / "run_report.json").read_text())
    assert report["all_accounted"] and report["run"]["executor"] == "ray"
