"""``xpdb export hats``: the catalogue as a HATS collection that LSDB and Dask read.

HATS (Hierarchical Adaptive Tiling Scheme) is HEALPix-partitioned Parquet: each file holds the
rows of one HEALPix pixel, the pixels' orders adapt to the density of the sky, and a margin
catalogue holds the rows within a few arcseconds outside each pixel so that cross-matches near
pixel edges are complete. It is the layout of the Gaia DR3 HATS catalogue, so an xpdb export
cross-matches with it (and any other HATS catalogue) in LSDB without a database.

How the export runs, in bounded memory:
1. one REPEATABLE READ snapshot streams every source (Gaia columns, the paper's Table 2 names
   where it has them), a model's FEH/FEH_err/flags (LEFT JOIN: sources without a prediction
   have nulls) and optionally the 60 stored features, with ``COPY ... TO STDOUT (FORMAT csv)``
   parsed by pyarrow, into staging Parquet files of ``rows_per_file`` rows beside the output;
2. hats-import's pipeline (the documented ``pipeline_with_client``) partitions them, on a dask
   client whose workers are threads of this process (no scheduler or worker processes, no
   ports), and builds the margin catalogue;
3. the staging files are removed.
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg

from xpdb.errors import XpdbError
from xpdb.query.columns import meta

HATS_HINT = "the HATS export needs hats, hats-import and lsdb: pip install 'xpdb[hats]'"

# (sql expression, output name, arrow type name); Table 2 names first, as ``xpdb export catalog``
# writes them, then the other Gaia columns and xpdb's derived ones under their archive names.
SOURCE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("s.source_id", "source_id", "int64"),
    ("s.l", "gl", "float64"),
    ("s.b", "gb", "float64"),
    ("s.ra", "ra", "float64"),
    ("s.dec", "dec", "float64"),
    ("s.phot_bp_rp_excess_factor", "phot_bp_rp_excess_factor", "float32"),
    ("xpdb.bp_rp0(s.bp_rp, s.ebv)", "BP_RP0", "float64"),
    ("s.phot_g_mean_mag", "PHOT_G_MEAN_MAG", "float32"),
    ("xpdb.abs_g(s.phot_g_mean_mag, s.ebv, s.rgeo, s.parallax)", "M_G", "float64"),
    ("s.ebv", "EBV", "float32"),
    ("s.rgeo", "rgeo", "float32"),
    ("s.ra_error", "ra_error", "float32"),
    ("s.dec_error", "dec_error", "float32"),
    ("s.parallax", "parallax", "float64"),
    ("s.parallax_error", "parallax_error", "float32"),
    ("s.pmra", "pmra", "float64"),
    ("s.pmra_error", "pmra_error", "float32"),
    ("s.pmdec", "pmdec", "float64"),
    ("s.pmdec_error", "pmdec_error", "float32"),
    ("s.ruwe", "ruwe", "float32"),
    ("s.phot_bp_mean_mag", "phot_bp_mean_mag", "float32"),
    ("s.phot_rp_mean_mag", "phot_rp_mean_mag", "float32"),
    ("s.bp_rp", "bp_rp", "float32"),
    ("s.radial_velocity", "radial_velocity", "float32"),
    ("xpdb.g0(s.phot_g_mean_mag, s.ebv)", "g0", "float64"),
    ("xpdb.distance_pc(s.rgeo, s.parallax)", "distance_pc", "float64"),
)
PREDICTION_COLUMNS = (("p.feh", "FEH", "float32"), ("p.feh_err", "FEH_err", "float32"), ("p.flags", "flags", "int32"))
FEATURE_COLUMNS = (("f.flux", "xp_flux", "features"), ("f.flux_error", "xp_flux_error", "features"),
                   ("f.flags", "xp_feature_flags", "int32"))
_META_NAME = {"gl": "gl", "gb": "gb", "BP_RP0": "bp_rp0", "PHOT_G_MEAN_MAG": "phot_g_mean_mag", "M_G": "m_g",
              "EBV": "ebv", "FEH": "feh", "FEH_err": "feh_err"}
_FEATURE_DESCRIPTIONS = {
    "xp_flux": "UA-CSNet input: 60-pixel dereddened XP flux, normalised near 5500 A (null: not computable)",
    "xp_flux_error": "Uncertainty of xp_flux (null: not computable)",
    "xp_feature_flags": "Feature flags (bits of xpdb.flags.FeatureFlag)",
}


class HatsExportError(XpdbError):
    """The HATS export cannot run (missing packages, an existing output, nothing to export)."""


@dataclass
class HatsExport:
    """What ``export_hats`` wrote: the collection, its catalogue and margin, and the row count."""

    path: Path
    catalog_path: Path
    margin_path: Path | None
    rows: int
    model: str | None
    columns: list[str]


def check_available() -> None:
    """Raise HatsExportError naming the install command when hats/hats-import/lsdb are missing."""
    try:
        import hats  # noqa: F401
        import hats_import  # noqa: F401
    except ImportError as exc:
        raise HatsExportError(f"{HATS_HINT} ({exc})") from exc


def _columns(with_model: bool, with_features: bool) -> list[tuple[str, str, str]]:
    cols = list(SOURCE_COLUMNS)
    if with_model:
        cols += PREDICTION_COLUMNS
    if with_features:
        cols += FEATURE_COLUMNS
    return cols


def _schema(cols: list[tuple[str, str, str]], info: dict):
    import pyarrow as pa

    fields = []
    for _, name, kind in cols:
        if kind == "features":
            typ = pa.list_(pa.float32())
            m = None
        else:
            typ = getattr(pa, kind)()
            m = meta(_META_NAME.get(name, name))
        description = _FEATURE_DESCRIPTIONS.get(name) or (m.description if m else "")
        md = {b"unit": ((m.unit if m else None) or "").encode(), b"description": description.encode(),
              b"ucd": ((m.ucd if m else None) or "").encode()}
        fields.append(pa.field(name, typ, metadata=md))
    return pa.schema(fields, metadata={k.encode(): str(v).encode() for k, v in info.items()})


def _query(cols, model_id: int | None, preprocessing_id: int | None) -> str:
    """The SELECT that COPY streams (ids are integers, inlined: COPY takes no parameters)."""
    joins = ""
    if model_id is not None:
        joins += f" LEFT JOIN xpdb.prediction AS p ON p.source_id = s.source_id AND p.model_id = {int(model_id)}"
    if preprocessing_id is not None:
        joins += (" LEFT JOIN xpdb.xp_features AS f ON f.source_id = s.source_id"
                  f" AND f.preprocessing_id = {int(preprocessing_id)}")
    select = ", ".join(f"{expr} AS \"{name}\"" for expr, name, _ in cols)
    return f"SELECT {select} FROM xpdb.gaia_source AS s{joins} ORDER BY s.source_id"


def _decode_features(column) -> object:
    """A CSV column of bytea hex text (``\\x...``, null when absent) as list<float32>."""
    import pyarrow as pa

    values = column.to_pylist()
    present = [v for v in values if v is not None]
    if not present:
        return pa.array([None] * len(values), type=pa.list_(pa.float32()))
    raw = bytes.fromhex("".join(v[2:] for v in present))
    flat = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    lengths = [(len(v) - 2) // 8 for v in present]
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    sizes = np.zeros(len(values), dtype=np.int32)
    mask = np.array([v is None for v in values])
    sizes[~mask] = lengths
    offsets[1:] = np.cumsum(sizes)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=pa.array(mask))


def _parse(block: bytes, cols, schema):
    """One block of COPY csv output (whole lines) as an arrow table of ``schema``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {name: (pa.string() if kind == "features" else schema.field(name).type) for _, name, kind in cols}
    table = pacsv.read_csv(io.BytesIO(block),
                           read_options=pacsv.ReadOptions(column_names=[c[1] for c in cols], use_threads=False),
                           convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""],
                                                                strings_can_be_null=True))
    arrays = [(_decode_features(table[name]) if kind == "features" else table[name]) for _, name, kind in cols]
    return pa.Table.from_arrays([a.combine_chunks() if hasattr(a, "combine_chunks") else a for a in arrays],
                                schema=schema)


