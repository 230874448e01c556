"""Semantics-conditioned negatives without a model: pick grounded phrases from a record's texts and rewrite them
into phrases that name nothing annotated in the image, following the Ferret / GRIT rewrite rules:

1. one output per input phrase;               3. the output differs from the input (the head noun is swapped);
4. nothing abstract (replacements come from the concrete COCO vocabulary);
5. quantities are only ever raised ("two dogs" -> "three cats"); "one" becomes two or three;
6. quantifier words stay and the object changes ("a few men" -> "a few women" when that is allowed);
7. inclusive words stay inclusive ("people" -> "animals", never "men").
A rewrite that still names an annotated category, a synonym, a hypernym or a hyponym is rejected by the guard.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Protocol

from pipeline.negatives import taxonomy as tx
from pipeline.negatives.guard import Guard, Mention, tokenize
from pipeline.records import Record

_PREPOSITIONS = frozenset("in on at with of near next behind under over by from to for into onto beside between "
                          "holding wearing riding sitting standing walking eating playing carrying that which who "
                          "while and".split())
_PLURAL_QUANTIFIERS = frozenset("few several many lots group bunch herd flock number multiple various numerous "
                                "row pile stack couple variety set pair".split())
_NORM = re.compile(r"[^a-z0-9]+")
_MAX_LOOKBACK = 4


class Chooser(Protocol):
    """Ranks replacements for one record (implemented by the offline miner's per-record ranker)."""

    def category(self, concept: str | None, used: set[str]) -> str | None:
        """An absent COCO category confusable with ``concept`` (None: with the image), not in ``used``."""

    def inclusive(self, concept: str | None, plural: bool, used: set[str]) -> str | None:
        """An absent inclusive word (animals, vehicles...) of another branch than ``concept``, not in ``used``."""


class Uniform(Protocol):
    """A seeded source of uniform floats in [0, 1) (numpy's Generator and the miner's HashStream both fit)."""

    def random(self) -> float:
        """The next draw."""


class SourcePhrase(NamedTuple):
    text_id: str
    phrase: str
    toks: tuple | None = None  # the phrase's tokens and mentions when already known (offsets in the phrase)
    mentions: tuple | None = None


def sample(n: int, k: int, rng: Uniform) -> list[int]:
    """``k`` of ``range(n)`` without replacement, in increasing order (partial Fisher-Yates)."""
    idx = list(range(n))
    for i in range(min(k, n)):
        j = i + int(rng.random() * (n - i))
        idx[i], idx[j] = idx[j], idx[i]
    return sorted(idx[:k])


def normalise(s: str) -> str:
    return _NORM.sub(" ", s.lower()).strip()


def _chunk_start(toks: list[tuple[str, int, int]], head_tok: int) -> int:
    """First token of the noun chunk ending in token ``head_tok``: determiners, numbers, quantifiers and a few
    adjectives to its left; a leading "of" is dropped ("top of a surfboard" -> "a surfboard")."""
    j = head_tok
    while j > 0 and head_tok - j < _MAX_LOOKBACK and toks[j - 1][0] in tx.MODIFIERS:
        j -= 1
    while j < head_tok and toks[j][0] == "of":
        j += 1
    return j


def _caption_chunks(text_id: str, text: str, guard: Guard, rng: Uniform, k: int) -> list[SourcePhrase]:
    """Noun chunks of a caption around ``k`` sampled mentions of annotated concepts."""
    toks = tokenize(text)
    grounded = [m for m in guard.vocab.match(text, toks) if m.concepts & guard.forbidden]
    if len(grounded) > k:
        grounded = [grounded[i] for i in sample(len(grounded), k, rng)]
    out = []
    for m in grounded:
        j = _chunk_start(toks, m.start)
        base = toks[j][1]
        sub = tuple((w, s - base, e - base) for w, s, e in toks[j:m.end])
        mention = Mention(m.start - j, m.end - j, m.cstart - base, m.cend - base, m.surface, m.concepts, m.plural)
        out.append(SourcePhrase(text_id, text[base:m.cend], sub, (mention,)))
    return out


def extract_phrases(record: Record, guard: Guard, rng: Uniform, per_text: int) -> list[SourcePhrase]:
    """Up to ``per_text`` grounded phrases per text: spans of grounded captions, whole referring expressions and
    region descriptions, and noun chunks of captions around a mention of an annotated category."""
    out: list[SourcePhrase] = []
    for text in record.texts:
        if text.kind == "grounded_caption" and text.spans:
            cands = [SourcePhrase(text.id, text.text[s.start:s.end].strip()) for s in text.spans]
        elif text.kind in ("refexp", "region_description"):
            cands = [SourcePhrase(text.id, text.text.strip())]
        else:
            cands = _caption_chunks(text.id, text.text, guard, rng, per_text)
        seen: set[str] = set()
        cands = [c for c in cands if c.phrase and not (c.phrase in seen or seen.add(c.phrase))]
        if len(cands) > per_text:
            cands = [cands[i] for i in sample(len(cands), per_text, rng)]
        out.extend(cands)
    return out


def _fallback_head(phrase: str, toks: list[tuple[str, int, int]]) -> Mention | None:
    """Head of a phrase with no vocabulary term: the last plain word before the first preposition."""
    end = next((i for i, t in enumerate(toks) if i > 0 and t[0] in _PREPOSITIONS), len(toks))
    for i in range(end - 1, -1, -1):
        word, s, e = toks[i]
        if word.isalpha() and word not in tx.MODIFIERS and word not in _PREPOSITIONS:
            plural = word.endswith("s") and not word.endswith("ss")
            return Mention(i, i + 1, s, e, word, frozenset(), plural)
    return None


def _replacement(m: Mention, plural: bool, guard: Guard, choose: Chooser, used: set[str]) -> str | None:
    concept = min(m.concepts) if m.concepts else None
    if m.surface in tx.INCLUSIVE or (plural and concept is not None and concept not in guard.vocab.supercategory
                                     and concept not in tx.PERSON_KINDS):
        return choose.inclusive(concept, plural, used)  # rule 7: inclusive stays inclusive, another branch
    sibling = tx.SIBLING_SWAPS.get(concept or "")
    if sibling and sibling not in guard.forbidden and sibling not in used:  # rule 6: "a few men" -> "a few women"
        used.add(sibling)
        return tx.plural(sibling) if plural else sibling
    cat = choose.category("person" if concept in tx.PERSON_KINDS else concept, used)
    if cat is None:
        return None
    used.add(cat)
    word = tx.DISPLAY.get(cat, cat)
    return tx.plural(word) if plural else word


def _match_case(original: str, new: str) -> str:
    return new[:1].upper() + new[1:] if original[:1].isupper() else new


def _raise_number(phrase: str, toks: list, head: Mention, rng: Uniform,
                  edits: dict[int, tuple[int, str]]) -> bool:
    """Rule 5: raise a number in front of the head ("two dogs" -> "three ..."). Returns whether the head must be
    plural (a number or a plural quantifier precedes it)."""
    plural = head.plural
    j = head.start - 1
    while j >= 0 and head.start - j <= _MAX_LOOKBACK and (toks[j][0] in tx.MODIFIERS or toks[j][0].isdigit()):
        word, s, e = toks[j]
        n = int(word) if word.isdigit() else tx.NUMBER_WORDS.get(word)
        if n is not None:
            raised = n + 1 + int(rng.random() < 0.5)
            new = str(raised) if word.isdigit() else tx.NUMBER_NAMES.get(raised, str(raised))
            edits[s] = (e, _match_case(phrase[s:e], new))
            return True
        plural = plural or word in _PLURAL_QUANTIFIERS  # "lots of broccoli" -> "lots of carrots"
        j -= 1
    return plural


def rewrite(sp: SourcePhrase, guard: Guard, choose: Chooser, rng: Uniform) -> tuple[str | None, str]:
    """(rewritten phrase, "") or (None, reason): no_head, no_replacement, unchanged, guard_rejected."""
    phrase = sp.phrase
    toks = list(sp.toks) if sp.toks is not None else tokenize(phrase)
    mentions = list(sp.mentions) if sp.mentions is not None else guard.vocab.match(phrase, toks)
    head = mentions[0] if mentions else _fallback_head(phrase, toks)
    if head is None:
        return None, "no_head"
    edits: dict[int, tuple[int, str]] = {}  # char start -> (char end, replacement)
    head_plural = _raise_number(phrase, toks, head, rng, edits)
    used: set[str] = set(head.concepts)  # never "replace" a word by itself
    for m in [head] + [m for m in mentions if m is not head and m.concepts & guard.forbidden]:
        rep = _replacement(m, head_plural if m is head else m.plural, guard, choose, used)
        if rep is None:
            return None, "no_replacement"
        edits[m.cstart] = (m.cend, _match_case(phrase[m.cstart:m.cend], rep))
        k = m.start - 1  # a / an agreement with the word that now follows the article
        if k >= 0 and toks[k][0] in ("a", "an") and phrase[toks[k][2]:m.cstart].isspace():
            art = "an" if rep[:1].lower() in "aeiou" else "a"
            edits[toks[k][1]] = (toks[k][2], _match_case(phrase[toks[k][1]:toks[k][2]], art))
    pieces, pos = [], 0
    for s in sorted(edits):
        e, rep = edits[s]
        pieces += [phrase[pos:s], rep]
        pos = e
    result = "".join(pieces + [phrase[pos:]])
    if " ".join(result.lower().split()) == " ".join(phrase.lower().split()):
        return None, "unchanged"
    if guard.violation(result) is not None:
        return None, "guard_rejected"
    return result, ""
