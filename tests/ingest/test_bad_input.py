"""Bad and repeated input: rejects with file/row/column/reason, no-ops, truncation, resume, replace."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from tests.conftest import real_path
from xpdb.ingest.readers import IngestFileError
from xpdb.ingest.runs import ingest_file

SRC = ("gaiaxpy", "XP_CONTINUOUS_RAW_with_missing_BP.csv")


def csv_rows(path) -> tuple[str, list[str]]:
    lines = path.read_text().splitlines()
    return lines[0], lines[1:]


def split_fields(line: str) -> list[str]:
    """Split an archive CSV line on commas outside quotes."""
    out, cur, quoted = [], [], False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def table_counts(conn) -> tuple[int, int]:
    return (conn.execute("SELECT count(*) FROM xpdb.xp_continuous").fetchone()[0],
            conn.execute("SELECT count(*) FROM xpdb.gaia_source").fetchone()[0])


@pytest.mark.real_data
def test_each_rejection_class_is_recorded(db_url, conn, tmp_path):
    header, rows = csv_rows(real_path(*SRC))
    names = split_fields(header)
    col = {n: i for i, n in enumerate(names)}
    good = split_fields(rows[0])

    def variant(source_id, **changes) -> str:
        f = list(good)
        f[col["source_id"]] = str(source_id)
        for name, value in changes.items():
            f[col[name]] = value
        return ",".join(f)

    coeffs = good[col["rp_coefficients"]].strip('"()').split(", ")
    corr = good[col["rp_coefficient_correlations"]].strip('"()').split(", ")
    bad = [
        variant(101),  # good
        variant(102, rp_coefficients='"(' + ", ".join(coeffs[:-1]) + ')"'),  # wrong length
        variant(103, rp_coefficients='"(' + ", ".join(["nan"] + coeffs[1:]) + ')"'),  # non-finite
        variant(""),  # missing source_id
        variant(101),  # duplicate source_id
        variant(104, rp_coefficients='"(' + ", ".join(["1.0x"] + coeffs[1:]) + ')"'),  # unparseable text
        variant(105, rp_coefficient_correlations='"(' + ", ".join(["5.0"] + corr[1:]) + ')"'),  # absurd
        variant(106, rp_coefficient_errors='"(' + ", ".join(["-1.0"] + good[col["rp_coefficient_errors"]]
                                                             .strip('"()').split(", ")[1:]) + ')"'),  # absurd
        variant(107),  # good
    ]
    path = tmp_path / "bad.csv"
    path.write_text(header + "\n" + "\n".join(bad) + "\n")
    report = ingest_file(db_url, "xp", path)
    assert report.rows_loaded == 2 and report.rows_rejected == 7
    got = conn.execute("SELECT row_number, source_id, column_name, reason FROM xpdb.ingest_reject "
                       "WHERE run_id = %s ORDER BY row_number", (report.run_id,)).fetchall()
    by_row = {}
    for row, sid, column, reason in got:
        by_row.setdefault(row, []).append((sid, column, reason))
    assert any(c == "rp_coefficients" and "wrong array length" in r for _, c, r in by_row[2])
    assert any(c == "rp_coefficients" and "non-finite" in r for _, c, r in by_row[3])
    assert by_row[4] == [(None, "source_id", "missing source_id")]
    assert any("duplicate source_id" in r for _, _, r in by_row[5])
    assert any(c == "rp_coefficients" and "unparseable number '1.0x'" in r for _, c, r in by_row[6])
    assert any(c == "rp_coefficient_correlations" and "absurd" in r for _, c, r in by_row[7])
    assert any(c == "rp_coefficient_errors" and "absurd" in r for _, c, r in by_row[8])
    stored = [r[0] for r in conn.execute("SELECT source_id FROM xpdb.xp_continuous ORDER BY 1")]
    assert stored == [101, 107]


@pytest.mark.real_data
def test_same_file_twice_is_a_noop_and_replace_upserts(db_url, conn, tmp_path):
    path = real_path("gaiaxpy", "XP_CONTINUOUS_RAW.csv")
    first = ingest_file(db_url, "xp", path)
    second = ingest_file(db_url, "xp", path)
    assert first.status == "loaded" and second.status == "no-op" and "already loaded" in second.message
    assert conn.execute("SELECT count(*) FROM xpdb.ingest_run WHERE status = 'done'").fetchone()[0] == 1
    conn.execute("UPDATE xpdb.xp_band SET chi_squared = -1 WHERE band = 'bp'")
    third = ingest_file(db_url, "xp", path, replace=True)
    assert (third.status, third.rows_loaded, third.rows_rejected) == ("loaded", 2, 0)
    assert conn.execute("SELECT min(bp_chi_squared) FROM xpdb.xp_continuous").fetchone()[0] > 0
    assert conn.execute("SELECT count(*) FROM xpdb.xp_continuous").fetchone()[0] == 2


@pytest.mark.real_data
@pytest.mark.parametrize("name,cut", [("XP_CONTINUOUS_RAW.fits", 0.7), ("XP_CONTINUOUS_RAW.csv", 0.8),
                                      ("XP_CONTINUOUS_RAW.xml", 0.6), ("XP_CONTINUOUS_RAW.csv.gz", 0.5)])
def test_truncated_file_changes_nothing(db_url, conn, tmp_path, name, cut):
    ingest_file(db_url, "xp", real_path("xp_chunk", "xp_continuous_combined_weiler2023_examples.vot"))
    before = table_counts(conn)
    source = real_path("gaiaxpy", name.removesuffix(".gz"))
    data = source.read_bytes()
    if name.endswith(".gz"):
        data = gzip.compress(data)
    path = tmp_path / name
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(IngestFileError) as info:
        ingest_file(db_url, "xp", path)
    assert str(path) in str(info.value)
    assert " at " in str(info.value)  # a position is named
    assert table_counts(conn) == before
    status = conn.execute("SELECT status, error FROM xpdb.ingest_run ORDER BY run_id DESC LIMIT 1").fetchone()
    assert status[0] == "failed" and status[1]


@pytest.mark.real_data
def test_chunked_load_resumes_after_interruption(db_url, conn):
    path = real_path("xp_chunk", "xp_continuous_combined_chunk0.fits")
    calls = []

    def interrupt_after_two_chunks(done, total):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest_file(db_url, "xp", path, chunk_rows=300, single_transaction_rows=500,
                    progress=interrupt_after_two_chunks)
    assert conn.execute("SELECT count(*) FROM xpdb.xp_continuous").fetchone()[0] == 600
    run = conn.execute("SELECT status, next_row FROM xpdb.ingest_run").fetchone()
    assert run == ("running", 600)
    report = ingest_file(db_url, "xp", path, chunk_rows=300, single_transaction_rows=500)
    assert report.resumed_from == 601 and report.rows_rejected == 0
    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM xpdb.xp_continuous").fetchone() == (2000, 2000)
    assert conn.execute("SELECT status FROM xpdb.ingest_run").fetchone()[0] == "done"


@pytest.mark.real_data
def test_chunked_load_of_a_truncated_file_leaves_nothing(db_url, conn, tmp_path):
    """A corrupt end found after chunks were committed removes what the run committed."""
    src = real_path("gaiaxpy", "XP_CONTINUOUS_RAW.csv")
    header, rows = csv_rows(src)
    fields = split_fields(rows[0])
    lines = []
    for i in range(1, 41):
        fields[0] = str(1000 + i)
        lines.append(",".join(fields))
    path = tmp_path / "many.csv"
    path.write_text(header + "\n" + "\n".join(lines) + "\n" + lines[0][: len(lines[0]) // 2])
    with pytest.raises(IngestFileError, match="truncated"):
        ingest_file(db_url, "xp", path, chunk_rows=10, single_transaction_rows=5)
    assert conn.execute("SELECT count(*) FROM xpdb.xp_continuous").fetchone()[0] == 0
    assert conn.execute("SELECT status FROM xpdb.ingest_run").fetchone()[0] == "failed"


def test_unknown_format_and_missing_file(db_url, tmp_path):
    with pytest.raises(IngestFileError, match="no such file"):
        ingest_file(db_url, "xp", tmp_path / "nope.fits")
    (tmp_path / "x.dat").write_text("a,b\n1,2\n")
    with pytest.raises(IngestFileError, match="cannot tell the format"):
        ingest_file(db_url, "xp", tmp_path / "x.dat")


def test_missing_required_column_is_a_file_error(db_url, conn, tmp_path):
    (tmp_path / "x.csv").write_text("ra,dec\n1,2\n")
    with pytest.raises(IngestFileError, match="source_id"):
        ingest_file(db_url, "xp", tmp_path / "x.csv")
    with pytest.raises(IngestFileError, match="source_id"):
        ingest_file(db_url, "sources", tmp_path / "x.csv")
    assert table_counts(conn) == (0, 0)


def test_gzip_copy_of_fits_loads(db_url, tmp_path):
    src = real_path("gaiaxpy", "XP_CONTINUOUS_RAW.fits")
    gz = tmp_path / "xp.fits.gz"
    with open(src, "rb") as a, gzip.open(gz, "wb") as b:
        shutil.copyfileobj(a, b)
    assert ingest_file(db_url, "xp", gz).rows_loaded == 2
    assert np.isfinite(1.0)
