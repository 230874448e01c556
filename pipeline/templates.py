"""The prompt-template bank: ``templates/<task>/{system,user,answer}.jinja``, declared in ``templates/catalog.yaml``.

File format (fixed; the composer relies on it):

- ``system.jinja``: the whole file is ONE template (one or two sentences, no variables).
- ``user.jinja`` / ``answer.jinja``: ONE template per line. Blank lines and lines that are only a Jinja comment
  (``{# ... #}``) are ignored. The two characters ``\\n`` inside a line stand for a line break (so a template can
  put ``{{ image }}`` on its own line); everything else is plain Jinja.
- ``answer.jinja`` may be absent: the task then has the single identity wrapper ``{{ answer }}``.

Template id = ``<task>/<kind>/<first 10 hex of sha1 of the stripped line>`` (the whole stripped file for
``system``), so ids are stable when lines are reordered. Every template is compiled once, at load, in a sandboxed
Jinja environment with ``StrictUndefined``: a syntax error fails the load, an undefined variable fails the render,
both as :class:`ConfigError` naming ``templates/<task>/<file>:<line>``. A bank pickles (templates travel as
source and are recompiled on arrival), so it can be shipped to worker processes. Checks of the *content*
(placeholder counts, duplicates, minimum counts) live in :mod:`pipeline.template_lint`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2 import Template as _JinjaTemplate
from jinja2.exceptions import TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

KINDS = ("system", "user", "answer")
CATALOG = "catalog.yaml"
ENV_ROOT = "REFFORGE_TEMPLATES"  # overrides the default templates folder
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
_COMMENT_ONLY = re.compile(r"^\{#(?:(?!#\}).)*#\}$")
IDENTITY_ANSWER = "{{ answer }}"


class TaskSpec(BaseModel):
    """One catalogue entry: the variables a task's user templates receive and which of them are regions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)
    image: bool  # user templates must use {{ image }} exactly once (False only for follow-up turns)
    variables: list[str] = Field(default_factory=list)  # every variable a user template may (and must) use
    regions: list[str] = Field(default_factory=list)  # variables that render to the literal <region>

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        for v in self.variables:
            if not _IDENT.match(v):
                raise ValueError(f"variable {v!r} is not a lower-case identifier")
        if "answer" in self.variables:
            raise ValueError("'answer' is reserved for answer.jinja")
        if len(set(self.variables)) != len(self.variables):
            raise ValueError(f"variables are repeated: {self.variables}")
        if self.image != ("image" in self.variables):
            raise ValueError("image: true exactly when 'image' is among the variables")
        stray = sorted(set(self.regions) - set(self.variables))
        if stray:
            raise ValueError(f"regions {stray} are not among the variables")
        return self


_CATALOG_ADAPTER = TypeAdapter(dict[str, TaskSpec])


@dataclass(frozen=True)
class Template:
    id: str  # "<task>/<kind>/<sha1[:10]>"
    task: str
    kind: str  # system / user / answer
    source: str  # the stripped line (or whole stripped system file), as written
    file: str  # "templates/<task>/<kind>.jinja" (relative to the bank root's parent)
    line: int  # 1-based line of the template in that file (0 for the built-in identity answer)
    compiled: _JinjaTemplate = field(repr=False, compare=False, default=None)
    # fast path: a template that is only text and plain {{ name }} substitutions renders by joining these parts
    # (literal, name, literal, ...), exactly as Jinja would; anything else (filters, tags) goes through Jinja
    parts: tuple[str, ...] | None = field(repr=False, compare=False, default=None)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def __reduce__(self):
        # compiled Jinja code does not pickle: ship the source, recompile on arrival (Ray actors, processes)
        return _rebuild, (self.id, self.task, self.kind, self.source, self.file, self.line)

    def render(self, **variables: str) -> str:
        """Render with the given variables and strip the result."""
        if self.parts is not None:
            out = []
            for i, p in enumerate(self.parts):
                if i % 2 == 0:
                    out.append(p)
                elif p in variables:
                    out.append(str(variables[p]))
                else:
                    raise ConfigError(self.where, self.id, f"undefined variable: '{p}' is undefined",
                                      f"pass it, or use only the variables templates/{CATALOG} declares for "
                                      f"{self.task!r}")
            return "".join(out).strip()
        try:
            return self.compiled.render(**variables).strip()
        except UndefinedError as e:
            raise ConfigError(self.where, self.id, f"undefined variable: {e.message}",
                              f"pass it, or use only the variables templates/{CATALOG} declares for "
                              f"{self.task!r}") from e
        except TemplateError as e:
            raise ConfigError(self.where, self.id, f"render failed: {e}", "fix the template") from e


