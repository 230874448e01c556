"""Grounded caption generation: gcg_box (Flickr30k Entities captions) and gcg_mask (PSG / COCO panoptic).

gcg_box keeps the annotated caption and grounds every phrase that has boxes (a multi-box chain gives one phrase
with several ``<REF>``s); ungrounded phrases stay plain text; a grounded span that lies inside another grounded
span becomes a nested phrase. Spans that cross (overlap without containment) cannot nest: the later one is left
as plain text and counted in ``details["crossing_spans"]``.

gcg_mask writes a description from the annotations, every phrase pointing at masks: one sentence per relation
when the record has relations (``A person is holding an umbrella. The person is standing on grass.``), else a
listing of things and stuff (``The image shows two people and a dog, with grass and sky in the background.``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.formats.segments import Ground, Seg
from pipeline.records import Record, Span

from .base import NotApplicable, TaskContext, TurnSpec, group_by_category, target_for
from .language import capitalize, clean_category, counted, join, mention, sanitize

GCG_MAX_RELATIONS = 4  # sentences in a relation-based description


def _piece(text: str) -> str:
    """Plain text between phrases: unsafe characters removed, runs of spaces collapsed, edges kept."""
    out = sanitize(text)
    if not out:
        return " " if text[:1].isspace() or text[-1:].isspace() else ""
    return (" " if text[:1].isspace() else "") + out + (" " if text[-1:].isspace() else "")


@dataclass
class _Node:
    start: int
    end: int
    targets: list[dict]
    children: list["_Node"] = field(default_factory=list)


def span_tree(spans: list[tuple[int, int, list[dict]]]) -> tuple[list[_Node], int]:
    """Nest spans by containment; returns (roots, number of crossing spans dropped)."""
    roots: list[_Node] = []
    stack: list[_Node] = []
    crossing = 0
    for start, end, targets in sorted(spans, key=lambda s: (s[0], -s[1])):
        while stack and stack[-1].end <= start:
            stack.pop()
        node = _Node(start, end, targets)
        if stack and end > stack[-1].end:  # overlaps the open span without being inside it
            crossing += 1
            continue
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)
    return roots, crossing


def _render(text: str, start: int, end: int, nodes: list[_Node]) -> list[Seg]:
    segs: list[Seg] = []
    pos = start
    for n in nodes:
        if n.start > pos:
            segs.append(_piece(text[pos:n.start]))
        inner = _render(text, n.start, n.end, n.children)
        words = sanitize(text[n.start:n.end])
        if words:
            if not n.children:
                inner = [words]
            segs.append(Ground(inner, "box", n.targets))
        pos = n.end
    if end > pos:
        segs.append(_piece(text[pos:end]))
    return [s for s in segs if s != ""]


def _grounded_spans(record: Record, spans: list[Span], text_len: int, ctx: TaskContext):
    ok = {i.id: i for i in record.targetable()}
    out = []
    for s in spans:
        ids = [i for i in dict.fromkeys(s.instance_ids) if i in ok]
        if ids and s.phrase_type != "notvisual" and 0 <= s.start < s.end <= text_len:
            out.append((s.start, s.end, [target_for(ok[i], "box", ctx) for i in ids]))
    return out


def gcg_box(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    caps = [t for t in record.texts if t.kind == "grounded_caption"]
    if not caps:
        return NotApplicable("no_grounded_captions")
    usable = [(t, g) for t in caps if (g := _grounded_spans(record, t.spans, len(t.text), ctx))]
    if not usable:
        return NotApplicable("no_grounded_phrases")
    text, spans = usable[int(rng.integers(len(usable)))]
    roots, crossing = span_tree(spans)
    segs = _render(text.text, 0, len(text.text), roots)
    if segs and isinstance(segs[0], str):
        segs[0] = segs[0].lstrip()
    ids = [t["instance_id"] for _, _, ts in spans for t in ts]
    return TurnSpec("gcg_box", segs, annotation_ids=[text.id, *dict.fromkeys(ids)],
                    details={"crossing_spans": crossing})


def gcg_mask(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    insts = {i.id: i for i in record.targetable() if i.mask is not None and sanitize(clean_category(i.category))}
    if not insts:
        return NotApplicable("no_masks")
    rels = list(dict.fromkeys((r.subject, sanitize(r.predicate), r.object) for r in record.relations
                              if r.subject in insts and r.object in insts and r.subject != r.object
                              and sanitize(r.predicate)))
    if rels:
        if len(rels) > GCG_MAX_RELATIONS:
            keep = np.sort(rng.choice(len(rels), GCG_MAX_RELATIONS, replace=False))
            rels = [rels[k] for k in keep]
        answer: list[Seg] = []
        seen: set[str] = set()

        def phrase(iid: str, first: bool) -> Ground:
            inst = insts[iid]
            words = mention(sanitize(inst.category), inst.isthing, known=iid in seen)
            seen.add(iid)
            return Ground([capitalize(words) if first else words], "mask", [target_for(inst, "mask", ctx)])

        for k, (s, p, o) in enumerate(rels):
            answer += [" " if k else "", phrase(s, True), f" is {p} ", phrase(o, False), "."]
        used = [i for s, _, o in rels for i in (s, o)]
        return TurnSpec("gcg_mask", [a for a in answer if a != ""], annotation_ids=list(dict.fromkeys(used)),
                        details={"style": "relations", "relations": len(rels)})
    things = [i for i in insts.values() if i.isthing]
    stuff = [i for i in insts.values() if not i.isthing]
    thing_phrases = [Ground([counted(sanitize(c), len(g))], "mask", [target_for(i, "mask", ctx) for i in g])
                     for c, g in group_by_category(things)]
    stuff_phrases = [Ground([sanitize(clean_category(c))], "mask", [target_for(i, "mask", ctx) for i in g])
                     for c, g in group_by_category(stuff)]
    if thing_phrases:
        answer = ["The image shows ", *join(thing_phrases)]
        if stuff_phrases:
            answer += [", with ", *join(stuff_phrases), " in the background"]
    else:
        answer = ["The image shows ", *join(stuff_phrases)]
    return TurnSpec("gcg_mask", answer + ["."], annotation_ids=[i.id for i in things + stuff],
                    details={"style": "listing"})
