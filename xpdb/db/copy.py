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
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the encoder needs no driver; only copy_binary takes a connection
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
TEXT_FIXED = "text_fixed"  # values: a numpy bytes array ('S2', ...), every value the same length
TEXT = "text"  # values: str or bytes of any lengths (encoded as UTF-8)


@dataclass
class Column:
    """One column of a batch.

    ``kind`` is a scalar PostgreSQL type (``int8``, ``float4``, ...), ``bytea_f4`` /
    ``bytea_f8`` for a 2-D array of floats written as bytea, ``text_fixed`` for
    equal-length ASCII text or ``text`` for text of any length. ``null`` marks NULL rows; ``lengths`` gives the used length
    of each row of a 2-D array (the rest is padding).
    """

    name: str
    kind: str
    values: np.ndarray
    null: np.ndarray | None = None
    lengths: np.ndarray | None = None


def _layout(columns: Sequence[Column], n: int) -> np.ndarray:
    """Per row and column: -1 for NULL, else the number of array elements or bytes (0 for scalars)."""
    layout = np.empty((n, len(columns)), dtype=np.int64)
    for j, col in enumerate(columns):
        if col.kind == TEXT and col.values.dtype.kind != "S":
            col.values = np.char.encode(np.asarray(col.values, dtype=str), "utf-8")
        if len(col.values) != n:
            raise ValueError(f"column {col.name} has {len(col.values)} rows, expected {n}")
        if col.kind in BYTEA_TYPES:
            width = col.values.shape[1] if col.values.ndim == 2 else 0
            layout[:, j] = col.lengths if col.lengths is not None else width
        elif col.kind in SCALAR_TYPES or col.kind == TEXT_FIXED:
            layout[:, j] = 0
        elif col.kind == TEXT:
            layout[:, j] = np.char.str_len(col.values)
        else:
            raise ValueError(f"unsupported COPY column kind {col.kind!r} for {col.name}")
        if col.null is not None:
            layout[col.null, j] = -1
    return layout


def encode_parts(columns: Sequence[Column]) -> list[np.ndarray]:
    """Encode the rows (no header or trailer) as a few contiguous byte arrays, one per row layout."""
    if not columns:
        raise ValueError("no columns to encode")
    n = len(columns[0].values)
    if n == 0:
        return []
    layout = _layout(columns, n)
    if (layout == layout[0]).all():
        return [_encode_group(columns, layout[0], slice(None), n)]
    patterns, inverse = np.unique(layout, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    parts = []
    for k, pattern in enumerate(patterns):
        rows = np.flatnonzero(inverse == k)
        parts.append(_encode_group(columns, pattern, rows, len(rows)))
    return parts


def encode(*column_sets: Sequence[Column]) -> bytes:
    """Encode one or more column sets as one binary COPY stream (header, rows, trailer)."""
    parts = [HEADER]
    for columns in column_sets:
        parts += [p.tobytes() for p in encode_parts(columns)]
    parts.append(TRAILER)
    return b"".join(parts)


def _as_bytes(values: np.ndarray, dtype: str, m: int) -> np.ndarray:
    """``values`` converted to ``dtype`` as an (m, nbytes) uint8 view (copying only when needed)."""
    arr = np.ascontiguousarray(values, dtype=np.dtype(dtype))
    return arr.view(np.uint8).reshape(m, -1)


def _encode_group(columns: Sequence[Column], pattern: np.ndarray, rows, m: int) -> np.ndarray:
    """Rows sharing one layout: fill a (rows x bytes) uint8 slab column by column."""
    sizes = []
    for j, col in enumerate(columns):
        if pattern[j] < 0:
            sizes.append(0)
        elif col.kind in BYTEA_TYPES:
            sizes.append(int(pattern[j]) * np.dtype(BYTEA_TYPES[col.kind]).itemsize)
        elif col.kind == TEXT_FIXED:
            sizes.append(col.values.dtype.itemsize)
        elif col.kind == TEXT:
            sizes.append(int(pattern[j]))
        else:
            sizes.append(np.dtype(SCALAR_TYPES[col.kind]).itemsize)
    out = np.empty((m, 2 + 4 * len(columns) + sum(sizes)), dtype=np.uint8)
    out[:, 0:2] = np.frombuffer(np.array(len(columns), dtype=">i2").tobytes(), dtype=np.uint8)
    off = 2
    for j, col in enumerate(columns):
        size = sizes[j]
        length = -1 if pattern[j] < 0 else size
        out[:, off:off + 4] = np.frombuffer(np.array(length, dtype=">i4").tobytes(), dtype=np.uint8)
        off += 4
        if length < 0 or size == 0:
            continue
        if col.kind in BYTEA_TYPES:
            src = col.values[rows, : int(pattern[j])]
            out[:, off:off + size] = _as_bytes(src, BYTEA_TYPES[col.kind], m)
        elif col.kind == TEXT_FIXED:
            out[:, off:off + size] = np.ascontiguousarray(col.values[rows]).view(np.uint8).reshape(m, size)
        elif col.kind == TEXT:
            raw = np.ascontiguousarray(col.values[rows])
            out[:, off:off + size] = raw.view(np.uint8).reshape(m, raw.dtype.itemsize)[:, :size]
        else:
            out[:, off:off + size] = _as_bytes(col.values[rows], SCALAR_TYPES[col.kind], m)
        off += size
    return out


def copy_binary(conn: psycopg.Connection, table: str, *column_sets: Sequence[Column]) -> int:
    """COPY one or more column sets (same column names) into ``table`` in binary format.

    Returns the number of rows sent. The encoded slabs are written as they are, without
    joining them into one buffer.
    """
    names = ", ".join(c.name for c in column_sets[0])
    rows = 0
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(HEADER)
            for columns in column_sets:
                if [c.name for c in columns] != [c.name for c in column_sets[0]]:
                    raise ValueError("column sets of one COPY must have the same columns")
                for part in encode_parts(columns):
                    copy.write(memoryview(part).cast("B"))
                rows += len(columns[0].values)
            copy.write(TRAILER)
    return rows


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