def stage_parquet(conn: psycopg.Connection, folder: Path, cols, schema, model_id: int | None,
                  preprocessing_id: int | None, *, rows_per_file: int, block_bytes: int = 16 << 20,
                  progress: Callable[[int, int], None] | None = None, total: int = 0) -> tuple[list[Path], int]:
    """Stream the rows with COPY into Parquet files of at most ``rows_per_file`` rows; (files, rows)."""
    import pyarrow.parquet as pq

    sql = _query(cols, model_id, preprocessing_id)
    files: list[Path] = []
    writer = None
    in_file = done = 0

    def write(table) -> None:
        nonlocal writer, in_file, done
        start = 0
        while start < table.num_rows:
            if writer is None:
                files.append(folder / f"part-{len(files):05d}.parquet")
                writer = pq.ParquetWriter(files[-1], schema)
                in_file = 0
            take = min(rows_per_file - in_file, table.num_rows - start)
            writer.write_table(table.slice(start, take))
            start += take
            in_file += take
            done += take
            if in_file >= rows_per_file:
                writer.close()
                writer = None
        if progress:
            progress(done, total)

    buffer = bytearray()  # appended in place: COPY hands over a few kB at a time
    # the CSV text must round-trip every float bit for bit (shortest exact digits, PostgreSQL >= 12)
    # and carry bytea as hex, whatever the server's or the role's defaults
    conn.execute("SET extra_float_digits = 1")
    conn.execute("SET bytea_output = 'hex'")
    with conn.cursor() as cur:
        with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:
            for data in copy:
                buffer += data
                if len(buffer) >= block_bytes:
                    cut = buffer.rfind(b"\n") + 1
                    write(_parse(bytes(buffer[:cut]), cols, schema))
                    del buffer[:cut]
    if buffer:
        write(_parse(bytes(buffer), cols, schema))
    if writer is not None:
        writer.close()
    return files, done


