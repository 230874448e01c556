"""GETok vocabulary and codecs: grid tokens, offset tokens, inline rendering and parsing. Pure numpy.

The grid is ``G x G`` over the image (default 32). Cell ``(r, c)`` covers ``[c W/G, (c+1) W/G) x [r H/G, (r+1) H/G)``
and its centre is ``((c + 0.5) W/G, (r + 0.5) H/G)`` -- exactly the points
``segment_anything.utils.amg.build_point_grid(G) * [W, H]``, in the same row-major order (index ``r * G + c``).

Spelling (see docs/grid-tokens.md):

- grid token ``<g_R_C>``: row ``R`` then column ``C``, decimal, no padding (``<g_0_0>`` ... ``<g_31_31>``);
- offset tokens ``<OFFdx,dy>`` with ``dx, dy`` in ``{-1, 0, 1}`` (x right, y down), one step = half a cell
  (``W / 2G`` by ``H / 2G`` pixels), plus ``<DELETE>``: ten tokens;
- a mask inline is ``<seg>`` + its grid tokens + ``</seg>``; a box is its two tokens written adjacent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_GRID = 32
SEG_OPEN, SEG_CLOSE = "<seg>", "</seg>"
DELETE = "<DELETE>"
# fixed order: the zero offset, the four axis moves, the four diagonals, then DELETE
OFFSET_STEPS: tuple[tuple[int, int], ...] = ((0, 0), (0, -1), (0, 1), (-1, 0), (1, 0),
                                             (-1, -1), (1, -1), (-1, 1), (1, 1))

_GRID_RE = re.compile(r"<g_(\d+)_(\d+)>")
_OFF_RE = re.compile(r"<OFF(-?[01]),(-?[01])>")
_ANY_RE = re.compile(r"<g_\d+_\d+>|<OFF-?[01],-?[01]>|<DELETE>|<seg>|</seg>")


def grid_token(row: int, col: int) -> str:
    return f"<g_{int(row)}_{int(col)}>"


def offset_token(dx: int, dy: int) -> str:
    if dx not in (-1, 0, 1) or dy not in (-1, 0, 1):
        raise ValueError(f"offset step ({dx}, {dy}) outside {{-1, 0, 1}}^2")
    return f"<OFF{int(dx)},{int(dy)}>"


OFFSET_TOKENS: tuple[str, ...] = tuple(offset_token(dx, dy) for dx, dy in OFFSET_STEPS) + (DELETE,)


def grid_vocab(grid: int = DEFAULT_GRID) -> list[str]:
    """All ``G * G`` grid tokens, row-major (index ``r * G + c``)."""
    return [grid_token(r, c) for r in range(grid) for c in range(grid)]


def vocab(grid: int = DEFAULT_GRID) -> list[str]:
    """The special tokens a model needs: grid tokens, the ten offset tokens, ``<seg>`` and ``</seg>``."""
    return grid_vocab(grid) + list(OFFSET_TOKENS) + [SEG_OPEN, SEG_CLOSE]


def parse_grid_token(token: str, grid: int | None = None) -> tuple[int, int]:
    """``"<g_3_17>"`` -> ``(3, 17)``; ValueError for anything else (or a cell outside a given grid)."""
    m = _GRID_RE.fullmatch(token)
    if m is None:
        raise ValueError(f"not a grid token: {token!r}")
    r, c = int(m.group(1)), int(m.group(2))
    if grid is not None and not (0 <= r < grid and 0 <= c < grid):
        raise ValueError(f"{token} lies outside a {grid}x{grid} grid")
    return r, c


def parse_offset_token(token: str) -> tuple[int, int] | None:
    """``"<OFF-1,0>"`` -> ``(-1, 0)``; ``"<DELETE>"`` -> ``None``; ValueError for anything else."""
    if token == DELETE:
        return None
    m = _OFF_RE.fullmatch(token)
    if m is None:
        raise ValueError(f"not an offset token: {token!r}")
    return int(m.group(1)), int(m.group(2))


# -- geometry ----------------------------------------------------------------------------------------------------
def cell_size(w: int, h: int, grid: int) -> tuple[float, float]:
    return w / grid, h / grid


def offset_step(w: int, h: int, grid: int) -> tuple[float, float]:
    """One offset step in pixels: half a cell in x and in y."""
    return w / (2 * grid), h / (2 * grid)


def grid_points(w: int, h: int, grid: int = DEFAULT_GRID) -> np.ndarray:
    """``(G*G, 2)`` float array of cell centres ``(x, y)``, row-major -- SAM's point grid scaled to the image."""
    xs = (np.arange(grid) + 0.5) * (w / grid)
    ys = (np.arange(grid) + 0.5) * (h / grid)
    return np.stack([np.tile(xs, grid), np.repeat(ys, grid)], axis=1)


