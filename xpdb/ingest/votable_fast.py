"""A fast VOTable reader for ingest: BINARY2, BINARY and TABLEDATA straight into Arrow columns.

astropy's VOTable parser builds Python objects cell by cell (the archive's XP_CONTINUOUS
layout - BINARY2 with variable-length ``arraysize="*"`` arrays of 55 coefficients and 1485
correlations - went at about 200 spectra/s). Here the XML around the data is parsed with
ElementTree; the binary stream is base64-decoded once and walked row by row only to find
where each cell starts (variable-length cells carry their length); the values are then
cut out per column with numpy (one strided copy when the cells are evenly spaced, as in
the archive's files). TABLEDATA cells are collected by ``iterparse`` and numbers parsed by
numpy per cell.

Anything this reader does not handle (``bit`` or complex datatypes, multidimensional
arraysize, a STREAM by reference or in another encoding, FITS serialization) raises
:class:`Unsupported`, and the caller falls back to astropy. Malformed data raises
ValueError naming the row and the column.
"""

from __future__ import annotations

import binascii
import re
import xml.etree.ElementTree as ET

import numpy as np
import pyarrow as pa

_DTYPES = {"boolean": "b1", "unsignedByte": "u1", "short": ">i2", "int": ">i4", "long": ">i8",
           "float": ">f4", "double": ">f8", "char": "S1", "unicodeChar": ">u2"}


ENABLED = True  # False: always astropy (bench/ingest.py compares the two in one run)


class Unsupported(Exception):
    """A VOTable feature this reader does not handle (use astropy)."""


class _Field:
    def __init__(self, element):
        self.name = element.get("name") or element.get("ID") or ""
        self.datatype = element.get("datatype") or ""
        if self.datatype not in _DTYPES:
            raise Unsupported(f"datatype {self.datatype!r}")
        size = (element.get("arraysize") or "").strip()
        if "x" in size:
            raise Unsupported(f"arraysize {size!r}")
        self.variable = size.endswith("*")
        self.count = 1 if not size else (None if self.variable else int(size))
        self.text = self.datatype in ("char", "unicodeChar")
        self.dtype = np.dtype(_DTYPES[self.datatype])
        null = None
        for child in element:
            if _local(child.tag) == "VALUES" and child.get("null") is not None:
                null = child.get("null")
        self.null = int(null) if null is not None and self.datatype in ("short", "int", "long", "unsignedByte") \
            else None
        self.scalar = not self.text and self.count == 1 and not self.variable


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


_STREAM = re.compile(rb"<(?:\w+:)?STREAM\b[^>]*>", re.S)


def read_votable(data: bytes) -> tuple[pa.Table, dict]:
    """The first TABLE of a VOTable document as an Arrow table, and the document's INFO/PARAM values."""
    match = _STREAM.search(data)
    if match:
        end = data.find(b"</", match.end())
        if end < 0:
            raise ValueError("the VOTable ends inside its STREAM (truncated)")
        stream = data[match.end():end]
        skeleton = data[:match.end()] + data[end:]
    else:
        stream, skeleton = None, data
    if stream is not None:
        root = ET.fromstring(skeleton)
        table, fields, kind = _first_table(root)
        stream_el = next(e for e in table.iter() if _local(e.tag) == "STREAM")
        if stream_el.get("href") or (stream_el.get("encoding") or "base64") != "base64":
            raise Unsupported("STREAM by reference or not base64")
        try:
            raw = binascii.a2b_base64(stream)  # skips the line breaks and blanks of the stream
        except binascii.Error as exc:
            raise ValueError(f"the base64 STREAM is truncated or damaged ({exc})") from None
        columns = _binary_columns(np.frombuffer(raw, dtype=np.uint8), fields, kind == "BINARY2")
    else:
        quick = _plain_tabledata(data)
        if quick is not None:
            root, fields, columns = quick
        else:
            root, table, fields, columns = _tabledata(data)
    meta = {}
    for element in root.iter():
        if _local(element.tag) in ("INFO", "PARAM") and element.get("name"):
            meta.setdefault(element.get("name"), element.get("value"))
    return pa.table(columns, names=[f.name for f in fields]), meta


