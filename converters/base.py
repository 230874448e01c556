"""What every converter is: a validated config, a plan over whole files, and per-unit conversion.

A converter never imports Ray, torch or Jinja. The orchestrator calls :meth:`Converter.plan` once in the driver
(whole-file problems raise :class:`pipeline.errors.InputFileError` there, before any work starts), splits the plan's
units into shards, and calls :meth:`Converter.convert` on each shard's unit keys, possibly in another process
(converters are pickled without their loaded index, which is re-read lazily where needed).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError, InputFileError
from pipeline.records import Record, Skip


class ConverterOptions(BaseModel):
    """Base of every converter's `options` block: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")


class Unit(BaseModel):
    """One unit of work: usually one image. ``key`` is what :meth:`Converter.convert` receives back."""

    split: str
    key: str


class Plan(BaseModel):
    units: list[Unit]
    skips: list[Skip] = Field(default_factory=list)  # items dropped while planning (e.g. ann -> unknown image)
    inputs: dict[str, int] = Field(default_factory=dict)  # items read per kind: image / annotation / text / relation


class Converter(ABC):
    name: ClassVar[str]  # registry key, also written to provenance
    version: ClassVar[str] = "1"  # bump when output for the same input changes (invalidates caches)
    Options: ClassVar[type[ConverterOptions]]
    path_fields: ClassVar[tuple[str, ...]] = ()  # option fields that name input paths (checked at start)

    def __init__(self, source: str, options: ConverterOptions, base_dir: Path):
        self.source = source  # the sources.yaml entry name (ids start with it)
        self.options = options
        self.base_dir = base_dir
        self._index: Any = None

    # -- construction ----------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, source: str, raw: dict, base_dir: Path, file: str) -> "Converter":
        try:
            options = cls.Options.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(file, f"sources.{source}.options.{loc}", err["msg"],
                              f"see docs/sources/{cls.name}.md for the {cls.name} options") from e
        conv = cls(source, options, base_dir)
        conv.check_paths(file)
        return conv

    def path(self, p: str | Path) -> Path:
        p = Path(p)
        return p if p.is_absolute() else self.base_dir / p

    def check_paths(self, file: str) -> None:
        """Fail at start when a configured input path does not exist."""
        for field in self.path_fields:
            value = getattr(self.options, field)
            if value is not None:
                if not self.path(value).exists():
                    raise ConfigError(file, f"sources.{self.source}.options.{field}",
                                      f"path does not exist: {self.path(value)}", "point it at your download")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_index"] = None  # re-read lazily in the worker, never shipped
        return state

    # -- the contract ----------------------------------------------------------------------------------------
    @abstractmethod
    def plan(self) -> Plan:
        """Read and validate whole files; return the sorted units and the items already dropped."""

    @abstractmethod
    def convert(self, keys: Sequence[str]) -> Iterator[Record | Skip]:
        """Yield one Record per usable unit key, or a Skip naming why a unit was dropped."""

    @abstractmethod
    def input_files(self) -> list[Path]:
        """Every file the plan reads; their hashes are part of the run fingerprint."""

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(f"{self.name}:{self.version}:{self.source}".encode())
        h.update(json.dumps(self.options.model_dump(mode="json"), sort_keys=True).encode())
        for f in self.input_files():
            st = f.stat()
            h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()


def read_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into an InputFileError naming the file and position."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise InputFileError(str(path), f"cannot read: {e.strerror}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputFileError(str(path), f"not valid UTF-8 at byte {e.start}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputFileError(str(path), f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