def cell_centre(row: int, col: int, w: int, h: int, grid: int) -> tuple[float, float]:
    return (col + 0.5) * w / grid, (row + 0.5) * h / grid


def cell_of(x: float, y: float, w: int, h: int, grid: int) -> tuple[int, int]:
    """The cell holding pixel position ``(x, y)``; positions on or past the border clamp to the edge cells."""
    col = int(np.clip(np.floor(x * grid / w), 0, grid - 1))
    row = int(np.clip(np.floor(y * grid / h), 0, grid - 1))
    return row, col


def nearest_cell(x: float, y: float, w: int, h: int, grid: int, tol: float = 1e-3) -> tuple[int, int] | None:
    """The cell whose centre is ``(x, y)`` within ``tol`` cells, else None (used to map SAM points back)."""
    fc, fr = x * grid / w - 0.5, y * grid / h - 0.5
    c, r = int(round(fc)), int(round(fr))
    if abs(fc - c) > tol or abs(fr - r) > tol or not (0 <= r < grid and 0 <= c < grid):
        return None
    return r, c


# -- encoders ----------------------------------------------------------------------------------------------------
def point_to_token(x: float, y: float, w: int, h: int, grid: int = DEFAULT_GRID) -> str:
    return grid_token(*cell_of(x, y, w, h, grid))


def box_to_tokens(box: Sequence[float], w: int, h: int, grid: int = DEFAULT_GRID) -> list[str]:
    """``[x1, y1, x2, y2]`` -> ``[top-left cell, bottom-right cell]``.

    The bottom-right corner is exclusive in pixel terms, so it is nudged by 1e-6 px inwards: a box that ends
    exactly on a cell border does not spill into the next cell.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"degenerate box {list(box)}")
    return [point_to_token(x1, y1, w, h, grid), point_to_token(x2 - 1e-6, y2 - 1e-6, w, h, grid)]


def polyline_to_tokens(points: Sequence[Sequence[float]], w: int, h: int, grid: int = DEFAULT_GRID) -> list[str]:
    """Tokens of the cells a polyline passes through, in order, consecutive repeats removed.

    Each segment is sampled every quarter of the smaller cell side, so no crossed cell is jumped over except
    at an exact cell corner, where one of the two diagonal neighbours may be missed.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) == 0:
        return []
    step = min(cell_size(w, h, grid)) / 4
    out: list[str] = [point_to_token(pts[0, 0], pts[0, 1], w, h, grid)]
    for a, b in zip(pts[:-1], pts[1:]):
        n = max(1, int(np.ceil(np.hypot(*(b - a)) / step)))
        for t in np.linspace(0.0, 1.0, n + 1)[1:]:
            tok = point_to_token(*(a + t * (b - a)), w, h, grid)
            if tok != out[-1]:
                out.append(tok)
    return out


