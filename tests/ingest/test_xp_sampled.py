"""XP_SAMPLED spectra: every archive layout and format, GaiaXPy's output, and features that
agree with those computed from XP_CONTINUOUS for the same real stars."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from tests.conftest import real_path
from tests.ingest.sampled_files import write_individual, write_raw
from xpdb.errors import IngestFileError
from xpdb.ingest.runs import ingest_file
from xpdb.ingest.sampled import GAIA_GRID, GAIA_SAMPLING_ID, fetch_sampled

FORMATS = ["csv", "ecsv", "fits", "votable"]


@pytest.fixture(scope="module")
def real_sampled():
    """GaiaXPy's calibration of the two real XP_CONTINUOUS_RAW stars (the reference the archive uses)."""
    from gaiaxpy import calibrate

    df, sampling = calibrate(str(real_path("gaiaxpy", "XP_CONTINUOUS_RAW.csv")), save_file=False)
    flux = np.stack(df["flux"].to_numpy()).astype(float)
    err = np.stack(df["flux_error"].to_numpy()).astype(float)
    ids = df["source_id"].to_numpy().astype(np.int64)
    return {"source_id": ids, "solution_id": np.full(len(ids), 4545469030156206081, dtype=np.int64),
            "ra": np.array([217.39232147200883, 251.51920772923995][:len(ids)]),
            "dec": np.array([-62.67607511676666, -51.50535255488219][:len(ids)]),
            "flux": flux, "flux_error": err, "wavelength": np.asarray(sampling, float)}


def _stored(conn, ids):
    got = fetch_sampled(conn, ids)
    assert got.present.all()
    return got


@pytest.mark.parametrize("fmt", FORMATS)
def test_raw_layout_loads_in_every_format(db_url, tmp_path, real_sampled, fmt):
    s = real_sampled
    path = write_raw(tmp_path / f"XP_SAMPLED_RAW.{ 'xml' if fmt == 'votable' else fmt}", fmt, s["source_id"],
                     s["solution_id"], s["ra"], s["dec"], s["flux"], s["flux_error"])
    report = ingest_file(db_url, "xp_sampled", path)
    assert report.status == "loaded" and report.rows_loaded == len(s["source_id"]) and report.rows_rejected == 0
    with psycopg.connect(db_url) as conn:
        got = _stored(conn, s["source_id"])
        np.testing.assert_array_equal(got.wavelength, GAIA_GRID)
        np.testing.assert_array_equal(got.flux, s["flux"].astype(np.float32))
        np.testing.assert_array_equal(got.flux_error, s["flux_error"].astype(np.float32))
        rows = conn.execute("SELECT sampling_id, origin, solution_id FROM xpdb.xp_sampled").fetchall()
        assert {r[:2] for r in rows} == {(GAIA_SAMPLING_ID, "XP_SAMPLED")}
        assert {r[2] for r in rows} == {4545469030156206081}
    again = ingest_file(db_url, "xp_sampled", path)
    assert again.status == "no-op"


@pytest.mark.parametrize("fmt", FORMATS)
def test_individual_layout_one_file_per_source(db_url, tmp_path, real_sampled, fmt):
    s = real_sampled
    paths = write_individual(tmp_path, fmt, s["source_id"], s["solution_id"], s["ra"], s["dec"], s["flux"],
                             s["flux_error"], s["wavelength"])
    for path in paths:
        report = ingest_file(db_url, "xp_sampled", path)
        assert report.rows_loaded == 1 and report.rows_rejected == 0, report
    with psycopg.connect(db_url) as conn:
        got = _stored(conn, s["source_id"])
        np.testing.assert_array_equal(got.flux, s["flux"].astype(np.float32))
        assert conn.execute("SELECT count(DISTINCT sampling_id) FROM xpdb.xp_sampled").fetchone()[0] == 1


