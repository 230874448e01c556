"""RefCOCO family converter and the restricted unpickler.

No real refs(*).p is available (see ../shared/realdata/refcoco/NOT_FOUND.md): the refs, instances.json and images
used here are FIXTURES written to the published REFER format by tests/fixtures_sources.py; the one real ref quoted in
the REFER README (documented_examples.json) is checked to load through the same code path.
"""

from __future__ import annotations

import json
import os
import pickle
from collections import Counter
from pathlib import Path

import pytest
from fixtures_sources import assert_reconciled, py2_pickle, refcoco_fixture

from converters import REGISTRY, build_converter
from converters._pickle import load_data_pickle
from converters.refcoco import RefCocoConverter, RefCocoOptions
from pipeline.errors import ConfigError, InputFileError
from pipeline.records import Record, Skip


def _conv(fx: dict, **opts) -> RefCocoConverter:
    return RefCocoConverter("refcoco_unc", RefCocoOptions(refs=str(fx["refs"]), instances=str(fx["instances"]),
                                                          image_root=str(fx["image_root"]), **opts), Path("."))


def _run(conv) -> tuple:
    plan = conv.plan()
    return plan, list(conv.convert([u.key for u in plan.units]))


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvilEval:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


# -- restricted unpickler ------------------------------------------------------------------------------------------
def test_py2_pickle_loads_with_text_decoded(tmp_path):
    p = tmp_path / "refs.p"
    p.write_bytes(py2_pickle([{"raw": "caf\u00e9", "ids": (1, 2**40), "x": 1.5, "n": None, "ok": True}]))
    assert load_data_pickle(p) == [{"raw": "caf\u00e9", "ids": (1, 2**40), "x": 1.5, "n": None, "ok": True}]


def test_latin1_bytes_that_are_not_utf8_survive(tmp_path):
    p = tmp_path / "refs.p"
    p.write_bytes(b"\x80\x02](U\x04caf\xe9e.")  # PROTO 2, [ SHORT_BINSTRING 'caf\xe9' ] : Latin-1, not UTF-8
    assert load_data_pickle(p) == ["caf\u00e9"]


def test_documented_real_ref_round_trips(realdata, tmp_path):
    doc = json.loads((realdata / "refcoco/documented_examples.json").read_text())["refs_unc_p_element_0"]
    p = tmp_path / "refs(unc).p"
    p.write_bytes(py2_pickle([doc]))
    loaded = load_data_pickle(p)[0]
    assert loaded == doc and loaded["sentences"][0]["tokens"] == ["the", "lady", "with", "the", "blue", "shirt"]


@pytest.mark.parametrize("evil_cls, name", [(_Evil, "system"), (_EvilEval, "eval")])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, evil_cls, name, protocol):
    marker = tmp_path / "pwned"
    p = tmp_path / "refs(unc).p"
    p.write_bytes(pickle.dumps([{"ref_id": 0, "payload": evil_cls(marker)}], protocol=protocol))
    with pytest.raises(InputFileError) as e:
        load_data_pickle(p)
    assert str(p) in str(e.value) and name in str(e.value) and "global" in str(e.value)
    assert not marker.exists()


def test_malicious_pickle_refused_through_converter_plan(tmp_path):
    fx = refcoco_fixture(tmp_path, n_images=1)
    marker = tmp_path / "pwned"
    fx["refs"].write_bytes(pickle.dumps([_Evil(marker)], protocol=2))
    with pytest.raises(InputFileError, match=r"refs\(unc\)\.p.*posix\.system|refs\(unc\)\.p.*nt\.system"):
        _conv(fx).plan()
    assert not marker.exists()


def test_truncated_pickle_names_the_file(tmp_path):
    p = tmp_path / "refs(unc).p"
    good = py2_pickle([{"ref_id": i, "sentences": [{"sent": "x" * 50}]} for i in range(20)])
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputFileError, match="truncated") as e:
        load_data_pickle(p)
    assert e.value.file == str(p)


def test_not_a_pickle_names_the_file(tmp_path):
    p = tmp_path / "refs(unc).p"
    p.write_bytes(b"this is a zip file, not a pickle")
    with pytest.raises(InputFileError) as e:
        load_data_pickle(p)
    assert e.value.file == str(p)


# -- conversion ----------------------------------------------------------------------------------------------------
def test_refcoco_fixture_converts_with_every_split(tmp_path):
    fx = refcoco_fixture(tmp_path, n_images=4)
    plan, out = _run(_conv(fx))
    recs = [r for r in out if isinstance(r, Record)]
    assert [u.key for u in plan.units] == ["testA/103", "testB/104", "train/101", "val/102"]
    assert sorted(r.split for r in recs) == ["testA", "testB", "train", "val"]
    r = next(r for r in recs if r.split == "train")
    assert r.id == "refcoco_unc/train/101" and r.image.path.endswith("COCO_train2014_000000000101.jpg")
    assert [i.id for i in r.instances] == ["1000", "1001", "1002"]  # all annotations of the image, referred or not
    assert r.instance("1000").box == (2.0, 3.0, 22.0, 33.0) and r.instance("1000").mask is not None
    assert [(t.id, t.kind, t.text, t.instance_ids) for t in r.texts] == [
        ("0:0", "refexp", "the left one", ["1000"]), ("0:1", "refexp", "obj 0 caf\u00e9", ["1000"]),
        ("1:2", "refexp", "the left one", ["1001"]), ("1:3", "refexp", "obj 1 caf\u00e9", ["1001"])]
    assert r.provenance["ref_ids"] == "0,1" and r.skips == []
    table = assert_reconciled(plan, out)
    assert table == {"annotation": (12, 12, 0), "image": (4, 4, 0), "text": (16, 16, 0)}


