"""COCO instances + captions: real sample reconciliation and every bad-input case of the walking skeleton."""

from pathlib import Path

import pytest

from converters.coco import CocoConverter, CocoOptions
from pipeline.errors import InputFileError
from pipeline.report import account_ingest, merge_acc, new_source_acc, reconcile
from tests.helpers import tiny_coco, write_image

ROOT = Path(__file__).resolve().parents[1]


def convert(paths, split="train"):
    conv = CocoConverter("src", CocoOptions(**{k: str(v) for k, v in paths.items()}, split=split), ROOT)
    plan = conv.plan()
    items = list(conv.convert([u.key for u in plan.units]))
    records, acc = account_ingest(items)
    total = {"src": {**new_source_acc(), "inputs": plan.inputs}}
    for s in plan.skips:
        total["src"]["skipped"].setdefault(s.kind, {}).setdefault(s.reason, 0)
        total["src"]["skipped"][s.kind][s.reason] += 1
    merge_acc(total, acc)
    return records, total["src"], reconcile(total)["src"]


def reasons(acc, kind):
    return acc["skipped"].get(kind, {})


@pytest.mark.shared
def test_real_coco_sample_every_annotation_accounted(coco_real):
    paths = {k: coco_real[k] for k in ("instances", "captions", "image_root")}
    records, acc, gaps = convert(paths, split="val")
    assert len(records) == 79
    assert acc["inputs"] == {"image": 79, "annotation": 624, "text": 395}
    assert gaps == {}
    assert acc["emitted"]["annotation"] + sum(reasons(acc, "annotation").values()) == 624
    assert acc["crowd_instances"] == 5
    multi = [i for r in records for i in r.instances if i.mask is not None]
    assert len(multi) == acc["emitted"]["annotation"]  # every kept annotation has a mask (polygon or RLE)
    crowd = [i for r in records for i in r.instances if i.iscrowd]
    assert all(i not in r.targetable() for r in records for i in crowd)
    texts = [t.text for r in records for t in r.texts]
    assert all(t == t.strip() and "\n" not in t for t in texts)
    assert records[0].id.startswith("src/val/")


def test_malformed_json_names_file_and_position(tmp_path):
    paths = tiny_coco(tmp_path)
    paths["instances"].write_text('{"images": [1, 2,, 3]}')
    with pytest.raises(InputFileError) as e:
        CocoConverter("src", CocoOptions(**{k: str(v) for k, v in paths.items()}), ROOT).plan()
    assert "instances.json" in str(e.value) and "line 1, column 18" in str(e.value)


