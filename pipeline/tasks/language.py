"""Tiny English helpers for answers: plurals and counted noun phrases for category names."""

from __future__ import annotations

from functools import lru_cache

_IRREGULAR = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice", "knife": "knives",
    "sheep": "sheep", "skis": "skis", "scissors": "scissors", "glasses": "glasses", "shelf": "shelves",
    "leaf": "leaves", "wolf": "wolves", "foot": "feet", "tooth": "teeth", "goose": "geese", "fish": "fish",
    "deer": "deer", "bus": "buses", "grass": "grass", "sand": "sand", "snow": "snow", "water": "water",
    "sky": "sky", "pavement": "pavement", "gravel": "gravel", "dirt": "dirt", "wine glass": "wine glasses",
}
_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve"]


@lru_cache(maxsize=4096)
def clean_category(name: str) -> str:
    """'tree-merged' -> 'tree', 'wall-other-merged' -> 'wall': panoptic names read as plain words."""
    for suffix in ("-merged", "-other", "-stuff"):
        name = name.replace(suffix, "")
    return name.replace("-", " ").replace("_", " ").strip()


def plural(noun: str) -> str:
    noun = clean_category(noun)
    if noun in _IRREGULAR:
        return _IRREGULAR[noun]
    head, _, last = noun.rpartition(" ")
    pre = head + " " if head else ""
    if last in _IRREGULAR:
        return pre + _IRREGULAR[last]
    if last.endswith(("s", "x", "z", "ch", "sh")):
        return pre + last + "es"
    if last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        return pre + last[:-1] + "ies"
    return pre + last + "s"


def article(noun: str) -> str:
    noun = clean_category(noun)
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def counted(noun: str, n: int) -> str:
    """'a dog', 'two dogs', '14 dogs'."""
    if n == 1:
        return article(noun)
    word = _NUMBERS[n] if n < len(_NUMBERS) else str(n)
    return f"{word} {plural(noun)}"


def join(items: list) -> list:
    """Interleave segments with ', ' and ' and ' separators."""
    out: list = []
    for i, item in enumerate(items):
        if i:
            out.append(" and " if i == len(items) - 1 else ", ")
        out.append(item)
    return out


_UNSAFE = str.maketrans({c: " " for c in "<>()[]{}"})


@lru_cache(maxsize=8192)
def sanitize(text: str) -> str:
    """Text safe inside TRP and the text-coordinate format: no ``< > ( ) [ ] { }``, single spaces, stripped."""
    return " ".join(text.translate(_UNSAFE).split())


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def definite(noun: str) -> str:
    """'the dog' for a category name."""
    return "the " + clean_category(noun)


def mention(category: str, isthing: bool = True, known: bool = False) -> str:
    """How an answer names one object: 'a dog' / 'the dog'; stuff without an article: 'grass' / 'the grass'."""
    noun = sanitize(clean_category(category))
    if known:
        return "the " + noun
    return article(noun) if isthing else noun