# one sandbox for every bank: templates can read their variables and nothing else (no attribute tricks)
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


_SIMPLE_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def simple_parts(code: str) -> tuple[str, ...] | None:
    """(literal, name, literal, ...) when `code` is only text and plain ``{{ name }}``; else None."""
    pieces = _SIMPLE_VAR.split(code)
    if any(tok in pieces[i] for i in range(0, len(pieces), 2) for tok in ("{{", "{%", "{#", "}}", "%}", "#}")):
        return None
    return tuple(pieces)


def _make(id: str, task: str, kind: str, source: str, file: str, line: int, code: str,
          env: SandboxedEnvironment | None = None) -> Template:
    parts = simple_parts(code)
    compiled = None if parts is not None else (env or _ENV).from_string(code)
    return Template(id, task, kind, source, file, line, compiled, parts)


def _rebuild(id: str, task: str, kind: str, source: str, file: str, line: int) -> Template:
    code = source if kind == "system" else source.replace("\\n", "\n")
    return _make(id, task, kind, source, file, line, code)


def template_id(task: str, kind: str, source: str) -> str:
    return f"{task}/{kind}/{hashlib.sha1(source.encode('utf-8')).hexdigest()[:10]}"


def default_root() -> Path:
    env = os.environ.get(ENV_ROOT)
    return Path(env) if env else Path(__file__).resolve().parents[1] / "templates"


def plural_category(name: str) -> str:
    """The plural a counting template expects for ``{{ category }}`` ("person" -> "people", "bus" -> "buses")."""
    irregular = {"person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
                 "sheep": "sheep", "skis": "skis", "scissors": "scissors", "knife": "knives", "shelf": "shelves",
                 "leaf": "leaves", "glasses": "glasses", "fish": "fish", "deer": "deer", "moose": "moose",
                 "broccoli": "broccoli"}
    words = name.strip().split()
    if not words:
        return name
    last = words[-1].lower()
    if last in irregular:
        out = irregular[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        out = last + "es"
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        out = last[:-1] + "ies"
    else:
        out = last + "s"
    return " ".join(words[:-1] + [out])


class TemplateBank:
    """All tasks' templates, compiled once. Use :meth:`load`."""

    def __init__(self, root: Path, catalog: dict[str, TaskSpec], templates: dict[str, dict[str, list[Template]]],
                 answer_files: set[str]):
        self.root = root
        self.catalog = catalog
        self._templates = templates
        self.answer_files = answer_files  # tasks that have their own answer.jinja

    # ----------------------------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, root: Path | str | None = None) -> TemplateBank:
        root = Path(root) if root is not None else default_root()
        if not root.is_dir():
            raise ConfigError(str(root), "<folder>", "templates folder not found",
                              f"pass the folder holding {CATALOG} and one sub-folder per task, or set {ENV_ROOT}")
        catalog = _load_catalog(root)
        # a task folder is one holding any of system / user / answer.jinja; other folders (prompts of other
        # stages, e.g. an LLM miner's) are not the bank's business
        folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
                         and any((p / f"{k}.jinja").is_file() for k in KINDS))
        only_dir, only_cat = sorted(set(folders) - set(catalog)), sorted(set(catalog) - set(folders))
        if only_dir:
            raise ConfigError(f"{root.name}/{CATALOG}", ", ".join(only_dir), "task folder(s) not in the catalogue",
                              "declare them in catalog.yaml or remove the folders")
        if only_cat:
            raise ConfigError(f"{root.name}/{CATALOG}", ", ".join(only_cat),
                              "catalogued task(s) have no folder with templates",
                              f"create {root.name}/<task>/{{system,user}}.jinja or remove the entries")
        templates = {task: _load_task(_ENV, root, task) for task in sorted(catalog)}
        answer_files = {task for task in catalog if (root / task / "answer.jinja").is_file()}
        bank = cls(root, catalog, templates, answer_files)
        log.debug("loaded %d tasks from %s", len(catalog), root)
        return bank

    # --------------------------------------------------------------------------------------------- accessors
    def tasks(self) -> list[str]:
        return sorted(self._templates)

    def spec(self, task: str) -> TaskSpec:
        self._known(task)
        return self.catalog[task]

    def templates(self, kind: str, task: str) -> list[Template]:
        self._known(task)
        if kind not in KINDS:
            raise ConfigError(f"{self.root.name}/{task}", "kind", f"unknown template kind {kind!r}",
                              f"use one of {', '.join(KINDS)}")
        return list(self._templates[task][kind])

    def user(self, task: str) -> list[Template]:
        return self.templates("user", task)

    def answer(self, task: str) -> list[Template]:
        return self.templates("answer", task)

    def system(self, task: str) -> Template:
        return self.templates("system", task)[0]

    def choose(self, kind: str, task: str, rng: np.random.Generator) -> Template:
        """One template of ``kind`` for ``task``, uniformly at random; deterministic given ``rng``."""
        options = self._templates[task][kind] if kind in KINDS and task in self._templates else \
            self.templates(kind, task)  # raises the ConfigError naming the unknown task / kind
        return options[int(rng.integers(len(options)))]

    def digest(self) -> str:
        """sha256 over the catalogue and every template source, in task / kind / file order (for provenance)."""
        h = hashlib.sha256()
        h.update(json.dumps({t: s.model_dump() for t, s in sorted(self.catalog.items())}, sort_keys=True).encode())
        for task in self.tasks():
            for kind in KINDS:
                for t in self._templates[task][kind]:
                    h.update(f"\x00{t.id}\x00{t.source}".encode("utf-8"))
        return h.hexdigest()

    def _known(self, task: str) -> str:
        if task not in self._templates:
            raise ConfigError(f"{self.root.name}/{CATALOG}", task, "unknown task",
                              f"use one of: {', '.join(self.tasks())}")
        return task


