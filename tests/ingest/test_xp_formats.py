"""XP_CONTINUOUS in every archive format loads and reads back exactly as the file holds it."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from tests.conftest import real_path
from xpdb.db.copy import decode_bytea
from xpdb.ingest.runs import ingest_file

ARRAYS = {"coefficients": "<f8", "coefficient_errors": "<f4", "coefficient_correlations": "<f4"}


def read_back(conn, source_id: int) -> dict:
    row = conn.execute("SELECT * FROM xpdb.xp_continuous WHERE source_id = %s", (source_id,)).fetchone()
    names = [d.name for d in conn.execute("SELECT * FROM xpdb.xp_continuous LIMIT 0").description]
    return dict(zip(names, row))


def reference_fits() -> Table:
    return Table.read(real_path("gaiaxpy", "XP_CONTINUOUS_RAW.fits"))


def assert_row_matches(stored: dict, ref_row, bands=("bp", "rp")) -> None:
    for band in bands:
        for name, dtype in ARRAYS.items():
            expected = np.asarray(ref_row[f"{band}_{name}"], dtype=dtype)
            got = decode_bytea([stored[f"{band}_{name}"]], dtype)[0]
            np.testing.assert_array_equal(got, expected, err_msg=f"{band}_{name}")
        for scalar in ("n_parameters", "n_relevant_bases", "basis_function_id", "n_measurements"):
            assert stored[f"{band}_{scalar}"] == int(ref_row[f"{band}_{scalar}"])
        assert np.float32(stored[f"{band}_standard_deviation"]) == np.float32(ref_row[f"{band}_standard_deviation"])


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["XP_CONTINUOUS_RAW.csv", "XP_CONTINUOUS_RAW.ecsv", "XP_CONTINUOUS_RAW.fits",
                                  "XP_CONTINUOUS_RAW.xml"])
def test_archive_formats_read_back_exactly(db_url, conn, name):
    report = ingest_file(db_url, "xp", real_path("gaiaxpy", name))
    assert (report.status, report.rows_loaded, report.rows_rejected) == ("loaded", 2, 0)
    ref = reference_fits()
    for ref_row in ref:
        assert_row_matches(read_back(conn, int(ref_row["source_id"])), ref_row)


@pytest.mark.real_data
def test_parquet_and_gzip(db_url, conn, tmp_path):
    ref = reference_fits()
    table = pa.table({name: [np.asarray(v).tolist() if np.ndim(v) else v.item() for v in ref[name]]
                      for name in ref.colnames})
    pq.write_table(table, tmp_path / "xp.parquet")
    gz = tmp_path / "xp.csv.gz"
    with open(real_path("gaiaxpy", "XP_CONTINUOUS_RAW.csv"), "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert ingest_file(db_url, "xp", tmp_path / "xp.parquet").rows_loaded == 2
    for ref_row in ref:
        assert_row_matches(read_back(conn, int(ref_row["source_id"])), ref_row)
    conn.execute("TRUNCATE xpdb.xp_band")
    assert ingest_file(db_url, "xp", gz).rows_loaded == 2
    for ref_row in ref:
        assert_row_matches(read_back(conn, int(ref_row["source_id"])), ref_row)


@pytest.mark.real_data
def test_missing_band_is_null_not_rejected(db_url, conn):
    report = ingest_file(db_url, "xp", real_path("gaiaxpy", "XP_CONTINUOUS_RAW_with_missing_BP.csv"))
    assert (report.rows_loaded, report.rows_rejected) == (3, 0)
    row = read_back(conn, 5405570973190252288)
    assert row["bp_coefficients"] is None and row["bp_n_parameters"] is None
    assert row["bp_coefficient_correlations"] is None
    assert len(row["rp_coefficients"]) == 55 * 8 and len(row["rp_coefficient_correlations"]) == 1485 * 4


@pytest.mark.real_data
def test_flat_chunk_of_2000_sources(db_url, conn):
    path = real_path("xp_chunk", "xp_continuous_combined_chunk0.fits")
    report = ingest_file(db_url, "xp", path)
    assert (report.rows_loaded, report.rows_rejected) == (2000, 0)
    ref = Table.read(path)
    rows = conn.execute("SELECT source_id, bp_coefficients, rp_coefficient_errors, bp_n_relevant_bases, "
                        "bp_coefficient_correlations FROM xpdb.xp_continuous ORDER BY source_id").fetchall()
    assert len(rows) == 2000
    ref.sort("source_id")
    bp = decode_bytea([r[1] for r in rows], "<f8")
    e_rp = decode_bytea([r[2] for r in rows], "<f4")
    np.testing.assert_array_equal(bp, np.stack([ref[f"bp_coeff_{i}"] for i in range(55)], axis=1).astype(np.float32))
    np.testing.assert_array_equal(e_rp, np.stack([ref[f"e_rp_coeff_{i}"] for i in range(55)], axis=1))
    assert [r[3] for r in rows] == list(ref["bp_n_relevant_bases"])
    assert all(r[4] is None for r in rows)  # the flat layout carries no correlations


@pytest.mark.real_data
def test_votable_with_correlations_and_sql_decoders(db_url, conn):
    path = real_path("xp_chunk", "xp_continuous_combined_weiler2023_examples.vot")
    assert ingest_file(db_url, "xp", path).rows_loaded == 4
    ref = Table.read(path)
    sid = int(ref["source_id"][0])
    coeffs, corr = conn.execute(
        "SELECT xpdb.float8_array(bp_coefficients), xpdb.float4_array(rp_coefficient_correlations) "
        "FROM xpdb.xp_continuous WHERE source_id = %s", (sid,)).fetchone()
    np.testing.assert_array_equal(np.array(coeffs), np.asarray(ref["bp_coefficients"][0], dtype=np.float64))
    np.testing.assert_array_equal(np.array(corr, dtype=np.float32),
                                  np.asarray(ref["rp_coefficient_correlations"][0], dtype=np.float32))


def test_dr4_width_any_number_of_coefficients(db_url, conn, tmp_path):
    """DR4 BP has 51 coefficients: nothing assumes 55."""
    rng = np.random.default_rng(1)
    k_bp, k_rp = 51, 55
    table = pa.table({
        "source_id": [11, 12],
        "bp_n_parameters": [k_bp, k_bp],
        "bp_coefficients": [rng.normal(size=k_bp).tolist() for _ in range(2)],
        "bp_coefficient_errors": [rng.uniform(0.1, 1, size=k_bp).tolist() for _ in range(2)],
        "bp_coefficient_correlations": [rng.uniform(-0.1, 0.1, size=k_bp * (k_bp - 1) // 2).tolist() for _ in range(2)],
        "rp_n_parameters": [k_rp, k_rp],
        "rp_coefficients": [rng.normal(size=k_rp).tolist() for _ in range(2)],
        "rp_coefficient_errors": [rng.uniform(0.1, 1, size=k_rp).tolist() for _ in range(2)],
        "rp_coefficient_correlations": [rng.uniform(-0.1, 0.1, size=k_rp * (k_rp - 1) // 2).tolist() for _ in range(2)],
    })
    pq.write_table(table, tmp_path / "dr4.parquet")
    report = ingest_file(db_url, "xp", tmp_path / "dr4.parquet")
    assert (report.rows_loaded, report.rows_rejected) == (2, 0)
    stored = conn.execute("SELECT bp_coefficients, rp_coefficients FROM xpdb.xp_continuous WHERE source_id = 12").fetchone()
    np.testing.assert_array_equal(np.frombuffer(stored[0], "<f8"), table["bp_coefficients"][1].as_py())
    assert len(stored[1]) == 55 * 8