def _first_table(root):
    table = next((e for e in root.iter() if _local(e.tag) == "TABLE"), None)
    if table is None:
        raise ValueError("the VOTable has no TABLE")
    fields = [_Field(e) for e in table if _local(e.tag) == "FIELD"]
    data = next((e for e in table if _local(e.tag) == "DATA"), None)
    kind = None
    if data is not None:
        for child in data:
            kind = _local(child.tag)
    if kind not in ("BINARY2", "BINARY", "TABLEDATA", None):
        raise Unsupported(f"{kind} serialization")
    return table, fields, kind


# -- binary ------------------------------------------------------------------------------------
def _binary_columns(buf: np.ndarray, fields: list[_Field], binary2: bool) -> list[pa.Array]:
    nf = len(fields)
    nb = (nf + 7) // 8 if binary2 else 0
    sizes = [None if f.variable else f.count * f.dtype.itemsize for f in fields]
    elsize = [f.dtype.itemsize for f in fields]
    raw = buf.tobytes()
    total = len(raw)
    starts: list[list[int]] = [[] for _ in fields]
    counts: list[list[int]] = [[] for _ in fields]
    row_starts: list[int] = []
    pos = 0
    from_bytes = int.from_bytes
    while pos < total:
        row_starts.append(pos)
        pos += nb
        for j in range(nf):
            size = sizes[j]
            if size is None:
                n = from_bytes(raw[pos:pos + 4], "big")
                starts[j].append(pos + 4)
                counts[j].append(n)
                pos += 4 + n * elsize[j]
            else:
                starts[j].append(pos)
                pos += size
        if pos > total:
            raise ValueError(f"the binary stream ends inside row {len(row_starts)} (truncated)")
    n_rows = len(row_starts)
    nulls = None
    if binary2 and n_rows:
        rows = np.asarray(row_starts, dtype=np.int64)
        bitmap = buf[rows[:, None] + np.arange(nb)]
        nulls = np.unpackbits(bitmap, axis=1)[:, :nf].astype(bool)
    out = []
    for j, f in enumerate(fields):
        s = np.asarray(starts[j], dtype=np.int64)
        null = nulls[:, j] if nulls is not None else np.zeros(n_rows, dtype=bool)
        if f.variable:
            c = np.asarray(counts[j], dtype=np.int64)
            out.append(_variable(buf, raw, s, c, f, null))
        else:
            out.append(_fixed(buf, s, f, null))
    return out


def _cells(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """(rows, width) bytes starting at ``starts``: one strided copy when the rows are evenly spaced."""
    m = len(starts)
    if m == 0 or width == 0:
        return np.zeros((m, width), dtype=np.uint8)
    step = int(starts[1] - starts[0]) if m > 1 else width
    if m == 1 or (step > 0 and (np.diff(starts) == step).all()):
        view = np.lib.stride_tricks.as_strided(buf[int(starts[0]):], shape=(m, width), strides=(step, 1),
                                               writeable=False)
        return np.ascontiguousarray(view)
    return buf[starts[:, None] + np.arange(width)]


def _fixed(buf: np.ndarray, starts: np.ndarray, f: _Field, null: np.ndarray) -> pa.Array:
    cells = _cells(buf, starts, f.count * f.dtype.itemsize)
    if f.text:
        return _text_array([bytes(r) for r in cells], f, null)
    if f.datatype == "boolean":
        return _booleans(cells[:, 0], null)
    values = cells.view(f.dtype).astype(f.dtype.newbyteorder("="))
    if f.scalar:
        values = values.reshape(-1)
        if f.null is not None:
            null = null | (values == f.null)
        return pa.array(values, mask=null if null.any() else None)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), f.count)


