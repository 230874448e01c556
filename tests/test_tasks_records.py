"""Records the task tests run the builders on, and tests of those inputs themselves.

REAL: COCO val2017 (instances + captions + keypoints, via conftest), the COCO panoptic sample, the Flickr30k
Entities sentences and images, and the PSG excerpt's segments / relations / class lists. FIXTURE: the Flickr30k
xml boxes (none are real), the PSG excerpt's image and panoptic PNG (not available: segments are painted as their
real boxes, largest first), the PSG / RefCOCO fixture files of tests/fixtures_sources.py, and one hand-built record
with nested grounded spans.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fixtures_sources import flickr_xml, psg_fixture, refcoco_fixture, write_image, write_panoptic_png
from PIL import Image

from converters.coco_panoptic import CocoPanopticConverter, CocoPanopticOptions
from converters.flickr30k import Flickr30kConverter, Flickr30kOptions
from converters.psg import PsgConverter, PsgOptions
from converters.refcoco import RefCocoConverter, RefCocoOptions
from pipeline import rle as rle_utils
from pipeline.records import RLE, ImageRef, Instance, Record, Span, Text


def _records(conv) -> list[Record]:
    plan = conv.plan()
    return [r for r in conv.convert([u.key for u in plan.units]) if isinstance(r, Record)]


def flickr_with_boxes(realdata: Path, tmp: Path) -> list[Record]:
    """REAL sentences + images, FIXTURE xml: every chain of every sentence gets one or two boxes (chains whose
    id is odd get two), the notvisual chain none, so multi-box chains and ungrounded phrases both occur."""
    from converters.flickr30k import parse_sentence

    sentences = realdata / "flickr30k_entities/Sentences"
    ann = tmp / "Annotations"
    ann.mkdir(parents=True, exist_ok=True)
    for path in sorted(sentences.glob("*.txt")):
        with Image.open(realdata / "images/flickr30k" / f"{path.stem}.jpg") as im:
            w, h = im.size
        chains = []
        for line in path.read_text().splitlines():
            chains += [c for _, _, c, t in parse_sentence(line)[1] if c != "0" and c not in chains]
        objects = []
        for k, c in enumerate(chains):
            x = 1 + (k * 37) % max(1, w // 2)
            objects.append({"names": [c], "box": (x, 1 + (k * 23) % max(1, h // 2), x + w // 3, h // 3 + 10)})
            if int(c) % 2:
                objects.append({"names": [c], "box": (w // 2, h // 2, w - 1, h - 1)})
        (ann / f"{path.stem}.xml").write_text(flickr_xml(f"{path.stem}.jpg", w, h, objects))
    return _records(Flickr30kConverter("flickr", Flickr30kOptions(
        sentences=str(sentences), annotations=str(ann), image_root=str(realdata / "images/flickr30k")), Path(".")))


def flickr_plain(realdata: Path) -> list[Record]:
    """REAL sentences + images, no xml: every phrase ungrounded."""
    return _records(Flickr30kConverter("flickr", Flickr30kOptions(
        sentences=str(realdata / "flickr30k_entities/Sentences"), image_root=str(realdata / "images/flickr30k")),
        Path(".")))


def panoptic_real(realdata: Path) -> list[Record]:
    base = realdata / "coco_panoptic/annotations"
    return _records(CocoPanopticConverter("coco_panoptic", CocoPanopticOptions(
        panoptic_json=str(base / "panoptic_val2017.json"), panoptic_root=str(base / "panoptic_val2017"),
        image_root=str(realdata / "images/coco_val2017")), Path(".")))


def psg_real(realdata: Path, tmp: Path) -> list[Record]:
    """The REAL PSG excerpt (segments, boxes, relations, class lists) with a FIXTURE image and panoptic PNG."""
    doc = json.loads((realdata / "psg/psg_excerpt.json").read_text())
    rec = doc["data"][0]
    h, w = rec["height"], rec["width"]
    ids = np.zeros((h, w), dtype=np.int64)
    order = sorted(range(len(rec["segments_info"])), key=lambda k: -rec["segments_info"][k]["area"])
    for k in order:
        x1, y1, x2, y2 = (int(v) for v in rec["annotations"][k]["bbox"])
        ids[y1:y2, x1:x2] = rec["segments_info"][k]["id"]
    for k, seg in enumerate(rec["segments_info"]):
        seg["area"] = int((ids == seg["id"]).sum())
        ys, xs = np.nonzero(ids == seg["id"])
        rec["annotations"][k]["bbox"] = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
    write_image(tmp / "coco" / rec["file_name"], w, h, seed=1)
    write_panoptic_png(tmp / "coco" / rec["pan_seg_file_name"], ids)
    (tmp / "psg.json").write_text(json.dumps(doc))
    return _records(PsgConverter("psg", PsgOptions(psg_json=str(tmp / "psg.json"), image_root=str(tmp / "coco"),
                                                   panoptic_root=str(tmp / "coco")), Path(".")))


def psg_fixture_records(realdata: Path, tmp: Path) -> list[Record]:
    doc = json.loads((realdata / "psg/psg_excerpt.json").read_text())
    fx = psg_fixture(tmp, doc["thing_classes"], doc["stuff_classes"], doc["predicate_classes"], n_images=2)
    return _records(PsgConverter("psg", PsgOptions(psg_json=str(fx["psg_json"]), image_root=str(fx["image_root"]),
                                                   panoptic_root=str(fx["panoptic_root"])), Path(".")))


def refcoco_records(tmp: Path) -> list[Record]:
    fx = refcoco_fixture(tmp, n_images=2)
    return _records(RefCocoConverter("refcoco", RefCocoOptions(refs=str(fx["refs"]), instances=str(fx["instances"]),
                                                               image_root=str(fx["image_root"])), Path(".")))


def nested_record() -> Record:
    """FIXTURE: 'A man (with a dog (on a leash)) ...' as nested grounded spans, plus a crossing span and a phrase
    with unsafe characters."""
    h, w = 40, 60
    mask = np.zeros((h, w), dtype=bool)
    mask[5:30, 5:25] = True
    text = "A man with a dog on a leash walks past [a] bench ."
    insts = [Instance(id="m", category="man", box=(5.0, 5.0, 25.0, 30.0), mask=rle_utils.encode(mask)),
             Instance(id="d", category="dog", box=(30.0, 20.0, 45.0, 35.0)),
             Instance(id="l", category="leash", box=(20.0, 15.0, 35.0, 25.0)),
             Instance(id="b", category="bench", box=(40.0, 25.0, 59.0, 39.0))]

    def span(phrase: str, ids: list[str]) -> Span:
        start = text.index(phrase)
        return Span(start=start, end=start + len(phrase), instance_ids=ids, chain_id="c")

    spans = [span("A man with a dog on a leash", ["m"]), span("a dog on a leash", ["d"]), span("a leash", ["l"]),
             span("leash walks", ["b"]), span("[a] bench", ["b"])]
    return Record(id="fixture/val/nested", source="fixture", split="val",
                  image=ImageRef(path="/nonexistent.jpg", sha256="0" * 64, width=w, height=h), instances=insts,
                  texts=[Text(id="t0", kind="grounded_caption", text=text, spans=spans)])


def rect_instance(iid: str, box: tuple[int, int, int, int], h: int, w: int, category: str = "thing") -> Instance:
    m = np.zeros((h, w), dtype=bool)
    m[box[1]:box[3], box[0]:box[2]] = True
    return Instance(id=iid, category=category, box=tuple(float(v) for v in box), mask=rle_utils.encode(m))


# -- the inputs are what the task tests assume -----------------------------------------------------------------------
def test_flickr_fixture_xml_grounds_multi_box_chains(realdata, tmp_path):
    recs = flickr_with_boxes(realdata, tmp_path)
    spans = [s for r in recs for t in r.texts for s in t.spans]
    assert len(recs) == 5 and len(spans) == 72
    assert any(len(s.instance_ids) >= 2 for s in spans) and any(len(s.instance_ids) == 1 for s in spans)
    assert all(s.instance_ids == [] for s in spans if s.phrase_type == "notvisual")


def test_psg_real_excerpt_with_painted_masks_keeps_every_relation(realdata, tmp_path):
    (rec,) = psg_real(realdata, tmp_path)
    assert len(rec.instances) == 7 and len(rec.relations) == 6 and rec.skips == []
    assert {r.predicate for r in rec.relations} == {"beside", "standing on", "holding", "in front of", "over"}
    assert sum(not i.isthing for i in rec.instances) == 4


def test_nested_record_spans_nest():
    rec = nested_record()
    t = rec.texts[0]
    got = [t.text[s.start:s.end] for s in t.spans][:3]
    assert got == ["A man with a dog on a leash", "a dog on a leash", "a leash"]


def test_rect_instance_mask_matches_box():
    inst = rect_instance("x", (2, 3, 10, 7), 12, 16)
    assert rle_utils.bbox_xyxy(inst.mask) == inst.box and isinstance(inst.mask, RLE)
