"""Real Ray on CPU, started the way users start it (the CLI in a subprocess), kept on loopback."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.demo import generate
from pipeline.runner import build
from tests.helpers import write_config

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = re.compile(r'inet_addr\("127\.|inet_pton\(AF_INET6, "::1"|inet_pton\(AF_INET6, "::ffff:127\.')


@pytest.fixture(scope="module")
def demo_input(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    generate(d, n_images=10, seed=1)
    return {"instances": d / "annotations/instances.json", "captions": d / "annotations/captions.json",
            "image_root": d / "images"}


def _cli(*args, strace_to: Path | None = None, env=None):
    cmd = [sys.executable, "-m", "pipeline.cli", *args]
    if strace_to is not None:
        cmd = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(strace_to)] + cmd
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=600)


def _connects(trace: Path) -> list[str]:
    return [ln for ln in trace.read_text().splitlines() if "connect(" in ln]


@pytest.mark.slow
def test_ray_build_equals_local_build_and_stays_on_loopback(tmp_path, demo_input):
    if shutil.which("strace") is None:
        if os.environ.get("CI"):
            pytest.fail("strace is required in CI (apt-get install strace)")
        pytest.skip("strace not installed")
    cfg_path = write_config(tmp_path, demo_input, shard_size=4)
    local = build(load_config(cfg_path))
    trace = tmp_path / "connect.trace"
    proc = _cli("build", str(cfg_path), "--executor", "ray", "--name", "viaray", "--no-progress",
                strace_to=trace)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ray_out = load_config(cfg_path).output_path().parent / "viaray"
    local_out = load_config(cfg_path).output_path()
    for shard in local["shards"]:
        name = f"data/{shard['shard']}.parquet"
        assert (ray_out / name).read_bytes() == (local_out / name).read_bytes(), name
    connects = _connects(trace)
    inet = [c for c in connects if "AF_INET" in c]
    assert inet, "Ray talks over TCP on loopback; seeing none means the trace did not work"
    beyond = [c for c in inet if not LOOPBACK.search(c)]
    assert beyond == [], f"connections beyond loopback: {beyond[:5]}"
    assert not any("169.254.169.254" in c or "metadata.google" in c for c in connects)


@pytest.mark.slow
def test_ray_driver_reports_config_errors_without_traceback(tmp_path, demo_input):
    cfg_path = write_config(tmp_path, demo_input)
    cfg_path.write_text(cfg_path.read_text().replace("converter: coco", "converter: nope"))
    proc = _cli("build", str(cfg_path), "--executor", "ray")
    assert proc.returncode == 2
    assert "sources.tiny.converter" in proc.stderr and "Traceback" not in proc.stderr