def _variable(buf, raw: bytes, starts: np.ndarray, counts: np.ndarray, f: _Field, null: np.ndarray) -> pa.Array:
    if f.text:
        return _text_array([raw[s:s + n * f.dtype.itemsize] for s, n in zip(starts.tolist(), counts.tolist())],
                           f, null)
    if f.datatype == "boolean":
        raise Unsupported("variable-length boolean arrays")
    native = f.dtype.newbyteorder("=")
    m = len(counts)
    if m and (counts == counts[0]).all():
        flat = _cells(buf, starts, int(counts[0]) * f.dtype.itemsize).view(f.dtype).astype(native).reshape(-1)
    else:
        pieces = [np.frombuffer(raw, dtype=f.dtype, count=int(k), offset=int(o))
                  for k, o in zip(counts.tolist(), starts.tolist()) if k]
        flat = np.concatenate(pieces).astype(native) if pieces else np.empty(0, dtype=native)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    missing = null | (counts == 0)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=pa.array(missing) if missing.any() else None)


def _booleans(codes: np.ndarray, null: np.ndarray) -> pa.Array:
    true = np.isin(codes, np.frombuffer(b"Tt1", dtype=np.uint8))
    false = np.isin(codes, np.frombuffer(b"Ff0", dtype=np.uint8))
    missing = null | ~(true | false)
    return pa.array(true, mask=missing if missing.any() else None)


def _text_array(cells: list[bytes], f: _Field, null: np.ndarray) -> pa.Array:
    encoding = "utf-16-be" if f.datatype == "unicodeChar" else "utf-8"
    values = []
    for cell, missing in zip(cells, null.tolist()):
        values.append(None if missing else cell.decode(encoding, "replace").split("\x00", 1)[0].rstrip())
    return pa.array(values, type=pa.string())


# -- TABLEDATA ---------------------------------------------------------------------------------
_TD = re.compile(rb"<TD>([^<]*)</TD>")


def _plain_tabledata(data: bytes):
    """(root, fields, columns) when the first TABLE's TABLEDATA is plain - ``<TR><TD>text</TD>...</TR>`` with no
    attributes, entities, comments or CDATA, every row complete, and one TABLE - cut by a regular expression
    instead of an XML parser; None otherwise (iterparse reads it)."""
    start = data.find(b"<TABLEDATA>")
    end = data.find(b"</TABLEDATA>", start)
    if start < 0 or end < 0 or data.count(b"<TABLE", 0, start) != 1:
        return None
    body = data[start + len(b"<TABLEDATA>"):end]
    if b"&" in body:  # entities: the XML parser decodes them
        return None
    root = ET.fromstring(data[:start] + b"<TABLEDATA/>" + data[end + len(b"</TABLEDATA>"):])
    _, fields, kind = _first_table(root)
    # a cell with attributes, markup, CDATA or <TD/> is not matched, and the count below then differs
    cells = _TD.findall(body)
    rows = body.count(b"<TR>")
    if rows != body.count(b"</TR>") or len(cells) != rows * len(fields):
        return None
    columns = []
    for j, f in enumerate(fields):
        texts = [c.decode("utf-8") for c in cells[j::len(fields)]]
        try:
            columns.append(_text_column(f, texts))
        except ValueError as exc:
            raise ValueError(f"column {f.name!r}: {exc}") from None
    return root, fields, columns


def _tabledata(data: bytes):
    """(root, None, fields, Arrow columns) of the first TABLE's TABLEDATA."""
    import io

    fields: list[_Field] = []
    texts: list[list[str]] | None = None
    root = None
    tables = 0
    row: list[str] = []
    for event, element in ET.iterparse(io.BytesIO(data), events=("start", "end")):
        tag = _local(element.tag)
        if event == "start":
            if root is None:
                root = element
            elif tag == "TABLE":
                tables += 1
            elif tag == "TABLEDATA" and tables == 1:
                texts = [[] for _ in fields]
            elif tag in ("BINARY", "BINARY2", "FITS") and tables == 1:
                raise Unsupported(f"{tag} without a base64 STREAM")
            continue
        if tables != 1:
            continue
        if tag == "FIELD" and texts is None:
            fields.append(_Field(element))
        elif tag == "TD" and texts is not None:
            row.append(element.text or "")
        elif tag == "TR" and texts is not None:
            if len(row) > len(fields):
                raise ValueError(f"TABLEDATA row {len(texts[0]) + 1 if fields else 1} has {len(row)} cells "
                                 f"for {len(fields)} FIELDs")
            row += [""] * (len(fields) - len(row))
            for column, value in zip(texts, row):
                column.append(value)
            row = []
            element.clear()
        elif tag == "TABLE":
            tables += 1  # later tables are not read
    if tables == 0:
        raise ValueError("the VOTable has no TABLE")
    texts = texts if texts is not None else [[] for _ in fields]
    columns = []
    for f, column in zip(fields, texts):
        try:
            columns.append(_text_column(f, column))
        except ValueError as exc:
            raise ValueError(f"column {f.name!r}: {exc}") from None
    return root, None, fields, columns


