"""``xpdb export catalog``: the Table 2 catalogue of one model, streamed in bounded memory.

Rows come from a server-side cursor in chunks and go straight to the file:
- Parquet: row groups through pyarrow's ParquetWriter (units and descriptions in the
  field metadata);
- CSV: '#' header lines with each column's unit and description, then the rows;
- FITS: the binary-table header is written first (the row count comes from the same
  REPEATABLE READ snapshot), then big-endian records chunk by chunk;
- VOTable: BINARY2, its base64 stream written chunk by chunk.
Column names are the paper's (BP_RP0, PHOT_G_MEAN_MAG, M_G, EBV, FEH, FEH_err, ...).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg

from xpdb.query.columns import TABLE2, meta

EXPORT_FORMATS = ("fits", "parquet", "csv", "votable")
# (sql column, export name, numpy dtype, FITS TFORM, VOTable datatype)
_TYPES = {"source_id": (">i8", "K", "long"), "flags": (">i4", "J", "int")}
_FLOAT8 = {"gl", "gb", "ra", "dec", "bp_rp0", "m_g"}


def _columns() -> list[tuple[str, str, str, str, str]]:
    cols = []
    for sql_name, out_name in (*TABLE2, ("flags", "flags")):
        if sql_name in _TYPES:
            dtype, tform, votype = _TYPES[sql_name]
        elif sql_name in _FLOAT8:
            dtype, tform, votype = ">f8", "D", "double"
        else:
            dtype, tform, votype = ">f4", "E", "float"
        cols.append((sql_name, out_name, dtype, tform, votype))
    return cols


def _chunks(conn: psycopg.Connection, model_id: int, chunk_rows: int) -> Iterator[dict[str, np.ndarray]]:
    cols = _columns()
    with conn.cursor(name="xpdb_export") as cur:
        cur.itersize = chunk_rows
        cur.execute(f"SELECT {', '.join(c[0] for c in cols)} FROM xpdb.catalog_all WHERE model_id = %s "
                    f"ORDER BY source_id", (model_id,))
        while True:
            rows = cur.fetchmany(chunk_rows)
            if not rows:
                return
            out = {}
            for j, (name, _, dtype, _, _) in enumerate(cols):
                values = [r[j] for r in rows]
                if dtype[1] == "f":
                    out[name] = np.array([np.nan if v is None else v for v in values], dtype=dtype)
                else:
                    out[name] = np.array([0 if v is None else v for v in values], dtype=dtype)
            yield out


def export_catalog(url: str, model_id: int, fmt: str, out: Path, *, chunk_rows: int = 100_000,
                   info: dict | None = None, progress: Callable[[int, int], None] | None = None) -> int:
    """Write the catalogue of ``model_id`` to ``out`` in ``fmt``; returns the number of rows."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    info = dict(info or {})
    with psycopg.connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        total = conn.execute("SELECT count(*) FROM xpdb.catalog_all WHERE model_id = %s", (model_id,)).fetchone()[0]
        writer = {"parquet": _ParquetWriter, "csv": _CsvWriter, "fits": _FitsWriter, "votable": _VotableWriter}[fmt]
        done = 0
        with writer(Path(out), total, info) as w:
            for chunk in _chunks(conn, model_id, chunk_rows):
                w.write(chunk)
                done += len(chunk["source_id"])
                if progress:
                    progress(done, total)
        conn.rollback()
    return done


class _Writer:
    def __init__(self, path: Path, total: int, info: dict):
        self.path, self.total, self.info = path, total, info
        self.cols = _columns()

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self) -> None: ...

    def close(self) -> None: ...


