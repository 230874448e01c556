"""Converter throughput: records/s per converter on scaled inputs, with and without the image read, + peak RSS.

    python bench/bench_converters.py            # full: 50,000 refexps, 30,000 Flickr sentences, 10,000 PSG images
    python bench/bench_converters.py --quick    # small inputs, < 30 s

Inputs are generated into a temp dir by duplicating the test fixtures (tests/fixtures_sources.py) and, where present,
the real samples in ../shared/realdata (Flickr sentences, COCO panoptic image 439180); image files are hard links to
one real-size JPEG so the "with image" figure includes a realistic read + sha256 + full decode per record.
Phases, each timed separately: `plan` (whole files read and indexed), `convert, no image` (the converter with its
`image_ref` replaced by a precomputed ImageRef: annotation work only, PNG decoding included for PSG / panoptic),
`convert + image` (the real converter, on the first `--image-units` units). Each converter runs in its own child
process so the peak RSS (resource.getrusage ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
REALDATA = Path(os.environ.get("REFFORGE_SHARED", ROOT.parent / "shared")) / "realdata"

from fixtures_sources import flickr_xml, psg_fixture, refcoco_fixture, write_image  # noqa: E402

from pipeline.images import load_image_ref  # noqa: E402
from pipeline.records import Record  # noqa: E402

SCALE = {"full": {"refcoco": 12_500, "flickr30k": 6_000, "psg": 10_000, "coco_panoptic": 2_000},
         "quick": {"refcoco": 500, "flickr30k": 200, "psg": 200, "coco_panoptic": 50}}  # images per source


def report(row: dict) -> None:
    sys.stdout.write(json.dumps(row) + "\n")
    sys.stdout.flush()


def _link_many(src: Path, dests: list[Path]) -> None:
    for d in dests:
        d.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, d)


def _base_jpeg(tmp: Path) -> Path:
    real = REALDATA / "images/coco_val2017/000000439180.jpg"  # 640 x 360 real photo, when available
    dst = tmp / "base.jpg"
    if real.is_file():
        shutil.copyfile(real, dst)
    else:
        write_image(dst, 640, 480)
    return dst


def build(name: str, n: int, tmp: Path):
    """Scaled inputs for one converter -> (converter class, options dict)."""
    from PIL import Image

    base = _base_jpeg(tmp)
    with Image.open(base) as im:
        w, h = im.size
    if name == "refcoco":
        from converters.refcoco import RefCocoConverter
        fx = refcoco_fixture(tmp, image_ids=list(range(1, n + 1)), width=w, height=h, write_images=False)
        _link_many(base, [tmp / "train2014" / f"COCO_train2014_{i:012d}.jpg" for i in range(1, n + 1)])
        return RefCocoConverter, {k: str(fx[k]) for k in ("refs", "instances", "image_root")}
    if name == "flickr30k":
        from converters.flickr30k import Flickr30kConverter
        real = sorted((REALDATA / "flickr30k_entities/Sentences").glob("*.txt"))
        texts = [p.read_text() for p in real] or ["[/EN#1/people A man] walks [/EN#2/animals a dog] .\n" * 5]
        (tmp / "S").mkdir()
        (tmp / "A").mkdir()
        for i in range(n):
            text = texts[i % len(texts)]
            (tmp / "S" / f"{i}.txt").write_text(text)
            chains = sorted({c for c in re.findall(r"/EN#(\d+)/", text) if c != "0"})
            objs = [{"names": [c], "box": (1 + 10 * k, 1 + 5 * k, w // 2 + k, h // 2 + k)} for k, c in enumerate(chains)]
            (tmp / "A" / f"{i}.xml").write_text(flickr_xml(f"{i}.jpg", w, h, objs))
        _link_many(base, [tmp / "img" / f"{i}.jpg" for i in range(n)])
        return Flickr30kConverter, {"sentences": str(tmp / "S"), "annotations": str(tmp / "A"),
                                    "image_root": str(tmp / "img")}
    if name == "psg":
        from converters.psg import PsgConverter
        cls = json.loads((REALDATA / "psg/psg_excerpt.json").read_text()) if REALDATA.is_dir() else None
        names = (cls["thing_classes"], cls["stuff_classes"], cls["predicate_classes"]) if cls else \
            ([f"t{i}" for i in range(80)], [f"s{i}" for i in range(53)], [f"p{i}" for i in range(56)])
        fx = psg_fixture(tmp / "fx", *names, n_images=1, width=w, height=h)
        doc, rec = fx["doc"], fx["doc"]["data"][0]
        img, png = fx["image_root"] / rec["file_name"], fx["panoptic_root"] / rec["pan_seg_file_name"]
        shutil.copyfile(base, img)
        doc["data"] = [{**rec, "image_id": str(10_000 + i), "file_name": f"train2017/{i:012d}.jpg",
                        "pan_seg_file_name": f"panoptic_train2017/{i:012d}.png"} for i in range(n)]
        _link_many(img, [tmp / "coco/train2017" / f"{i:012d}.jpg" for i in range(n)])
        _link_many(png, [tmp / "coco/panoptic_train2017" / f"{i:012d}.png" for i in range(n)])
        (tmp / "psg.json").write_text(json.dumps(doc))
        return PsgConverter, {"psg_json": str(tmp / "psg.json"), "image_root": str(tmp / "coco"),
                              "panoptic_root": str(tmp / "coco")}
    if name == "coco_panoptic":
        from converters.coco_panoptic import CocoPanopticConverter
        src = REALDATA / "coco_panoptic/annotations"
        doc = json.loads((src / "panoptic_val2017.json").read_text())
        im0, ann0 = doc["images"][0], doc["annotations"][0]
        doc["images"] = [{**im0, "id": i, "file_name": f"{i:012d}.jpg"} for i in range(n)]
        doc["annotations"] = [{**ann0, "image_id": i, "file_name": f"{i:012d}.png"} for i in range(n)]
        (tmp / "pan.json").write_text(json.dumps(doc))
        shutil.copyfile(src / "panoptic_val2017" / ann0["file_name"], tmp / "p.png")
        _link_many(tmp / "p.png", [tmp / "pan" / f"{i:012d}.png" for i in range(n)])
        _link_many(base, [tmp / "img" / f"{i:012d}.jpg" for i in range(n)])
        return CocoPanopticConverter, {"panoptic_json": str(tmp / "pan.json"), "panoptic_root": str(tmp / "pan"),
                                       "image_root": str(tmp / "img")}
    raise SystemExit(f"unknown converter {name}")


def run_one(name: str, n: int, image_units: int) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        cls, opts = build(name, n, tmp)
        gen_s = time.perf_counter() - t0
        conv = cls(name, cls.Options(**opts), tmp)
        t0 = time.perf_counter()
        plan = conv.plan()
        plan_s = time.perf_counter() - t0
        keys = [u.key for u in plan.units]
        fixed = load_image_ref(tmp, "base.jpg")
        conv.image_ref = lambda *a, **k: fixed  # annotation work only: no image read / hash / decode
        t0 = time.perf_counter()
        out = list(conv.convert(keys))
        noimg_s = time.perf_counter() - t0
        recs = [r for r in out if isinstance(r, Record)]
        items = sum(len(r.instances) + len(r.texts) + len(r.relations) for r in recs)
        del conv.image_ref
        sub = keys[:image_units]
        t0 = time.perf_counter()
        n_img = sum(isinstance(r, Record) for r in conv.convert(sub))
        img_s = time.perf_counter() - t0
        report({"converter": name, "units": len(keys), "records": len(recs), "texts": plan.inputs.get("text", 0),
                "items": items, "gen_s": round(gen_s, 2), "plan_s": round(plan_s, 2),
                "convert_noimage_s": round(noimg_s, 2), "records_per_s_noimage": round(len(recs) / noimg_s),
                "items_per_s_noimage": round(items / noimg_s), "image_units": len(sub),
                "records_per_s_with_image": round(n_img / img_s) if n_img else 0,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small inputs (< 30 s)")
    ap.add_argument("--only", help="run one converter in this process (used by the parent)")
    ap.add_argument("--n", type=int, help="images for --only")
    ap.add_argument("--image-units", type=int, default=None, help="units timed with the image read (default 2000)")
    a = ap.parse_args()
    scale = SCALE["quick" if a.quick else "full"]
    image_units = a.image_units or (100 if a.quick else 2000)
    if a.only:
        run_one(a.only, a.n or scale[a.only], image_units)
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name, n in scale.items():
        if name == "coco_panoptic" and not (REALDATA / "coco_panoptic").is_dir():
            continue
        subprocess.run([sys.executable, __file__, "--only", name, "--n", str(n), "--image-units", str(image_units)],
                       check=True, env=env)


if __name__ == "__main__":
    main()
