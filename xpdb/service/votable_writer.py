"""BINARY2 (and TABLEDATA) VOTable results written column by column (not astropy's writer, cell by cell).

The rows of a BINARY2 stream are: a NULL bitmap, then each cell - numbers big-endian at their
width, booleans as ``T``/``F``/``?``, text as a 4-byte length and its bytes (FIELDs of text
are ``arraysize="*"``, ``char`` when every value is ASCII, ``unicodeChar`` (UTF-16) otherwise, as
TAP_SCHEMA declares them). Every cell's position follows from the widths and the text
lengths, so each column is scattered into one output buffer at once; the buffer is then
base64-encoded in one call. The document around it carries the same FIELD metadata (unit, UCD,
description) and INFOs as :func:`xpdb.service.documents.result_document` writes with astropy.
"""

from __future__ import annotations

import binascii
import functools
from xml.sax.saxutils import escape, quoteattr

import numpy as np

_NUMERIC = {"i1": ("short", ">i2"), "u1": ("unsignedByte", "u1"), "i2": ("short", ">i2"), "u2": ("int", ">i4"),
            "i4": ("int", ">i4"), "u4": ("long", ">i8"), "i8": ("long", ">i8"), "f2": ("float", ">f4"),
            "f4": ("float", ">f4"), "f8": ("double", ">f8")}


class NotSupported(Exception):
    """A column this writer does not handle (the caller uses astropy)."""


def _column(col):
    """(datatype, kind, per-row payload, NULL mask) of an astropy column."""
    data = np.asarray(np.ma.getdata(col)).view(np.ndarray)  # plain numpy from here (astropy views cost)
    mask = np.ma.getmaskarray(col) if np.ma.isMaskedArray(col) or hasattr(col, "mask") else np.zeros(len(col), bool)
    mask = np.asarray(mask, dtype=bool)
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
        try:
            encoded = [v.encode("ascii") if isinstance(v, str) else bytes(v) for v in data.tolist()]
            return "char", "text", encoded, mask
        except UnicodeEncodeError:
            return "unicodeChar", "unicode", [str(v).encode("utf-16-be") for v in data.tolist()], mask
    raise NotSupported(str(data.dtype))


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


def _unit(col) -> str | None:
    return None if col.unit is None else _unit_text(col.unit)


@functools.lru_cache(maxsize=512)
def _unit_text(unit) -> str:
    """A unit as VOUnit text (astropy's formatter is slow: the service writes the same few units)."""
    try:
        return unit.to_string("vounit")
    except Exception:  # a unit VOUnit cannot write
        return str(unit)


def _td_texts(col, column) -> list[str]:
    """The TD contents of one column (empty for NULL)."""
    datatype, kind, payload, mask = column
    data = np.ma.getdata(col)
    if datatype == "boolean":
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


def _tabledata(table, columns: list[tuple]) -> bytes:
    texts = [_td_texts(table[name], column) for name, column in zip(table.colnames, columns)]
    rows = ["<TR><TD>" + "</TD><TD>".join(cells) + "</TD></TR>" for cells in zip(*texts)]
    return ("\n".join(rows) + "\n").encode() if rows else b""


def votable_binary2(table, names: list[str], ids: list[str], infos: dict[str, str],
                    serialization: str = "binary2") -> bytes:
    """A results VOTable of ``table`` in BINARY2 or TABLEDATA (FIELD ``names`` shown, ``ids`` as their IDs);
    NotSupported for columns it does not write."""
    columns = [_column(table[name]) for name in table.colnames]
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
             'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
             ' <RESOURCE type="results">']
    lines += [f"  <INFO name={quoteattr(k)} value={quoteattr(str(v))}/>" for k, v in infos.items()]
    lines.append("  <TABLE>")
    for name, field_id, column, colname in zip(names, ids, columns, table.colnames):
        col = table[colname]
        attrs = [f"ID={quoteattr(field_id)}", f"name={quoteattr(name)}", f'datatype="{column[0]}"']
        if column[1] != "fixed" or column[0] in ("char", "unicodeChar"):
            attrs.append('arraysize="*"')
        unit = _unit(col)
        if unit:
            attrs.append(f"unit={quoteattr(unit)}")
        ucd = col.meta.get("ucd") if col.meta else None
        if ucd:
            attrs.append(f"ucd={quoteattr(ucd)}")
        description = col.description
        if description:
            lines.append(f"   <FIELD {' '.join(attrs)}>")
            lines.append(f"    <DESCRIPTION>{escape(description)}</DESCRIPTION>")
            lines.append("   </FIELD>")
        else:
            lines.append(f"   <FIELD {' '.join(attrs)}/>")
    if serialization == "tabledata":
        head = "\n".join(lines) + "\n   <DATA>\n    <TABLEDATA>\n"
        tail = "    </TABLEDATA>\n   </DATA>\n  </TABLE>\n </RESOURCE>\n</VOTABLE>\n"
        return head.encode() + _tabledata(table, columns) + tail.encode()
    stream = binascii.b2a_base64(binary2_stream(columns), newline=False)
    head = "\n".join(lines) + '\n   <DATA>\n    <BINARY2>\n     <STREAM encoding="base64">'
    tail = "</STREAM>\n    </BINARY2>\n   </DATA>\n  </TABLE>\n </RESOURCE>\n</VOTABLE>\n"
    return head.encode() + stream + tail.encode()
