"""A restricted unpickler for data-only pickles (RefCOCO's ``refs(*).p``).

Pickle can execute code: a ``GLOBAL`` / ``STACK_GLOBAL`` opcode names any importable callable and ``REDUCE`` calls
it. The REFER pickles hold only plain containers (list, dict, tuple) and scalars, which pickle protocol 2 writes with
dedicated opcodes that never look up a global. So :class:`DataOnlyUnpickler` refuses **every** global: a pickle that
names one is not a data file we understand, and it is rejected before anything is called.

The files were written by Python 2: its ``str`` values arrive as ``bytes`` (we load with ``encoding="bytes"``) and
are decoded here as UTF-8, falling back to Latin-1 for bytes that are not valid UTF-8 (Latin-1 accepts every byte,
so nothing is lost and nothing raises).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from pipeline.errors import InputFileError


class ForbiddenGlobalError(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class DataOnlyUnpickler(pickle.Unpickler):
    """Accepts only plain containers and scalars: any global (class, function) is refused, never imported."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        raise ForbiddenGlobalError(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"persistent id {pid!r} is not allowed")


def _decode(value: Any) -> Any:
    """Python-2 ``str`` (bytes) -> text, recursively through containers."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v) for v in value)
    if isinstance(value, dict):
        return {_decode(k): _decode(v) for k, v in value.items()}
    return value


def load_data_pickle(path: Path) -> Any:
    """Load a data-only pickle, raising :class:`InputFileError` naming the file for anything else.

    A forbidden global is reported by name (``posix.system``); a truncated or corrupt file by the pickle error.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputFileError(str(path), f"cannot read: {e.strerror}") from e
    try:
        obj = DataOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except ForbiddenGlobalError as e:
        raise InputFileError(str(path), f"pickle refers to the global {e.module}.{e.name}; only plain containers "
                                        "and scalars are accepted (is this really a REFER refs(*).p file?)") from None
    except EOFError:
        raise InputFileError(str(path), f"pickle is truncated ({len(data)} bytes); download the file again") from None
    except (pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError, MemoryError) as e:
        raise InputFileError(str(path), f"not a readable pickle: {type(e).__name__}: {e}") from None
    return _decode(obj)
