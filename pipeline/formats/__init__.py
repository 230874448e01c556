"""Output formats: render format-neutral answers to text, and check that a written row round-trips.

``trp`` (default; targets out of band), ``text`` (normalised coordinates inline), ``getok`` (grid tokens inline,
from :mod:`pipeline.grid.tokens`). Every row is checked by :func:`roundtrip_problem` before it is written.
"""

from __future__ import annotations

from . import text as text_fmt
from . import trp
from .segments import Ground, Seg, flat_targets, grounds, plain

FORMATS = ("trp", "text", "getok")


def render_answer(fmt: str, segs: list[Seg], w: int, h: int, grid_size: int = 32, vd_cot: bool = False) -> str:
    if fmt == "trp":
        return (trp.vd_cot(segs) if vd_cot else "") + trp.render(segs)
    if fmt == "text":
        return text_fmt.render(segs, w, h)
    if fmt == "getok":
        from . import getok

        return getok.render(segs, w, h, grid_size)
    raise ValueError(f"unknown format {fmt!r}; known: {FORMATS}")


def _trp_problem(answers: list[tuple[int, str]], targets: list[dict]) -> str | None:
    refs = []
    for turn, content in answers:
        try:
            triples = trp.parse(content)
        except trp.TRPError as e:
            return f"trp_parse_error: {e}"
        for t in triples:
            refs += [(turn, t.phrase, t.unit, i) for i in t.indices]
        if "<Phrase><Phrase>" not in content and not _has_nesting(content):
            grounded = [(t.phrase, t.unit, len(t.indices)) for t in triples if t.unit is not None]
            ev = [(p, u, len(trp.REFVLM_REF.findall(r))) for p, u, r in trp.REFVLM_PHRASE.findall(content)]
            if ev != grounded:
                return "refvlm_regex_mismatch"
    want = [(t["turn"], t["phrase"], t["unit"], t["index"]) for t in targets]
    if refs != want:
        return f"trp_targets_mismatch: text has {len(refs)} refs, targets column has {len(want)}"
    return None


def _has_nesting(content: str) -> bool:
    depth = 0
    for tok in trp._TOKEN.findall(content):
        depth += 1 if tok == trp.PHRASE_OPEN else -1
        if depth > 1:
            return True
    return False


def roundtrip_problem(fmt: str, messages: list[dict], targets: list[dict], w: int, h: int,
                      grid_size: int = 32) -> str | None:
    """None when the assistant text and the targets column agree; else the skip reason."""
    answers = [(i, m["content"]) for i, m in enumerate(messages) if m["role"] == "assistant"]
    if fmt == "trp":
        return _trp_problem(answers, targets)
    if fmt == "text":
        got = [g for _, c in answers for g in text_fmt.parse(c)]
        want = text_fmt.expected(targets, w, h)
        return None if got == want else f"text_coords_mismatch: {len(got)} groups in text, {len(want)} expected"
    if fmt == "getok":
        from . import getok

        return getok.problem(answers, targets, w, h, grid_size)
    return f"unknown_format {fmt}"


__all__ = ["FORMATS", "Ground", "Seg", "flat_targets", "grounds", "plain", "render_answer", "roundtrip_problem"]
