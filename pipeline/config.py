"""`sources.yaml`: the run configuration, validated once at start.

Layout (see the checked-in ``sources.yaml`` for every option with its default)::

    run:      {name, output_dir, seed, shard_size, format, dialogues_per_image, max_turns, ...}
    sources:  {<name>: {converter: <registry key>, enabled: true, options: {...converter config...}}}
    tasks:    {<task>: {weight: 1.0, enabled: true}}
    proposals / negatives: stage settings

Relative paths are resolved against the YAML file's folder; ``${VAR}`` and ``${VAR:-default}`` are expanded from
the environment. Any problem raises :class:`ConfigError` naming the file, the field and the fix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunConfig(_Strict):
    name: str = "corpus"
    output_dir: str = "out"  # the corpus goes to <output_dir>/<name>/
    cache_dir: str = ".refforge-cache"
    seed: int = 0
    shard_size: int = Field(1000, ge=1, description="images per Parquet shard")
    format: Literal["trp", "text", "getok"] = "trp"
    vd_cot: bool = False  # REF-VLM visual-decoding chain-of-thought block before TRP answers
    dialogues_per_image: int = Field(1, ge=1, le=16)
    max_turns: int = Field(4, ge=1, le=32)
    embed_images: bool = True  # image bytes inside the Parquet (self-contained) or a path only
    executor: Literal["ray", "local"] = "ray"
    num_cpus: int | None = Field(None, ge=1)  # local Ray only; default: all cores
    progress: bool = True


class SourceConfig(_Strict):
    converter: str
    enabled: bool = True
    licence: str = "see the source's own terms"
    options: dict[str, Any] = Field(default_factory=dict)


class TaskConfig(_Strict):
    enabled: bool = True
    weight: float = Field(1.0, ge=0.0)


class ProposalsConfig(_Strict):
    enabled: bool = True  # the grid stage: proposals -> grid tokens + offset labels for every mask
    backend: Literal["annotations", "sam"] = "annotations"
    grid_size: int = Field(32, ge=2, le=256)
    tau: float = Field(0.85, gt=0.0, le=1.0)  # greedy selection stops once the union IoU reaches tau
    sam: dict[str, Any] = Field(default_factory=dict)  # checkpoint, model_type, SAM AMG params, num_gpus, concurrency


class NegativesConfig(_Strict):
    enabled: bool = True
    miner: Literal["offline", "llm"] = "offline"
    share: float = Field(0.25, ge=0.0, le=1.0)  # probability that a dialogue gets a negative turn
    llm: dict[str, Any] = Field(default_factory=dict)
    verify: dict[str, Any] = Field(default_factory=dict)


class Config(_Strict):
    run: RunConfig = Field(default_factory=RunConfig)
    sources: dict[str, SourceConfig]
    tasks: dict[str, TaskConfig] = Field(default_factory=dict)
    proposals: ProposalsConfig = Field(default_factory=ProposalsConfig)
    negatives: NegativesConfig = Field(default_factory=NegativesConfig)
    # not from YAML: where the file lives (relative paths resolve against it) and its name for messages
    base_dir: str = "."
    file: str = "<config>"

    def resolve(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        return p if p.is_absolute() else (Path(self.base_dir) / p).resolve()

    def output_path(self) -> Path:
        return self.resolve(self.run.output_dir) / self.run.name

    def cache_path(self) -> Path:
        return self.resolve(self.run.cache_dir)


def _expand(value: Any, where: str, file: str) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match) -> str:
            var, default = m.group(1), m.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            raise ConfigError(file, where, f"environment variable ${{{var}}} is not set",
                              f"export {var}=... or write ${{{var}:-default}}")

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}" if where else str(k), file) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]", file) for i, v in enumerate(value)]
    return value


def _field_path(loc: tuple) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")


def load_config(path: str | os.PathLike) -> Config:
    """Read, expand and validate a sources.yaml; raise ConfigError naming file and field on any problem."""
    p = Path(path)
    file = str(p)
    if not p.is_file():
        raise ConfigError(file, "<file>", "not found", "pass the path of a sources.yaml")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        raise ConfigError(file, where, f"invalid YAML: {getattr(e, 'problem', e)}", "fix the YAML syntax") from e
    except UnicodeDecodeError as e:
        raise ConfigError(file, "<file>", f"not UTF-8 ({e.reason} at byte {e.start})", "save it as UTF-8") from e
    if not isinstance(raw, dict):
        raise ConfigError(file, "<top level>", "must be a mapping with run / sources / tasks", "see sources.yaml")
    raw = _expand(raw, "", file)
    raw.pop("base_dir", None)
    raw.pop("file", None)
    try:
        cfg = Config.model_validate({**raw, "base_dir": str(p.resolve().parent), "file": file})
    except ValidationError as e:
        err = e.errors()[0]
        field = _field_path(err["loc"]) or "<top level>"
        fix = "remove it (allowed fields are in sources.yaml)" if err["type"] == "extra_forbidden" else \
            f"expected {err.get('ctx', {}).get('expected', err['type'])}"
        raise ConfigError(file, field, err["msg"], fix) from e
    if not cfg.sources:
        raise ConfigError(file, "sources", "no sources configured", "add at least one source block")
    return cfg


def with_overrides(cfg: Config, **run_overrides: Any) -> Config:
    """A copy of the config with some `run` fields replaced (CLI flags)."""
    run = cfg.run.model_copy(update={k: v for k, v in run_overrides.items() if v is not None})
    return cfg.model_copy(update={"run": run})
