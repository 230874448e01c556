"""The offline miner (default, no model).

Image-conditioned negatives: COCO categories absent from the image (not annotated, not a synonym, ancestor or
descendant of an annotated one), ranked by confusability with the present ones:

    score(c) = max_p S[p, c] + 0.1 * sum_p S[p, c] + jitter,   jitter ~ U(0, 0.25) seeded per record
    S[p, c]  = 2.0 [same supercategory] + 1.5 [hand-picked look-alike pair] + 1.0 [supercategories share a scene]
               + 0.5 * character-trigram Jaccard(name p, name c)

Semantics-conditioned negatives: phrase rewrites of grounded phrases (:mod:`pipeline.negatives.phrases`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import lru_cache

import numpy as np

from pipeline.negatives import taxonomy as tx
from pipeline.negatives.guard import Guard, Vocabulary, vocabulary
from pipeline.negatives.phrases import SourcePhrase, extract_phrases, rewrite
from pipeline.records import Record, Skip

OFFLINE_MODEL = "offline-miner/1"  # bump when the offline output for the same input changes
JITTER = 0.25


def _trigrams(name: str) -> set[str]:
    s = f"  {name} "
    return {s[i:i + 3] for i in range(len(s) - 2)}


@lru_cache(maxsize=1)
def confusability() -> np.ndarray:
    """S[p, c] over the 80 COCO categories (diagonal 0)."""
    names = [n for n, _ in tx.COCO_CATEGORIES]
    sup = [s for _, s in tx.COCO_CATEGORIES]
    index = {n: i for i, n in enumerate(names)}
    scenes = {s: {k for k, members in tx.SCENES.items() if s in members} for s in set(sup)}
    grams = [_trigrams(n) for n in names]
    n = len(names)
    m = np.zeros((n, n), dtype=np.float64)
    for i in range(n):
        for j in range(n):
            if i != j:
                m[i, j] = (2.0 * (sup[i] == sup[j]) + 1.0 * bool(scenes[sup[i]] & scenes[sup[j]])
                           + 0.5 * len(grams[i] & grams[j]) / len(grams[i] | grams[j]))
    for a, b in tx.CONFUSABLE_PAIRS:
        m[index[a], index[b]] += 1.5
        m[index[b], index[a]] += 1.5
    return m


class HashStream:
    """Uniform floats from shake_128 of (seed, keys): a stable per-record stream that costs ~1 us to create
    (numpy's ``default_rng`` costs ~35 us per record in its SeedSequence, more than mining a record's categories).
    """

    def __init__(self, seed: int, *keys: object):
        self._key = repr((int(seed),) + tuple(str(k) for k in keys)).encode("utf-8")
        self._block = 0
        self._buf: list[int] = []
        self._i = 0

    def _refill(self) -> None:
        data = hashlib.shake_128(self._key + b"#%d" % self._block).digest(256)
        self._buf, self._i = np.frombuffer(data, dtype="<u4").tolist(), 0
        self._block += 1

    def random(self) -> float:
        if self._i >= len(self._buf):
            self._refill()
        self._i += 1
        return self._buf[self._i - 1] / 4294967296.0

    def uniform_vector(self, n: int, high: float) -> np.ndarray:
        raw = hashlib.shake_128(self._key + b"#vector").digest(4 * n)
        return np.frombuffer(raw, dtype="<u4") * (high / 4294967296.0)


class _Ranker:
    """Per record: absent categories ranked by confusability, with one seeded jitter vector for the record."""

    def __init__(self, miner: "OfflineMiner", guard: Guard, rng: HashStream):
        self.miner, self.guard, self.rng = miner, guard, rng
        allowed, self.n_allowed = miner.allowed(guard)
        self.penalty = np.where(allowed, 0.0, -np.inf) + rng.uniform_vector(len(miner.names), JITTER)
        self._orders: dict[frozenset[str], list[str]] = {}

    def order(self, concepts: frozenset[str]) -> list[str]:
        """The absent categories, most confusable with ``concepts`` first."""
        out = self._orders.get(concepts)
        if out is None:
            score = self.miner.base_score(concepts) + self.penalty
            names = self.miner.names
            k = min(self.n_allowed, max(_ORDER_LEN, self.miner.categories_per_image))
            out = [names[i] for i in np.argsort(-score, kind="stable")[:k].tolist()]
            self._orders[concepts] = out
        return out

    def top(self, k: int) -> list[str]:
        return self.order(self.guard.annotated)[:k]

    def category(self, concept: str | None, used: set[str]) -> str | None:
        order = self.order(frozenset((concept,)) if concept else self.guard.annotated)
        cands = [name for name in order[: len(_PICK) + len(used)] if name not in used][: len(_PICK)]
        if not cands:
            return None
        r = self.rng.random() * sum(_PICK[: len(cands)])
        for name, p in zip(cands, _PICK):
            r -= p
            if r < 0:
                return name
        return cands[-1]

    def inclusive(self, concept: str | None, plural: bool, used: set[str]) -> str | None:
        related = self.miner.vocab.related(concept) if concept else frozenset()
        best, best_score = None, -1.0
        for surface_pl, c in tx.INCLUSIVE.items():
            if c in self.guard.forbidden or c in used or c in related or \
                    (not plural and c not in tx.INCLUSIVE_SINGULAR):
                continue
            score = self.miner.inclusive_affinity(concept, c) + self.rng.random()
            if score > best_score:
                best, best_score = (c, surface_pl if plural else tx.INCLUSIVE_SINGULAR[c]), score
        if best is None:
            return None
        used.add(best[0])
        return best[1]


_PICK = (0.5, 0.3, 0.2)  # probabilities of taking the 1st / 2nd / 3rd most confusable replacement
_ORDER_LEN = 24  # ranked candidates kept per concept (a phrase never uses more than a handful)


class OfflineMiner:
    """Per record: ``categories_per_image`` category negatives and ``phrases_per_text`` phrase negatives per text."""

    def __init__(self, seed: int = 0, categories_per_image: int = 3, phrases_per_text: int = 1,
                 vocab: Vocabulary | None = None):
        self.seed = seed
        self.categories_per_image = categories_per_image
        self.phrases_per_text = phrases_per_text
        self.vocab = vocab or vocabulary()
        self.names = [n for n, _ in tx.COCO_CATEGORIES]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.matrix = confusability()
        self._allowed: dict[frozenset[str], tuple[np.ndarray, int]] = {}
        self._rows: dict[frozenset[str], list[int]] = {}
        self._scores: dict[frozenset[str], np.ndarray] = {}
        self._affinity: dict[tuple[str | None, str], float] = {}

    # -- tables memoised over concepts (not over records or texts) -------------------------------------------
    def allowed(self, guard: Guard) -> tuple[np.ndarray, int]:
        """Which COCO categories a negative may name in this image, and how many."""
        key = guard.forbidden | frozenset(" ".join(r) for r in guard.raw) if guard.raw else guard.forbidden
        hit = self._allowed.get(key)
        if hit is None:
            mask = np.array([n not in guard.forbidden and guard.violation(tx.DISPLAY.get(n, n)) is None
                             and guard.violation(n) is None for n in self.names])
            hit = (mask, int(mask.sum()))
            if len(self._allowed) < 65536:
                self._allowed[key] = hit
        return hit

    def rows(self, concepts: frozenset[str]) -> list[int]:
        rows = self._rows.get(concepts)
        if rows is None:
            found: set[int] = set()
            for c in concepts:
                c = "person" if c in tx.PERSON_KINDS else c
                if c in self.index:
                    found.add(self.index[c])
                else:  # a hypernym / supercategory: its COCO descendants
                    found.update(self.index[d] for d in self.vocab.descendants(c) if d in self.index)
            rows = self._rows[concepts] = sorted(found)
        return rows

    def inclusive_affinity(self, concept: str | None, other: str) -> float:
        """Mean confusability between the COCO members of two concepts (0 when either has none)."""
        key = (concept, other)
        value = self._affinity.get(key)
        if value is None:
            a = self.rows(frozenset((concept,))) if concept else []
            b = self.rows(frozenset((other,)))
            value = self._affinity[key] = float(self.matrix[np.ix_(a, b)].mean()) if a and b else 0.0
        return value

    def base_score(self, concepts: frozenset[str]) -> np.ndarray:
        score = self._scores.get(concepts)
        if score is None:
            rows = self.rows(concepts)
            sub = self.matrix[rows]
            score = sub.max(axis=0) + 0.1 * sub.sum(axis=0) if rows else np.zeros(len(self.names))
            if len(self._scores) < 65536:
                self._scores[concepts] = score
        return score

    # -- per record ------------------------------------------------------------------------------------------
    def guard(self, record: Record) -> Guard:
        return Guard({i.category for i in record.instances}, self.vocab)

    def rng(self, record: Record) -> HashStream:
        return HashStream(self.seed, "negatives", record.id)

    def source_phrases(self, record: Record, guard: Guard, rng: HashStream) -> list[SourcePhrase]:
        return extract_phrases(record, guard, rng, self.phrases_per_text)

    def __call__(self, record: Record, phrases: bool = True) -> tuple[list[dict], Counter, list[Skip]]:
        """(negatives, stats, skips) for one record; ``phrases=False``: category negatives only."""
        stats: Counter = Counter()
        skips: list[Skip] = []
        guard = self.guard(record)
        rng = self.rng(record)
        ranker = _Ranker(self, guard, rng)
        negs = [negative("category", tx.DISPLAY.get(c, c), None, None, "offline")
                for c in ranker.top(self.categories_per_image)]
        if not phrases:
            return negs, stats, skips
        for sp in self.source_phrases(record, guard, rng):
            new, reason = rewrite(sp, guard, ranker, rng)
            if new is None:
                stats[f"negatives.rewrite_{reason}"] += 1
                skips.append(Skip(source=record.source, kind="text", item_id=sp.text_id,
                                  reason=f"negatives.{reason}", detail=sp.phrase[:200]))
            else:
                negs.append(negative("phrase", new, sp.phrase, sp.text_id, "offline"))
        return negs, stats, skips


def negative(kind: str, phrase: str, original: str | None, text_id: str | None, miner: str,
             model: str = OFFLINE_MODEL, prompt_hash: str | None = None, cache_key: str | None = None) -> dict:
    """One entry of ``record.extras["negatives"]``."""
    return {"kind": kind, "phrase": phrase, "original": original, "text_id": text_id, "miner": miner,
            "verified": False, "provenance": {"model": model, "prompt_hash": prompt_hash, "cache_key": cache_key}}
