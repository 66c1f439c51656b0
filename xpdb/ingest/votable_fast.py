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
import mmap
import re
import xml.etree.ElementTree as ET

import numba as nb
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


_DATA = re.compile(rb"<(?:\w+:)?(TABLEDATA|BINARY2|BINARY|FITS)\b")
_STREAM = re.compile(rb"<(?:\w+:)?STREAM\b[^>]*>", re.S)


def _b64decode(stream: memoryview) -> bytes:
    """Base64 with line breaks and blanks skipped: pybase64 (SIMD) when installed, else binascii (~5x slower)."""
    try:
        import pybase64
    except ImportError:  # pragma: no cover - pybase64 is a declared dependency
        return binascii.a2b_base64(stream)
    return pybase64.b64decode(stream, validate=False)


def read_document(path, gzipped: bool = False) -> bytes | mmap.mmap:
    """A VOTable file's bytes for :func:`open_votable`: a read-only memory map of a plain file (its pages are
    read where the scan needs them, not copied first), the decompressed bytes of a gzipped one."""
    if gzipped:
        import gzip

        with gzip.open(path, "rb") as fh:
            return fh.read()
    with open(path, "rb") as fh:
        try:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            return fh.read()


def open_votable(data: bytes | mmap.mmap) -> tuple[pa.Table | BinaryRows | TextRows, dict]:
    """The first TABLE of a VOTable document, and the document's INFO/PARAM values.

    A BINARY/BINARY2 table comes as :class:`BinaryRows` (decoded and walked; columns are cut by
    ``slice``), plain TABLEDATA as :class:`TextRows` (cells located; numbers parsed by ``slice``), other
    TABLEDATA as an Arrow table.
    """
    first = _DATA.search(data)  # the first table's DATA serialization: near the top, found fast
    match = _STREAM.search(data, first.end()) if first and first.group(1) != b"TABLEDATA" else None
    if match:
        end = data.find(b"<", match.end())  # memchr: base64 has no '<'
        if end < 0:
            raise ValueError("the VOTable ends inside its STREAM (truncated)")
        stream = memoryview(data)[match.end():end]
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
            raw = _b64decode(stream)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"the base64 STREAM is truncated or damaged ({exc})") from None
        del stream
        rows = BinaryRows(np.frombuffer(raw, dtype=np.uint8), fields, kind == "BINARY2")
    else:
        quick = _plain_tabledata(data)
        if quick is not None:
            root, fields, rows = quick
        else:
            root, table, fields, columns = _tabledata(data)
            rows = pa.table(columns, names=[f.name for f in fields])
    meta = {}
    for element in root.iter():
        if _local(element.tag) in ("INFO", "PARAM") and element.get("name"):
            meta.setdefault(element.get("name"), element.get("value"))
    return rows, meta


def read_votable(data: bytes) -> tuple[pa.Table, dict]:
    """The first TABLE of a VOTable document as an Arrow table, and the document's INFO/PARAM values."""
    rows, meta = open_votable(data)
    return (rows.slice(0) if isinstance(rows, (BinaryRows, TextRows)) else rows), meta


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
@nb.njit(cache=True, nogil=True)
def _walk(buf, n_bitmap, sizes, itemsizes, row_starts, starts, counts):
    """Walk a BINARY/BINARY2 stream row by row: where each row and cell starts, and each variable cell's length.

    ``sizes[j]`` is field j's byte size, -1 for a variable-length field (a 4-byte big-endian element count
    then the elements). With empty output arrays nothing is stored (a first pass that counts the rows).
    Returns (rows, bad_row, bad_field): bad_row > 0 is the 1-based row where the stream ends inside
    field ``bad_field`` (truncated, or a damaged length).
    """
    total = buf.shape[0]
    nf = sizes.shape[0]
    store = row_starts.shape[0] > 0
    pos = np.int64(0)
    row = 0
    while pos < total:
        if store:
            row_starts[row] = pos
        pos += n_bitmap
        if pos > total:
            return row, row + 1, 0
        for j in range(nf):
            size = sizes[j]
            if size < 0:
                if pos + 4 > total:
                    return row, row + 1, j
                n = (np.int64(buf[pos]) << 24) | (np.int64(buf[pos + 1]) << 16) | \
                    (np.int64(buf[pos + 2]) << 8) | np.int64(buf[pos + 3])
                if store:
                    starts[row, j] = pos + 4
                    counts[row, j] = n
                pos += 4 + n * itemsizes[j]
            else:
                if store:
                    starts[row, j] = pos
                pos += size
            if pos > total:
                return row, row + 1, j
        row += 1
    return row, 0, 0