def export_hats(url: str, out: Path, *, model_id: int | None = None, model_ref: str | None = None,
                features: bool = False, preprocessing_id: int | None = None, name: str = "xpdb",
                margin_arcsec: float = 10.0, pixel_threshold: int = 1_000_000, highest_order: int = 10,
                rows_per_file: int = 1_000_000, threads: int = 1, info: dict | None = None,
                progress: Callable[[int, int], None] | None = None) -> HatsExport:
    """Write every source, ``model_id``'s predictions and optionally features as a HATS collection at ``out``.

    ``out`` must not exist yet. The collection holds the catalogue ``name`` and, when
    ``margin_arcsec`` > 0, its margin catalogue (``lsdb.read_hats(out)`` opens both). With
    ``features``, ``preprocessing_id`` picks the stored features (default: the model's, else
    the newest preprocessing). Returns what was written.
    """
    check_available()
    out = Path(out).resolve()
    if out.exists():
        raise HatsExportError(f"{out} already exists; remove it or choose another --out")
    if not name.replace("_", "").isalnum():
        raise HatsExportError(f"catalogue name {name!r}: use letters, digits and underscores")
    info = dict(info or {})
    with psycopg.connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        total = conn.execute("SELECT count(*) FROM xpdb.gaia_source").fetchone()[0]
        if total == 0:
            raise HatsExportError("no sources in the database; nothing to export (xpdb ingest sources FILE first)")
        if features and preprocessing_id is None:
            row = conn.execute("SELECT coalesce((SELECT preprocessing_id FROM xpdb.model WHERE model_id = %s), "
                               "(SELECT max(preprocessing_id) FROM xpdb.preprocessing))", (model_id,)).fetchone()
            preprocessing_id = row[0]
            if preprocessing_id is None:
                raise HatsExportError("--features: no features computed yet (run xpdb features first)")
        if features:
            version = conn.execute("SELECT version FROM xpdb.preprocessing WHERE preprocessing_id = %s",
                                   (preprocessing_id,)).fetchone()
            if version is None:
                raise HatsExportError(f"no preprocessing with id {preprocessing_id}")
            info["preprocessing"] = version[0]
        if model_ref:
            info["model"] = model_ref
        cols = _columns(model_id is not None, features)
        schema = _schema(cols, info)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-staging-", dir=out.parent))
        try:
            files, rows = stage_parquet(conn, staging, cols, schema, model_id, preprocessing_id if features else None,
                                        rows_per_file=rows_per_file, progress=progress, total=total)
            conn.rollback()
            import pyarrow.parquet as pq

            schema_file = staging / "schema.parquet"
            pq.write_table(schema.empty_table(), schema_file)
            default_columns = ",".join(c for c in ("source_id", "ra", "dec", "PHOT_G_MEAN_MAG", "FEH", "FEH_err")
                                       if c in schema.names)
            try:
                _run_import(out, name, files, schema_file, rows, margin_arcsec, pixel_threshold, highest_order,
                            threads, staging, info, default_columns)
            except BaseException:
                shutil.rmtree(out, ignore_errors=True)  # no half-written collection left behind
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    margin = out / _margin_name(name, margin_arcsec) if margin_arcsec > 0 else None
    return HatsExport(out, out / name, margin, rows, model_ref, [c[1] for c in cols])