class _ParquetWriter(_Writer):
    def open(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = []
        for name, out_name, dtype, _, _ in self.cols:
            m = meta(name)
            md = {b"unit": (m.unit or "").encode(), b"description": m.description.encode(), b"ucd": (m.ucd or "").encode()}
            fields.append(pa.field(out_name, pa.from_numpy_dtype(np.dtype(dtype).newbyteorder("=")), metadata=md))
        self.schema = pa.schema(fields, metadata={k.encode(): str(v).encode() for k, v in self.info.items()})
        self.writer = pq.ParquetWriter(self.path, self.schema)

    def write(self, chunk) -> None:
        import pyarrow as pa

        arrays = [pa.array(chunk[name].astype(np.dtype(dtype).newbyteorder("="))) for name, _, dtype, _, _ in self.cols]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


class _CsvWriter(_Writer):
    def open(self) -> None:
        self.fh = open(self.path, "w")
        for key, value in self.info.items():
            self.fh.write(f"# {key}: {value}\n")
        for name, out_name, *_ in self.cols:
            m = meta(name)
            self.fh.write(f"# {out_name} [{m.unit or ''}]: {m.description}\n")
        self.fh.write(",".join(c[1] for c in self.cols) + "\n")

    def write(self, chunk) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        table = pa.table({out: chunk[name].astype(np.dtype(dtype).newbyteorder("=")) for name, out, dtype, _, _ in
                          self.cols})
        buf = pa.BufferOutputStream()
        pacsv.write_csv(table, buf, write_options=pacsv.WriteOptions(include_header=False))
        self.fh.write(buf.getvalue().to_pybytes().decode())

    def close(self) -> None:
        self.fh.close()


class _FitsWriter(_Writer):
    def open(self) -> None:
        from astropy.io import fits

        header = fits.Header()
        header["XTENSION"] = "BINTABLE"
        header["BITPIX"] = 8
        header["NAXIS"] = 2
        self.dtype = np.dtype([(out, dtype) for _, out, dtype, _, _ in self.cols])
        header["NAXIS1"] = self.dtype.itemsize
        header["NAXIS2"] = self.total
        header["PCOUNT"] = 0
        header["GCOUNT"] = 1
        header["TFIELDS"] = len(self.cols)
        for i, (name, out, _, tform, _) in enumerate(self.cols, start=1):
            m = meta(name)
            header[f"TTYPE{i}"] = out
            header[f"TFORM{i}"] = tform
            if m.unit:
                header[f"TUNIT{i}"] = m.unit
            header[f"TCOMM{i}"] = m.description[:68]
            if m.ucd:
                header[f"TUCD{i}"] = m.ucd
        header["EXTNAME"] = "CATALOG"
        for key, value in self.info.items():
            header["COMMENT"] = f"{key}: {value}"
        self.fh = open(self.path, "wb")
        self.fh.write(fits.PrimaryHDU().header.tostring().encode())
        self.fh.write(header.tostring().encode())
        self.written = 0

    def write(self, chunk) -> None:
        rec = np.empty(len(chunk["source_id"]), dtype=self.dtype)
        for name, out, *_ in self.cols:
            rec[out] = chunk[name]
        self.fh.write(rec.tobytes())
        self.written += len(rec)

    def close(self) -> None:
        size = self.written * self.dtype.itemsize
        self.fh.write(b"\0" * ((-size) % 2880))
        self.fh.close()
        if self.written != self.total:
            raise RuntimeError(f"FITS export wrote {self.written} rows, header says {self.total}")


class _VotableWriter(_Writer):
    def open(self) -> None:
        from xml.sax.saxutils import escape, quoteattr

        self.fh = open(self.path, "w")
        self.fh.write('<?xml version="1.0" encoding="utf-8"?>\n'
                      '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">\n<RESOURCE type="results">\n')
        for key, value in self.info.items():
            self.fh.write(f"<INFO name={quoteattr(str(key))} value={quoteattr(str(value))}/>\n")
        self.fh.write('<TABLE name="catalog">\n')
        for name, out, _, _, votype in self.cols:
            m = meta(name)
            attrs = f'name={quoteattr(out)} datatype="{votype}"'
            if m.unit:
                attrs += f" unit={quoteattr(m.unit)}"
            if m.ucd:
                attrs += f" ucd={quoteattr(m.ucd)}"
            self.fh.write(f"<FIELD {attrs}><DESCRIPTION>{escape(m.description)}</DESCRIPTION></FIELD>\n")
        self.fh.write("<DATA><BINARY2><STREAM encoding=\"base64\">\n")
        self.pending = b""
        nbytes = (len(self.cols) + 7) // 8
        self.dtype = np.dtype([("nulls", "u1", (nbytes,))] + [(out, dtype) for _, out, dtype, _, _ in self.cols])

    def write(self, chunk) -> None:
        n = len(chunk["source_id"])
        rec = np.zeros(n, dtype=self.dtype)
        nulls = np.zeros((n, len(self.cols)), dtype=bool)
        for j, (name, out, dtype, _, _) in enumerate(self.cols):
            rec[out] = chunk[name]
            if np.dtype(dtype).kind == "f":
                nulls[:, j] = np.isnan(chunk[name])
        rec["nulls"] = np.packbits(nulls, axis=1, bitorder="big")[:, : rec["nulls"].shape[1]]
        data = self.pending + rec.tobytes()
        cut = len(data) - len(data) % 57  # 57 bytes -> one 76-character base64 line
        self.fh.write(base64.encodebytes(data[:cut]).decode())
        self.pending = data[cut:]

    def close(self) -> None:
        if self.pending:
            self.fh.write(base64.encodebytes(self.pending).decode())
        self.fh.write("</STREAM></BINARY2></DATA>\n</TABLE>\n</RESOURCE>\n</VOTABLE>\n")
        self.fh.close()