@nb.njit(cache=True, nogil=True)
def _gather(buf, starts, nbytes, out):
    """Concatenate the byte runs ``buf[starts[i]:starts[i] + nbytes[i]]`` into ``out``."""
    k = 0
    for i in range(starts.shape[0]):
        s = starts[i]
        for b in range(nbytes[i]):
            out[k + b] = buf[s + b]
        k += nbytes[i]


class BinaryRows:
    """A decoded BINARY/BINARY2 stream whose row and cell positions are known; columns are cut per slice.

    It answers ``num_rows``, ``column_names`` and ``slice(offset, length)`` (an Arrow table) as an Arrow
    table does, so that ingest converts each chunk's rows while the previous chunk is being copied.
    """

    def __init__(self, buf: np.ndarray, fields: list[_Field], binary2: bool):
        nf = len(fields)
        if nf == 0:
            raise ValueError("the TABLE has no FIELD")
        for f in fields:
            if f.variable and f.datatype == "boolean":
                raise Unsupported("variable-length boolean arrays")
        nb_ = (nf + 7) // 8 if binary2 else 0
        sizes = np.array([-1 if f.variable else f.count * f.dtype.itemsize for f in fields], dtype=np.int64)
        itemsizes = np.array([f.dtype.itemsize for f in fields], dtype=np.int64)
        if not binary2 and not (sizes != 0).any():
            raise Unsupported("BINARY rows of zero bytes")
        empty1, empty2 = np.empty(0, dtype=np.int64), np.empty((0, nf), dtype=np.int64)
        n_rows, bad_row, bad_field = _walk(buf, nb_, sizes, itemsizes, empty1, empty2, empty2)
        if bad_row:
            raise ValueError(f"row {bad_row}, column {fields[bad_field].name!r}: the binary stream ends inside "
                             "the row (truncated, or a damaged array length)")
        row_starts = np.empty(n_rows, dtype=np.int64)
        starts = np.empty((n_rows, nf), dtype=np.int64)
        counts = np.zeros((n_rows, nf), dtype=np.int64)
        _walk(buf, nb_, sizes, itemsizes, row_starts, starts, counts)
        self.nulls = None
        if binary2 and n_rows:
            bitmap = buf[row_starts[:, None] + np.arange(nb_)]
            self.nulls = np.unpackbits(bitmap, axis=1)[:, :nf].astype(bool)
        self.buf, self.fields, self.num_rows = buf, fields, n_rows
        self.starts, self.counts = starts.T.copy(), counts.T.copy()  # one contiguous row of positions per field
        self.column_names = [f.name for f in fields]

    def slice(self, offset: int = 0, length: int | None = None) -> pa.Table:
        """Rows ``offset`` .. ``offset + length - 1`` as an Arrow table."""
        stop = self.num_rows if length is None else min(self.num_rows, offset + length)
        offset = min(offset, stop)
        columns = []
        for j, f in enumerate(self.fields):
            s = self.starts[j, offset:stop]
            null = self.nulls[offset:stop, j] if self.nulls is not None else np.zeros(stop - offset, dtype=bool)
            try:
                if f.variable:
                    columns.append(_variable(self.buf, s, self.counts[j, offset:stop], f, null))
                else:
                    columns.append(_fixed(self.buf, s, f, null))
            except ValueError as exc:
                raise ValueError(f"column {f.name!r}, rows {offset + 1}-{stop}: {exc}") from None
        return pa.table(columns, names=self.column_names)


