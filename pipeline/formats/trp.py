"""TRP, REF-VLM's Triplet-based Referring Paradigm: ``<Phrase>two dogs</Phrase>(<Unit>box</Unit>[0]<REF>[1]<REF>)``.

Indices restart at 0 for each phrase; targets travel out of band (the ``targets`` column, one per ``<REF>``, in
order). Phrases nest; a phrase with no ``(<Unit>..)`` group is ungrounded (used for hard negatives).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .segments import Ground, Seg

PHRASE_OPEN, PHRASE_CLOSE = "<Phrase>", "</Phrase>"
_TOKEN = re.compile(r"<Phrase>|</Phrase>")
_UNIT_GROUP = re.compile(r"\(<Unit>([^<]*)</Unit>((?:\[\d+\]<REF>)*)\)")
_REF = re.compile(r"\[(\d+)\]<REF>")
_TAG = re.compile(r"</?Phrase>|\(<Unit>[^<]*</Unit>(?:\[\d+\]<REF>)*\)")

# REF-VLM's own evaluator patterns: every non-nested row must give the right phrases and counts under them
REFVLM_PHRASE = re.compile(r"<Phrase>(.*?)</Phrase>\(<Unit>(.*?)</Unit>(.*?)\)")
REFVLM_REF = re.compile(r"\[(\d+)\]<REF>")


class TRPError(ValueError):
    pass


def render(segs: list[Seg]) -> str:
    out = []
    for s in segs:
        if isinstance(s, str):
            out.append(s)
            continue
        out.append(f"{PHRASE_OPEN}{render(s.phrase)}{PHRASE_CLOSE}")
        if s.unit is not None:
            refs = "".join(f"[{i}]<REF>" for i in range(len(s.targets)))
            out.append(f"(<Unit>{s.unit}</Unit>{refs})")
    return "".join(out)


@dataclass(frozen=True)
class Triple:
    phrase: str  # the phrase's words, nested markup removed
    unit: str | None
    indices: tuple[int, ...]


def strip(text: str) -> str:
    return _TAG.sub("", text)


def parse(text: str) -> list[Triple]:
    """Turn TRP text back into (phrase, unit, indices) triples, in the order their <REF>s are written."""
    stack: list[int] = []
    triples: list[Triple] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        if m.start() < pos:
            continue
        if m.group() == PHRASE_OPEN:
            stack.append(m.end())
            continue
        if not stack:
            raise TRPError(f"</Phrase> without <Phrase> at {m.start()}")
        start = stack.pop()
        phrase = strip(text[start : m.start()])
        g = _UNIT_GROUP.match(text, m.end())
        if g:
            idx = tuple(int(i) for i in _REF.findall(g.group(2)))
            if idx != tuple(range(len(idx))):
                raise TRPError(f"indices of {phrase!r} are {list(idx)}, expected 0..{len(idx) - 1}")
            triples.append(Triple(phrase, g.group(1), idx))
            pos = g.end()
        else:
            triples.append(Triple(phrase, None, ()))
    if stack:
        raise TRPError(f"<Phrase> at {stack[-1] - len(PHRASE_OPEN)} is never closed")
    stray = _UNIT_GROUP.sub("", text)
    if "<REF>" in stray or "<Unit>" in stray:
        raise TRPError("<REF> or <Unit> outside a (<Unit>..</Unit>[i]<REF>) group")
    return triples


def vd_cot(segs: list[Seg]) -> str:
    """REF-VLM's visual-decoding chain-of-thought block that precedes an answer."""
    from .segments import grounds, plain

    lines = [f"- Name: {plain(g.phrase)} Unit: {g.unit} Num: {len(g.targets)}" for g in grounds(segs) if g.unit]
    if not lines:
        return "<Task>\nUnit decode (False).\n</Task>\n"
    return "<Task>\nUnit decode (True). Class name, target unit and number:\n" + "\n".join(lines) + "\n</Task>\n"


def task_command(task: str, segs: list[Seg]) -> str:
    """REF-VLM's per-turn system entry ("Task Command") that its training code reads beside VD-CoT answers."""
    from .segments import grounds

    units = list(dict.fromkeys(g.unit for g in grounds(segs) if g.unit))
    element = "phrase, unit" if units else "sentence"
    unit = ", ".join(f"<Unit>{u}</Unit>" for u in units) if units else "None"
    return f"Task Command:\n- task name: {task}\n- answer element: {element}\n- unit: {unit}\n"


def is_nested(segs: list[Seg]) -> bool:
    return any(isinstance(s, Ground) and any(isinstance(c, Ground) for c in s.phrase) for s in segs)