def _margin_name(name: str, arcsec: float) -> str:
    return f"{name}_{arcsec:g}arcsec".replace(".", "p")


def _run_import(out: Path, name: str, files: list[Path], schema_file: Path, rows: int, margin_arcsec: float,
                pixel_threshold: int, highest_order: int, threads: int, tmp: Path, info: dict,
                default_columns: str) -> None:
    from dask.distributed import Client
    from hats_import import CollectionArguments
    from hats_import.pipeline import pipeline_with_client

    common = {"progress_bar": False, "resume": False, "tmp_dir": tmp / "hats-tmp"}
    properties = {"obs_title": "xpdb catalogue: Gaia DR3 sources with UA-CSNet [Fe/H]",
                  **{f"xpdb_{k}": str(v).replace("\n", " ") for k, v in info.items()}}
    args = CollectionArguments(output_artifact_name=out.name, output_path=out.parent, **common).catalog(
        output_artifact_name=name, input_file_list=[str(f) for f in files], file_reader="parquet",
        use_schema_file=str(schema_file), ra_column="ra", dec_column="dec", sort_columns="source_id",
        expected_total_rows=rows, pixel_threshold=pixel_threshold, highest_healpix_order=highest_order,
        addl_hats_properties={"hats_cols_default": default_columns, **properties}, **common)
    if margin_arcsec > 0:
        args = args.add_margin(margin_threshold=float(margin_arcsec), is_default=True,
                               output_artifact_name=_margin_name(name, margin_arcsec), **common)
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            # hats-import's margin step re-reads the partition list it has just written; harmless.
            warnings.filterwarnings("ignore", message="Computing partitions from catalog parquet files")
            # Workers are threads of this process; the scheduler's and worker's HTTP status servers
            # (always started by dask) listen on loopback only, on free ports.
            with Client(processes=False, n_workers=1, threads_per_worker=max(1, int(threads)),
                        dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0",
                        local_directory=str(tmp / "dask")) as client:
                pipeline_with_client(args, client)
    finally:
        quiet.setLevel(level)
