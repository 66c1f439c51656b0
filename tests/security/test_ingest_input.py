"""Ingest of careless or hostile files: integer ids never pass through floats; parse errors name file, row and
column; short lines their real row; every file-level problem is one line; the exit status and message say what
was committed."""

from __future__ import annotations

import gzip
import os

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import Table
from typer.testing import CliRunner

from xpdb.cli.main import app
from xpdb.ingest.labels import ingest_labels
from xpdb.ingest.readers import IngestFileError
from xpdb.ingest.runs import ingest_file

N = 60
IDS = 4_000_000_000_000_000_001 + np.arange(N, dtype=np.int64) * 7  # 19 digits: not exact in a float64


def sources(ids=IDS, **columns) -> Table:
    rng = np.random.default_rng(5)
    return Table({"source_id": ids, "ra": rng.uniform(10, 11, len(ids)), "dec": rng.uniform(-1, 1, len(ids)),
                  "phot_g_mean_mag": rng.uniform(10, 15, len(ids)), **columns})


def stored(conn, table: str = "xpdb.gaia_source") -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def cli(*args):
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    return result


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert text.count("error:") == 1
    return text[text.index("error:"):]


@pytest.mark.parametrize("fmt", ["parquet", "fits", "votable", "ecsv"])
def test_float_source_ids_are_refused(db_url, conn, tmp_path, fmt):
    path = tmp_path / f"float_ids.{'xml' if fmt == 'votable' else fmt}"
    sources(IDS.astype(np.float64)).write(path, format=fmt if fmt != "votable" else "votable")
    with pytest.raises(IngestFileError, match=r"source_id( holds double values|: cannot read .4e\+18. as int64)"):
        ingest_file(db_url, "sources", path)
    assert stored(conn) == 0
    assert "a floating-point number cannot hold" in one_error_line(cli("ingest", "sources", str(path)))


@pytest.mark.parametrize("text", ["4e+18", "4000000000000000001.0", "4.000000000000000001E18", "12abc",
                                  "99999999999999999999"])
def test_csv_ids_that_are_not_integers_are_refused(db_url, conn, tmp_path, text):
    path = tmp_path / "ids.csv"
    lines = ["source_id,ra,dec"] + [f"{i},10.5,0.5" for i in IDS[:5]]
    lines[3] = f"{text},10.5,0.5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(IngestFileError, match=r"row 3: column source_id: cannot read"):
        ingest_file(db_url, "sources", path)
    assert stored(conn) == 0


def test_mapped_float_id_column_is_refused(db_url, conn, tmp_path):
    path = tmp_path / "vizier.parquet"
    table = sources()
    table.rename_column("source_id", "Source")
    table["Source"] = table["Source"].astype(np.float64)
    table.write(path)
    with pytest.raises(IngestFileError, match="Source holds double values"):
        ingest_file(db_url, "sources", path, options={"map": {"source_id": "Source"}})


def test_float_ids_in_spectra_and_labels_are_refused(db_url, conn, tmp_path):
    from xpdb.synth.sky import make_sky
    from xpdb.synth.writers import write_sky

    paths = write_sky(make_sky(30, seed=2), tmp_path / "sky", "parquet")
    xp = pq.read_table(paths["xp_continuous"])
    floated = xp.set_column(xp.column_names.index("source_id"), "source_id", xp.column("source_id").cast(pa.float64(), safe=False))
    pq.write_table(floated, tmp_path / "xp_float.parquet")
    with pytest.raises(IngestFileError, match="source_id holds double values"):
        ingest_file(db_url, "xp", tmp_path / "xp_float.parquet")
    assert stored(conn, "xpdb.xp_band") == 0
    labels = tmp_path / "labels.parquet"
    Table({"source_id": IDS[:5].astype(np.float64), "feh": [-1.0] * 5}).write(labels)
    with pytest.raises(IngestFileError, match="source_id holds double values"):
        ingest_labels(db_url, labels, catalog="FLOATS")
    assert "FLOATS" not in [r[0] for r in conn.execute("SELECT name FROM xpdb.reference_catalog")]
    assert "holds double" in one_error_line(cli("ingest", "labels", str(labels), "--catalog", "FLOATS"))


@pytest.mark.parametrize("row, column, value", [(1, "phot_g_mean_mag", "abc"), (17, "ra", "1.2.3"),
                                                (N, "dec", "--5"), (30, "phot_g_mean_mag", "0x1F")])
def test_parse_errors_name_file_row_and_column(db_url, conn, tmp_path, row, column, value):
    path = tmp_path / "typed.csv"
    sources().write(path, format="ascii.csv")
    lines = path.read_text().splitlines()
    names = lines[0].split(",")
    fields = lines[row].split(",")
    fields[names.index(column)] = value
    lines[row] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(IngestFileError) as caught:
        ingest_file(db_url, "sources", path)
    message = str(caught.value)
    assert str(path) in message and f"row {row}:" in message and f"column {column}" in message and value in message
    assert stored(conn) == 0
    assert f"row {row}: column {column}" in one_error_line(cli("ingest", "sources", str(path)))


def test_short_lines_are_rejected_with_their_real_row(db_url, conn, tmp_path):
    path = tmp_path / "short.csv"
    table = sources()
    table["ra"][19] = 400.0  # data row 20: an absurd value after the short lines
    table.write(path, format="ascii.csv")
    lines = path.read_text().splitlines()
    lines[5] = ",".join(lines[5].split(",")[:2])  # data row 5
    lines[9] = lines[9] + ",1,2"  # data row 9
    path.write_text("# a comment line first\n" + "\n".join(lines) + "\n")
    report = ingest_file(db_url, "sources", path)
    rows = conn.execute("SELECT row_number, column_name, reason FROM xpdb.ingest_reject WHERE run_id = %s "
                        "ORDER BY row_number", (report.run_id,)).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(5, None), (9, None), (20, "ra")]
    assert "expected 4 fields, found 2" in rows[0][2] and "found 6" in rows[1][2]
    assert report.rows_loaded == N - 3 and stored(conn) == N - 3
    loaded_row_20 = conn.execute("SELECT count(*) FROM xpdb.gaia_source WHERE source_id = %s",
                                 (int(IDS[19]),)).fetchone()[0]
    assert loaded_row_20 == 0


