"""`refforge inspect out/<name>`: one static, offline HTML page of n samples with their overlays.

For each sample: the image (embedded as a ``data:`` URI, or copied next to the page when the corpus stores paths)
under an inline SVG layer -- a box as ``rect.ov-box``, a mask as ``path.ov-mask`` (the RLE's contours, even-odd
filled), a point as ``circle.ov-point``, keypoints as ``circle.ov-kp``, grid cells of ``grid_tokens`` as
``rect.ov-grid``; every target is one ``g.target[data-t=k]``, every visual prompt one dashed ``g.region[data-r=j]``
-- and beside it the dialogue, each ``<Phrase>`` / ``<REF>`` (or text-coordinate group) and each ``<region>``
coloured like its overlay. No external URL, no timestamps: the same corpus gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
from html import escape
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.errors import InputFileError
from pipeline.formats.text import _GROUP as TEXT_GROUP
from pipeline.grid.tokens import DEFAULT_GRID, parse_grid_token

log = logging.getLogger(__name__)

PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324",
           "#808000", "#469990", "#000075", "#bfef45")
REGION_COLOURS = ("#ffe119", "#fabed4", "#aaffc3", "#dcbeff")
_TRP = re.compile(r"<Phrase>|</Phrase>|\(<Unit>([^<]*)</Unit>((?:\[\d+\]<REF>)*)\)")
_REF = re.compile(r"\[(\d+)\]<REF>")
_MIME = ((b"\xff\xd8", "image/jpeg"), (b"\x89PNG", "image/png"), (b"GIF8", "image/gif"), (b"RIFF", "image/webp"))


def _f(v: float) -> str:
    return f"{float(v):.2f}".rstrip("0").rstrip(".")


def _rows(corpus: Path, n: int) -> list[dict]:
    manifest = corpus / "manifest.json"
    if manifest.is_file():
        shards = [corpus / "data" / f"{s['shard']}.parquet" for s in json.loads(manifest.read_text())["shards"]]
    else:
        shards = sorted((corpus / "data").glob("*.parquet"))
    if not shards:
        raise InputFileError(str(corpus), "no data/*.parquet shards: not a refforge corpus (build it first)")
    rows: list[dict] = []
    for path in shards:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=64):
            rows += batch.to_pylist()[: n - len(rows)]
            if len(rows) >= n:
                return rows
    return rows


def _image_href(image: dict, corpus: Path, page_dir: Path) -> str | None:
    data = image.get("bytes")
    if data:
        mime = next((m for magic, m in _MIME if data.startswith(magic)), "image/jpeg")
        return f"data:{mime};base64,{base64.b64encode(data).decode()}"
    path = Path(image.get("path") or "")
    src = path if path.is_absolute() else corpus / path
    if not image.get("path") or not src.is_file():
        return None
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    dst = page_dir / "images" / f"{digest}{src.suffix.lower()}"
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        shutil.copyfile(src, dst)
    return f"images/{dst.name}"


def _mask_path(mask: dict) -> str:
    """SVG path data of the mask's contours (outer and holes; drawn with fill-rule evenodd)."""
    if not mask or not mask.get("counts") or len(mask.get("size") or []) != 2:
        return ""
    import cv2
    from pycocotools import mask as mask_utils

    m = mask_utils.decode({"size": list(mask["size"]), "counts": mask["counts"].encode()})
    contours, _ = cv2.findContours(m.astype("uint8").copy(order="C"), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    parts = []
    for c in contours:
        pts = c.reshape(-1, 2)
        parts.append("M" + " L".join(f"{x + 0.5:g},{y + 0.5:g}" for x, y in pts) + " Z")
    return " ".join(parts)


def _rect(box: list[float], cls: str, extra: str = "") -> str:
    x1, y1, x2, y2 = box
    return (f'<rect class="{cls}" x="{_f(x1)}" y="{_f(y1)}" width="{_f(x2 - x1)}" height="{_f(y2 - y1)}"'
            f'{extra}/>')


def _target_svg(k: int, t: dict, w: int, h: int, grid: int) -> str:
    unit, c = t["unit"], PALETTE[k % len(PALETTE)]
    parts = []
    for tok in t.get("grid_tokens") or []:
        if tok.startswith("<g_"):
            r, col = parse_grid_token(tok)
            parts.append(_rect([col * w / grid, r * h / grid, (col + 1) * w / grid, (r + 1) * h / grid], "ov-grid"))
    if unit == "mask":
        parts.append(f'<path class="ov-mask" fill-rule="evenodd" d="{_mask_path(t.get("mask"))}"/>')
    if "box" in unit.split(", ") and len(t.get("box") or []) == 4:
        parts.append(_rect(t["box"], "ov-box"))
    pts = t.get("points") or []
    if unit == "point" and len(pts) >= 2:
        parts.append(f'<circle class="ov-point" cx="{_f(pts[0])}" cy="{_f(pts[1])}" r="{_f(max(w, h) / 90)}"/>')
    if "keypoint" in unit:
        parts += [f'<circle class="ov-kp" cx="{_f(pts[i])}" cy="{_f(pts[i + 1])}" r="{_f(max(w, h) / 140)}"/>'
                  for i in range(0, len(pts) - 2, 3) if pts[i + 2] > 0]
    box = t.get("box") or pts[:2] or [0, 0]
    parts.append(f'<text class="ov-label" x="{_f(box[0] + 2)}" y="{_f(box[1] + max(w, h) / 30)}">{k}</text>')
    return (f'<g class="target" data-t="{k}" data-unit="{escape(unit)}" style="--c:{c}">'
            f'<title>{k}: {escape(t["phrase"])} ({escape(unit)})</title>{"".join(parts)}</g>')


def _region_svg(j: int, r: dict, w: int, h: int) -> str:
    kind, pts = r["kind"], r.get("points") or []
    if kind == "mask" and (r.get("mask") or {}).get("counts"):
        shape = f'<path class="ov-rmask" fill-rule="evenodd" d="{_mask_path(r["mask"])}"/>'
    elif kind == "point" and len(pts) >= 2:
        shape = f'<circle class="ov-rpoint" cx="{_f(pts[0])}" cy="{_f(pts[1])}" r="{_f(max(w, h) / 70)}"/>'
    elif kind == "scribble" and len(pts) >= 4:
        coords = " ".join(f"{_f(pts[i])},{_f(pts[i + 1])}" for i in range(0, len(pts) - 1, 2))
        shape = f'<polyline class="ov-rscribble" points="{coords}"/>'
    else:
        shape = _rect(r["box"], "ov-rbox") if len(r.get("box") or []) == 4 else ""
    c = REGION_COLOURS[j % len(REGION_COLOURS)]
    return f'<g class="region" data-r="{j}" style="--c:{c}"><title>region {j} ({kind})</title>{shape}</g>'


def _span(cls: str, k: int | None, body: str, attr: str = "t") -> str:
    if k is None:
        return f'<span class="{cls} none">{body}</span>'
    colours = PALETTE if attr == "t" else REGION_COLOURS
    return f'<span class="{cls}" data-{attr}="{k}" style="--c:{colours[k % len(colours)]}">{body}</span>'


def _trp_html(text: str, tids: list[int]) -> str:
    """TRP text with each phrase coloured like its first target and each [i]<REF> like its own target."""
    out: list[str] = []
    opens: list[int] = []
    pos, nxt = 0, 0
    for m in _TRP.finditer(text):
        out.append(escape(text[pos : m.start()]))
        pos = m.end()
        if m.group(0) == "<Phrase>":
            opens.append(len(out))
            out.append("")
        elif m.group(0) == "</Phrase>":
            if not opens:
                out.append(escape(m.group(0)))
                continue
            start = opens.pop()
            k = tids[nxt] if text.startswith("(<Unit>", m.end()) and nxt < len(tids) else None
            inner = "".join(out[start + 1 :])
            del out[start:]
            out.append(_span("ph", k, f'<i>&lt;Phrase&gt;</i>{inner}<i>&lt;/Phrase&gt;</i>'))
        else:
            refs = []
            for i in _REF.findall(m.group(2)):
                refs.append(_span("ref", tids[nxt] if nxt < len(tids) else None, f"[{i}]&lt;REF&gt;"))
                nxt += 1
            out.append(f"<i>(&lt;Unit&gt;{escape(m.group(1))}&lt;/Unit&gt;</i>{''.join(refs)}<i>)</i>")
    out.append(escape(text[pos:]))
    for start in opens:  # unclosed <Phrase>: shown as written
        out[start] = "<i>&lt;Phrase&gt;</i>"
    return "".join(out)


def _coloured(text: str, pattern: re.Pattern, ids: list[int], cls: str, attr: str) -> str:
    out, pos = [], 0
    for n, m in enumerate(pattern.finditer(text)):
        out += [escape(text[pos : m.start()]), _span(cls, ids[n] if n < len(ids) else None, escape(m.group(0)), attr)]
        pos = m.end()
    return "".join(out) + escape(text[pos:])


def _dialogue(row: dict, fmt: str) -> str:
    out = []
    for i, msg in enumerate(row["messages"]):
        role, text = msg["role"], msg["content"]
        tids = [k for k, t in enumerate(row["targets"]) if t["turn"] == i]
        rids = [j for j, r in enumerate(row["regions"]) if r["turn"] == i]
        if role == "system":
            out.append(f'<details class="msg system"><summary>system</summary>{escape(text)}</details>')
            continue
        if role == "user":
            body = _coloured(text, re.compile(re.escape("<region>")), rids, "reg", "r")
        elif fmt == "trp":
            body = _trp_html(text, tids)
        elif fmt == "text":
            body = _coloured(text, TEXT_GROUP, tids, "ref", "t")
        else:
            body = escape(text)
        legend = "".join(_span("chip", k, f"{k}: {escape(row['targets'][k]['phrase'])} &middot; "
                                          f"{escape(row['targets'][k]['unit'])}") for k in tids)
        out.append(f'<div class="msg {role}"><b>{role}</b> {body}'
                   + (f'<div class="legend">{legend}</div>' if legend else "") + "</div>")
    return "".join(out)


def _card(row: dict, corpus: Path, page_dir: Path) -> str:
    w, h = int(row["width"]), int(row["height"])
    prov = row["provenance"]
    grid = json.loads(prov.get("details") or "{}").get("grid", {}).get("grid_size", DEFAULT_GRID)
    href = _image_href(row["image"], corpus, page_dir)
    img = (f'<image href="{href}" x="0" y="0" width="{w}" height="{h}" preserveAspectRatio="none"/>' if href else
           f'<text x="8" y="20">image not found: {escape(str(row["image"].get("path")))}</text>')
    layers = "".join(_target_svg(k, t, w, h, grid) for k, t in enumerate(row["targets"]))
    layers += "".join(_region_svg(j, r, w, h) for j, r in enumerate(row["regions"]))
    tasks = ", ".join(dict.fromkeys(t["task"] for t in row["turns"]))
    return (f'<section class="sample" id="{escape(row["id"])}"><h2>{escape(row["id"])}</h2>'
            f'<p class="meta">{w}&times;{h} &middot; {escape(prov["output_format"])} &middot; {escape(tasks)} &middot; '
            f'{len(row["targets"])} targets, {len(row["regions"])} regions</p><div class="pair">'
            f'<svg class="view" viewBox="0 0 {w} {h}">{img}{layers}</svg>'
            f'<div class="dialogue">{_dialogue(row, prov["output_format"])}</div></div></section>')


_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#222}
.pair{display:flex;gap:1.5em;align-items:flex-start}.view{width:48%;max-width:640px;flex:none;border:1px solid #ccc}
.dialogue{flex:1}.msg{margin:.4em 0;padding:.4em .6em;border-radius:6px;background:#f4f4f4}
.msg.assistant{background:#eef4ff}.meta{color:#666}i{color:#888;font-style:normal;font-size:.85em}
.ph,.ref,.reg{border-bottom:3px solid var(--c);background:color-mix(in srgb,var(--c) 18%,transparent)}
.ref,.reg{font-weight:600;color:var(--c)}.none{border-bottom:3px dotted #999}
.chip{display:inline-block;margin:.2em .4em 0 0;padding:0 .4em;border-left:10px solid var(--c);font-size:.85em}
.target rect.ov-box,.target circle{fill:none;stroke:var(--c);stroke-width:2;vector-effect:non-scaling-stroke}
.target circle{fill:var(--c)}.ov-mask{fill:var(--c);fill-opacity:.35;stroke:var(--c);stroke-width:1}
.ov-grid{fill:var(--c);fill-opacity:.12;stroke:var(--c);stroke-opacity:.5;stroke-width:.5}
.ov-label{fill:var(--c);font:bold 12px sans-serif}
.region *{fill:none;stroke:var(--c);stroke-width:3;stroke-dasharray:6 3;vector-effect:non-scaling-stroke}
.region circle{fill:var(--c)}.hl *{stroke-width:5!important;fill-opacity:.6}"""
_JS = """document.querySelectorAll('.sample').forEach(function(s){s.querySelectorAll('[data-t],[data-r]')
.forEach(function(e){var a=e.dataset.t!==undefined?'[data-t="'+e.dataset.t+'"]':'[data-r="'+e.dataset.r+'"]';
if(e.closest('svg'))return;var g=s.querySelector('svg '+a);if(!g)return;
e.addEventListener('mouseenter',function(){g.classList.add('hl')});
e.addEventListener('mouseleave',function(){g.classList.remove('hl')});});});"""


def write_inspect_page(corpus: Path, n: int = 20, out: Path | None = None) -> Path:
    """Write the page (default ``<corpus>/inspect/index.html``) for the first n rows in manifest order."""
    corpus = Path(corpus)
    out = Path(out) if out is not None else corpus / "inspect" / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = _rows(corpus, max(0, n))
    cards = "\n".join(_card(r, corpus, out.parent) for r in rows)
    title = escape(corpus.resolve().name)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>refforge inspect: {title}</title>'
            f"<style>{_CSS}</style></head><body><h1>{title}: {len(rows)} samples</h1>"
            "<p>Overlays: solid = answer targets (one colour per target, as in the dialogue), dashed = visual "
            f"prompts (&lt;region&gt;). Hover a phrase to highlight its overlay.</p>\n{cards}\n"
            f"<script>{_JS}</script></body></html>\n")
    out.write_text(page, encoding="utf-8")
    log.info("inspect page with %d samples: %s", len(rows), out)
    return out