def test_missing_and_corrupt_images_are_counted_skips(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
              {"id": 2, "file_name": "missing.png", "width": 64, "height": 48},
              {"id": 3, "file_name": "corrupt.png", "width": 64, "height": 48},
              {"id": 4, "file_name": "wrongsize.png", "width": 64, "height": 48}]
    paths = tiny_coco(tmp_path, images=images, annotations=[
        {"id": 20, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0, "segmentation": []}],
        captions=[{"id": 1, "image_id": 3, "caption": "x"}])
    good = (tmp_path / "images/a.png").read_bytes()
    (tmp_path / "images/corrupt.png").write_bytes(good[: len(good) // 2])
    write_image(tmp_path / "images/wrongsize.png", 10, 10)
    records, acc, gaps = convert(paths)
    assert [r.id for r in records] == ["src/train/1"]
    assert reasons(acc, "image") == {"image_missing": 1, "image_corrupt": 1, "image_size_mismatch": 1}
    assert reasons(acc, "annotation") == {"image_image_missing": 1}
    assert reasons(acc, "text") == {"image_image_corrupt": 1}
    assert gaps == {}


def test_bad_annotations_are_counted_with_reasons(tmp_path):
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "iscrowd": 0,
         "segmentation": [[1, 1, 10, 1]]},  # 2 points
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 10], "iscrowd": 0, "segmentation": []},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [50, 40, 30, 30], "iscrowd": 0, "segmentation": []},
        {"id": 4, "image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0},
        {"id": 5, "image_id": 1, "category_id": 77, "bbox": [1, 1, 5, 5], "iscrowd": 0},
        {"id": 6, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0,
         "segmentation": [[1, 1, 6, 1, 6, 6]]},
        {"id": 6, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0},  # duplicate id
        {"id": 7, "image_id": 1, "category_id": 2, "bbox": [0, 0, 64, 48], "iscrowd": 1,
         "segmentation": {"size": [48, 64], "counts": [100, 50, 64 * 48 - 150]}},  # uncompressed crowd RLE
        {"id": 8, "image_id": 1, "category_id": 2, "bbox": [0, 0, 64, 48], "iscrowd": 1,
         "segmentation": {"size": [48, 64], "counts": [100, 50]}},  # counts do not cover the image
    ]
    paths = tiny_coco(tmp_path, annotations=anns, images=[{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
                      captions=[])
    records, acc, gaps = convert(paths)
    assert reasons(acc, "annotation") == {
        "polygon_too_few_points": 1, "zero_area_box": 1, "box_out_of_bounds": 1, "unknown_image_id": 1,
        "unknown_category_id": 1, "duplicate_annotation_id": 1, "bad_rle": 1}
    inst = {i.id: i for i in records[0].instances}
    assert set(inst) == {"6", "7"}
    assert inst["7"].iscrowd and inst["7"].mask is not None and inst["7"].area == 50
    assert gaps == {}


def test_captions_control_chars_and_bad_text(tmp_path):
    caps = [{"id": 1, "image_id": 1, "caption": "A\tdog\x07 runs\u2028fast. "},
            {"id": 2, "image_id": 1, "caption": "\ud800 lone surrogate"},
            {"id": 3, "image_id": 1, "caption": " \n "},
            {"id": 4, "image_id": 1, "caption": 42},
            {"id": 4, "image_id": 1, "caption": "duplicate id"},
            {"id": 5, "image_id": 7, "caption": "unknown image"}]
    paths = tiny_coco(tmp_path, captions=caps)
    records, acc, gaps = convert(paths)
    texts = {t.id: t.text for r in records for t in r.texts}
    assert texts == {"1": "A dog runs fast."}
    assert reasons(acc, "text") == {"text_not_utf8": 1, "text_empty": 1, "text_not_a_string": 1,
                                    "duplicate_caption_id": 1, "unknown_image_id": 1}
    assert gaps == {}


def test_file_names_escaping_the_root_are_never_read(tmp_path):
    outside = write_image(tmp_path / "secret.png")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "link.png").symlink_to(outside)
    images = [{"id": 1, "file_name": "../secret.png", "width": 64, "height": 48},
              {"id": 2, "file_name": str(outside), "width": 64, "height": 48},
              {"id": 3, "file_name": "link.png", "width": 64, "height": 48}]
    paths = tiny_coco(tmp_path, images=images, annotations=[], captions=[])
    records, acc, gaps = convert(paths)
    assert records == []
    assert reasons(acc, "image") == {"unsafe_path": 3}


def test_duplicate_image_ids_and_non_utf8_file(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
              {"id": 1, "file_name": "b.png", "width": 64, "height": 48}]
    paths = tiny_coco(tmp_path, images=images, annotations=[], captions=[])
    records, acc, gaps = convert(paths)
    assert [r.image.path.endswith("a.png") for r in records] == [True]
    assert reasons(acc, "image") == {"duplicate_image_id": 1} and gaps == {}
    paths["captions"].write_bytes(b'{"annotations": [{"id": 1, "image_id": 1, "caption": "caf\xe9"}]}')
    with pytest.raises(InputFileError) as e:
        CocoConverter("src", CocoOptions(**{k: str(v) for k, v in paths.items()}), ROOT).plan()
    assert "captions.json" in str(e.value) and "not valid UTF-8 at byte" in str(e.value)
