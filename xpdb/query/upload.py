"""TAP_UPLOAD: the user's own tables (VOTable or CSV), joined server-side with the catalogue.

TAP 1.1 ``UPLOAD=name,param:part`` (several separated by ``;``) names a table that ADQL reads
as ``TAP_UPLOAD.name``. The translator maps schema ``tap_upload`` to PostgreSQL's
``pg_temp``; :func:`load_uploads` creates each table as a temporary table of the reader's
own session, ``ON COMMIT DROP``, inside the query's transaction before that transaction is
switched to READ ONLY (``SET TRANSACTION READ ONLY``): only xpdb's statements write, the
user's query still runs read-only, and the tables are gone when the transaction ends
(committed or rolled back), so a pooled connection never carries them to the next request.
A table with numeric ``ra`` and ``dec`` columns gets a q3c index, so that cross-matches in
either direction are indexed.

Limits (:class:`UploadLimits`): rows, columns and bytes per request; errors are
:class:`UploadError` naming the table, the row and the column.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np

from xpdb.errors import QueryError

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_PG_TYPES = {"i1": "smallint", "u1": "smallint", "i2": "smallint", "u2": "integer", "i4": "integer", "u4": "bigint",
             "i8": "bigint", "f2": "real", "f4": "real", "f8": "double precision", "b1": "boolean"}


class UploadError(QueryError):
    """An upload that cannot be read or is over a limit (HTTP 400)."""


@dataclass(frozen=True)
class UploadLimits:
    """The most an upload may hold (all tables of one request together for bytes)."""

    max_rows: int = 1_000_000
    max_columns: int = 100
    max_bytes: int = 50_000_000


@dataclass
class Upload:
    """One uploaded table: its ADQL name (lower case) and its columns as an astropy Table."""

    name: str
    table: object  # astropy.table.Table
    source: str  # where it came from, for messages (file name or "param:part")

    @property
    def columns(self) -> list[tuple[str, str]]:
        """(column name, PostgreSQL type) of every column."""
        return [(name, _pg_type(self.table[name], self, name)) for name in self.table.colnames]


def parse_upload_param(value: str) -> list[tuple[str, str]]:
    """TAP's ``UPLOAD`` parameter as [(table name, URI)]; UploadError when malformed."""
    pairs = []
    for item in value.split(";"):
        if not item.strip():
            continue
        name, sep, uri = item.partition(",")
        name, uri = name.strip(), uri.strip()
        if not sep or not uri:
            raise UploadError(f"UPLOAD={value!r}: each table is 'name,URI' (e.g. UPLOAD=mine,param:mine)")
        check_name(name)
        pairs.append((name.lower(), uri))
    if not pairs:
        raise UploadError("UPLOAD is empty; give 'name,param:part' for each table")
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise UploadError(f"UPLOAD names a table twice: {', '.join(sorted(n for n in set(names) if names.count(n) > 1))}")
    return pairs


def check_name(name: str) -> str:
    """An upload's table name, or UploadError: a letter, then letters, digits or _ (at most 63)."""
    if not NAME.match(name):
        raise UploadError(f"upload table name {name!r} is not allowed: a letter, then letters, digits or _ "
                          "(at most 63 characters)")
    return name.lower()


def read_upload(name: str, data: bytes, source: str, limits: UploadLimits = UploadLimits()) -> Upload:
    """The table in ``data`` (a VOTable, any serialization, or CSV with a header line) as an Upload."""
    name = check_name(name)
    if len(data) > limits.max_bytes:
        raise UploadError(f"upload {name!r} ({source}) is {len(data):,} bytes; this service accepts at most "
                          f"{limits.max_bytes:,}")
    head = data[:1024].lstrip()
    if head.startswith(b"<"):
        table = _read_votable(data, name, source)
    else:
        table = _read_csv(data, name, source)
    if len(table.colnames) == 0:
        raise UploadError(f"upload {name!r} ({source}) has no columns")
    if len(table.colnames) > limits.max_columns:
        raise UploadError(f"upload {name!r} ({source}) has {len(table.colnames)} columns; at most "
                          f"{limits.max_columns} are accepted")
    if len(table) > limits.max_rows:
        raise UploadError(f"upload {name!r} ({source}) has {len(table):,} rows; at most {limits.max_rows:,} "
                          "are accepted")
    seen: set[str] = set()
    for column in list(table.colnames):
        lower = column.lower()
        if not NAME.match(column):
            raise UploadError(f"upload {name!r} ({source}): column {column!r} is not a usable name "
                              "(a letter, then letters, digits or _)")
        if lower in seen:
            raise UploadError(f"upload {name!r} ({source}): column {column!r} appears twice (names ignore case)")
        seen.add(lower)
        if lower != column:
            table.rename_column(column, lower)
    upload = Upload(name=name, table=table, source=source)
    upload.columns  # noqa: B018 - checks every column's type now, with a message naming it
    return upload


