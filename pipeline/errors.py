"""Error types by level (see docs/errors.md).

- :class:`ConfigError`: the run cannot start; the message names the file, the field and the fix.
- :class:`InputFileError`: a whole input file is unusable (missing, malformed); names the file and position.
- Single bad records never raise out of a stage: they become :class:`pipeline.records.Skip` items.
"""

from __future__ import annotations


class RefforgeError(Exception):
    """Base of the errors the CLI reports without a traceback."""


class ConfigError(RefforgeError):
    def __init__(self, file: str, field: str, problem: str, fix: str = ""):
        self.file, self.field, self.problem, self.fix = file, field, problem, fix
        msg = f"{file}: {field}: {problem}"
        if fix:
            msg += f" (fix: {fix})"
        super().__init__(msg)


class InputFileError(RefforgeError):
    def __init__(self, file: str, problem: str):
        self.file, self.problem = file, problem
        super().__init__(f"{file}: {problem}")


class MissingExtraError(RefforgeError):
    def __init__(self, what: str, extra: str, module: str):
        super().__init__(
            f"{what} needs the optional module {module!r}. Install the extra: "
            f"pip install 'refforge[{extra}]' (for torch, first: pip install torch==2.14.1 torchvision==0.29.1)"
        )