@pytest.mark.parametrize("name", ["random.csv", "random.csv.gz", "random.fits", "random.parquet", "random.vot",
                                  "random.ecsv", "random.fits.gz", "empty.csv", "header_only.csv", "nul.csv"])
def test_unreadable_files_are_one_line_errors(db_url, conn, tmp_path, name):
    path = tmp_path / name
    noise = np.random.default_rng(len(name)).bytes(30_000)
    if name == "empty.csv":
        noise = b""
    elif name == "header_only.csv":
        noise = b"source_id,ra,dec\n"
    elif name == "nul.csv":
        noise = b"source_id,ra,dec\n1,\x00,2\n"
    elif name.endswith(".gz"):
        noise = gzip.compress(noise)
    path.write_bytes(noise)
    for kind in ("sources", "xp"):
        try:
            report = ingest_file(db_url, kind, path)
        except IngestFileError as exc:
            assert str(path) in str(exc)
        else:  # a header without rows is an empty load
            assert report.rows_loaded == 0
        result = cli("ingest", kind, str(path))
        if result.exit_code:
            assert str(path.name) in one_error_line(result)
    labels = cli("ingest", "labels", str(path), "--catalog", "NOISE")
    assert labels.exit_code in (0, 1, 2) and "Traceback" not in labels.output
    assert stored(conn) == 0 and stored(conn, "xpdb.xp_band") == 0


@pytest.mark.parametrize("kind", ["sources", "xp"])
def test_a_column_named_twice_is_one_line_error(db_url, conn, tmp_path, kind):
    """Found by bench/security_probe.py: a repeated source_id header ended in a KeyError traceback."""
    path = tmp_path / "twice.csv"
    path.write_text("source_id,ra,dec,source_id\n1,10.0,0.5,1\n2,10.1,0.6,2\n")
    with pytest.raises(IngestFileError, match=r"twice.csv at header: column name\(s\) source_id appear more than once"):
        ingest_file(db_url, kind, path)
    assert "appear more than once" in one_error_line(cli("ingest", kind, str(path)))
    assert stored(conn) == 0


def test_directories_and_devices_are_refused(db_url, tmp_path):
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    for target in (folder, "/dev/null", tmp_path / "missing.csv"):
        with pytest.raises(IngestFileError, match="directory|not a regular file|no such file"):
            ingest_file(db_url, "sources", target)
        assert one_error_line(cli("ingest", "sources", str(target)))
        with pytest.raises(IngestFileError):
            ingest_labels(db_url, target, catalog="X")
    os.mkfifo(tmp_path / "pipe.csv")
    assert "not a regular file" in one_error_line(cli("ingest", "sources", str(tmp_path / "pipe.csv")))


def _kill_at_copy(monkeypatch, db_url, at_call: int) -> None:
    """Make the database end the loading session when its ``at_call``-th COPY starts (no timing involved)."""
    import xpdb.ingest.runs as runs

    real, calls = runs.copy_binary, []

    def copy_then_die(conn, *args, **kwargs):
        calls.append(1)
        if len(calls) == at_call:
            with psycopg.connect(db_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(runs, "copy_binary", copy_then_die)


def test_database_gone_mid_copy_single_transaction(db_url, conn, tmp_path, monkeypatch):
    path = tmp_path / "sources.parquet"
    sources().write(path)
    _kill_at_copy(monkeypatch, db_url, 1)
    with pytest.raises(IngestFileError, match="database connection was lost"):
        ingest_file(db_url, "sources", path)
    assert stored(conn) == 0
    _kill_at_copy(monkeypatch, db_url, 1)
    assert "nothing from this file was stored" in one_error_line(cli("ingest", "sources", str(path)))
    assert stored(conn) == 0


def test_database_gone_mid_copy_chunked_then_resumed(db_url, conn, tmp_path, monkeypatch):
    path = tmp_path / "sources.parquet"
    sources().write(path)
    _kill_at_copy(monkeypatch, db_url, 3)
    with pytest.raises(IngestFileError, match="connection was lost") as caught:
        ingest_file(db_url, "sources", path, chunk_rows=10, single_transaction_rows=20)
    assert "load the same file again to resume" in caught.value.kept
    assert stored(conn) == 20  # two chunks were committed
    monkeypatch.undo()
    report = ingest_file(db_url, "sources", path, chunk_rows=10, single_transaction_rows=20)
    assert report.resumed_from == 21 and stored(conn) == N


def test_allow_rejects_message_says_what_was_committed(db_url, conn, tmp_path):
    path = tmp_path / "some_bad.csv"
    table = sources()
    table["dec"][3] = 95.0
    table.write(path, format="ascii.csv")
    strict = cli("ingest", "sources", str(path))
    text = " ".join(strict.output.split())
    assert strict.exit_code == 2 and stored(conn) == N - 1
    assert f"the {N - 1} valid row(s) were loaded and committed" in text and "--allow-rejects: exit 0" in text
    assert "to accept a partial load" not in text
    again = cli("ingest", "sources", str(path), "--replace", "--allow-rejects")
    assert again.exit_code == 0 and "were loaded and committed" in " ".join(again.output.split())
    assert stored(conn) == N - 1