def _cells(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """(rows, width) bytes starting at ``starts``: one strided copy when the rows are evenly spaced."""
    m = len(starts)
    if m == 0 or width == 0:
        return np.zeros((m, width), dtype=np.uint8)
    step = _even_step(starts)
    if step is not None:
        return np.ascontiguousarray(np.ndarray((m, width), dtype=np.uint8, buffer=buf, offset=int(starts[0]),
                                               strides=(step, 1)))
    out = np.empty(m * width, dtype=np.uint8)
    _gather(buf, starts, np.full(m, width, dtype=np.int64), out)
    return out.reshape(m, width)


def _even_step(starts: np.ndarray) -> int | None:
    """The distance between consecutive ``starts`` when it is constant (and positive), else None."""
    if len(starts) < 2:
        return 1
    step = int(starts[1] - starts[0])
    return step if step > 0 and (np.diff(starts) == step).all() else None


def _numbers(buf: np.ndarray, starts: np.ndarray, count: int, dtype: np.dtype) -> np.ndarray:
    """(rows, count) big-endian numbers starting at ``starts``, in native byte order (one copy when the rows
    are evenly spaced: a strided big-endian view converted by numpy in one pass)."""
    m = len(starts)
    native = dtype.newbyteorder("=")
    if m == 0 or count == 0:
        return np.zeros((m, count), dtype=native)
    step = _even_step(starts)
    if step is not None:
        view = np.ndarray((m, count), dtype=dtype, buffer=buf, offset=int(starts[0]), strides=(step, dtype.itemsize))
        return view.astype(native)
    return _cells(buf, starts, count * dtype.itemsize).view(dtype).astype(native)


def _fixed(buf: np.ndarray, starts: np.ndarray, f: _Field, null: np.ndarray) -> pa.Array:
    if f.text or f.datatype == "boolean":
        cells = _cells(buf, starts, f.count * f.dtype.itemsize)
        if f.text:
            return _text_array([bytes(r) for r in cells], f, null)
        return _booleans(cells[:, 0], null)
    values = _numbers(buf, starts, f.count, f.dtype)
    if f.scalar:
        values = values.reshape(-1)
        if f.null is not None:
            null = null | (values == f.null)
        return pa.array(values, mask=null if null.any() else None)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), f.count)


def _variable(buf: np.ndarray, starts: np.ndarray, counts: np.ndarray, f: _Field, null: np.ndarray) -> pa.Array:
    nbytes = counts * f.dtype.itemsize
    if f.text:
        raw = buf.data.cast("B")
        return _text_array([bytes(raw[s:s + n]) for s, n in zip(starts.tolist(), nbytes.tolist())], f, null)
    native = f.dtype.newbyteorder("=")
    m = len(counts)
    if m and (counts == counts[0]).all():  # every cell the same length (the archive's files): one strided copy
        flat = _numbers(buf, starts, int(counts[0]), f.dtype).reshape(-1)
    else:
        gathered = np.empty(int(nbytes.sum()), dtype=np.uint8)
        _gather(buf, starts, nbytes, gathered)
        flat = gathered.view(f.dtype).astype(native)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError("more than 2**31 array elements in one column: read fewer rows at a time")
    missing = null | (counts == 0)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat),
                                    mask=pa.array(missing) if missing.any() else None)


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
@nb.njit(cache=True, nogil=True, inline="always")
def _blank(c):
    return c == 32 or c == 9 or c == 13 or c == 10


