"""Every error xpdb raises on purpose derives from ``XpdbError``.

Catch ``xpdb.XpdbError`` to handle any of them; the subclasses say which stage failed.
Messages describe the problem in the library's terms (arguments, tables, files), with
the command-line spelling in brackets where it helps, so the same text serves a
notebook and the ``xpdb`` command.
"""

from __future__ import annotations

from pathlib import Path


class XpdbError(Exception):
    """Base class of the errors xpdb raises on purpose."""


class ConfigurationError(XpdbError):
    """The environment or the arguments do not describe a usable set-up."""


class EmbeddedError(ConfigurationError):
    """The embedded cluster cannot be created or started; the message says what to do."""


class IngestError(XpdbError):
    """A file or table could not be loaded."""


class IngestFileError(IngestError):
    """A file that cannot be read as a whole (truncated, corrupt, unknown format), naming it and where.

    ``kept`` says what of the file stays in the database when that is not nothing (a
    chunked load interrupted by the database: its committed chunks, resumed next time).
    """

    def __init__(self, path: Path | str, message: str, position: str | None = None, *, kept: str | None = None):
        self.path = str(path)
        self.position = position
        self.kept = kept
        where = "" if not position else f" {position}" if position.startswith("after") else f" at {position}"
        super().__init__(f"{path}{where}: {message}")


class ColumnError(IngestError, KeyError):
    """A column the load needs is missing, or a column mapping names one that is not there."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RejectedRows(IngestError):
    """Some rows failed validation and the load was asked not to accept a partial load."""


class CatalogNotFound(XpdbError, LookupError):
    """No reference catalogue, cluster or selection of that name."""


class ModelNotFound(XpdbError, LookupError):
    """No model matches the reference."""


class TrainingError(XpdbError):
    """A model cannot be trained with the data and options given (e.g. too few stars)."""


class QueryError(XpdbError):
    """A query that PostgreSQL refused or that failed (translation, permissions, timeout, size)."""

    def __init__(self, message: str, *, position: int | None = None, sqlstate: str | None = None):
        super().__init__(message)
        self.position = position
        self.sqlstate = sqlstate


class ADQLError(QueryError, ValueError):
    """Bad ADQL; .line and .column (1-based) give the position; str() names them."""

    line: int | None
    column: int | None

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.message, self.line, self.column = message, line, column
        super().__init__(f"line {line}, column {column}: {message}" if line is not None else message)


class OutputError(QueryError, ValueError):
    """A result cannot be written in the requested format or place."""


class JobError(XpdbError):
    """An inference job cannot be created, resumed or changed as asked."""


class LeaseLost(JobError):
    """Another worker took the batch over (this one was too slow or presumed dead)."""


class CorrectionUnavailable(XpdbError):
    """The optional systematic-error correction package is not installed."""
