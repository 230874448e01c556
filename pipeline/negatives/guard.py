"""The concept tree built from :mod:`pipeline.negatives.taxonomy`, a term matcher, and the per-image guard that
says whether a phrase names something annotated (itself, a synonym, an ancestor or a descendant).

Pure Python, no model: ~1 us per token to match.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from pipeline.negatives import taxonomy as tx

_WORD = re.compile(r"[a-z0-9]+")
_SUFFIXES = ("-merged", "-other", "-stuff", "-s")


class Mention(NamedTuple):
    """A vocabulary term found in a text: tokens [start, end), characters [cstart, cend)."""

    start: int
    end: int
    cstart: int
    cend: int
    surface: str
    concepts: frozenset[str]
    plural: bool


def tokenize(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text.lower())]


class Vocabulary:
    """Concepts (COCO categories, supercategories, hypernyms, kinds of person) and their surface terms."""

    def __init__(self) -> None:
        self.parents: dict[str, set[str]] = {}
        self.terms: dict[tuple[str, ...], tuple[frozenset[str], bool]] = {}
        self.supercategory = dict(tx.COCO_CATEGORIES)
        self.categories = [name for name, _ in tx.COCO_CATEGORIES]
        for name, sup in tx.COCO_CATEGORIES:
            self._concept(name, [] if sup == "person" else [sup])
            for term in (name, tx.DISPLAY.get(name, name)) + tx.SYNONYMS.get(name, ()):
                self._term(term, name)
        for sup, terms in tx.SUPERCATEGORY_TERMS.items():
            if sup != "person":
                self._concept(sup, [])
                for term in terms:
                    self._term(term, sup)
        for hyper, (parent, terms, children) in tx.HYPERNYMS.items():
            self._concept(hyper, [parent] if parent else [])
            for child in children:
                self.parents[child].add(hyper)
            for term in terms:
                self._term(term, hyper)
        for kind, terms in tx.PERSON_KINDS.items():
            self._concept(kind, ["person"])
            for term in terms:
                self._term(term, kind)
        for surface, concept in tx.INCLUSIVE.items():
            self._term(surface, concept, plural_only=True)
        self.max_len = max(len(k) for k in self.terms)
        self.first_words = frozenset(k[0] for k in self.terms)
        self.children: dict[str, set[str]] = {c: set() for c in self.parents}
        for c, ps in self.parents.items():
            for p in ps:
                self.children.setdefault(p, set()).add(c)

    def _concept(self, name: str, parents: list[str]) -> None:
        self.parents.setdefault(name, set()).update(parents)

    def _term(self, term: str, concept: str, plural_only: bool = False) -> None:
        p = tx.plural(term)
        forms = [(term, True)] if plural_only else [(term, False), (p, p != term)]
        for form, is_plural in forms:
            key = tuple(form.split())
            old_concepts, old_plural = self.terms.get(key, (frozenset(), False))
            self.terms[key] = (old_concepts | {concept}, old_plural or is_plural)

    # -- queries ---------------------------------------------------------------------------------------------
    def match(self, text: str, toks: list[tuple[str, int, int]] | None = None) -> list[Mention]:
        """Longest-first, left-to-right term matches (``toks``: the text's tokens when already known)."""
        toks = tokenize(text) if toks is None else toks
        words = [t[0] for t in toks]
        return [Mention(i, i + n, toks[i][1], toks[i + n - 1][2], " ".join(words[i:i + n]), hit[0], hit[1])
                for i, n, hit in self._longest(words)]

    def concepts_in(self, words: list[str]) -> list[tuple[str, frozenset[str]]]:
        """(surface, concepts) of the longest-first term matches in a word list (no offsets: the fast path)."""
        return [(" ".join(words[i:i + n]), hit[0]) for i, n, hit in self._longest(words)]

    def _longest(self, words: list[str]):
        """(start, length, term entry) of the longest-first, left-to-right, non-overlapping term matches."""
        first, terms, max_len = self.first_words, self.terms, self.max_len
        n_words, covered = len(words), 0
        for i in [i for i, w in enumerate(words) if w in first]:
            if i < covered:
                continue
            for n in range(min(max_len, n_words - i), 0, -1):
                hit = terms.get(tuple(words[i:i + n]))
                if hit is not None:
                    yield i, n, hit
                    covered = i + n
                    break

    def ancestors(self, concept: str) -> set[str]:
        return _closure(concept, self.parents)

    def descendants(self, concept: str) -> set[str]:
        return _closure(concept, self.children)

    @lru_cache(maxsize=4096)
    def related(self, concept: str) -> frozenset[str]:
        """The concept, its ancestors and its descendants: everything a negative may not name."""
        return frozenset({concept} | self.ancestors(concept) | self.descendants(concept))

    @lru_cache(maxsize=4096)
    def terms_of(self, concepts: frozenset[str], raw: frozenset[tuple[str, ...]]) -> tuple[str, ...]:
        """Singular surface terms of ``concepts`` plus the ``raw`` names, sorted (memoised per set)."""
        return _terms_of(self, concepts, raw)

    @lru_cache(maxsize=4096)
    def name_concepts(self, name: str) -> tuple[frozenset[str], str]:
        """Concepts of an annotated category name from any source, and the normalised name when none is known."""
        norm = name.lower().strip()
        for suffix in _SUFFIXES:
            norm = norm.removesuffix(suffix)
        norm = " ".join(re.split(r"[-_/\s]+", norm)).strip()
        hits = self.match(norm)
        if hits:
            return frozenset().union(*(h.concepts for h in hits)), ""
        return frozenset(), norm


def _terms_of(vocab: Vocabulary, concepts: frozenset[str], raw: frozenset[tuple[str, ...]]) -> tuple[str, ...]:
    out = {" ".join(k) for k, (cs, plural) in vocab.terms.items() if not plural and cs & concepts}
    return tuple(sorted(out | {" ".join(r) for r in raw}))


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    return Vocabulary()


class Guard:
    """Per image: the concepts (and unknown category names) a negative must not name."""

    def __init__(self, categories: list[str] | set[str], vocab: Vocabulary | None = None):
        self.vocab = vocab or vocabulary()
        annotated: set[str] = set()
        self.raw: set[tuple[str, ...]] = set()
        forbidden: set[str] = set()
        for name in sorted(set(categories)):
            concepts, raw = self.vocab.name_concepts(name)
            annotated |= concepts
            for c in concepts:
                forbidden |= self.vocab.related(c)
            if raw:
                for form in (raw, tx.plural(raw), raw.split()[-1], tx.plural(raw.split()[-1])):
                    self.raw.add(tuple(form.split()))
        self.annotated = frozenset(annotated)  # concepts of the annotated categories
        self.forbidden = frozenset(forbidden)  # ... with their ancestors and descendants
        self.raw_len = max((len(r) for r in self.raw), default=0)

    def allowed_concept(self, concept: str) -> bool:
        return concept not in self.forbidden

    def violation(self, phrase: str) -> str | None:
        """The offending term when ``phrase`` names an annotated thing (or a synonym / hypernym / hyponym)."""
        words = _WORD.findall(phrase.lower())
        for surface, concepts in self.vocab.concepts_in(words):
            if concepts & self.forbidden:
                return surface
        if self.raw:
            for n in range(1, self.raw_len + 1):
                for i in range(len(words) - n + 1):
                    if tuple(words[i:i + n]) in self.raw:
                        return " ".join(words[i:i + n])
        return None

    def forbidden_terms(self) -> list[str]:
        """Surface terms of every forbidden concept (for the LLM prompt), sorted."""
        return list(self.vocab.terms_of(self.forbidden, frozenset(self.raw)))


def _closure(concept: str, edges: dict) -> set[str]:
    """Every concept reachable from `concept` along `edges` (parents or children), itself excluded."""
    seen, stack = set(), list(edges.get(concept, ()))
    while stack:
        c = stack.pop()
        if c not in seen:
            seen.add(c)
            stack.extend(edges.get(c, ()))
    return seen
