"""Lint the template bank: render every template and check it against the catalogue and the file format.

``lint(bank)`` returns a list of :class:`LintProblem` (empty when the bank is clean). Each template is rendered
twice: once with realistic sample values (``<image>``, ``<region>``, referring expressions, categories, phrases,
predicates; drawn from real records when given) to catch undefined variables and empty output, and once with a
unique marker per variable to count how often each variable appears.

Problem kinds (``LintProblem.kind``):

==================== ====================================================================================
undefined_variable   uses a variable the catalogue does not declare for the task (or fails to render)
empty                renders to nothing
image_missing        a task with ``image: true`` whose user template has no ``{{ image }}``
image_repeated       ``{{ image }}`` (or a literal ``<image>``) more than once
image_forbidden      ``<image>`` where it must not be: refine-like tasks, system prompts, answer wrappers
region_missing       a catalogued region variable is not used
region_extra         a region variable used more than once, or a hard-coded ``<region>``
missing_variable     a declared non-region variable (expression, category...) is not used
too_few              fewer than ``min_user`` user templates, or fewer than ``min_answer`` answer wrappers
duplicate            equal to an earlier template after lower-casing, collapsing whitespace, ``{{ var }}`` -> slot
near_duplicate       differs from an earlier template only by punctuation
answer_count         an answer wrapper without ``{{ answer }}`` exactly once
no_bare_answer       an answer.jinja without the bare ``{{ answer }}`` wrapper
trailing_whitespace  a file line, or a rendered line, ends in whitespace
format               a numbered line ("1. ...") or a line wrapped in quotes
==================== ====================================================================================
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jinja2 import Environment, meta

from pipeline.errors import ConfigError
from pipeline.seeds import rng_for
from pipeline.templates import KINDS, Template, TemplateBank, plural_category

if TYPE_CHECKING:
    from pipeline.records import Record

PROBLEM_KINDS = ("undefined_variable", "empty", "image_missing", "image_repeated", "image_forbidden",
                 "region_missing", "region_extra", "missing_variable", "too_few", "duplicate", "near_duplicate",
                 "answer_count", "no_bare_answer", "trailing_whitespace", "format")

# realistic values, in the style of RefCOCO / COCO / PSG annotations (used when no records are given, and always
# for the kinds records do not carry)
SAMPLES: dict[str, list[str]] = {
    "expression": ["the man in the red shirt on the left", "woman holding an umbrella", "second bus from right",
                   "small white dog next to the bench", "pizza closest to the camera", "guy in blue jeans"],
    "category": ["people", "dogs", "traffic lights", "cups", "buses", "teddy bears"],
    "phrase": ["a red umbrella", "a cat sleeping on the sofa", "two surfboards", "a fire hydrant", "a giraffe"],
    "predicate": ["sitting on", "holding", "standing next to", "riding", "in front of", "looking at"],
    "options": ["(A) holding (B) riding (C) beside (D) on", "(A) under (B) in front of (C) eating (D) parked on"],
}
_FIXED = {"image": "<image>", "region": "<region>", "subject": "<region>", "object": "<region>"}
_VAR = re.compile(r"\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}")
_NUMBERED = re.compile(r"^(\d+|[a-z])[.)]\s")
_QUOTES = {('"', '"'), ("'", "'"), ("\u201c", "\u201d")}


@dataclass(frozen=True)
class LintProblem:
    kind: str
    where: str  # "templates/<task>/<file>:<line>"
    template_id: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: {self.message} [{self.template_id}]"


def samples_from_records(records: Sequence[Record]) -> dict[str, list[str]]:
    """Sample values drawn from real records: categories (plural), expressions (refexps, else captions), phrases."""
    cats = sorted({i.category for r in records for i in r.instances if i.category})
    refexps = [t.text for r in records for t in r.texts if t.kind == "refexp"]
    captions = [t.text.strip().rstrip(".").strip() for r in records for t in r.texts if t.kind == "caption"]
    exprs = refexps or [c[:1].lower() + c[1:] for c in captions if c]
    out: dict[str, list[str]] = {}
    if cats:
        out["category"] = [plural_category(c) for c in cats]
        out["phrase"] = [("an " if c[0] in "aeiou" else "a ") + c for c in cats]
    if exprs:
        out["expression"] = exprs
    return out


def lint(bank: TemplateBank, records: Sequence[Record] | None = None, *, min_user: int = 100,
         min_answer: int = 10) -> list[LintProblem]:
    pools = {**SAMPLES, **(samples_from_records(records) if records else {})}
    problems: list[LintProblem] = []
    for task in bank.tasks():
        spec = bank.spec(task)
        allowed = {"user": set(spec.variables), "answer": {"answer"}, "system": set()}
        for kind in KINDS:
            group = bank.templates(kind, task)
            for t in group:
                problems += _check_one(t, allowed[kind], spec.image, spec.regions, pools)
            problems += _duplicates(group)
        users, answers = bank.user(task), bank.answer(task)
        if len(users) < min_user:
            problems.append(_p("too_few", users[0], f"{len(users)} user templates, need at least {min_user}"))
        if task in bank.answer_files:
            if len(answers) < min_answer:
                problems.append(_p("too_few", answers[0], f"{len(answers)} answer wrappers, need {min_answer}"))
            if not any(_VAR.sub(r"{{\1}}", a.source) == "{{answer}}" for a in answers):
                problems.append(_p("no_bare_answer", answers[0], "add the bare {{ answer }} line"))
        problems += _file_whitespace(bank, task)
    return problems


def _p(kind: str, t: Template, message: str) -> LintProblem:
    return LintProblem(kind, t.where, t.id, message)


def _check_one(t: Template, allowed: set[str], image: bool, regions: Sequence[str],
               pools: dict[str, list[str]]) -> list[LintProblem]:
    out: list[LintProblem] = []
    used = meta.find_undeclared_variables(Environment().parse(t.source.replace("\\n", "\n")))
    unknown = sorted(used - allowed - {"image"})  # a stray {{ image }} is reported as image_forbidden below
    if unknown:
        return [_p("undefined_variable", t, f"uses {unknown}; {t.kind} templates of {t.task!r} may use "
                                            f"{sorted(allowed) or 'no variables'}")]
    allowed = allowed | (used & {"image"})
    rng = rng_for(0, "lint", t.id)
    values = {v: _FIXED.get(v) or _pick(pools.get(v, [f"sample {v}"]), rng) for v in allowed}
    if t.kind == "answer":
        values["answer"] = "<Phrase>the dog</Phrase>(<Unit>box</Unit>[0]<REF>)"
    try:
        text = t.render(**values)
        marked = t.render(**{v: f"\u27e6{v}\u27e7" for v in allowed})
    except ConfigError as e:
        return [_p("undefined_variable", t, e.problem)]
    if not text:
        out.append(_p("empty", t, "renders to an empty string"))
    if any(line != line.rstrip() for line in text.splitlines()):
        out.append(_p("trailing_whitespace", t, "a rendered line ends in whitespace (check around \\n)"))
    n_image, hard = marked.count("\u27e6image\u27e7"), marked.count("<image>")
    if hard:
        out.append(_p("image_forbidden", t, "hard-coded <image>; use {{ image }}"))
    if t.kind != "user" or not image:
        if n_image:
            out.append(_p("image_forbidden", t, f"{{{{ image }}}} must not appear in {t.kind} templates of "
                                                f"{t.task!r}"))
    elif n_image == 0 and not hard:
        out.append(_p("image_missing", t, "use {{ image }} exactly once"))
    elif n_image > 1:
        out.append(_p("image_repeated", t, f"{{{{ image }}}} appears {n_image} times; use it once"))
    for var in regions if t.kind == "user" else ():
        n = marked.count(f"\u27e6{var}\u27e7")
        if n == 0:
            out.append(_p("region_missing", t, f"{{{{ {var} }}}} must appear once"))
        elif n > 1:
            out.append(_p("region_extra", t, f"{{{{ {var} }}}} appears {n} times"))
    if "<region>" in marked:
        out.append(_p("region_extra", t, "hard-coded <region>; use the catalogued region variable"))
    for var in sorted(allowed - set(regions) - {"image"}):
        n = marked.count(f"\u27e6{var}\u27e7")
        if var == "answer" and n != 1:
            out.append(_p("answer_count", t, f"{{{{ answer }}}} appears {n} times, must be exactly once"))
        elif n == 0 and var != "answer":
            out.append(_p("missing_variable", t, f"{{{{ {var} }}}} is declared for {t.task!r} but not used"))
    src = t.source
    if _NUMBERED.match(src) or (len(src) > 1 and (src[0], src[-1]) in _QUOTES):
        out.append(_p("format", t, "no numbering and no quotes around the whole line"))
    return out


def _pick(pool: list[str], rng) -> str:
    return pool[int(rng.integers(len(pool)))]


def normalise(source: str) -> str:
    """The duplicate key: lower-case, ``{{ var }}`` -> one slot, whitespace (and ``\\n``) collapsed."""
    return " ".join(_VAR.sub(" \x00 ", source.replace("\\n", " ")).lower().split())


def _duplicates(group: list[Template]) -> list[LintProblem]:
    out, seen, seen_bare = [], {}, {}
    for t in group:
        key = normalise(t.source)
        bare = re.sub(r"[^\w\x00]+", "", key)
        if key in seen:
            out.append(_p("duplicate", t, f"same as line {seen[key].line} after normalisation"))
        elif bare in seen_bare:
            out.append(_p("near_duplicate", t, f"differs from line {seen_bare[bare].line} only by punctuation"))
        seen.setdefault(key, t)
        seen_bare.setdefault(bare, t)
    return out


def _file_whitespace(bank: TemplateBank, task: str) -> list[LintProblem]:
    out = []
    for kind in KINDS:
        path = bank.root / task / f"{kind}.jinja"
        if not path.is_file():
            continue
        rel = f"{bank.root.name}/{task}/{kind}.jinja"
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line != line.rstrip():
                out.append(LintProblem("trailing_whitespace", f"{rel}:{no}", f"{task}/{kind}", "line ends in "
                                       "whitespace"))
    return out