def _text_column(f: _Field, cells: list[str]) -> pa.Array:
    """One TABLEDATA column as Arrow: numbers parsed by numpy, empty cells NULL."""
    if f.text:
        return pa.array([c.rstrip() if c.strip() else None for c in cells], type=pa.string())
    if f.datatype == "boolean":
        codes = np.frombuffer("".join((c.strip()[:1] or "?") for c in cells).encode(), dtype=np.uint8)
        return _booleans(codes, np.zeros(len(cells), dtype=bool))
    native = f.dtype.newbyteorder("=")
    parse = float if native.kind == "f" else int
    if f.scalar:
        values = np.zeros(len(cells), dtype=native)
        null = np.zeros(len(cells), dtype=bool)
        for i, c in enumerate(cells):
            c = c.strip()
            if not c or (native.kind == "f" and c.lower() == "nan"):
                if native.kind == "f":
                    values[i] = np.nan
                null[i] = native.kind != "f" or not c
                continue
            try:
                values[i] = parse(c)
            except ValueError:
                raise ValueError(f"row {i + 1}: {c[:40]!r} is not a number") from None
        if f.null is not None:
            null |= values == f.null
        return pa.array(values, mask=null if null.any() else None)
    if native.kind == "f":
        fast = _float_lists(cells, native)
        if fast is not None:
            flat, counts = fast
            return _lists(flat, counts, f)
    pieces, counts = [], np.zeros(len(cells), dtype=np.int64)
    for i, c in enumerate(cells):
        if c.strip():
            values = np.fromstring(c, dtype=native, sep=" ") if native.kind == "f" else \
                np.array(c.split(), dtype=native)
            if native.kind == "f" and len(values) != len(c.split()) if len(c) < 64 else False:
                raise ValueError(f"row {i + 1}: not a list of numbers")
            pieces.append(values)
            counts[i] = len(values)
    flat = np.concatenate(pieces) if pieces else np.empty(0, dtype=native)
    return _lists(flat, counts, f)


def _float_lists(cells: list[str], native: np.dtype) -> tuple[np.ndarray, np.ndarray] | None:
    """Space-separated float cells parsed by xpdb's numba number parser (the one of CSV ingest), after
    Arrow turns the blanks into commas; None when a cell holds something else (the slow path reads it)."""
    import pyarrow.compute as pc

    from xpdb.ingest.textnumbers import parse_number_lists

    # single blanks, as writers put them; other spacing leaves empty tokens, reported bad: the slow path then
    text = pc.replace_substring(pc.utf8_trim_whitespace(pa.array(cells, type=pa.string())), " ", ",")
    values, lengths, _, bad = parse_number_lists(text, native)
    if bad:
        return None
    counts = lengths.astype(np.int64)
    if len(counts) and (counts == values.shape[1]).all():
        return values.reshape(-1), counts
    keep = np.arange(values.shape[1])[None, :] < counts[:, None]
    return values[keep], counts


def _lists(flat: np.ndarray, counts: np.ndarray, f: _Field) -> pa.Array:
    """Arrow list (or fixed-size list) array of ``flat`` values cut by ``counts``; empty cells NULL."""
    if not f.variable:
        if (counts[counts > 0] != f.count).any():
            bad = int(np.flatnonzero((counts > 0) & (counts != f.count))[0])
            raise ValueError(f"row {bad + 1}: {counts[bad]} values, arraysize is {f.count}")
        if (counts == 0).any():
            raise Unsupported("empty fixed-size array cells")
        return pa.FixedSizeListArray.from_arrays(pa.array(flat), f.count)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    missing = counts == 0
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=pa.array(missing) if missing.any() else None)
