"""End to end with the plain-loop executor: demo input -> shards that `datasets` loads, deterministic, accounted."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.config import load_config, with_overrides
from pipeline.demo import generate
from pipeline.errors import ConfigError
from pipeline.runner import build
from pipeline.verify import verify
from tests.helpers import write_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_input(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    generate(d, n_images=12, seed=0)
    return {"instances": d / "annotations/instances.json", "captions": d / "annotations/captions.json",
            "image_root": d / "images"}


def _build(tmp, demo_input, **run):
    cfg = load_config(write_config(tmp, demo_input, shard_size=5, dialogues_per_image=2, **run))
    return cfg, build(cfg)


def test_local_build_loads_with_datasets_and_accounts_for_everything(tmp_path, demo_input):
    cfg, report = _build(tmp_path, demo_input)
    out = cfg.output_path()
    assert report["all_accounted"], report["unaccounted"]
    a = report["sources"]["tiny"]
    assert a["inputs"]["image"] == 12 and a["emitted"]["image"] == 12
    assert sorted(p.name for p in (out / "data").glob("*.parquet")) == [
        "train-00000-of-00003.parquet", "train-00001-of-00003.parquet", "train-00002-of-00003.parquet"]
    assert report["rows"] == 24
    from datasets import load_dataset

    ds = load_dataset(str(out), split="train")
    assert len(ds) == 24
    row = ds[0]
    assert row["image"].size == (320, 240)  # decoded PIL image
    assert row["messages"][0]["role"] == "system" and row["messages"][1]["content"].count("<image>") == 1
    assert all("<image>" not in m["content"] for m in row["messages"][2:])
    assert isinstance(row["targets"], list) and isinstance(row["turns"][0]["template_id"], str)
    assert len(row["turns"]) == (len(row["messages"]) - 1) // 2
    assert verify(out) == []
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "dataset_info" in card


def test_same_input_config_seed_gives_same_bytes_and_other_seed_differs(tmp_path, demo_input):
    cfg1, r1 = _build(tmp_path / "a", demo_input)
    cfg2, r2 = _build(tmp_path / "b", demo_input)
    cfg3, r3 = _build(tmp_path / "c", demo_input, seed=7)
    sha = lambda r: [s["sha256"] for s in r["shards"]]  # noqa: E731
    assert sha(r1) == sha(r2)
    assert sha(r1) != sha(r3)
    assert (cfg1.output_path() / "README.md").read_bytes() == (cfg2.output_path() / "README.md").read_bytes()


def test_rerun_skips_complete_shards(tmp_path, demo_input):
    cfg, first = _build(tmp_path, demo_input)
    _, second = _build(tmp_path, demo_input)
    assert second["run"]["shards_resumed"] == 3 and second["run"]["shards_built"] == 0
    assert [s["sha256"] for s in first["shards"]] == [s["sha256"] for s in second["shards"]]
    assert second["sources"] == first["sources"]


def test_every_row_records_templates_and_provenance(tmp_path, demo_input):
    cfg, _ = _build(tmp_path, demo_input)
    rows = pq.read_table(cfg.output_path() / "data/train-00000-of-00003.parquet").to_pylist()
    for row in rows:
        assert row["provenance"]["record_id"] in row["id"]
        assert row["provenance"]["output_format"] == "trp"
        for t in row["turns"]:
            assert t["template_id"].startswith(t["task"] + "/user/")
        assert json.loads(row["provenance"]["details"]) is not None


def test_text_format_rows_round_trip(tmp_path, demo_input):
    cfg, report = _build(tmp_path, demo_input, format="text")
    assert report["rows"] == 24 and verify(cfg.output_path()) == []
    rows = pq.read_table(cfg.output_path() / "data/train-00000-of-00003.parquet").to_pylist()
    assert not any("<REF>" in m["content"] for r in rows for m in r["messages"])


def test_bad_config_fails_at_start_naming_file_and_field(tmp_path, demo_input):
    path = write_config(tmp_path, demo_input)
    text = path.read_text().replace("shard_size: 1", "shard_size: 0")
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and "run.shard_size" in str(e.value)
    path.write_text(text.replace("shard_size: 0", "shard_size: 2").replace("converter: coco", "converter: cocoo"))
    with pytest.raises(ConfigError) as e:
        build(load_config(path))
    assert "sources.tiny.converter" in str(e.value) and "coco" in str(e.value)
    path.write_text(text.replace("shard_size: 0", "shard_size: 2").replace("split: train", "splitt: train"))
    with pytest.raises(ConfigError) as e:
        build(load_config(path))
    assert "sources.tiny.options.splitt" in str(e.value)
    path.write_text(text.replace("shard_size: 0", "shard_size: 2").replace(str(demo_input["image_root"]), "/nope"))
    with pytest.raises(ConfigError) as e:
        build(load_config(path))
    assert "image_root" in str(e.value) and "/nope" in str(e.value)


def test_overrides_keep_validation():
    cfg = load_config(ROOT / "configs/demo.yaml")
    assert with_overrides(cfg, executor="local").run.executor == "local"


def test_vd_cot_rows_carry_refvlm_task_commands_and_cot_blocks(tmp_path, demo_input):
    cfg, report = _build(tmp_path, demo_input, vd_cot=True)
    assert report["rows"] == 24 and verify(cfg.output_path()) == []
    row = pq.read_table(cfg.output_path() / "data/train-00000-of-00003.parquet").to_pylist()[0]
    system = row["messages"][0]["content"]
    assert system.count("Task Command:\n- task name: ") == len(row["turns"])
    for m in row["messages"][2::2]:
        assert m["content"].startswith("<Task>\nUnit decode (")
        assert ("<REF>" in m["content"]) == m["content"].startswith("<Task>\nUnit decode (True)")
