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


KEY_HINT = ("a floating-point number cannot hold every 19-digit Gaia id exactly, so ids would change; "
            "write the column as a 64-bit integer")
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_INT64_MAX = (1 << 63) - 1


def check_regular_file(path: Path | str) -> None:
    """IngestFileError unless ``path`` is an existing regular file (not a directory, device or pipe)."""
    p = Path(path)
    if not p.exists():
        raise IngestFileError(p, "no such file")
    if p.is_dir():
        raise IngestFileError(p, "is a directory, not a file")
    if not p.is_file():
        raise IngestFileError(p, "is not a regular file")


def check_integer_key(table: pa.Table, name: str, path: Path | str, numbers: np.ndarray) -> None:
    """IngestFileError unless column ``name`` holds integers only (an id such as source_id).

    A floating-point, decimal-with-fraction or boolean column is refused as a whole; text
    must be integers that fit 64 bits (the first bad value is named with its row).
    """
    kind = table.schema.field(name).type
    if pa.types.is_integer(kind):
        if pa.types.is_uint64(kind) and table.num_rows:
            import pyarrow.compute as pc

            too_big = pc.greater(table.column(name), pa.scalar(_INT64_MAX, pa.uint64()))
            index = pc.index(too_big, True).as_py()
            if index >= 0:
                raise IngestFileError(path, f"column {name}: {table.column(name)[index].as_py()} does not fit a "
                                            "64-bit integer id", f"row {int(numbers[index])}")
        return
    if pa.types.is_decimal(kind) and kind.scale == 0:
        return
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        for i, value in enumerate(table.column(name).to_pylist()):
            if value is None or not value.strip():
                continue
            if not _INTEGER.match(value) or abs(int(value)) > _INT64_MAX:
                raise IngestFileError(path, f"column {name}: {value!r} is not an integer id ({KEY_HINT})",
                                      f"row {int(numbers[i])}")
        return
    raise IngestFileError(path, f"column {name} holds {kind} values, but {name} must be an integer column: "
                                f"{KEY_HINT}")


