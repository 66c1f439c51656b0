"""Published mean [Fe/H] of star clusters: loaded into ``xpdb.cluster_value``, the one owner of that table.

``cluster_summary.feh_paper`` shows the newest loaded value beside the project's own cluster
mean. Rows are matched to ``xpdb.cluster`` by ``xpdb.cluster_key`` (case, spaces and
punctuation ignored; Messier numbers as NGC names, so "M5" is NGC 5904 and "M67" NGC 2682),
so values may be loaded before or after the members.

The shared ``cluster_paper.csv`` (columns ``Cluster, moh_kvxp, aom_kvxp, moh_ap, aom_ap,
e_moh_kvxp, e_aom_kvxp, e_moh_ap, e_aom_ap, feh_c, e_feh_c, num_member``) holds per-cluster
[M/H] and [alpha/M] from an XP-based method (``*_kvxp``) and from APOGEE (``*_ap``), and a
cluster [Fe/H] with its error (``feh_c``, ``e_feh_c``). xpdb reads ``feh_c`` by default as "the
paper's value": it is the only [Fe/H] of the file (the others are [M/H], which differ from
[Fe/H] by the alpha enhancement, about 0.2 dex in globular clusters), and it is the scale the
UA-CSNet paper compares with in section 4.2.3 (APOGEE-based literature values: M5 -1.19 here
against [Fe/H]_APOGEE = -1.18 in the paper, M67 0.00 against 0.00). Every other column is
kept in ``extra``; ``value_column`` names another column to use instead.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import psycopg
import pyarrow as pa

from xpdb.ingest import runlog
from xpdb.ingest.readers import IngestFileError, TableReader
from xpdb.ingest.runs import IngestReport, file_sha256

NAME_COLUMNS = ("cluster", "name", "cluster_name", "cl_name")
DEFAULT_VALUE_COLUMN = "feh_c"
ERROR_PREFIXES = ("e_", "err_", "sig_")
COUNT_COLUMNS = ("num_member", "n_member", "n_members", "nmem", "n")


def _find(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, path: Path) -> str | None:
    lower = {c.lower(): c for c in columns}
    if wanted is not None:
        if wanted.lower() not in lower:
            raise IngestFileError(path, f"no column {wanted!r} for the {what} (columns: {', '.join(columns)})")
        return lower[wanted.lower()]
    for c in candidates:
        if c in lower:
            return lower[c]
    return None


def _number(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def ingest_cluster_values(url: str, path: Path | str, *, value_column: str = DEFAULT_VALUE_COLUMN,
                          error_column: str | None = None, name_column: str | None = None,
                          source: str | None = None, replace: bool = False, fmt: str | None = None) -> IngestReport:
    """Load published cluster [Fe/H] values (see the module docstring); returns the report.

    ``error_column`` defaults to ``e_<value_column>`` when the file has it; ``source`` (default:
    the file's name) labels the values, and a second load of the same source replaces them.
    """
    from xpdb.validation import cluster_key

    t0 = time.perf_counter()
    path = Path(path)
    if not path.exists():
        raise IngestFileError(path, "no such file")
    source = source or path.name
    report = IngestReport(str(path), "cluster_values", "loaded")
    sha = file_sha256(path)
    with psycopg.connect(url) as conn:
        prev = runlog.previous(conn, "cluster_values", source, sha, statuses=("done",))
        if prev and not replace:
            report.status, report.run_id = "no-op", prev.run_id
            report.message = (f"already loaded as {source!r} by run {prev.run_id} (same sha256); "
                              "replace=True (--replace) loads it again")
            return report
        reader = TableReader(path, fmt=fmt)
        try:
            chunks = [c.table for c in reader.chunks()]
        finally:
            reader.close()
        if not chunks:
            raise IngestFileError(path, "no rows")
        table = pa.concat_tables(chunks, promote_options="permissive")
        columns = table.column_names
        name_col = _find(columns, name_column, NAME_COLUMNS, "cluster name", path)
        if name_col is None:
            raise IngestFileError(path, f"no cluster-name column (one of {', '.join(NAME_COLUMNS)}; or name one)")
        value_col = _find(columns, value_column, (), "value", path)
        err_col = (_find(columns, error_column, (), "error", path) if error_column is not None else
                   _find(columns, None, tuple(p + value_col.lower() for p in ERROR_PREFIXES), "error", path))
        count_col = _find(columns, None, COUNT_COLUMNS, "member count", path)
        rows = table.to_pylist()
        run_id = runlog.start(conn, kind="cluster_values", target=source, path=path, size=path.stat().st_size,
                              fmt=fmt or path.suffix.lstrip("."), sha256=sha,
                              options={"value_column": value_col, "error_column": err_col, "replace": replace})
        report.run_id = run_id
        rejects, loaded, keys = [], 0, set()
        conn.execute("DELETE FROM xpdb.cluster_value WHERE source = %s", (source,))
        for i, row in enumerate(rows, start=1):
            name = row.get(name_col)
            key = cluster_key(name) if name not in (None, "") else ""
            feh = _number(row.get(value_col))
            if not key:
                rejects.append((i, None, name_col, "no cluster name", None))
                continue
            if feh is None:
                rejects.append((i, None, value_col, "missing or non-numeric value", str(row.get(value_col))))
                continue
            if key in keys:
                rejects.append((i, None, name_col, f"another row names the same cluster ({key})", str(name)))
                continue
            keys.add(key)
            extra = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in row.items()
                     if k not in (name_col, value_col, err_col)}
            count = _number(row.get(count_col)) if count_col else None
            conn.execute(
                "INSERT INTO xpdb.cluster_value (cluster_key, name, source, value_column, feh, feh_err, n_member, "
                "extra, ingest_run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (key, str(name), source, value_col, feh, _number(row.get(err_col)) if err_col else None,
                 int(count) if count is not None else None, json.dumps(extra, default=str), run_id))
            loaded += 1
        if rejects:
            runlog.store_rejects(conn, run_id, rejects)
        matched = conn.execute("SELECT count(*) FROM xpdb.cluster c JOIN xpdb.cluster_value v "
                               "ON v.cluster_key = xpdb.cluster_key(c.name) WHERE v.source = %s",
                               (source,)).fetchone()[0]
        runlog.finish(conn, run_id, read=len(rows), loaded=loaded, rejected=len(rejects),
                      next_row=len(rows))
        conn.commit()
    report.rows_read, report.rows_loaded, report.rows_rejected = len(rows), loaded, len(rejects)
    report.rejects = [(r[0], r[2], r[3]) for r in rejects[:20]]
    report.message = (f"{source}: {loaded} cluster values ({value_col}"
                      + (f" +- {err_col}" if err_col else "") + f"), {matched} of them for loaded clusters")
    report.seconds = time.perf_counter() - t0
    return report


def published_values(conn: psycopg.Connection) -> dict[str, tuple[float, float | None, str]]:
    """cluster_key -> (feh, feh_err, source) of the newest load per cluster."""
    rows = conn.execute("SELECT DISTINCT ON (cluster_key) cluster_key, feh, feh_err, source FROM xpdb.cluster_value "
                        "ORDER BY cluster_key, loaded_at DESC, source").fetchall()
    return {k: (f, e, s) for k, f, e, s in rows}