def _load_catalog(root: Path) -> dict[str, TaskSpec]:
    path, rel = root / CATALOG, f"{root.name}/{CATALOG}"
    if not path.is_file():
        raise ConfigError(rel, "<file>", "missing", "declare every task: variables, regions, image, description")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "<file>"
        raise ConfigError(rel, where, f"invalid YAML: {getattr(e, 'problem', e)}", "fix the YAML syntax") from e
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(rel, "<top level>", "must map task ids to {variables, regions, image, description}",
                          "see the header of templates/catalog.yaml")
    for task in raw:
        if not isinstance(task, str) or not _IDENT.match(task):
            raise ConfigError(rel, str(task), "task id must be a lower-case identifier", "rename it, e.g. ig_box")
    try:
        return _CATALOG_ADAPTER.validate_python(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "<top level>"
        raise ConfigError(rel, loc, err["msg"], "allowed fields: description, image, variables, regions") from e


def _load_task(env: SandboxedEnvironment, root: Path, task: str) -> dict[str, list[Template]]:
    kinds: dict[str, list[Template]] = {}
    for kind in KINDS:
        path, rel = root / task / f"{kind}.jinja", f"{root.name}/{task}/{kind}.jinja"
        if not path.is_file():
            if kind != "answer":
                raise ConfigError(rel, "<file>", "missing", f"write the task's {kind} template(s)")
            kinds[kind] = [_make(template_id(task, kind, IDENTITY_ANSWER), task, kind, IDENTITY_ANSWER,
                                 "<built-in>", 0, IDENTITY_ANSWER, env)]
            continue
        kinds[kind] = _compile_file(env, path, rel, task, kind)
        if not kinds[kind]:
            raise ConfigError(rel, "<file>", "holds no template", "write at least one template line")
    return kinds


def _compile_file(env: SandboxedEnvironment, path: Path, rel: str, task: str, kind: str) -> list[Template]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(rel, "<file>", f"not UTF-8 ({e.reason} at byte {e.start})", "save it as UTF-8") from e
    if kind == "system":
        source = text.strip()
        first = text[: len(text) - len(text.lstrip())].count("\n") + 1
        return [_compile(env, text, source, rel, task, kind, first, error_line=None)] if source else []
    out = []
    for no, raw in enumerate(text.splitlines(), start=1):
        source = raw.strip()
        if not source or _COMMENT_ONLY.match(source):
            continue
        out.append(_compile(env, source.replace("\\n", "\n"), source, rel, task, kind, no, error_line=no))
    return out


def _compile(env: SandboxedEnvironment, code: str, source: str, rel: str, task: str, kind: str, line: int,
             error_line: int | None) -> Template:
    """Compile one template; a syntax error names the file line (``error_line``, else Jinja's own line)."""
    try:
        return _make(template_id(task, kind, source), task, kind, source, rel, line, code, env)
    except TemplateSyntaxError as e:
        at = error_line if error_line is not None else (e.lineno or line)
        raise ConfigError(f"{rel}:{at}", task, f"Jinja syntax error: {e.message}", "fix the template line") from e
