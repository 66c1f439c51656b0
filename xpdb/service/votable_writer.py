"""BINARY2 (and TABLEDATA) VOTable results written column by column (not astropy's writer, cell by cell).

The rows of a BINARY2 stream are: a NULL bitmap, then each cell - numbers big-endian at their
width, booleans as ``T``/``F``/``?``, text as a 4-byte length and its bytes (FIELDs of text
are ``arraysize="*"``, ``char`` when every value is ASCII, ``unicodeChar`` (UTF-16) otherwise, as
TAP_SCHEMA declares them). Every cell's position follows from the widths and the text
lengths, so each column is scattered into one output buffer at once; the buffer is then
base64-encoded in one call. The document around it carries the same FIELD metadata (unit, UCD,
description) and INFOs as :func:`xpdb.service.documents.result_document` writes with astropy.

Columns come as :class:`OutColumn` (values, NULL mask, unit, UCD, description): from an astropy Table
(:func:`table_columns`) or straight from a query's arrays (:func:`result_columns`, which spares the
service building an astropy Table for every request). FIELD elements are made once per distinct
column and kept (:func:`_field_xml`): the service writes the same few columns again and again.
"""

from __future__ import annotations

import binascii
import functools
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import numpy as np

_NUMERIC = {"i1": ("short", ">i2"), "u1": ("unsignedByte", "u1"), "i2": ("short", ">i2"), "u2": ("int", ">i4"),
            "i4": ("int", ">i4"), "u4": ("long", ">i8"), "i8": ("long", ">i8"), "f2": ("float", ">f4"),
            "f4": ("float", ">f4"), "f8": ("double", ">f8")}


class NotSupported(Exception):
    """A column this writer does not handle (the caller uses astropy)."""


@dataclass
class OutColumn:
    """One result column: its values (a 1-d numpy array, or a list of str for text), NULLs and metadata."""

    name: str
    values: np.ndarray | list
    mask: np.ndarray
    unit: str | None = None  # VOUnit text
    ucd: str | None = None
    description: str | None = None


def table_columns(table) -> list[OutColumn]:
    """The columns of an astropy Table (units as VOUnit text, UCDs from ``meta['ucd']``)."""
    out = []
    for name in table.colnames:
        col = table[name]
        data = np.asarray(np.ma.getdata(col)).view(np.ndarray)  # plain numpy from here (astropy views cost)
        mask = np.ma.getmaskarray(col) if np.ma.isMaskedArray(col) or hasattr(col, "mask") else np.zeros(len(col), bool)
        out.append(OutColumn(name, data, np.asarray(mask, dtype=bool), None if col.unit is None else _unit_text(col.unit),
                             col.meta.get("ucd") if col.meta else None, col.description or None))
    return out


def result_columns(names: list[str], data: list, masks: list) -> list[OutColumn]:
    """The columns of a query result (:class:`xpdb.query.run.QueryResult`'s arrays) with the units, UCDs and
    descriptions of ``xpdb.query.columns``, named as :func:`xpdb.query.run.columns_to_table` names them."""
    from xpdb.query.columns import meta

    out, seen = [], []
    for name, values, mask in zip(names, data, masks):
        unique, k = name, 1
        while unique in seen:
            k += 1
            unique = f"{name}_{k}"
        seen.append(unique)
        m = meta(name)
        out.append(OutColumn(unique, values, np.asarray(mask, dtype=bool),
                             _vounit(m.unit) if m and m.unit else None, m.ucd if m else None,
                             (m.description or None) if m else None))
    return out


@functools.lru_cache(maxsize=512)
def _vounit(text: str) -> str:
    """A unit string of ``xpdb.query.columns`` as VOUnit text, as astropy writes it."""
    from astropy import units as u

    return _unit_text(u.Unit(text))


@functools.lru_cache(maxsize=512)
def _unit_text(unit) -> str:
    """A unit as VOUnit text (astropy's formatter is slow: the service writes the same few units)."""
    try:
        return unit.to_string("vounit")
    except Exception:  # a unit VOUnit cannot write
        return str(unit)


def _column(column: OutColumn):
    """(datatype, kind, per-row payload, NULL mask) of a column."""
    mask = column.mask
    if isinstance(column.values, list):  # text, as a query result holds it
        return _text(column.values, mask)
    data = column.values
    if data.ndim != 1:
        raise NotSupported("array cells")
    kind = data.dtype.kind
    if kind == "b":
        codes = np.where(data, ord("T"), ord("F")).astype(np.uint8)
        codes[mask] = ord("?")
        return "boolean", "fixed", codes.reshape(-1, 1), mask
    if kind in "iuf":
        key = f"{kind}{data.dtype.itemsize}"
        if key not in _NUMERIC:
            raise NotSupported(str(data.dtype))
        datatype, be = _NUMERIC[key]
        values = data.astype(be)
        if kind == "f" and mask.any():
            values = values.copy()
            values[mask] = np.nan
        return datatype, "fixed", values.view(np.uint8).reshape(len(values), values.dtype.itemsize), mask
    if kind in "US":
        return _text(data.tolist(), mask)
    raise NotSupported(str(data.dtype))


def _text(values: list, mask: np.ndarray):
    try:
        encoded = [v.encode("ascii") if isinstance(v, str) else bytes(v) for v in values]
        return "char", "text", encoded, mask
    except UnicodeEncodeError:
        return "unicodeChar", "unicode", [str(v).encode("utf-16-be") for v in values], mask


