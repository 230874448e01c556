"""`refforge verify` catches damaged corpora; a rerun rebuilds exactly the damaged shard, byte for byte."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.config import load_config
from pipeline.demo import generate
from pipeline.runner import build
from pipeline.verify import verify
from pipeline.writer import marker_path, write_parquet
from tests.helpers import write_config

SHARD = "train-00001-of-00003"


@pytest.fixture(scope="module")
def demo_input(tmp_path_factory):
    d = tmp_path_factory.mktemp("verify_in")
    generate(d, n_images=6, seed=2)
    return {"instances": d / "annotations/instances.json", "captions": d / "annotations/captions.json",
            "image_root": d / "images"}


@pytest.fixture(scope="module")
def built(tmp_path_factory, demo_input):
    tmp = tmp_path_factory.mktemp("verify_out")
    cfg = load_config(write_config(tmp, demo_input, shard_size=2))
    report = build(cfg)
    assert report["run"]["shards_total"] == 3 and verify(cfg.output_path()) == []
    return cfg.output_path()


@pytest.fixture
def corpus(tmp_path, built) -> Path:
    dst = tmp_path / "corpus"
    shutil.copytree(built, dst)
    return dst


def _set_manifest_hash(corpus: Path, shard: str) -> None:
    """Make manifest.json agree with the file on disk, so only deeper checks can notice the damage."""
    m = json.loads((corpus / "manifest.json").read_text())
    f = corpus / "data" / f"{shard}.parquet"
    for s in m["shards"]:
        if s["shard"] == shard:
            s["sha256"], s["bytes"] = hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_size
    (corpus / "manifest.json").write_text(json.dumps(m))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_shard_is_caught_by_hash_and_by_parquet_check(corpus):
    _truncate(corpus / "data" / f"{SHARD}.parquet")
    assert verify(corpus) == [f"{SHARD}.parquet: sha256 differs from manifest.json (corrupted or modified)",
                              "manifest.json: rows 6 but shards hold 4"]
    _set_manifest_hash(corpus, SHARD)
    problems = verify(corpus)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{SHARD}.parquet: unreadable Parquet")
    assert problems[1] == "manifest.json: rows 6 but shards hold 4"  # the lost rows are not counted


def test_tampered_row_is_caught_only_by_the_round_trip(corpus):
    path = corpus / "data" / f"{SHARD}.parquet"
    rows = pq.read_table(path).to_pylist()
    victim = next(r for r in rows if any("<Phrase>" in m["content"] for m in r["messages"]))
    msg = next(m for m in victim["messages"] if m["role"] == "assistant" and "<Phrase>" in m["content"])
    msg["content"] = msg["content"].replace("<Phrase>", "<Phrase>suspiciously ", 1)
    write_parquet(rows, path)  # a valid shard with the declared schema, one answer rewritten
    assert verify(corpus)[0].endswith("sha256 differs from manifest.json (corrupted or modified)")
    _set_manifest_hash(corpus, SHARD)
    problems = verify(corpus)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{SHARD}.parquet: row {victim['id']}: trp_targets_mismatch")


def test_corrupted_page_is_reported_not_raised(corpus):
    path = corpus / "data" / f"{SHARD}.parquet"
    meta = pq.read_metadata(path)
    chunks = [meta.row_group(0).column(i) for i in range(meta.num_columns)]
    data = bytearray(path.read_bytes())
    for c in chunks:  # damage the middle of every compressed page that verify reads
        if c.path_in_schema.split(".")[0] in ("messages", "targets") and c.total_compressed_size > 64:
            pos = c.data_page_offset + c.total_compressed_size // 2
            data[pos : pos + 8] = bytes(b ^ 0xFF for b in data[pos : pos + 8])
    path.write_bytes(bytes(data))
    _set_manifest_hash(corpus, SHARD)
    problems = verify(corpus)
    assert any(p.startswith(f"{SHARD}.parquet: unreadable rows") for p in problems), problems


def test_leftover_temp_file_and_unlisted_shard_are_reported(corpus):
    (corpus / "data" / f".{SHARD}.parquet.tmp-4242").write_bytes(b"partial")
    shutil.copy(corpus / "data" / f"{SHARD}.parquet", corpus / "data" / "train-00009-of-00009.parquet")
    assert verify(corpus) == [
        "data/train-00009-of-00009.parquet: not listed in manifest.json",
        f"data/.{SHARD}.parquet.tmp-4242: temporary file of an interrupted write (delete it; rerun the build if a "
        "shard is missing)"]


def _snapshot(out: Path) -> dict[str, bytes]:
    files = sorted((out / "data").glob("*.parquet")) + [out / "manifest.json", out / "README.md"]
    return {f.name: f.read_bytes() for f in files}


@pytest.mark.parametrize("damage", ["truncate", "delete", "bad_marker"])
def test_rerun_rebuilds_exactly_the_damaged_shard_byte_identical(tmp_path, demo_input, damage):
    cfg = load_config(write_config(tmp_path, demo_input, shard_size=2))
    build(cfg)
    out = cfg.output_path()
    before = _snapshot(out)
    shard_file = out / "data" / f"{SHARD}.parquet"
    if damage == "truncate":
        _truncate(shard_file)
    elif damage == "delete":
        shard_file.unlink()
    else:
        marker_path(out, SHARD).write_text("{not json")
    report = build(cfg)
    assert report["run"]["shards_built"] == 1 and report["run"]["shards_resumed"] == 2
    assert [s["shard"] for s in report["shards"] if not s["resumed"]] == [SHARD]
    assert report["all_accounted"] and report["sources"]["tiny"]["inputs"]["image"] == 6
    assert _snapshot(out) == before
    want = hashlib.sha256(before[f"{SHARD}.parquet"]).hexdigest()
    assert json.loads(marker_path(out, SHARD).read_text())["sha256"] == want
    assert verify(out) == []