def read_upload_file(spec: str, limits: UploadLimits = UploadLimits()) -> Upload:
    """``NAME=FILE`` (the CLI's ``--upload``) as an Upload; UploadError naming the file when it cannot be read."""
    from pathlib import Path

    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise UploadError(f"--upload {spec!r}: write NAME=FILE, e.g. --upload ids=my.vot")
    file = Path(path.strip()).expanduser()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UploadError(f"upload {name.strip()!r}: cannot read {file}: {exc.strerror or exc}") from None
    return read_upload(name.strip(), data, str(file), limits)


def as_upload(name: str, value, limits: UploadLimits = UploadLimits()) -> Upload:
    """An Upload from a file path, bytes or an astropy Table (the Python API's ``uploads=``)."""
    from pathlib import Path

    from astropy.table import Table

    if isinstance(value, Table):
        data = io.BytesIO()
        value.write(data, format="votable")
        return read_upload(name, data.getvalue(), f"table {name}", limits)
    if isinstance(value, (bytes, bytearray)):
        return read_upload(name, bytes(value), f"bytes {name}", limits)
    return read_upload_file(f"{name}={Path(value)}", limits)


def _read_votable(data: bytes, name: str, source: str):
    import warnings

    from astropy.io.votable import parse
    from astropy.io.votable.exceptions import VOWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VOWarning)
            votable = parse(io.BytesIO(data), verify="ignore")
        tables = list(votable.iter_tables())
    except Exception as exc:
        raise UploadError(f"upload {name!r} ({source}) is not a readable VOTable: {_first_line(exc)}") from None
    if not tables:
        raise UploadError(f"upload {name!r} ({source}) is a VOTable without a TABLE")
    try:
        return tables[0].to_table(use_names_over_ids=True)
    except Exception as exc:
        raise UploadError(f"upload {name!r} ({source}): {_first_line(exc)}") from None


def _read_csv(data: bytes, name: str, source: str):
    from astropy.io import ascii as astropy_ascii

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UploadError(f"upload {name!r} ({source}) is neither a VOTable nor UTF-8 CSV: bad byte at line {line}") \
            from None
    lines = text.splitlines()
    if lines:
        width = len(lines[0].split(","))
        for number, line in enumerate(lines[1:], 2):
            if line.strip() and len(line.split(",")) != width and '"' not in line:
                raise UploadError(f"upload {name!r} ({source}) line {number} (row {number - 1}): "
                                  f"{len(line.split(','))} values, the header has {width} columns")
    try:
        return astropy_ascii.read(text, format="csv", guess=False, fast_reader=True)
    except Exception as exc:
        raise UploadError(f"upload {name!r} ({source}) is not readable as CSV with a header line: "
                          f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _pg_type(column, upload: Upload, name: str) -> str:
    dtype = np.ma.getdata(column).dtype
    if dtype.kind in "US":
        return "text"
    if dtype.kind == "O":
        return "text"
    if len(column.shape) > 1:
        raise UploadError(f"upload {upload.name!r} ({upload.source}): column {name!r} holds arrays; only scalar "
                          "columns can be uploaded")
    key = "b1" if dtype.kind == "b" else f"{dtype.kind}{dtype.itemsize}"
    if key not in _PG_TYPES:
        raise UploadError(f"upload {upload.name!r} ({upload.source}): column {name!r} has type {dtype}, "
                          "which cannot be stored")
    return _PG_TYPES[key]


def load_uploads(conn, uploads: list[Upload]) -> None:
    """Create and fill the temporary tables of ``uploads`` (inside the caller's read-write transaction)."""
    for upload in uploads:
        columns = upload.columns
        ddl = ", ".join(f'"{c}" {t}' for c, t in columns)
        conn.execute(f'CREATE TEMPORARY TABLE "{upload.name}" ({ddl}) ON COMMIT DROP')
        table = upload.table
        arrays = []
        for column, kind in columns:
            values = table[column]
            mask = np.ma.getmaskarray(values)
            data = np.ma.getdata(values)
            if kind == "text":
                items = [None if m else (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
                         for v, m in zip(data.tolist(), mask.tolist())]
            else:
                floats = data.dtype.kind == "f"
                items = [None if m or (floats and v != v) else v for v, m in zip(data.tolist(), mask.tolist())]
            arrays.append(items)
        with conn.cursor() as cur:
            with cur.copy(f'COPY "{upload.name}" FROM STDIN') as copy:
                for row_number, row in enumerate(zip(*arrays), 1):
                    for value, (column, kind) in zip(row, columns):
                        if kind == "text" and value is not None and "\x00" in value:
                            raise UploadError(f"upload {upload.name!r} ({upload.source}) row {row_number}, "
                                              f"column {column!r}: a NUL character")
                    copy.write_row(row)
        names = {c: t for c, t in columns}
        numeric = ("real", "double precision", "integer", "bigint", "smallint")
        if names.get("ra") in numeric and names.get("dec") in numeric:
            conn.execute(f'CREATE INDEX ON "{upload.name}" (q3c_ang2ipix(ra, dec))')
        if "source_id" in names and names["source_id"] in ("bigint", "integer"):
            conn.execute(f'CREATE INDEX ON "{upload.name}" (source_id)')
        conn.execute(f'ANALYZE "{upload.name}"')
