"""Relation tasks (GAR Sec. 3.3 on PSG): relation, relation_description, relation_qa, relation_mcq.

Subject and object are region prompts (point / scribble / box / mask, seeded). Answers ground the objects they name
with masks when every one of them has a mask, else with boxes, so one answer never mixes units.

Predicate vocabulary (relation_qa negatives, relation_mcq distractors): ``record.extras["predicate_vocabulary"]``
when a converter put one there, else the 56 PSG predicates plus any other predicate the record uses. A negative or
a distractor is never a predicate annotated for the same (subject, object) pair.
"""

from __future__ import annotations

import numpy as np

from pipeline.formats.segments import Ground, Seg
from pipeline.records import Instance, Record

from .base import NotApplicable, TaskContext, TurnSpec, target_for
from .language import capitalize, clean_category, mention, sanitize
from .prompts import random_prompt

# OpenPSG's PREDICATES (openpsg/utils/utils.py), in their order
PSG_PREDICATES = (
    "over", "in front of", "beside", "on", "in", "attached to", "hanging from", "on back of", "falling off",
    "going down", "painted on", "walking on", "running on", "crossing", "standing on", "lying on", "sitting on",
    "flying over", "jumping over", "jumping from", "wearing", "holding", "carrying", "looking at", "guiding",
    "kissing", "eating", "drinking", "feeding", "biting", "catching", "picking", "playing with", "chasing",
    "climbing", "cleaning", "playing", "touching", "pushing", "pulling", "opening", "cooking", "talking to",
    "throwing", "slicing", "driving", "riding", "parked on", "driving on", "about to hit", "kicking", "swinging",
    "entering", "exiting", "enclosing", "leaning on")
MAX_CLAUSES = 4  # relation_description: relations mentioned at most
LETTERS = "ABCD"


def usable_relations(record: Record) -> list[tuple[Instance, str, Instance]]:
    ok = {i.id: i for i in record.targetable() if sanitize(clean_category(i.category))}
    out = [(ok[r.subject], sanitize(r.predicate), ok[r.object]) for r in record.relations
           if r.subject in ok and r.object in ok and r.subject != r.object and sanitize(r.predicate)]
    return list({(s.id, p, o.id): (s, p, o) for s, p, o in out}.values())


def predicate_vocabulary(record: Record) -> list[str]:
    given = record.extras.get("predicate_vocabulary")
    base = [sanitize(p) for p in given] if isinstance(given, (list, tuple)) and given else list(PSG_PREDICATES)
    return list(dict.fromkeys([p for p in base if p] + sorted(sanitize(r.predicate) for r in record.relations)))


def _unit(insts: list[Instance]) -> str:
    return "mask" if all(i.mask is not None for i in insts) else "box"


def _pair(record: Record, rng: np.random.Generator):
    rels = usable_relations(record)
    if not rels:
        return None
    s, p, o = rels[int(rng.integers(len(rels)))]
    w, h = record.image.width, record.image.height
    regions = {"subject": random_prompt(s, rng, w, h), "object": random_prompt(o, rng, w, h)}
    holds = {q for a, q, b in rels if a.id == s.id and b.id == o.id}
    return s, p, o, regions, holds


def relation(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    got = _pair(record, rng)
    if got is None:
        return NotApplicable("no_relations")
    s, p, o, regions, _ = got
    unit = _unit([s, o])
    answer = [Ground([capitalize(mention(s.category, known=True))], unit, [target_for(s, unit, ctx)]),
              f" is {p} ", Ground([mention(o.category, known=True)], unit, [target_for(o, unit, ctx)]), "."]
    return TurnSpec("relation", answer, regions=regions, annotation_ids=[s.id, o.id],
                    details={"predicate": p})


def relation_description(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    rels = usable_relations(record)
    if not rels:
        return NotApplicable("no_relations")
    involved = list(dict.fromkeys(i.id for s, _, o in rels for i in (s, o)))
    me = record.instance(involved[int(rng.integers(len(involved)))])
    mine = [(s, p, o) for s, p, o in rels if me.id in (s.id, o.id)]
    if len(mine) > MAX_CLAUSES:
        mine = [mine[k] for k in np.sort(rng.choice(len(mine), MAX_CLAUSES, replace=False))]
    unit = _unit([me] + [o if s.id == me.id else s for s, _, o in mine])

    def other(inst: Instance, first: bool) -> Ground:
        words = mention(inst.category, inst.isthing)
        return Ground([capitalize(words) if first else words], unit, [target_for(inst, unit, ctx)])

    answer: list[Seg] = [f"This is {mention(me.category, me.isthing)}."]
    acts = [(p, o) for s, p, o in mine if s.id == me.id]
    for k, (p, o) in enumerate(acts):
        answer += [" It is " if k == 0 else (" and " if k == len(acts) - 1 else ", "), f"{p} ", other(o, False)]
    if acts:
        answer.append(".")
    for s, p, _ in [(s, p, o) for s, p, o in mine if o.id == me.id]:
        answer += [" ", other(s, True), f" is {p} it."]
    return TurnSpec("relation_description", answer, regions={"region": random_prompt(
        me, rng, record.image.width, record.image.height)},
        annotation_ids=list(dict.fromkeys([me.id] + [i.id for s, _, o in mine for i in (s, o)])),
        details={"relations": len(mine)})


def relation_qa(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    got = _pair(record, rng)
    if got is None:
        return NotApplicable("no_relations")
    s, p, o, regions, holds = got
    positive = bool(rng.random() < 0.5)
    if not positive:
        pool = [q for q in predicate_vocabulary(record) if q not in holds]
        if not pool:
            return NotApplicable("no_negative_predicate")
        p = pool[int(rng.integers(len(pool)))]
    return TurnSpec("relation_qa", ["Yes" if positive else "No"], vars={"predicate": p}, regions=regions,
                    annotation_ids=[s.id, o.id], details={"positive": positive, "predicate": p})


def relation_mcq(record: Record, rng: np.random.Generator, ctx: TaskContext) -> TurnSpec | NotApplicable:
    got = _pair(record, rng)
    if got is None:
        return NotApplicable("no_relations")
    s, p, o, regions, holds = got
    pool = [q for q in predicate_vocabulary(record) if q not in holds]
    if len(pool) < len(LETTERS) - 1:
        return NotApplicable("too_few_distractor_predicates")
    picks = [pool[k] for k in rng.choice(len(pool), len(LETTERS) - 1, replace=False)]
    options = [p, *picks]
    order = rng.permutation(len(options))
    options = [options[k] for k in order]
    letter = LETTERS[options.index(p)]
    text = " ".join(f"({c}) {q}" for c, q in zip(LETTERS, options))
    return TurnSpec("relation_mcq", [f"({letter}) {p}"], vars={"options": text}, regions=regions,
                    annotation_ids=[s.id, o.id], details={"predicate": p, "options": options})