@nb.njit(cache=True, nogil=True, inline="always")
def _tag(data, p, b, tag):
    """True when ``data[p:]`` starts with the bytes of ``tag``."""
    if p + tag.shape[0] > b:
        return False
    for k in range(tag.shape[0]):
        if data[p + k] != tag[k]:
            return False
    return True


_memchr = nb.types.ExternalFunction("memchr", nb.types.intp(nb.types.intp, nb.types.int32, nb.types.intp))
_TR, _TR_END = np.frombuffer(b"<TR>", np.uint8), np.frombuffer(b"</TR>", np.uint8)
_TD_OPEN, _TD_END = np.frombuffer(b"<TD>", np.uint8), np.frombuffer(b"</TD>", np.uint8)


@nb.njit(cache=True, nogil=True)
def _scan_tabledata(data, p, nf, capacity, tr, tr_end, td, td_end):
    """Where each ``<TD>`` cell's text starts and ends, for plain TABLEDATA rows from ``data[p]`` on.

    Plain: ``<TR>`` then exactly ``nf`` ``<TD>text</TD>`` then ``</TR>``, blanks between, no attribute,
    comment or CDATA (the caller refuses entities). A cell's end is found by the C library's ``memchr``. Returns (starts, ends, rows, stop): ``stop`` is where the rows end (the
    caller checks ``</TABLEDATA>`` is there), -1 when the text is not plain (the XML parser reads it).
    """
    b = data.shape[0]
    base = data.ctypes.data
    starts = np.empty((capacity, nf), np.int64)
    ends = np.empty((capacity, nf), np.int64)
    row = 0
    while True:
        while p < b and _blank(data[p]):
            p += 1
        if not _tag(data, p, b, tr):
            return starts[:row], ends[:row], row, p
        p += 4
        if row == starts.shape[0]:
            grown = max(16, 2 * row)
            s2, e2 = np.empty((grown, nf), np.int64), np.empty((grown, nf), np.int64)
            s2[:row], e2[:row] = starts[:row], ends[:row]
            starts, ends = s2, e2
        for j in range(nf):
            while p < b and _blank(data[p]):
                p += 1
            if not _tag(data, p, b, td):
                return starts[:0], ends[:0], 0, -1
            p += 4
            starts[row, j] = p
            found = _memchr(base + p, 60, b - p)  # the next '<' (the caller refuses '&' entities)
            if found == 0:
                return starts[:0], ends[:0], 0, -1
            p = found - base
            ends[row, j] = p
            if not _tag(data, p, b, td_end):
                return starts[:0], ends[:0], 0, -1
            p += 5
        while p < b and _blank(data[p]):
            p += 1
        if not _tag(data, p, b, tr_end):
            return starts[:0], ends[:0], 0, -1
        p += 5
        row += 1


@nb.njit(cache=True, nogil=True)
def _parse_ints(data, starts, ends, out, null):
    """Decimal integers at ``data[starts[i]:ends[i]]`` (blanks around) into ``out``; blank cells NULL.

    Returns the first row that is not a plain decimal integer within int64 (-1 when none): the caller
    reads that one with Python (hexadecimal, say) or reports it.
    """
    for i in range(starts.shape[0]):
        p, b = starts[i], ends[i]
        while p < b and _blank(data[p]):
            p += 1
        while b > p and _blank(data[b - 1]):
            b -= 1
        if p == b:
            null[i] = True
            out[i] = 0
            continue
        neg = data[p] == 45
        if data[p] == 45 or data[p] == 43:
            p += 1
        if p == b:
            return i
        m = np.int64(0)
        while p < b:
            d = np.int64(data[p]) - 48
            if d < 0 or d > 9 or m > (np.int64(9223372036854775807) - d) // 10:
                return i
            m = m * 10 + d
            p += 1
        out[i] = -m if neg else m
    return -1


