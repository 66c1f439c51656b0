"""Readers for the Gaia archive's file formats, yielding Arrow tables in chunks.

Supported: CSV and ECSV (plain or gzip), FITS binary tables (plain or gzip), VOTable
(TABLEDATA/BINARY/BINARY2, plain or gzip) and Parquet. Each reader checks what it can
of the file's integrity before the first row is loaded, and every failure is an
``IngestFileError`` naming the file and the position. Column names are kept as in the
file; the table-specific modules map them to the schema.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from xpdb.errors import IngestFileError

FORMATS = ("csv", "ecsv", "fits", "votable", "parquet")
# Text chunks end at this many bytes as well as at chunk_rows: XP text runs ~42 kB a row, and
# smaller chunks keep the read -> parse -> COPY pipeline full and the memory it touches small.
CSV_CHUNK_BYTES = 48 << 20
_SUFFIXES = {
    ".csv": "csv", ".txt": "csv", ".ecsv": "ecsv", ".fits": "fits", ".fit": "fits", ".fts": "fits",
    ".xml": "votable", ".vot": "votable", ".votable": "votable", ".parquet": "parquet", ".pq": "parquet",
}


@dataclass
class Chunk:
    """A block of consecutive data rows of one file."""

    table: pa.Table
    first_row: int  # 1-based number of the first data row in the file
    row_numbers: np.ndarray | None = None  # explicit numbers when rows were skipped
    invalid_rows: list[tuple[int, str]] = field(default_factory=list)  # rows the parser could not split

    def numbers(self) -> np.ndarray:
        if self.row_numbers is not None:
            return self.row_numbers
        return np.arange(self.first_row, self.first_row + self.table.num_rows, dtype=np.int64)


def detect_format(path: Path | str, explicit: str | None = None) -> tuple[str, bool]:
    """Return (format, gzipped) from an explicit format or the file name."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    gz = bool(suffixes) and suffixes[-1] in (".gz", ".gzip")
    if explicit:
        fmt = explicit.lower()
        if fmt not in FORMATS:
            raise IngestFileError(path, f"unknown format {explicit!r}; choose one of {', '.join(FORMATS)}")
        return fmt, gz
    core = suffixes[-2] if gz and len(suffixes) >= 2 else (suffixes[-1] if suffixes else "")
    if core not in _SUFFIXES:
        raise IngestFileError(path, f"cannot tell the format from the name; use --format ({', '.join(FORMATS)})")
    return _SUFFIXES[core], gz


