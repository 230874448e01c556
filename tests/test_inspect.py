"""`refforge inspect`: a static offline page whose overlays match the targets, checked in a real headless Chromium."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import rle as rle_utils
from pipeline.inspect_html import PALETTE, REGION_COLOURS, write_inspect_page
from pipeline.schema import normalise_region, normalise_target
from pipeline.writer import write_parquet

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
W, H = 160, 120


def _mask(x1, y1, x2, y2, hole=None) -> dict:
    m = np.zeros((H, W), np.uint8)
    m[y1:y2, x1:x2] = 1
    if hole:
        hx1, hy1, hx2, hy2 = hole
        m[hy1:hy2, hx1:hx2] = 0
    r = rle_utils.encode(m)
    return {"size": list(r.size), "counts": r.counts}


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _row(i: int, embed: bool, image_path: str = "") -> dict:
    targets = [
        {"turn": 2, "phrase": "two dogs", "index": 0, "unit": "box", "instance_id": "1", "box": [10, 10, 60, 50],
         "grid_tokens": ["<g_2_2>", "<g_12_11>"]},
        {"turn": 2, "phrase": "two dogs", "index": 1, "unit": "box", "instance_id": "2", "box": [80, 20, 150, 90]},
        {"turn": 4, "phrase": "the cat", "index": 0, "unit": "mask", "instance_id": "3", "box": [20, 60, 100, 110],
         "mask": _mask(20, 60, 100, 110, hole=(40, 70, 60, 90)), "grid_tokens": ["<g_17_5>", "<g_18_6>"],
         "grid_iou": 0.9},
        {"turn": 4, "phrase": "its nose", "index": 0, "unit": "point", "instance_id": "3", "points": [50, 80]},
        {"turn": 6, "phrase": "the person", "index": 0, "unit": "box, keypoint", "instance_id": "4",
         "box": [100, 10, 150, 100], "points": [110, 20, 2, 120, 30, 1, 0, 0, 0]},
    ]
    regions = [
        {"turn": 3, "kind": "box", "instance_id": "3", "box": [20, 60, 100, 110]},
        {"turn": 5, "kind": "point", "instance_id": "4", "box": [100, 10, 150, 100], "points": [120, 50]},
        {"turn": 5, "kind": "scribble", "instance_id": "1", "box": [10, 10, 60, 50],
         "points": [12, 12, 30, 30, 55, 40]},
        {"turn": 5, "kind": "mask", "instance_id": "2", "box": [80, 20, 150, 90], "mask": _mask(80, 20, 150, 90)},
    ]
    messages = [
        {"role": "system", "content": "You are a grounding assistant."},
        {"role": "user", "content": "Find the dogs in <image>."},
        {"role": "assistant", "content": "There are <Phrase>two dogs</Phrase>(<Unit>box</Unit>[0]<REF>[1]<REF>)."},
        {"role": "user", "content": "What is <region>?"},
        {"role": "assistant", "content": "It is <Phrase>the cat</Phrase>(<Unit>mask</Unit>[0]<REF>) with "
                                         "<Phrase>its nose</Phrase>(<Unit>point</Unit>[0]<REF>) & no <Phrase>bird"
                                         "</Phrase>."},
        {"role": "user", "content": "Compare <region>, <region> and <region>."},
        {"role": "assistant", "content": "<Phrase>the person</Phrase>(<Unit>box, keypoint</Unit>[0]<REF>)"},
    ]
    return {
        "id": f"synth/train/{i}#0", "source": "synth", "split": "train",
        "image": {"bytes": _png(i) if embed else None, "path": image_path or f"{i}.png"},
        "width": W, "height": H, "messages": messages,
        "regions": [normalise_region(r) for r in regions], "targets": [normalise_target(t) for t in targets],
        "turns": [{"task": "rec", "template_id": "rec/user/x", "answer_template_id": "rec/answer/y"}] * 3,
        "provenance": {"record_id": f"synth/train/{i}", "converter": "test@1", "annotation_ids": ["1"], "seed": 0,
                       "output_format": "trp", "pipeline_version": "0", "templates_digest": "", "proposal_backend":
                       "annotations", "negative_miner": "offline", "details": json.dumps({"grid": {"grid_size": 8}})},
    }


def _corpus(tmp: Path, n: int = 3, embed: bool = True) -> Path:
    corpus = tmp / "corpus"
    rows = []
    for i in range(n):
        path = ""
        if not embed:
            path = str(tmp / "imgs" / f"{i}.png")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(_png(i))
        rows.append(_row(i, embed, path))
    sha, nrows, nbytes = write_parquet(rows, corpus / "data" / "train-00000-of-00001.parquet")
    (corpus / "manifest.json").write_text(json.dumps({"rows": nrows, "shards": [
        {"shard": "train-00000-of-00001", "split": "train", "rows": nrows, "sha256": sha, "bytes": nbytes}]}))
    return corpus


class _Dom(HTMLParser):
    """Collects (tag, attrs) of every element, in document order."""

    def __init__(self):
        super().__init__()
        self.els: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.els.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def count(self, tag: str, cls: str) -> int:
        return sum(1 for t, a in self.els if t == tag and cls in (a.get("class") or "").split())


def _dom(html: str) -> _Dom:
    d = _Dom()
    d.feed(html)
    return d


def _shoelace(d: str) -> float:
    total = 0.0
    for sub in re.findall(r"M([^MZ]+)Z", d):
        pts = np.array([[float(v) for v in p.split(",")] for p in sub.replace("L", " ").split()])
        x, y = pts[:, 0], pts[:, 1]
        total += 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return abs(total)


def test_page_is_offline_deterministic_and_draws_every_target(tmp_path):
    corpus = _corpus(tmp_path)
    page = write_inspect_page(corpus, n=2)
    assert page == corpus / "inspect" / "index.html"
    html = page.read_text()
    assert write_inspect_page(corpus, n=2).read_text() == html  # same corpus, same bytes
    outside_data = re.sub(r'"data:[^"]*"', '""', html)
    assert "http" not in outside_data and "://" not in outside_data and "url(" not in outside_data
    hrefs = re.findall(r'(?:href|src)="([^"]*)"', html)
    assert hrefs and all(h.startswith("data:image/png;base64,") for h in hrefs)
    dom = _dom(html)
    assert dom.count("section", "sample") == 2
    assert dom.count("g", "target") == 2 * 5 and dom.count("g", "region") == 2 * 4
    assert dom.count("rect", "ov-box") == 2 * 3  # two boxes + the box of "box, keypoint"
    assert dom.count("path", "ov-mask") == 2 and dom.count("circle", "ov-point") == 2
    assert dom.count("circle", "ov-kp") == 2 * 2  # the keypoint with v=0 is not drawn
    assert dom.count("rect", "ov-grid") == 2 * 4
    assert dom.count("rect", "ov-rbox") == 2 and dom.count("circle", "ov-rpoint") == 2
    assert dom.count("polyline", "ov-rscribble") == 2 and dom.count("path", "ov-rmask") == 2
    # the grid cell <g_2_2> of an 8x8 grid over 160x120 is x 40..60, y 30..45
    assert '<rect class="ov-grid" x="40" y="30" width="20" height="15"/>' in html


def test_mask_contour_has_the_mask_area_hole_included(tmp_path):
    html = write_inspect_page(_corpus(tmp_path, n=1), n=1).read_text()
    d = _dom(html)
    paths = [a["d"] for t, a in d.els if t == "path" and a.get("class") == "ov-mask"]
    area = 80 * 50 - 20 * 20
    assert len(paths) == 1 and paths[0].count("M") == 2  # outer contour + hole
    assert abs(_shoelace(paths[0]) - area) / area < 0.06


def test_dialogue_colours_match_overlays(tmp_path):
    html = write_inspect_page(_corpus(tmp_path, n=1), n=1).read_text()
    colour = {}
    for tag, a in _dom(html).els:
        if "data-t" in a:
            c = re.search(r"--c:(#[0-9a-f]{6})", a["style"]).group(1)
            colour.setdefault(a["data-t"], set()).add(c)
    assert sorted(colour, key=int) == [str(k) for k in range(5)]
    for k, cs in colour.items():  # overlay group, phrase, <REF> and legend chip share one colour
        assert cs == {PALETTE[int(k)]}, (k, cs)
    spans = re.findall(r'<span class="ref" data-t="(\d)"[^>]*>\[(\d)\]&lt;REF&gt;</span>', html)
    assert spans == [("0", "0"), ("1", "1"), ("2", "0"), ("3", "0"), ("4", "0")]
    regs = re.findall(r'<span class="reg" data-r="(\d)" style="--c:(#[0-9a-f]{6})">&lt;region&gt;', html)
    assert regs == [(str(j), REGION_COLOURS[j]) for j in range(4)]
    assert '<span class="ph none"><i>&lt;Phrase&gt;</i>bird<i>&lt;/Phrase&gt;</i></span>' in html  # ungrounded
    assert "with <span" in html and "&amp; no" in html  # plain text kept and escaped


def test_path_only_images_are_copied_next_to_the_page(tmp_path):
    corpus = _corpus(tmp_path, n=2, embed=False)
    out = tmp_path / "view" / "page.html"
    assert write_inspect_page(corpus, n=5, out=out) == out
    hrefs = re.findall(r'<image href="([^"]*)"', out.read_text())
    assert len(hrefs) == 2 and all(h.startswith("images/") for h in hrefs)
    for i, h in enumerate(hrefs):
        assert (out.parent / h).read_bytes() == _png(i)


def _chromium() -> str | None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required under CI=true (apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return exe


def _run_chromium(exe: str, profile: Path, *args: str, timeout: int = 90) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo_corpus(tmp_path_factory):
    from pipeline.config import load_config
    from pipeline.demo import generate
    from pipeline.runner import build
    from tests.helpers import write_config

    tmp = tmp_path_factory.mktemp("inspect_demo")
    generate(tmp / "in", n_images=4, seed=3)
    cfg = load_config(write_config(tmp, {"instances": tmp / "in/annotations/instances.json",
                                         "captions": tmp / "in/annotations/captions.json",
                                         "image_root": tmp / "in/images"}, shard_size=2))
    build(cfg)
    return cfg.output_path()


def test_real_chromium_renders_every_overlay_of_a_built_corpus(tmp_path, demo_corpus):
    import pyarrow.parquet as pq

    exe = _chromium()
    page = write_inspect_page(demo_corpus, n=6, out=tmp_path / "page" / "index.html")
    rows = [r for p in sorted((demo_corpus / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()][:6]
    units = Counter(t["unit"] for r in rows for t in r["targets"])
    assert units["box"] and units["mask"], units  # the demo corpus exercises both overlay kinds
    proc = _run_chromium(exe, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _dom(proc.stdout)
    assert dom.count("section", "sample") == len(rows)
    assert dom.count("g", "target") == sum(len(r["targets"]) for r in rows)
    assert dom.count("rect", "ov-box") == units["box"]
    assert dom.count("path", "ov-mask") == units["mask"]
    assert dom.count("rect", "ov-grid") == sum(len(t["grid_tokens"]) for r in rows for t in r["targets"])
    assert all(a.get("d") for t, a in dom.els if t == "path" and a.get("class") == "ov-mask")
    images = [a["href"] for t, a in dom.els if t == "image"]
    assert len(images) == len(rows) and all(h.startswith("data:image/") for h in images)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "inspect.png"
    shot.unlink(missing_ok=True)
    proc = _run_chromium(exe, tmp_path / "profile", "--window-size=1280,1600", f"--screenshot={shot}",
                         "--hide-scrollbars", page.as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (1600, 1280)
    # the same page with the overlay layers hidden: the overlays paint pixels over the images, nothing else moves
    bare = page.with_name("bare.html")
    bare.write_text(page.read_text().replace("</style>", ".target,.region{display:none}</style>"))
    bare_shot = tmp_path / "bare.png"
    proc = _run_chromium(exe, tmp_path / "profile", "--window-size=1280,1600", f"--screenshot={bare_shot}",
                         "--hide-scrollbars", bare.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    diff = np.any(img != np.asarray(Image.open(bare_shot).convert("RGB")).astype(int), axis=-1)
    cols = np.nonzero(diff.any(axis=0))[0]
    assert diff.sum() > 2000, f"overlays changed only {diff.sum()} pixels"
    assert cols.max() < 1280 * 0.5, "pixels changed outside the image column (the dialogue should not move)"