@pytest.mark.parametrize("fmt", ["csv", "ecsv", "fits", "xml"])
def test_gaiaxpy_calibrate_output(db_url, tmp_path, real_sampled, fmt):
    """GaiaXPy's own files: the grid comes from its sampling metadata (or the _sampling.csv beside a CSV)."""
    from gaiaxpy import calibrate

    calibrate(str(real_path("gaiaxpy", "XP_CONTINUOUS_RAW.csv")), sampling=np.arange(400, 901, 5.0),
              output_path=str(tmp_path), output_file="mine", output_format=fmt, save_file=True)
    report = ingest_file(db_url, "xp_sampled", tmp_path / f"mine.{fmt}", fmt="votable" if fmt == "xml" else None)
    assert report.rows_loaded == 2 and report.rows_rejected == 0, report
    with psycopg.connect(db_url) as conn:
        grid, origin = conn.execute("SELECT s.wavelength, x.origin FROM xpdb.xp_sampled x "
                                    "JOIN xpdb.xp_sampling s USING (sampling_id) LIMIT 1").fetchone()
    np.testing.assert_array_equal(grid, np.arange(400, 901, 5.0))
    assert origin == "gaiaxpy"


def test_bad_rows_are_rejected_with_file_row_and_column(db_url, tmp_path, real_sampled):
    s = real_sampled
    flux = s["flux"].copy()
    flux[1, 10] = np.nan
    path = write_raw(tmp_path / "bad.csv", "csv", s["source_id"], s["solution_id"], s["ra"], s["dec"], flux,
                     s["flux_error"])
    text = path.read_text().splitlines()
    text.append(text[1])  # a duplicate of the first source
    path.write_text("\n".join(text) + "\n")
    report = ingest_file(db_url, "xp_sampled", path)
    assert report.rows_loaded == 1
    reasons = {(row, column, reason) for row, column, reason in report.rejects}
    assert (2, "flux", "non-finite value") in reasons
    assert (3, "source_id", "duplicate source_id within the file") in reasons


def test_a_file_without_spectra_is_a_clear_error(db_url, tmp_path):
    path = tmp_path / "nothing.csv"
    path.write_text("source_id,ra,dec\n1,2,3\n")
    with pytest.raises(IngestFileError, match="nothing.csv.*no flux or flux_error column"):
        ingest_file(db_url, "xp_sampled", path)


def test_features_from_sampled_equal_features_from_continuous(db_url, tmp_path, real_sampled):
    """The same real stars, once as XP_CONTINUOUS (calibrated by xpdb) and once as GaiaXPy's sampled spectra."""
    from xpdb.xp.features import Preprocessing, compute_features
    from xpdb.xp.store import compute_missing_features, fetch_features, preprocessing_id

    s = real_sampled
    ebv = np.array([0.12, 0.31])[:len(s["source_id"])]
    continuous = compute_features(str(real_path("gaiaxpy", "XP_CONTINUOUS_RAW.csv")), ebv)
    order = np.argsort(continuous.source_id)
    sources = tmp_path / "sources.csv"
    sources.write_text("source_id,ra,dec,ebv\n" + "\n".join(
        f"{i},{r!r},{d!r},{e!r}" for i, r, d, e in zip(s["source_id"], s["ra"], s["dec"], ebv)) + "\n")
    ingest_file(db_url, "sources", sources)
    ingest_file(db_url, "xp_sampled", write_raw(tmp_path / "raw.fits", "fits", s["source_id"], s["solution_id"],
                                                s["ra"], s["dec"], s["flux"], s["flux_error"]))
    compute_missing_features(db_url)
    with psycopg.connect(db_url) as conn:
        pid = preprocessing_id(conn, Preprocessing())
        sampled = fetch_features(conn, s["source_id"], pid)
        assert [r[0] for r in conn.execute("SELECT DISTINCT xp_input FROM xpdb.xp_features")] == ["sampled"]
    expected_order = np.argsort(s["source_id"])
    np.testing.assert_array_equal(continuous.source_id[order], s["source_id"][expected_order])
    assert sampled.usable.all() and continuous.usable.all()
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(sampled.flux[expected_order], continuous.flux[order], rtol=8 * eps, atol=0)
    np.testing.assert_allclose(sampled.flux_error[expected_order], continuous.flux_error[order], rtol=8 * eps, atol=0)