def mask_to_tokens(mask: np.ndarray, grid: int = DEFAULT_GRID) -> list[str]:
    """Plain codec: the cells whose centre pixel lies in the mask, sorted row-major (greedy.py is the GETok one)."""
    h, w = mask.shape
    pts = grid_points(w, h, grid)
    xi = np.minimum(pts[:, 0].astype(int), w - 1)
    yi = np.minimum(pts[:, 1].astype(int), h - 1)
    idx = np.flatnonzero(mask[yi, xi])
    return [grid_token(i // grid, i % grid) for i in idx]


# -- decoders ----------------------------------------------------------------------------------------------------
def decode_points(tokens: Iterable[str], w: int, h: int, grid: int = DEFAULT_GRID) -> np.ndarray:
    """Grid tokens -> ``(n, 2)`` cell-centre pixel coordinates ``(x, y)``."""
    cells = [parse_grid_token(t, grid) for t in tokens]
    return np.array([cell_centre(r, c, w, h, grid) for r, c in cells], dtype=float).reshape(-1, 2)


def decode_box(tokens: Sequence[str], w: int, h: int, grid: int = DEFAULT_GRID) -> tuple[float, float, float, float]:
    """Two tokens -> the box spanned by the two cells' outer edges (top-left of the first, bottom-right of the
    second), so ``box_to_tokens(decode_box(t)) == t``."""
    if len(tokens) != 2:
        raise ValueError(f"a box is two grid tokens, got {len(tokens)}")
    (r1, c1), (r2, c2) = (parse_grid_token(t, grid) for t in tokens)
    cw, ch = cell_size(w, h, grid)
    return (min(c1, c2) * cw, min(r1, r2) * ch, (max(c1, c2) + 1) * cw, (max(r1, r2) + 1) * ch)


def cells_to_mask(tokens: Iterable[str], w: int, h: int, grid: int = DEFAULT_GRID) -> np.ndarray:
    """Rasterise the cells of some grid tokens (a coarse picture of a token set, not a SAM decode)."""
    out = np.zeros((h, w), dtype=bool)
    cw, ch = cell_size(w, h, grid)
    for r, c in (parse_grid_token(t, grid) for t in tokens):
        out[int(round(r * ch)):int(round((r + 1) * ch)), int(round(c * cw)):int(round((c + 1) * cw))] = True
    return out


def apply_offset(x: float, y: float, token: str, w: int, h: int, grid: int) -> tuple[float, float] | None:
    """Move a point by one offset token; ``<DELETE>`` -> None."""
    step = parse_offset_token(token)
    if step is None:
        return None
    sx, sy = offset_step(w, h, grid)
    return x + step[0] * sx, y + step[1] * sy


# -- inline format (output format "getok") -----------------------------------------------------------------------
def render_point(x: float, y: float, w: int, h: int, grid: int = DEFAULT_GRID) -> str:
    return point_to_token(x, y, w, h, grid)


def render_box(box: Sequence[float], w: int, h: int, grid: int = DEFAULT_GRID) -> str:
    return "".join(box_to_tokens(box, w, h, grid))


def render_mask(tokens: Sequence[str]) -> str:
    for t in tokens:
        parse_grid_token(t)
    return SEG_OPEN + "".join(tokens) + SEG_CLOSE


def find_tokens(text: str) -> list[str]:
    """Every grid and offset token in ``text``, in order (``<seg>`` markers excluded)."""
    return [m.group(0) for m in _ANY_RE.finditer(text) if m.group(0) not in (SEG_OPEN, SEG_CLOSE)]


def parse_inline(text: str) -> list[list[str]]:
    """Token groups in order: each ``<seg>...</seg>`` block is one group (its grid tokens); outside blocks, a
    maximal run of location tokens written with nothing between them is one group (a point is one token, a box
    two, a point followed by its offset token two). ValueError on nested, unclosed or stray ``<seg>`` markers or
    anything but grid tokens inside a block."""
    groups: list[list[str]] = []
    in_seg = False
    prev_marker = False
    last_end = -1  # end of the previous token (or marker) that the next one may be adjacent to
    for m in _ANY_RE.finditer(text):
        tok = m.group(0)
        if in_seg and text[last_end:m.start()].strip():
            raise ValueError(f"text inside a <seg> block at character {last_end}")
        if tok == SEG_OPEN:
            if in_seg:
                raise ValueError(f"nested <seg> at character {m.start()}")
            in_seg = True
            groups.append([])
        elif tok == SEG_CLOSE:
            if not in_seg:
                raise ValueError(f"</seg> without <seg> at character {m.start()}")
            in_seg = False
        elif in_seg:
            if not tok.startswith("<g_"):
                raise ValueError(f"{tok} inside a <seg> block at character {m.start()}")
            groups[-1].append(tok)
        elif m.start() == last_end and groups and not prev_marker:
            groups[-1].append(tok)
        else:
            groups.append([tok])
        prev_marker = tok in (SEG_OPEN, SEG_CLOSE)
        last_end = m.end()
    if in_seg:
        raise ValueError("unclosed <seg>")
    return groups