def _plain_tabledata(data: bytes):
    """(root, fields, TextRows) when the first TABLE's TABLEDATA is plain - ``<TR><TD>text</TD>...</TR>`` with no
    attributes, entities, comments or CDATA, every row complete, and one TABLE - its cells found by one
    compiled scan instead of an XML parser; None otherwise (iterparse reads it)."""
    start = data.find(b"<TABLEDATA>")
    head = data[:start] if start >= 0 else b""  # the document before the rows (a memory map has no count())
    if start < 0 or head.count(b"<TABLE") != 1:
        return None
    from xpdb.ingest import textnumbers

    _text_pool().submit(textnumbers.warm_up)  # loads the number parser (numba) while the cells are found
    buf = np.frombuffer(data, dtype=np.uint8)
    header = head.rfind(b"<FIELD")
    nf = head.count(b"<FIELD")
    if nf == 0 or header < 0:
        return None
    first_row = data.find(b"</TR>", start)
    guess = (len(data) - start) // max(first_row - start, 1) + 16 if first_row > 0 else 16
    starts, ends, rows, stop = _scan_tabledata(buf, start + len(b"<TABLEDATA>"), nf, guess, _TR, _TR_END, _TD_OPEN,
                                               _TD_END)
    if stop < 0 or data[stop:stop + len(b"</TABLEDATA>")] != b"</TABLEDATA>" or data.find(b"&", start, stop) >= 0:
        return None  # not plain, or entities (the XML parser decodes them)
    root = ET.fromstring(data[:start] + b"<TABLEDATA/>" + data[stop + len(b"</TABLEDATA>"):])
    _, fields, kind = _first_table(root)
    if len(fields) != nf:  # a FIELD elsewhere (a GROUP, a comment): the XML parser knows
        return None
    return root, fields, TextRows(buf, fields, starts, ends)


_TEXT_POOL = None


def _text_pool():
    """Two threads parsing TABLEDATA number columns side by side (the numba parser releases the GIL)."""
    global _TEXT_POOL
    if _TEXT_POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _TEXT_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="xpdb-votable")
    return _TEXT_POOL


class TextRows:
    """Plain TABLEDATA whose cells have been located; numbers are parsed per slice, in place.

    Like :class:`BinaryRows` it answers ``num_rows``, ``column_names`` and ``slice(offset, length)``,
    so that ingest parses each chunk while the previous one is being copied.
    """

    def __init__(self, buf: np.ndarray, fields: list[_Field], starts: np.ndarray, ends: np.ndarray):
        self.buf, self.fields = buf, fields
        self.starts, self.ends = starts.T.copy(), ends.T.copy()
        self.num_rows = starts.shape[0]
        self.column_names = [f.name for f in fields]

    def slice(self, offset: int = 0, length: int | None = None) -> pa.Table:
        """Rows ``offset`` .. ``offset + length - 1`` as an Arrow table."""
        stop = self.num_rows if length is None else min(self.num_rows, offset + length)
        offset = min(offset, stop)
        jobs = [_text_pool().submit(self._column, j, offset, stop) for j in range(len(self.fields))]
        return pa.table([job.result() for job in jobs], names=self.column_names)

    def _column(self, j: int, offset: int, stop: int) -> pa.Array:
        f = self.fields[j]
        s, e = self.starts[j, offset:stop], self.ends[j, offset:stop]
        try:
            return _span_column(self.buf, s, e, f)
        except _BadCell as bad:
            raise ValueError(f"row {offset + bad.row + 1}, column {f.name!r}: {bad.why}") from None


class _BadCell(Exception):
    def __init__(self, row: int, why: str):
        super().__init__(why)
        self.row, self.why = row, why