def binary2_stream(columns: list[tuple]) -> bytes:
    """The raw BINARY2 bytes of ``columns`` ((datatype, kind, payload, mask) as :func:`_column` makes)."""
    n = len(columns[0][3]) if columns else 0
    nb = (len(columns) + 7) // 8
    sizes = np.full(n, nb, dtype=np.int64)
    lengths = []
    for _, kind, payload, mask in columns:
        if kind == "fixed":
            sizes += payload.shape[1]
            lengths.append(None)
        else:
            blen = np.fromiter((len(b) for b in payload), dtype=np.int64, count=n)
            blen[mask] = 0
            sizes += 4 + blen
            lengths.append(blen)
    starts = np.zeros(n, dtype=np.int64)
    if n:
        np.cumsum(sizes[:-1], out=starts[1:])
    out = np.zeros(int(sizes.sum()), dtype=np.uint8)
    if n == 0:
        return b""
    nulls = np.packbits(np.stack([c[3] for c in columns], axis=1), axis=1) if columns else np.zeros((n, 0), np.uint8)
    out[starts[:, None] + np.arange(nb)] = nulls
    cursor = starts + nb
    for (_, kind, payload, mask), blen in zip(columns, lengths):
        if kind == "fixed":
            width = payload.shape[1]
            out[cursor[:, None] + np.arange(width)] = payload
            cursor += width
            continue
        count = blen // 2 if kind == "unicode" else blen
        out[cursor[:, None] + np.arange(4)] = count.astype(">u4").view(np.uint8).reshape(n, 4)
        cursor += 4
        total = int(blen.sum())
        if total:
            joined = np.frombuffer(b"".join(b for b, m in zip(payload, mask.tolist()) if not m), dtype=np.uint8)
            first = np.zeros(n, dtype=np.int64)
            np.cumsum(blen[:-1], out=first[1:])
            out[np.repeat(cursor - first, blen) + np.arange(total)] = joined
        cursor += blen
    return out.tobytes()


def _td_texts(column: OutColumn, described) -> list[str]:
    """The TD contents of one column (empty for NULL)."""
    datatype, kind, payload, mask = described
    data = column.values
    if isinstance(data, list):
        values = [escape(str(v)) for v in data]
    elif datatype == "boolean":
        values = ["T" if v else "F" for v in data.tolist()]
    elif kind == "fixed":
        if data.dtype.kind == "f":
            values = [repr(v) if v == v else "NaN" for v in data.tolist()]
        else:
            values = [str(v) for v in data.tolist()]
    else:
        values = [escape(str(v)) for v in data.tolist()]
    if mask.any():
        values = ["" if m else v for v, m in zip(values, mask.tolist())]
    return values


def _tabledata(columns: list[OutColumn], described: list[tuple]) -> bytes:
    texts = [_td_texts(column, d) for column, d in zip(columns, described)]
    rows = ["<TR><TD>" + "</TD><TD>".join(cells) + "</TD></TR>" for cells in zip(*texts)]
    return ("\n".join(rows) + "\n").encode() if rows else b""


@functools.lru_cache(maxsize=1024)
def _field_xml(name: str, field_id: str, datatype: str, variable: bool, unit: str | None, ucd: str | None,
               description: str | None) -> str:
    """One FIELD element (kept: the service writes the same columns in request after request)."""
    attrs = [f"ID={quoteattr(field_id)}", f"name={quoteattr(name)}", f'datatype="{datatype}"']
    if variable:
        attrs.append('arraysize="*"')
    if unit:
        attrs.append(f"unit={quoteattr(unit)}")
    if ucd:
        attrs.append(f"ucd={quoteattr(ucd)}")
    if description:
        return (f"   <FIELD {' '.join(attrs)}>\n    <DESCRIPTION>{escape(description)}</DESCRIPTION>\n"
                "   </FIELD>")
    return f"   <FIELD {' '.join(attrs)}/>"


_HEAD = ('<?xml version="1.0" encoding="utf-8"?>\n'
         '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
         'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
         ' <RESOURCE type="results">\n')


def votable_binary2(columns, names: list[str], ids: list[str], infos: dict[str, str],
                    serialization: str = "binary2") -> bytes:
    """A results VOTable of ``columns`` (:class:`OutColumn`, or an astropy Table) in BINARY2 or TABLEDATA
    (FIELD ``names`` shown, ``ids`` as their IDs); NotSupported for columns it does not write."""
    if not isinstance(columns, list):
        columns = table_columns(columns)
    described = [_column(column) for column in columns]
    lines = [f"  <INFO name={quoteattr(k)} value={quoteattr(str(v))}/>" for k, v in infos.items()]
    lines.append("  <TABLE>")
    for name, field_id, d, column in zip(names, ids, described, columns):
        lines.append(_field_xml(name, field_id, d[0], d[1] != "fixed" or d[0] in ("char", "unicodeChar"),
                                column.unit or None, column.ucd or None, column.description or None))
    if serialization == "tabledata":
        head = _HEAD + "\n".join(lines) + "\n   <DATA>\n    <TABLEDATA>\n"
        tail = "    </TABLEDATA>\n   </DATA>\n  </TABLE>\n </RESOURCE>\n</VOTABLE>\n"
        return head.encode() + _tabledata(columns, described) + tail.encode()
    stream = binascii.b2a_base64(binary2_stream(described), newline=False)
    head = _HEAD + "\n".join(lines) + '\n   <DATA>\n    <BINARY2>\n     <STREAM encoding="base64">'
    tail = "</STREAM>\n    </BINARY2>\n   </DATA>\n  </TABLE>\n </RESOURCE>\n</VOTABLE>\n"
    return head.encode() + stream + tail.encode()