def locate_bad_text(table: pa.Table, numbers: np.ndarray, message: str) -> tuple[str, int, str] | None:
    """(column, file row, value) of the text a conversion error names ("... 'abc' ..."), or None."""
    m = re.search(r"'((?:[^'\\]|\\.)*)'", message)
    if m is None:
        return None
    value = m.group(1)
    import pyarrow.compute as pc

    for name in table.column_names:
        column = table.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        index = pc.index(column, value).as_py()
        if index < 0:
            index = pc.index(pc.utf8_trim_whitespace(column), value.strip()).as_py()
        if index >= 0:
            return name, int(numbers[index]), value
    return None


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
        raise IngestFileError(path, f"cannot tell the format from the name; give format= (CLI: --format; {', '.join(FORMATS)})")
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
        check_regular_file(self.path)
        self.format, self.gzipped = detect_format(self.path, fmt)
        self.chunk_rows = chunk_rows
        self.n_rows: int | None = None
        self.meta: dict = {}
        try:
            if self.gzipped:
                _check_gzip(self.path)
            self._prepare()
        except IngestFileError:
            raise
        except Exception as exc:  # whatever a reader library raises on bytes it cannot read
            raise IngestFileError(self.path, f"cannot read the file as {self.format}"
                                             f"{' (gzip)' if self.gzipped else ''}: {_short(exc)}") from exc

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
        self._check_unique_names()

    def _check_unique_names(self) -> None:
        """Refuse a file that names a column twice: which of the two is meant cannot be known."""
        names = [n.lower() for n in self.column_names()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise IngestFileError(self.path, f"column name(s) {', '.join(repeated)} appear more than once in the "
                                             "header; rename or drop the repeats", "header")

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

        from xpdb.ingest import votable_fast

        self._arrow = None
        if votable_fast.ENABLED:
            try:
                data = votable_fast.read_document(self.path, self.gzipped)  # plain files: memory-mapped
                self._arrow, self.meta = votable_fast.open_votable(data)  # BINARY: columns cut per chunk
                del data
                self.n_rows = self._arrow.num_rows
                return
            except votable_fast.Unsupported:
                pass  # astropy reads what the fast reader does not
            except Exception as exc:
                raise IngestFileError(self.path, f"truncated or corrupt VOTable ({exc})", "data") from exc
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
        if getattr(self, "_arrow", None) is not None:  # read by xpdb.ingest.votable_fast
            for start in range(0, self._arrow.num_rows, self.chunk_rows):
                yield Chunk(self._arrow.slice(start, self.chunk_rows), start + 1)
            return
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
            # row.number is the physical line; pyarrow knows it when it parses in one thread
            number = row.number if row.number is not None else self._find_line(row.text)
            invalid.append((number, f"expected {row.expected_columns} fields, found {row.actual_columns}"))
            return "skip"

        stream = pa.input_stream(str(self.path), compression="gzip" if self.gzipped else None)
        column_types = self._csv_column_types(stream)
        self._check_csv_tail(self._csv_names)
        stream = pa.input_stream(str(self.path), compression="gzip" if self.gzipped else None)
        try:
            reader = pacsv.open_csv(
                stream,
                # one thread: pyarrow then gives the line of every invalid row (no measurable cost here:
                # the numbers of array columns are parsed by textnumbers, not by pyarrow)
                read_options=pacsv.ReadOptions(skip_rows=self._csv_skip, block_size=1 << 22, use_threads=False),
                parse_options=pacsv.ParseOptions(delimiter=self._csv_delimiter, newlines_in_values=False,
                                                 invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=True,
                                                     null_values=["", "null", "NULL", "--"],
                                                     quoted_strings_can_be_null=True),
            )
        except pa.ArrowInvalid as exc:
            raise self._csv_error(exc, 0) from exc
        next_row = 1
        pending: list[pa.RecordBatch] = []
        pending_rows = pending_bytes = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise self._csv_error(exc, next_row + pending_rows - 1) from exc
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

    def _csv_error(self, exc: Exception, after: int) -> IngestFileError:
        """An IngestFileError for a pyarrow CSV error, naming the column and the row when it can."""
        text = str(exc)
        m = re.search(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+): invalid value '(.*)'$",
                      text, re.S)
        if m and int(m.group(1)) < len(self._csv_names):
            name, kind, value = self._csv_names[int(m.group(1))], m.group(2), m.group(3)
            row = self._find_value(int(m.group(1)), value)
            where = f"row {row}" if row is not None else f"after data row {after}"
            hint = f" ({KEY_HINT})" if name.lower() in ("source_id", "solution_id") else ""
            return IngestFileError(self.path, f"column {name}: cannot read {value!r} as {kind}{hint}", where)
        if after == 0:
            return IngestFileError(self.path, f"unreadable CSV ({_short(exc)})", "header or first rows")
        return IngestFileError(self.path, f"corrupt CSV ({_short(exc)})", f"after data row {after}")

    def _data_lines(self) -> Iterator[tuple[int, int, bytes]]:
        """(physical line, data row, text) of every line after the header, as pyarrow counts them."""
        with self._binary_stream() as fh:
            row = 0
            for line_number, raw in enumerate(fh, 1):
                if line_number <= self._csv_skip + 1:
                    continue
                text = raw.rstrip(b"\r\n")
                if text:
                    row += 1
                yield line_number, row, text

    def _find_value(self, column: int, value: str) -> int | None:
        """The data row whose field ``column`` is ``value`` (error path: reads the file again)."""
        import csv

        wanted = value.strip()
        for _, row, text in self._data_lines():
            fields = next(csv.reader([text.decode("utf-8", "replace")], delimiter=self._csv_delimiter), [])
            if column < len(fields) and fields[column].strip() == wanted:
                return row
        return None

    def _find_line(self, text: str) -> int | None:
        """The physical line whose text is ``text`` (when pyarrow could not say; reads the file again)."""
        wanted = text.encode("utf-8", "replace").rstrip(b"\r\n")
        seen = getattr(self, "_found_lines", set())
        self._found_lines = seen
        for line_number, _, line in self._data_lines():
            if line == wanted and line_number not in seen:
                seen.add(line_number)
                return line_number
        return None

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
        if any(n is None for n, _ in invalid):
            raise IngestFileError(self.path, "a line has the wrong number of fields and its position cannot be "
                                             "found", f"after data row {first_row - 1}")
        if invalid:
            # Physical line numbers -> data row numbers (header lines and the column-name line excluded).
            bad = sorted(n - self._csv_skip - 1 for n, _ in invalid)
            total = table.num_rows + len(bad)
            all_rows = np.arange(first_row, first_row + total, dtype=np.int64)
            numbers = all_rows[~np.isin(all_rows, bad)]
        # Array text stays in pyarrow's blocks (the parser reads them in place); the rest is combined.
        table = pa.Table.from_arrays([col if name in self._array_text else col.combine_chunks()
                                      for name, col in zip(table.column_names, table.columns)], schema=table.schema)
        chunk = Chunk(table, first_row, numbers, [(n - self._csv_skip - 1, why) for n, why in invalid])
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
        for chunk in self._guarded(producer()):
            last = chunk.first_row + chunk.table.num_rows + len(chunk.invalid_rows) - 1
            if last < start_row:
                continue
            if chunk.first_row < start_row:
                numbers = chunk.numbers()
                keep = numbers >= start_row
                chunk = Chunk(chunk.table.filter(pa.array(keep)), int(numbers[keep][0]) if keep.any() else start_row,
                              numbers[keep], [r for r in chunk.invalid_rows if r[0] >= start_row])
            yield chunk

    def _guarded(self, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        """``chunks``, with any reader library's error turned into an IngestFileError naming the file."""
        last = 0
        try:
            for chunk in chunks:
                last = chunk.first_row + chunk.table.num_rows + len(chunk.invalid_rows) - 1
                yield chunk
        except IngestFileError:
            raise
        except Exception as exc:
            raise IngestFileError(self.path, f"cannot read the file as {self.format}: {_short(exc)}",
                                  f"after data row {last}") from exc

    def column_names(self) -> list[str]:
        if self.format == "fits":
            return list(self._hdu.columns.names)
        if self.format == "votable":
            if getattr(self, "_arrow", None) is not None:
                return list(self._arrow.column_names)
            return list(self._table.colnames)
        if self.format == "parquet":
            return list(self._pq.schema_arrow.names)
        with self._binary_stream() as fh:
            for i, raw in enumerate(fh):
                if i == self._csv_skip:
                    return [n.strip().strip('"')
                            for n in raw.decode("utf-8", "replace").rstrip("\r\n").split(self._csv_delimiter)]
        return []

    def close(self) -> None:
        if getattr(self, "_hdul", None) is not None:
            self._hdul.close()


def _short(exc: BaseException) -> str:
    """The first line of an exception's message, with its type when the message is empty."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
