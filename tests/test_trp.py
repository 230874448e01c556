import pytest

from pipeline.formats import flat_targets, render_answer, roundtrip_problem, trp
from pipeline.formats.segments import Ground


def _box(i):
    return {"instance_id": str(i), "box": [1.0 * i, 2.0, 10.0 + i, 20.0]}


def test_render_matches_refvlm_spelling():
    segs = ["I see ", Ground(["two dogs"], "box", [_box(1), _box(2)]), "."]
    assert trp.render(segs) == "I see <Phrase>two dogs</Phrase>(<Unit>box</Unit>[0]<REF>[1]<REF>)."


def test_indices_restart_per_phrase_and_parse_back():
    segs = [Ground(["dogs"], "box", [_box(1), _box(2)]), " and ", Ground(["a cat"], "mask", [_box(3)])]
    text = trp.render(segs)
    assert text.count("[0]<REF>") == 2
    assert trp.parse(text) == [trp.Triple("dogs", "box", (0, 1)), trp.Triple("a cat", "mask", (0,))]


def test_nested_phrases_parse_inner_first_with_plain_outer_text():
    inner = Ground(["the park"], "box", [_box(5)])
    outer = Ground(["a dog in ", inner], "box", [_box(6)])
    text = trp.render([outer])
    assert text == ("<Phrase>a dog in <Phrase>the park</Phrase>(<Unit>box</Unit>[0]<REF>)</Phrase>"
                    "(<Unit>box</Unit>[0]<REF>)")
    assert [t.phrase for t in trp.parse(text)] == ["the park", "a dog in the park"]
    targets = flat_targets([outer], turn=2)
    assert [(t["phrase"], t["instance_id"]) for t in targets] == [("the park", "5"), ("a dog in the park", "6")]


def test_ungrounded_phrase_has_no_refs():
    text = trp.render(["There is no ", Ground(["red umbrella"]), " here."])
    assert text == "There is no <Phrase>red umbrella</Phrase> here."
    assert trp.parse(text) == [trp.Triple("red umbrella", None, ())]


def test_composite_unit():
    t = {"instance_id": "1", "box": [0, 0, 5, 5], "points": [1, 1, 2] * 17}
    assert "(<Unit>box, keypoint</Unit>[0]<REF>)" in trp.render([Ground(["a person"], "box, keypoint", [t])])


@pytest.mark.parametrize("bad", [
    "<Phrase>dog</Phrase>(<Unit>box</Unit>[1]<REF>)",  # indices must start at 0
    "<Phrase>dog(<Unit>box</Unit>[0]<REF>)",  # never closed
    "dog</Phrase>",  # closed without opening
    "a stray [0]<REF> here",
])
def test_parser_rejects_malformed(bad):
    with pytest.raises(trp.TRPError):
        trp.parse(bad)


def _messages(answer_text):
    return [{"role": "system", "content": "s"}, {"role": "user", "content": "<image> q"},
            {"role": "assistant", "content": answer_text}]


def test_roundtrip_detects_target_mismatch():
    segs = [Ground(["dogs"], "box", [_box(1), _box(2)])]
    targets = flat_targets(segs, turn=2)
    text = render_answer("trp", segs, 100, 100)
    assert roundtrip_problem("trp", _messages(text), targets, 100, 100) is None
    assert roundtrip_problem("trp", _messages(text), targets[:1], 100, 100).startswith("trp_targets_mismatch")
    wrong_unit = [dict(t, unit="mask") for t in targets]
    assert roundtrip_problem("trp", _messages(text), wrong_unit, 100, 100) is not None


def test_refvlm_evaluator_regexes_read_our_rows():
    segs = ["Found ", Ground(["two dogs"], "box", [_box(1), _box(2)]), " and ", Ground(["a cat"], "box", [_box(3)])]
    text = render_answer("trp", segs, 100, 100)
    found = [(p, u, len(trp.REFVLM_REF.findall(r))) for p, u, r in trp.REFVLM_PHRASE.findall(text)]
    assert found == [("two dogs", "box", 2), ("a cat", "box", 1)]


def test_vd_cot_block():
    segs = [Ground(["dogs"], "box", [_box(1), _box(2)])]
    text = render_answer("trp", segs, 100, 100, vd_cot=True)
    assert text.startswith("<Task>\nUnit decode (True). Class name, target unit and number:\n- Name: dogs Unit: box "
                           "Num: 2\n</Task>\n<Phrase>dogs</Phrase>")


def test_text_format_roundtrip_and_mismatch():
    segs = [Ground(["a dog"], "box", [_box(10)])]
    targets = flat_targets(segs, turn=2)
    text = render_answer("text", segs, 100, 50)
    assert text == "a dog [0.100, 0.040, 0.200, 0.400]"
    assert roundtrip_problem("text", _messages(text), targets, 100, 50) is None
    moved = [dict(t, box=[0.0, 0.0, 1.0, 1.0]) for t in targets]
    assert roundtrip_problem("text", _messages(text), moved, 100, 50).startswith("text_coords_mismatch")
