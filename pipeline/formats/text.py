"""Text coordinates (Shikra / Ferret style): each grounded phrase is followed by its locations, normalised to
[0, 1] with three decimals: box ``[x1, y1, x2, y2]``, point ``[x, y]``, keypoints ``[x, y, v, ...]``,
``box, keypoint`` as ``[x1, y1, x2, y2; x, y, v, ...]``. Masks are written as their bounding box (the RLE stays in
the ``targets`` column). For models without special tokens.
"""

from __future__ import annotations

import re

from .segments import Ground, Seg

_GROUP = re.compile(r"\[(-?\d+\.\d{3}(?:[,;] -?\d+(?:\.\d{3})?)*)\]")


def _n(v: float, size: int) -> str:
    return f"{min(max(v / size, 0.0), 1.0):.3f}"


def _kps(points: list[float], w: int, h: int) -> str:
    out = []
    for i in range(0, len(points) - 2, 3):
        out += [_n(points[i], w), _n(points[i + 1], h), str(int(points[i + 2]))]
    return ", ".join(out)


def coords(target: dict, unit: str, w: int, h: int) -> str:
    box = target.get("box") or []
    b = ", ".join([_n(box[0], w), _n(box[1], h), _n(box[2], w), _n(box[3], h)]) if len(box) == 4 else ""
    if unit in ("box", "mask"):
        return f"[{b}]"
    pts = target.get("points") or []
    if unit == "point":
        return f"[{_n(pts[0], w)}, {_n(pts[1], h)}]"
    if unit == "keypoint":
        return f"[{_kps(pts, w, h)}]"
    if unit == "box, keypoint":
        return f"[{b}; {_kps(pts, w, h)}]"
    raise ValueError(f"unit {unit!r} has no text form")


def render(segs: list[Seg], w: int, h: int) -> str:
    out = []
    for s in segs:
        if isinstance(s, str):
            out.append(s)
            continue
        out.append(render(s.phrase, w, h))
        if s.unit is not None and s.targets:
            out.append(" " + " ".join(coords(t, s.unit, w, h) for t in s.targets))
    return "".join(out)


def parse(text: str) -> list[str]:
    """Every coordinate group in the text, in order, as written (without brackets)."""
    return _GROUP.findall(text)


def expected(targets: list[dict], w: int, h: int) -> list[str]:
    return [coords(t, t["unit"], w, h)[1:-1] for t in targets]


__all__ = ["Ground", "coords", "expected", "parse", "render"]
