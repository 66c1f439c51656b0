"""Binary COPY encoded with numpy: a whole batch of rows in one buffer, no per-row Python.

PostgreSQL's binary COPY format is a header, then per row an int16 field count and for
each field an int32 byte length (-1 for NULL) followed by the value in network byte
order. Rows that share the same pattern of NULLs and array lengths have the same byte
layout, so each such group is written as one numpy structured array. Arrays of floats
are stored as ``bytea`` of little-endian values (see the 0001 migration).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg

HEADER = b"PGCOPY\n\xff\r\n\x00" + np.array([0, 0], dtype=">i4").tobytes()
TRAILER = np.array([-1], dtype=">i2").tobytes()

SCALAR_TYPES: dict[str, str] = {
    "int2": ">i2",
    "int4": ">i4",
    "int8": ">i8",
    "float4": ">f4",
    "float8": ">f8",
    "bool": "?",
}
BYTEA_TYPES: dict[str, str] = {"bytea_f4": "<f4", "bytea_f8": "<f8"}


@dataclass
class Column:
    """One column of a batch.

    ``kind`` is a scalar PostgreSQL type (``int8``, ``float4``, ...) or ``bytea_f4`` /
    ``bytea_f8`` for a 2-D array of floats written as bytea. ``null`` marks NULL rows;
    ``lengths`` gives the used length of each row of a 2-D array (the rest is padding).
    """

    name: str
    kind: str
    values: np.ndarray
    null: np.ndarray | None = None
    lengths: np.ndarray | None = None


def encode(columns: Sequence[Column]) -> bytes:
    """Encode the columns as one binary COPY stream (header, rows, trailer)."""
    if not columns:
        raise ValueError("no columns to encode")
    n = len(columns[0].values)
    layout = np.empty((n, len(columns)), dtype=np.int64)  # per row and column: -1 NULL, else length
    for j, col in enumerate(columns):
        if len(col.values) != n:
            raise ValueError(f"column {col.name} has {len(col.values)} rows, expected {n}")
        if col.kind in BYTEA_TYPES:
            width = col.values.shape[1] if col.values.ndim == 2 else 0
            layout[:, j] = col.lengths if col.lengths is not None else width
        elif col.kind in SCALAR_TYPES:
            layout[:, j] = 0
        else:
            raise ValueError(f"unsupported COPY column kind {col.kind!r} for {col.name}")
        if col.null is not None:
            layout[col.null, j] = -1
    parts = [HEADER]
    if n:
        patterns, inverse = np.unique(layout, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        for k, pattern in enumerate(patterns):
            rows = np.flatnonzero(inverse == k) if len(patterns) > 1 else slice(None)
            parts.append(_encode_group(columns, pattern, rows, len(columns)))
    parts.append(TRAILER)
    return b"".join(parts)


def _encode_group(columns: Sequence[Column], pattern: np.ndarray, rows, nfields: int) -> bytes:
    fields: list[tuple] = [("n", ">i2")]
    for j, col in enumerate(columns):
        fields.append((f"l{j}", ">i4"))
        if pattern[j] < 0:
            continue
        if col.kind in BYTEA_TYPES:
            if pattern[j] > 0:
                fields.append((f"v{j}", BYTEA_TYPES[col.kind], (int(pattern[j]),)))
        else:
            fields.append((f"v{j}", SCALAR_TYPES[col.kind]))
    dtype = np.dtype(fields)
    first = columns[0].values[rows]
    out = np.empty(len(first), dtype=dtype)
    out["n"] = nfields
    for j, col in enumerate(columns):
        if pattern[j] < 0:
            out[f"l{j}"] = -1
            continue
        if col.kind in BYTEA_TYPES:
            width = int(pattern[j])
            out[f"l{j}"] = width * np.dtype(BYTEA_TYPES[col.kind]).itemsize
            if width:
                out[f"v{j}"] = col.values[rows, :width]
        else:
            out[f"l{j}"] = np.dtype(SCALAR_TYPES[col.kind]).itemsize
            out[f"v{j}"] = col.values[rows]
    return out.tobytes()


def copy_binary(conn: psycopg.Connection, table: str, columns: Sequence[Column], *, chunk_bytes: int = 8 << 20) -> int:
    """COPY the columns into ``table`` in binary format. Returns the number of rows sent."""
    names = ", ".join(c.name for c in columns)
    payload = encode(columns)
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            view = memoryview(payload)
            for start in range(0, len(payload), chunk_bytes):
                copy.write(view[start:start + chunk_bytes])
    return len(columns[0].values)


def decode_bytea(values: Sequence[bytes | None], dtype: str, width: int | None = None) -> np.ndarray:
    """Decode bytea arrays (as read back from PostgreSQL) into a 2-D float array, NaN for NULL."""
    dt = np.dtype(dtype)
    sizes = [len(v) // dt.itemsize if v is not None else 0 for v in values]
    width = width if width is not None else (max(sizes) if sizes else 0)
    out = np.full((len(values), width), np.nan, dtype=dt.newbyteorder("="))
    if sizes and all(s == width for s in sizes) and width:
        buf = b"".join(values)  # type: ignore[arg-type]
        out[:] = np.frombuffer(buf, dtype=dt).reshape(len(values), width)
        return out
    for i, v in enumerate(values):
        if v is not None and sizes[i]:
            out[i, : sizes[i]] = np.frombuffer(v, dtype=dt)
    return out