def test_splits_option_and_raw_text(tmp_path):
    fx = refcoco_fixture(tmp_path, n_images=4)
    plan, out = _run(_conv(fx, splits=["testA", "testB"], text_field="raw"))
    assert sorted(r.split for r in out) == ["testA", "testB"]
    assert out[0].texts[0].text == "The LEFT one"
    assert plan.inputs == {"text": 8, "image": 2, "annotation": 6}


def test_image_comes_from_image_id_not_ref_file_name(tmp_path):
    fx = refcoco_fixture(tmp_path, n_images=1)
    assert fx["refs_data"][0]["file_name"].endswith("_0.jpg")  # the ref's own name is not a file
    conv = _conv(fx, file_pattern="sub/{image_id}.png")
    _, out = _run(conv)
    assert isinstance(out[0], Skip) and out[0].reason == "image_missing" and out[0].detail.endswith("sub/101.png")


def test_refs_pointing_at_missing_annotation_are_counted_skips(tmp_path):
    fx = refcoco_fixture(tmp_path, n_images=2)
    refs = fx["refs_data"]
    refs[0]["ann_id"] = 999999  # no such annotation
    refs[1]["ann_id"] = 1003  # an annotation of the other image
    refs[2]["image_id"] = 777  # no such image
    fx["refs"].write_bytes(py2_pickle(refs))
    plan, out = _run(_conv(fx))
    reasons = Counter(s.reason for s in plan.skips) + Counter(s.reason for r in out for s in r.skips)
    assert reasons == {"unknown_annotation": 2, "annotation_on_other_image": 2, "unknown_image_id": 2}
    assert assert_reconciled(plan, out)["text"] == (8, 2, 6)


def test_missing_image_skips_its_annotations_and_texts(tmp_path):
    fx = refcoco_fixture(tmp_path, n_images=2)
    (fx["image_root"] / "COCO_train2014_000000000102.jpg").unlink()
    plan, out = _run(_conv(fx))
    skips = [s for s in out if isinstance(s, Skip)]
    assert Counter((s.kind, s.reason) for s in skips) == {("image", "image_missing"): 1,
                                                          ("annotation", "image_image_missing"): 3,
                                                          ("text", "image_image_missing"): 4}
    assert_reconciled(plan, out)


def test_bad_annotation_makes_its_refs_skips(tmp_path):
    fx = refcoco_fixture(tmp_path, n_images=1)
    fx["inst_data"]["annotations"][0]["bbox"] = [50.0, 40.0, 30.0, 30.0]  # leaves the 64x48 image
    fx["instances"].write_text(json.dumps(fx["inst_data"]))
    plan, out = _run(_conv(fx))
    assert Counter(s.reason for s in out[0].skips) == {"box_out_of_bounds": 1, "target_annotation_skipped": 2}
    assert assert_reconciled(plan, out) == {"annotation": (3, 2, 1), "image": (1, 1, 0), "text": (4, 2, 2)}


def test_registry_keys_and_config_errors(tmp_path):
    fx = refcoco_fixture(tmp_path, n_images=1)
    opts = {"refs": str(fx["refs"]), "instances": str(fx["instances"]), "image_root": str(fx["image_root"])}
    for key in ("refcoco", "refcoco+", "refcocog"):
        conv = build_converter("src", key, opts, tmp_path, "sources.yaml")
        assert conv.name == key and isinstance(conv, REGISTRY[key])
        assert next(iter(conv.convert([conv.plan().units[0].key]))).provenance["converter"] == f"{key}@1"
    with pytest.raises(ConfigError, match="file_pattern"):
        build_converter("src", "refcoco", {**opts, "file_pattern": "{name}.jpg"}, tmp_path, "sources.yaml")
    with pytest.raises(ConfigError, match="refs"):
        build_converter("src", "refcoco", {**opts, "refs": str(tmp_path / "nope.p")}, tmp_path, "sources.yaml")


def test_converter_pickles_without_index_and_matches(tmp_path):
    fx = refcoco_fixture(tmp_path, n_images=2)
    conv = _conv(fx)
    plan = conv.plan()
    clone = pickle.loads(pickle.dumps(conv))
    assert clone._index is None
    keys = [u.key for u in plan.units]
    assert [r.model_dump() for r in clone.convert(keys)] == [r.model_dump() for r in conv.convert(keys)]
