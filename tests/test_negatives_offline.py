"""The offline miner: vocabulary guard, Ferret rewrite rules, and the real COCO sample."""

from __future__ import annotations

import re

import pytest

from pipeline.negatives import taxonomy as tx
from pipeline.negatives.guard import Guard
from pipeline.negatives.offline import OfflineMiner
from pipeline.records import ImageRef, Instance, Record, Text


def _record(categories: list[str], texts: list[tuple[str, str]] = (), rid: str = "t/val/1") -> Record:
    return Record(id=rid, source="t", split="val",
                  image=ImageRef(path="/nonexistent.jpg", sha256="0", width=10, height=10),
                  instances=[Instance(id=str(i), category=c, box=(0, 0, 1, 1)) for i, c in enumerate(categories)],
                  texts=[Text(id=f"{rid}/t{i}", kind=k, text=t) for i, (k, t) in enumerate(texts)])


def _phrases(record: Record, seed: int = 0) -> dict[str, str]:
    negs, _, _ = OfflineMiner(seed=seed)(record)
    return {n["original"]: n["phrase"] for n in negs if n["kind"] == "phrase"}


# -- the guard ---------------------------------------------------------------------------------------------------
def test_guard_forbids_synonyms_hypernyms_and_hyponyms_but_not_siblings():
    dog = Guard(["dog"])
    for bad in ("dog", "two dogs", "a puppy", "an animal", "some pets", "wildlife"):
        assert dog.violation(bad) is not None, bad
    for ok in ("a cat", "a hot dog", "a teddy bear", "a horse"):
        assert dog.violation(ok) is None, ok
    person = Guard(["person"])
    for bad in ("a man", "two women", "people", "a little girl", "a skier", "the crowd"):
        assert person.violation(bad) is not None, bad
    man = Guard(["man"])  # a source that annotates "man": person is its hypernym, woman a sibling
    assert man.violation("a person") is not None and man.violation("a woman") is None


def test_guard_handles_unknown_category_names():
    g = Guard(["tree-merged", "wall-other-merged"])
    assert g.violation("three trees") is not None and g.violation("a wall") is not None
    assert g.violation("a bus") is None


# -- the Ferret rules --------------------------------------------------------------------------------------------
def test_rule6_quantifier_kept_object_changed_a_few_men_to_a_few_women():
    out = _phrases(_record(["man"], [("refexp", "a few men")]))
    assert out == {"a few men": "a few women"}


def test_rule5_numbers_only_raised_and_head_swapped():
    for seed in range(6):
        out = _phrases(_record(["dog"], [("refexp", "two dogs")]), seed)
        new = out["two dogs"]
        assert re.match(r"^(three|four) \w", new), new
        assert Guard(["dog"]).violation(new) is None
        assert new.endswith("s"), new  # plural head after a raised number


def test_rule7_inclusive_words_stay_inclusive():
    for seed in range(6):
        out = _phrases(_record(["person"], [("refexp", "a group of people")]), seed)
        new = out["a group of people"]
        assert new.startswith("a group of ")
        assert new.removeprefix("a group of ") in tx.INCLUSIVE and new != "a group of people", new


def test_article_agrees_and_capital_kept():
    seen = set()
    for seed in range(20):
        new = _phrases(_record(["dog"], [("caption", "An old dog sleeps. A dog runs.")]), seed)
        for v in new.values():
            seen.add(v)
            assert not re.search(r"\b[Aa] [aeiou]", v) and not re.search(r"\b[Aa]n [^aeiou\s]", v), v
            assert v[0].isupper()
    assert len(seen) > 1  # the seed matters


def test_rewrites_every_annotated_mention_in_a_refexp():
    out = _phrases(_record(["dog", "person"], [("refexp", "the man walking a dog")]))
    new = out["the man walking a dog"]
    assert Guard(["dog", "person"]).violation(new) is None
    assert "walking" in new


def test_category_negatives_ranked_by_confusability():
    negs, _, _ = OfflineMiner()(_record(["dog"]))
    cats = [n["phrase"] for n in negs if n["kind"] == "category"]
    animals = {n for n, s in tx.COCO_CATEGORIES if s == "animal"}
    assert len(cats) == 3 and set(cats) <= animals - {"dog"}, cats
    assert "cat" in cats  # the hand-picked look-alike


def test_deterministic_per_record_and_seed():
    rec = _record(["dog", "person"], [("caption", "A man and his dog on a beach.")])
    a, b = OfflineMiner(seed=1)(rec)[0], OfflineMiner(seed=1)(rec)[0]
    assert a == b
    variants = {tuple(n["phrase"] for n in OfflineMiner(seed=s)(rec)[0]) for s in range(10)}
    assert len(variants) > 1


# -- the real COCO sample ----------------------------------------------------------------------------------------
def _forbidden_terms(category: str) -> set[str]:
    """An independent list of words that would name ``category``: itself, synonyms, supercategory words,
    hypernyms listing it, kinds of person; singular and plural."""
    sup = dict(tx.COCO_CATEGORIES)[category]
    terms = {category, tx.DISPLAY.get(category, category), *tx.SYNONYMS.get(category, ())}
    terms |= set(tx.SUPERCATEGORY_TERMS.get(sup, ()))
    terms |= {t for parent, ts, children in tx.HYPERNYMS.values() if category in children for t in ts}
    if category == "person":
        terms |= {t for ts in tx.PERSON_KINDS.values() for t in ts} | {"people", "crowd"}
    terms |= {k for k, v in tx.INCLUSIVE.items() if v in (sup, category)}
    return terms | {tx.plural(t) for t in terms}


def _names(phrase: str, term: str, allowed_longer: list[str]) -> bool:
    text = " " + " ".join(re.findall(r"[a-z0-9]+", phrase.lower())) + " "
    for longer in allowed_longer:  # "hot dog" does not name a dog
        text = text.replace(f" {longer} ", " _ ")
    return f" {term} " in text


@pytest.mark.shared
def test_real_coco_no_negative_names_an_annotated_category(coco_real_records):
    miner = OfflineMiner(seed=0)
    n_phrase = n_texts = 0
    for rec in coco_real_records:
        cats = {i.category for i in rec.instances}
        negs, stats, skips = miner(rec)
        assert sum(n["kind"] == "category" for n in negs) == 3
        longer = [n for n, _ in tx.COCO_CATEGORIES if n not in cats and " " in n]
        longer += [tx.plural(n) for n in longer]
        for n in negs:
            for c in cats:
                for term in _forbidden_terms(c):
                    assert not _names(n["phrase"], term, longer), (rec.id, c, term, n)
            if n["kind"] == "phrase":
                assert n["original"] and n["phrase"] != n["original"] and n["text_id"] in {t.id for t in rec.texts}
        n_phrase += sum(n["kind"] == "phrase" for n in negs)
        n_texts += len(rec.texts)
    assert n_phrase >= 0.8 * n_texts, (n_phrase, n_texts)  # most captions mention an annotated object
