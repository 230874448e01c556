"""Format-neutral answers: a task builder returns a list of segments; a format renders them to text.

A segment is plain text (``str``) or a :class:`Ground`: a phrase (itself segments, so phrases nest) with a unit
and the targets its ``<REF>``s point at. Targets are plain dicts in the output ``targets`` schema
(see :mod:`pipeline.schema`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

Seg = Union[str, "Ground"]

UNITS = ("box", "mask", "point", "keypoint", "box, keypoint")


@dataclass
class Ground:
    phrase: list[Seg]  # nested phrases allowed: [ "a dog in ", Ground(["the park"], "box", [...]) ]
    unit: str | None = None  # None: an ungrounded phrase (hard negatives: no <REF>)
    targets: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.phrase, str):
            self.phrase = [self.phrase]
        if self.unit is not None and self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r}; known: {UNITS}")
        if self.unit is None and self.targets:
            raise ValueError("an ungrounded phrase carries no targets")


def plain(segs: list[Seg]) -> str:
    """The words of the segments with every markup removed."""
    return "".join(s if isinstance(s, str) else plain(s.phrase) for s in segs)


def grounds(segs: list[Seg]) -> list[Ground]:
    """Every Ground in the order its <REF>s are written (a phrase's refs come after its nested phrases')."""
    out: list[Ground] = []
    for s in segs:
        if isinstance(s, Ground):
            out.extend(grounds(s.phrase))
            out.append(s)
    return out


def flat_targets(segs: list[Seg], turn: int) -> list[dict]:
    """The targets column entries for one answer, one per <REF>, in text order."""
    out = []
    for g in grounds(segs):
        text = plain(g.phrase)
        for i, t in enumerate(g.targets):
            out.append({**t, "turn": turn, "phrase": text, "index": i, "unit": g.unit})
    return out
