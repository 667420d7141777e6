"""Errors that tell the user which file, line or field was wrong and what was expected."""

from __future__ import annotations

from pathlib import Path


class LLMRecError(Exception):
    """Base class of every error llmrec raises on purpose."""


class DataFormatError(LLMRecError, ValueError):
    """A data file (or an in-memory table) does not have the expected shape.

    The message always names the source, and the line and field when they are known, plus what
    was expected, e.g. ``u.data, line 17, field 'rating': expected a number, got 'x'``.
    """

    def __init__(
        self,
        source: str | Path,
        expected: str,
        *,
        line: int | None = None,
        field: str | None = None,
        got: object = None,
    ) -> None:
        self.source = str(source)
        self.line = line
        self.field = field
        self.expected = expected
        self.got = got
        where = self.source
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        message = f"{where}: expected {expected}"
        if got is not None:
            shown = repr(got)
            message += f", got {shown[:200]}{'...' if len(shown) > 200 else ''}"
        super().__init__(message)


class DatasetNotFoundError(LLMRecError, FileNotFoundError):
    """A data set's files are missing; the message says which files to put where."""


class LeakageError(LLMRecError, AssertionError):
    """A split or a prompt would let a test label reach training data or a model input."""
