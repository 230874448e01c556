"""GETok inline format: each grounded phrase is followed by its locations as grid tokens.

One token group per target, groups separated by a space: a box is its two cells written adjacent (top-left,
bottom-right), a point one cell, a mask ``<seg>`` + the greedily selected cells + ``</seg>``, keypoints the cells
of the visible keypoints in order, ``box, keypoint`` the box cells followed by the keypoint cells. Token spelling:
:mod:`pipeline.grid.tokens` and docs/grid-tokens.md. Refinement turns (grid point + offset token pairs) carry no
targets and are left out of the round-trip comparison.
"""

from __future__ import annotations

from pipeline.grid import tokens as gt

from .segments import Seg


class GetokError(ValueError):
    """A target cannot be written in grid tokens (e.g. a mask the grid stage gave no tokens)."""


def _kp_tokens(points: list[float], w: int, h: int, g: int) -> list[str]:
    return [gt.point_to_token(points[i], points[i + 1], w, h, g)
            for i in range(0, len(points) - 2, 3) if points[i + 2] > 0]


def tokens_for(target: dict, unit: str, w: int, h: int, g: int) -> tuple[list[str], bool]:
    """(grid tokens, is_mask) for one target."""
    if unit == "mask":
        toks = list(target.get("grid_tokens") or [])
        if not toks:
            raise GetokError("mask_without_grid_tokens")
        return toks, True
    if unit == "box":
        return gt.box_to_tokens(target["box"], w, h, g), False
    if unit == "point":
        pts = target["points"]
        return [gt.point_to_token(pts[0], pts[1], w, h, g)], False
    if unit == "keypoint":
        return _kp_tokens(list(target.get("points") or []), w, h, g), False
    if unit == "box, keypoint":
        return gt.box_to_tokens(target["box"], w, h, g) + _kp_tokens(list(target.get("points") or []), w, h, g), False
    raise GetokError(f"unit_not_supported:{unit}")


def _group(target: dict, unit: str, w: int, h: int, g: int) -> str:
    toks, is_mask = tokens_for(target, unit, w, h, g)
    if not toks:
        raise GetokError("target_without_tokens")
    return gt.render_mask(toks) if is_mask else "".join(toks)


def render(segs: list[Seg], w: int, h: int, g: int) -> str:
    out = []
    for s in segs:
        if isinstance(s, str):
            out.append(s)
            continue
        out.append(render(s.phrase, w, h, g))
        if s.unit is not None and s.targets:
            out.append(" " + " ".join(_group(t, s.unit, w, h, g) for t in s.targets))
    return "".join(out)


def problem(answers: list[tuple[int, str]], targets: list[dict], w: int, h: int, g: int) -> str | None:
    got: list[list[str]] = []
    for _, content in answers:
        try:
            groups = gt.parse_inline(content)
        except ValueError as e:
            return f"getok_parse_error: {e}"
        got += [grp for grp in groups if not any(t.startswith("<OFF") or t == gt.DELETE for t in grp)]
    try:
        want = [tokens_for(t, t["unit"], w, h, g)[0] for t in targets]
    except GetokError as e:
        return f"getok_target_error: {e}"
    if got != want:
        return f"getok_tokens_mismatch: {len(got)} groups in text, {len(want)} targets"
    return None