def _check_gzip(path: Path) -> None:
    """Decompress once to catch truncated or corrupt gzip streams before loading."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    read = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 22)
            if not block:
                break
            try:
                d.decompress(block)
            except zlib.error as exc:
                raise IngestFileError(path, f"corrupt gzip data ({exc})", f"byte {read}") from exc
            read += len(block)
            while d.unused_data:  # concatenated members
                rest = d.unused_data
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                d.decompress(rest)
    if not d.eof:
        raise IngestFileError(path, "gzip stream is truncated (ends before its end-of-stream marker)", f"byte {read}")


class TableReader:
    """Open one archive file; ``chunks()`` yields ``Chunk`` objects of at most ``chunk_rows`` rows."""

    def __init__(self, path: Path | str, *, fmt: str | None = None, chunk_rows: int = 20_000):
        self.path = Path(path)
        if not self.path.exists():
            raise IngestFileError(self.path, "no such file")
        self.format, self.gzipped = detect_format(self.path, fmt)
        self.chunk_rows = chunk_rows
        self.n_rows: int | None = None
        self.meta: dict = {}
        if self.gzipped:
            _check_gzip(self.path)
        self._prepare()

    # ---- per-format preparation (integrity checks, row counts) ----------------------------
    def _prepare(self) -> None:
        if self.format == "fits":
            self._open_fits()
        elif self.format == "votable":
            self._open_votable()
        elif self.format == "parquet":
            try:
                self._pq = pq.ParquetFile(self.path)
            except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for corrupt footers
                raise IngestFileError(self.path, f"not a readable Parquet file ({exc})") from exc
            self.n_rows = self._pq.metadata.num_rows
            self.meta = {k.decode(): v.decode(errors="replace") for k, v in (self._pq.schema_arrow.metadata or {}).items()}
        elif self.format == "ecsv":
            self._read_ecsv_header()
        elif self.format == "csv":
            self._csv_skip = self._leading_comment_lines()
            self._csv_delimiter = ","

    def _leading_comment_lines(self) -> int:
        """CSV files may start with '#' comment lines (e.g. a provenance note); they are skipped."""
        count = 0
        with self._binary_stream() as fh:
            for raw in fh:
                if not raw.startswith(b"#"):
                    break
                count += 1
                for item in raw[1:].decode("utf-8", errors="replace").split(";"):
                    if "=" in item:  # "# key=value; key=value" notes become metadata
                        key, value = item.split("=", 1)
                        self.meta[key.strip()] = value.strip()
        return count

    def _binary_stream(self):
        return gzip.open(self.path, "rb") if self.gzipped else open(self.path, "rb")

    # ---- FITS -----------------------------------------------------------------------------
    def _open_fits(self) -> None:
        from astropy.io import fits

        hdul = None
        try:
            hdul = fits.open(self.path, memmap=not self.gzipped)
            hdu = next((h for h in hdul if isinstance(h, fits.BinTableHDU)), None)
            if hdu is None:
                raise IngestFileError(self.path, "no binary table extension")
            data = hdu.data
            expected = hdu.header["NAXIS1"] * hdu.header["NAXIS2"] + hdu.header.get("PCOUNT", 0)
            if data is None and hdu.header["NAXIS2"] > 0:
                raise IngestFileError(self.path, "table data missing")
            _ = data[-1] if hdu.header["NAXIS2"] else None  # touch the end: truncated files fail here
        except IngestFileError:
            if hdul is not None:
                hdul.close()
            raise
        except Exception as exc:
            if hdul is not None:
                hdul.close()
            raise IngestFileError(self.path, f"truncated or corrupt FITS file ({exc})", "binary table HDU") from exc
        if not self.gzipped:
            offset = hdu._data_offset
            size = self.path.stat().st_size
            if offset + expected > size:
                hdul.close()
                raise IngestFileError(
                    self.path, f"truncated FITS file: the table needs {offset + expected} bytes, the file has {size}",
                    f"byte {size}")
        self._hdul, self._hdu = hdul, hdu
        self.n_rows = hdu.header["NAXIS2"]
        self.meta = {k: hdu.header[k] for k in ("EXTNAME", "ORIGIN", "COMMENT") if k in hdu.header}
        if "XPDBSYN" in hdu.header:
            self.meta["synthetic"] = bool(hdu.header["XPDBSYN"])

    def _fits_chunks(self) -> Iterator[Chunk]:
        data = self._hdu.data
        columns = self._hdu.columns
        heap = None
        for start in range(0, self.n_rows or 0, self.chunk_rows):
            stop = min(start + self.chunk_rows, self.n_rows or 0)
            arrays, names = [], []
            for idx, col in enumerate(columns):
                try:
                    if str(col.format)[:1] in ("P", "Q") and str(col.format)[1:2] in _FITS_CODES:
                        if heap is None:
                            heap = data._get_heap_data()
                        arrays.append(_fits_vla(data, idx, str(col.format)[1], heap, start, stop))
                        names.append(col.name)
                        continue
                    values = data.field(col.name)[start:stop]
                except Exception as exc:
                    raise IngestFileError(self.path, f"cannot read column {col.name} ({exc})",
                                          f"rows {start + 1}-{stop}") from exc
                arrays.append(_numpy_to_arrow(values, null_value=getattr(col, "null", None)))
                names.append(col.name)
            yield Chunk(pa.table(arrays, names=names), start + 1)

    # ---- VOTable --------------------------------------------------------------------------
    def _open_votable(self) -> None:
        from astropy.io.votable import parse

        try:
            with self._binary_stream() as fh:
                vot = parse(fh, verify="ignore")
            table = vot.get_first_table().to_table(use_names_over_ids=True)
        except Exception as exc:
            m = re.match(r"^(?:.*?:)?(\d+):(\d+): (.*)", str(exc))
            position = f"line {m.group(1)}, column {m.group(2)}" if m else "XML document"
            raise IngestFileError(self.path, f"truncated or corrupt VOTable ({m.group(3) if m else exc})",
                                  position) from exc
        self._table = table
        self.n_rows = len(table)
        self.meta = dict(table.meta)

    def _astropy_chunks(self) -> Iterator[Chunk]:
        table = self._table
        for start in range(0, len(table), self.chunk_rows):
            part = table[start:start + self.chunk_rows]
            arrays = [_astropy_column_to_arrow(part[name]) for name in part.colnames]
            yield Chunk(pa.table(arrays, names=list(part.colnames)), start + 1)

    # ---- ECSV and CSV ---------------------------------------------------------------------
    def _read_ecsv_header(self) -> None:
        from astropy.io.ascii.ecsv import ECSV_DATATYPES  # noqa: F401  (ensures astropy's ECSV support)
        from astropy.table import meta as table_meta

        lines: list[str] = []
        with self._binary_stream() as fh:
            for raw in fh:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not line.startswith("#"):
                    break
                lines.append(line)
        if not lines or not lines[0].startswith("# %ECSV"):
            raise IngestFileError(self.path, "not an ECSV file (no '# %ECSV' first line)", "line 1")
        try:
            header = table_meta.get_header_from_yaml(line[2:] if line.startswith("# ") else line[1:] for line in lines[1:])
        except Exception as exc:
            raise IngestFileError(self.path, f"unreadable ECSV YAML header ({exc})", "header") from exc
        self._csv_skip = len(lines)
        self._csv_delimiter = header.get("delimiter", " ")
        self.meta = dict(header.get("meta", {}) or {})
        self._ecsv_datatypes = {c["name"]: c for c in header.get("datatype", [])}

    def _csv_chunks(self) -> Iterator[Chunk]:
        invalid: list[tuple[int, str]] = []

        def on_invalid(row) -> str:
            invalid.append((row.number if row.number is not None else -1,
                            f"expected {row.expected_columns} fields, found {row.actual_columns}"))
            return "skip"

        stream = pa.input_stream(str(self.path), compression="gzip" if self.gzipped else None)
        column_types = self._csv_column_types(stream)
        self._check_csv_tail(self._csv_names)
        stream = pa.input_stream(str(self.path), compression="gzip" if self.gzipped else None)
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(skip_rows=self._csv_skip, block_size=1 << 22, use_threads=True),
                parse_options=pacsv.ParseOptions(delimiter=self._csv_delimiter, newlines_in_values=False,
                                                 invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=True,
                                                     null_values=["", "null", "NULL", "--"],
                                                     quoted_strings_can_be_null=True),
            )
        except pa.ArrowInvalid as exc:
            raise IngestFileError(self.path, f"unreadable CSV header ({exc})", "header") from exc
        next_row = 1
        pending: list[pa.RecordBatch] = []
        pending_rows = pending_bytes = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise IngestFileError(self.path, f"corrupt CSV ({exc})", f"after data row {next_row + pending_rows - 1}") from exc
            pending.append(batch)
            pending_rows += batch.num_rows
            pending_bytes += batch.nbytes
            if pending_rows >= self.chunk_rows or pending_bytes >= CSV_CHUNK_BYTES:
                table = pa.Table.from_batches(pending)
                yield from self._emit_csv(table, next_row, invalid)
                next_row += table.num_rows + len(invalid)
                invalid = []
                pending, pending_rows, pending_bytes = [], 0, 0
        if pending or invalid:
            table = pa.Table.from_batches(pending, schema=reader.schema)
            yield from self._emit_csv(table, next_row, invalid)

    def _check_csv_tail(self, names: list[str]) -> None:
        """A file that ends inside a line (no final newline, wrong field count) is truncated."""
        import csv

        tail = self._last_line()
        if tail is None:
            return
        try:
            fields = next(csv.reader([tail], delimiter=self._csv_delimiter, strict=True))
        except (csv.Error, StopIteration) as exc:
            raise IngestFileError(self.path, f"file is truncated: the last line is incomplete ({exc})",
                                  "last line") from exc
        if len(fields) != len(names):
            raise IngestFileError(self.path, f"file is truncated: the last line has {len(fields)} of "
                                             f"{len(names)} fields", "last line")

    def _last_line(self) -> str | None:
        """The text after the final newline, or None when the file ends with a newline."""
        with self._binary_stream() as fh:
            if self.gzipped:
                tail = b""
                for block in iter(lambda: fh.read(1 << 22), b""):
                    tail = (tail + block)[-(1 << 22):]
            else:
                fh.seek(0, io.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - (1 << 22)))
                tail = fh.read()
        if not tail or tail.endswith((b"\n", b"\r")):
            return None
        return tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")

    def _emit_csv(self, table: pa.Table, first_row: int, invalid: list) -> Iterator[Chunk]:
        numbers = None
        if invalid:
            # Physical line numbers -> data row numbers (header lines and the column-name line excluded).
            bad = sorted(n - self._csv_skip - 1 for n, _ in invalid if n > 0)
            total = table.num_rows + len(bad)
            all_rows = np.arange(first_row, first_row + total, dtype=np.int64)
            numbers = all_rows[~np.isin(all_rows, bad)]
        # Array text stays in pyarrow's blocks (the parser reads them in place); the rest is combined.
        table = pa.Table.from_arrays([col if name in self._array_text else col.combine_chunks()
                                      for name, col in zip(table.column_names, table.columns)], schema=table.schema)
        chunk = Chunk(table, first_row, numbers,
                      [(n - self._csv_skip - 1 if n > 0 else -1, why) for n, why in invalid])
        yield chunk

    def _csv_column_types(self, stream) -> dict[str, pa.DataType]:
        """Pin types that inference could get wrong on a first block (ids, arrays, flags)."""
        head = stream.read(1 << 20).decode("utf-8", errors="replace").splitlines()
        stream.close()
        lines = head[self._csv_skip:]
        if not lines:
            raise IngestFileError(self.path, "empty file (no header line)", "line 1")
        names = [n.strip().strip('"') for n in lines[0].split(self._csv_delimiter)]
        self._csv_names = names
        self._array_text: set[str] = set()
        types: dict[str, pa.DataType] = {}
        datatypes = getattr(self, "_ecsv_datatypes", {})
        for name in names:
            low = name.lower()
            dt = datatypes.get(name, {})
            if dt.get("subtype") or low.endswith(("coefficients", "coefficient_errors", "coefficient_correlations",
                                                  "_covariance_matrix")):
                types[name] = pa.binary()  # bytes for the number parser: no UTF-8 validation
                self._array_text.add(name)
            elif low in ("source_id", "solution_id") or dt.get("datatype") == "int64":
                types[name] = pa.int64()
            elif dt.get("datatype") in ("int8", "int16", "int32", "uint8", "uint16"):
                types[name] = pa.int32()
            elif dt.get("datatype") in ("float32", "float64"):
                types[name] = pa.float64()
            elif dt.get("datatype") == "string":
                types[name] = pa.string()
        return types

    # ---- Parquet ----------------------------------------------------------------------------
    def _parquet_chunks(self) -> Iterator[Chunk]:
        first = 1
        try:
            for batch in self._pq.iter_batches(batch_size=self.chunk_rows):
                yield Chunk(pa.Table.from_batches([batch]), first)
                first += batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise IngestFileError(self.path, f"corrupt Parquet data ({exc})", f"after data row {first - 1}") from exc

    # ---- public -----------------------------------------------------------------------------
    def chunks(self, start_row: int = 1) -> Iterator[Chunk]:
        """Yield chunks in file order, skipping whole rows before ``start_row`` (for resuming)."""
        producer = {
            "fits": self._fits_chunks,
            "votable": self._astropy_chunks,
            "parquet": self._parquet_chunks,
            "csv": self._csv_chunks,
            "ecsv": self._csv_chunks,
        }[self.format]
        for chunk in producer():
            last = chunk.first_row + chunk.table.num_rows + len(chunk.invalid_rows) - 1
            if last < start_row:
                continue
            if chunk.first_row < start_row:
                numbers = chunk.numbers()
                keep = numbers >= start_row
                chunk = Chunk(chunk.table.filter(pa.array(keep)), int(numbers[keep][0]) if keep.any() else start_row,
                              numbers[keep], [r for r in chunk.invalid_rows if r[0] >= start_row])
            yield chunk

    def column_names(self) -> list[str]:
        if self.format == "fits":
            return list(self._hdu.columns.names)
        if self.format == "votable":
            return list(self._table.colnames)
        if self.format == "parquet":
            return list(self._pq.schema_arrow.names)
        with self._binary_stream() as fh:
            for i, raw in enumerate(fh):
                if i == self._csv_skip:
                    return [n.strip().strip('"') for n in raw.decode().rstrip("\r\n").split(self._csv_delimiter)]
        return []

    def close(self) -> None:
        if getattr(self, "_hdul", None) is not None:
            self._hdul.close()


_FITS_CODES = {"D": ">f8", "E": ">f4", "K": ">i8", "J": ">i4", "I": ">i2", "B": "u1"}


def _fits_vla(data, idx: int, code: str, heap: np.ndarray, start: int, stop: int) -> pa.Array:
    """A FITS variable-length array column read straight from the heap into an Arrow list array.

    astropy builds one Python object per cell; this reads the (count, offset) descriptors
    and copies the heap bytes, as one strided view when the cells are evenly spaced.
    """
    desc = np.rec.recarray.field(data, idx)[start:stop]
    counts = desc[:, 0].astype(np.int64)
    offsets = desc[:, 1].astype(np.int64)
    dtype = np.dtype(_FITS_CODES[code])
    m = len(counts)
    native = dtype.newbyteorder("=")
    if m and (counts == counts[0]).all() and counts[0] > 0 and (m == 1 or (np.diff(offsets) == offsets[1] - offsets[0]).all()):
        c = int(counts[0])
        stride = int(offsets[1] - offsets[0]) if m > 1 else c * dtype.itemsize
        cells = np.lib.stride_tricks.as_strided(heap[offsets[0]:], shape=(m, c * dtype.itemsize),
                                                strides=(stride, 1), writeable=False)
        flat = np.ascontiguousarray(cells).view(dtype).astype(native).reshape(-1)
    else:
        pieces = [np.frombuffer(heap, dtype=dtype, count=int(k), offset=int(o)) for k, o in zip(counts, offsets) if k]
        flat = np.concatenate(pieces).astype(native) if pieces else np.empty(0, dtype=native)
    list_offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    mask = pa.array(counts == 0) if (counts == 0).any() else None
    return pa.ListArray.from_arrays(pa.array(list_offsets), pa.array(flat), mask=mask)


def _numpy_to_arrow(values, null_value=None) -> pa.Array:
    """A FITS column slice (scalars, fixed arrays or variable-length arrays) as an Arrow array."""
    arr = np.asarray(values) if not isinstance(values, np.ma.MaskedArray) else values
    if arr.dtype == object:
        return _object_arrays_to_arrow(list(arr))
    if arr.ndim == 2:
        flat = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("="), copy=False).reshape(-1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat), arr.shape[1])
    native = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    if isinstance(arr, np.ma.MaskedArray):
        return pa.array(np.asarray(native.filled(0) if native.dtype.kind in "iu" else native.filled(np.nan)),
                        mask=np.ma.getmaskarray(arr))
    if null_value is not None and native.dtype.kind in "iu":
        return pa.array(native, mask=native == null_value)
    if native.dtype.kind == "S":
        return pa.array(np.char.decode(native, "ascii", errors="replace").astype(str))
    return pa.array(native)


def _object_arrays_to_arrow(items: list) -> pa.Array:
    """Variable-length arrays (one numpy array or None per row) -> Arrow list array with NULLs."""
    n = len(items)
    lengths = np.zeros(n, dtype=np.int32)
    null = np.zeros(n, dtype=bool)
    pieces = []
    dtype = None
    for i, item in enumerate(items):
        if item is None or (np.ma.isMaskedArray(item) and item.mask is True) or np.size(item) == 0:
            null[i] = True
            continue
        a = np.ma.filled(np.ma.asarray(item).astype(float if np.ma.asarray(item).dtype.kind == "f" else None), np.nan) \
            if np.ma.isMaskedArray(item) else np.asarray(item)
        a = a.reshape(-1)
        dtype = dtype or a.dtype.newbyteorder("=")
        lengths[i] = a.size
        pieces.append(a)
    flat = np.concatenate(pieces).astype(dtype, copy=False) if pieces else np.empty(0)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    mask = pa.array(null) if null.any() else None
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=mask)


def _astropy_column_to_arrow(col) -> pa.Array:
    """An astropy Table column (masked, object or multidimensional) as an Arrow array."""
    data = col.data if hasattr(col, "data") else col
    if getattr(data, "dtype", None) is not None and data.dtype == object:
        return _object_arrays_to_arrow(list(data))
    if isinstance(data, np.ma.MaskedArray) and data.ndim == 2:
        filled = np.ma.filled(data.astype(float), np.nan)
        return pa.FixedSizeListArray.from_arrays(pa.array(filled.reshape(-1)), data.shape[1])
    return _numpy_to_arrow(data)
