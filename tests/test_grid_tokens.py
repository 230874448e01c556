"""Grid / offset token codecs and the inline format."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.grid import tokens as T


def test_grid_points_are_segment_anything_point_grid():
    amg = pytest.importorskip("segment_anything.utils.amg")
    for g, (w, h) in [(32, (640, 480)), (4, (64, 64)), (7, (101, 53))]:
        sam = amg.build_point_grid(g) * np.array([w, h])[None, :]  # what SamAutomaticMaskGenerator prompts with
        ours = T.grid_points(w, h, g)
        np.testing.assert_allclose(ours, sam, rtol=0, atol=1e-9)
        for i, (x, y) in enumerate(sam):  # and every SAM point maps back to its own cell
            assert T.nearest_cell(x, y, w, h, g) == (i // g, i % g)
            assert T.cell_centre(i // g, i % g, w, h, g) == pytest.approx((x, y))


def test_vocabulary_sizes_and_spelling():
    assert len(T.grid_vocab(32)) == 1024 and len(set(T.grid_vocab(32))) == 1024
    assert T.grid_vocab(32)[33] == "<g_1_1>"
    assert len(T.OFFSET_TOKENS) == 10 and T.OFFSET_TOKENS[0] == "<OFF0,0>" and T.OFFSET_TOKENS[-1] == "<DELETE>"
    assert set(T.OFFSET_TOKENS[:9]) == {f"<OFF{dx},{dy}>" for dx in (-1, 0, 1) for dy in (-1, 0, 1)}
    assert len(T.vocab(16)) == 256 + 10 + 2
    assert T.parse_grid_token("<g_3_17>") == (3, 17)
    with pytest.raises(ValueError):
        T.parse_grid_token("<g_3_32>", grid=32)
    with pytest.raises(ValueError):
        T.parse_grid_token("<grid_3_1>")
    assert T.parse_offset_token("<OFF-1,1>") == (-1, 1) and T.parse_offset_token("<DELETE>") is None
    with pytest.raises(ValueError):
        T.offset_token(2, 0)


def test_point_box_codecs_round_trip():
    w, h, g = 640, 480, 32  # cells are 20 x 15 px
    assert T.point_to_token(0, 0, w, h, g) == "<g_0_0>"
    assert T.point_to_token(639.9, 479.9, w, h, g) == "<g_31_31>"
    assert T.point_to_token(640, 480, w, h, g) == "<g_31_31>"  # the border clamps
    assert T.point_to_token(45, 31, w, h, g) == "<g_2_2>"
    box = [41.0, 16.0, 100.0, 60.0]
    toks = T.box_to_tokens(box, w, h, g)
    assert toks == ["<g_1_2>", "<g_3_4>"]  # 100 is the end of column 4 (80..100), 60 the end of row 3
    dec = T.decode_box(toks, w, h, g)
    assert dec == (40.0, 15.0, 100.0, 60.0)
    assert T.box_to_tokens(dec, w, h, g) == toks
    pts = T.decode_points(["<g_2_2>"], w, h, g)
    np.testing.assert_allclose(pts, [[50.0, 37.5]])
    assert T.point_to_token(*pts[0], w, h, g) == "<g_2_2>"
    with pytest.raises(ValueError):
        T.box_to_tokens([5, 5, 5, 9], w, h, g)


def test_polyline_cells_are_contiguous_and_deduplicated():
    w, h, g = 320, 320, 32  # 10 px cells
    toks = T.polyline_to_tokens([(5, 5), (95, 5), (95, 45)], w, h, g)
    cells = [T.parse_grid_token(t) for t in toks]
    assert cells[0] == (0, 0) and cells[9] == (0, 9) and cells[-1] == (4, 9)
    assert len(cells) == 14 and all(a != b for a, b in zip(cells, cells[1:]))
    assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in zip(cells, cells[1:]))


def test_mask_codec_and_cells_to_mask():
    w, h, g = 64, 64, 8  # 8 px cells, centres at 4, 12, ...
    mask = np.zeros((h, w), bool)
    mask[0:16, 0:16] = True  # holds the centres of cells (0,0) (0,1) (1,0) (1,1)
    mask[40, 40] = True  # not a centre
    toks = T.mask_to_tokens(mask, g)
    assert toks == ["<g_0_0>", "<g_0_1>", "<g_1_0>", "<g_1_1>"]
    np.testing.assert_array_equal(T.cells_to_mask(toks, w, h, g), mask & (np.arange(w)[None, :] < 16))


def test_offsets_move_half_a_cell():
    assert T.apply_offset(100, 100, "<OFF1,-1>", 640, 480, 32) == (110.0, 92.5)
    assert T.apply_offset(100, 100, "<DELETE>", 640, 480, 32) is None


def test_inline_render_and_parse_round_trip():
    w, h, g = 640, 480, 32
    point = T.render_point(45, 31, w, h, g)
    box = T.render_box([41, 16, 100, 60], w, h, g)
    seg = T.render_mask(["<g_5_5>", "<g_5_6>", "<g_6_5>"])
    text = f"The dog {box} sits at {point}; its mask is {seg}. Refine: <g_7_7><OFF1,0> and <g_9_9><DELETE>."
    groups = T.parse_inline(text)
    assert groups == [["<g_1_2>", "<g_3_4>"], ["<g_2_2>"], ["<g_5_5>", "<g_5_6>", "<g_6_5>"],
                      ["<g_7_7>", "<OFF1,0>"], ["<g_9_9>", "<DELETE>"]]
    assert T.find_tokens(text)[:3] == ["<g_1_2>", "<g_3_4>", "<g_2_2>"] and "<seg>" not in T.find_tokens(text)
    # a point written right after a </seg> is its own group, two separated points are two groups
    assert T.parse_inline("<seg><g_1_1></seg><g_2_2> <g_3_3>") == [["<g_1_1>"], ["<g_2_2>"], ["<g_3_3>"]]


@pytest.mark.parametrize("bad", ["<seg><g_1_1>", "<g_1_1></seg>", "<seg><seg></seg></seg>", "<seg><g_1_1> x </seg>",
                                 "<seg><OFF0,0></seg>"])
def test_parse_inline_rejects_malformed(bad):
    with pytest.raises(ValueError):
        T.parse_inline(bad)
    with pytest.raises(ValueError):
        T.render_mask(["<g_1_1>", "dog"])