def _span_column(buf: np.ndarray, s: np.ndarray, e: np.ndarray, f: _Field) -> pa.Array:
    """One TABLEDATA column from its cells' byte spans: numbers parsed in place, blank cells NULL."""
    from xpdb.ingest.textnumbers import parse_number_spans

    native = f.dtype.newbyteorder("=")
    if f.text or f.datatype == "boolean" or (native.kind != "f" and not f.scalar):
        cells = [bytes(buf[a:b]).decode("utf-8") for a, b in zip(s.tolist(), e.tolist())]
        try:
            return _text_column(f, cells)
        except ValueError as exc:
            m = re.match(r"row (\d+): (.*)", str(exc))
            raise (_BadCell(int(m.group(1)) - 1, m.group(2)) if m else exc) from None
    if native.kind != "f":  # integer scalars
        values = np.zeros(len(s), dtype=np.int64)
        null = np.zeros(len(s), dtype=bool)
        row = _parse_ints(buf, s, e, values, null)
        while row >= 0:
            text = bytes(buf[s[row]:e[row]]).decode("utf-8", "replace").strip()
            try:
                values[row] = int(text, 16) if text.lower().startswith(("0x", "-0x", "+0x")) else int(text)
            except ValueError:
                raise _BadCell(row, f"{text[:40]!r} is not an integer") from None
            rest = _parse_ints(buf, s[row + 1:], e[row + 1:], values[row + 1:], null[row + 1:])
            row = -1 if rest < 0 else row + 1 + rest
        info = np.iinfo(native)
        outside = (values < info.min) | (values > info.max)
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise _BadCell(row, f"{values[row]} is outside the range of {f.datatype}")
        values = values.astype(native)
        if f.null is not None:
            null |= values == f.null
        return pa.array(values, mask=null if null.any() else None)
    width = 1 if f.scalar else f.count
    values, lengths, bad = parse_number_spans(buf, s, e, native, spaced=True, width=width)
    if bad:
        row = min(bad)
        raise _BadCell(row, bad[row])
    if f.scalar:
        if (lengths > 1).any():
            row = int(np.flatnonzero(lengths > 1)[0])
            raise _BadCell(row, f"{lengths[row]} numbers in a scalar cell")
        null = lengths == 0
        column = values[:, 0] if values.shape[1] else np.full(len(s), np.nan, dtype=native)
        return pa.array(column, mask=null if null.any() else None)
    counts = lengths.astype(np.int64)
    if not f.variable:
        wrong = (counts > 0) & (counts != f.count)
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            raise _BadCell(row, f"{counts[row]} values, arraysize is {f.count}")
    if values.shape[1] and (counts == values.shape[1]).all():
        flat = values.reshape(-1)
    else:
        flat = values[np.arange(values.shape[1])[None, :] < counts[:, None]]
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    missing = counts == 0
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=pa.array(missing) if missing.any() else None)


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
            raise _column_error(f, exc) from None
    return root, None, fields, columns


def _column_error(f: _Field, exc: Exception) -> ValueError:
    """``row N, column 'name': why`` from a column's ``row N: why`` (or ``column 'name': why``)."""
    m = re.match(r"row (\d+): (.*)", str(exc), re.S)
    return ValueError(f"row {m.group(1)}, column {f.name!r}: {m.group(2)}" if m else f"column {f.name!r}: {exc}")


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
                what = "a number" if native.kind == "f" else "an integer"
                raise ValueError(f"row {i + 1}: {c[:40]!r} is not {what}") from None
            except OverflowError:
                raise ValueError(f"row {i + 1}: {c[:40]} is outside the range of {f.datatype}") from None
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
        tokens = c.split()
        if tokens:
            try:
                values = np.array(tokens, dtype=native)
            except (ValueError, OverflowError):
                bad = next((t for t in tokens if not _is_number(t, native)), tokens[0])
                raise ValueError(f"row {i + 1}: unparseable number {bad[:40]!r}") from None
            pieces.append(values)
            counts[i] = len(values)
    flat = np.concatenate(pieces) if pieces else np.empty(0, dtype=native)
    return _lists(flat, counts, f)


def _is_number(token: str, dtype: np.dtype) -> bool:
    try:
        np.array([token], dtype=dtype)
    except (ValueError, OverflowError):
        return False
    return True


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
