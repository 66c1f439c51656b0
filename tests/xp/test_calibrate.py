"""xpdb.xp.calibrate equals gaiaxpy.calibrate, run here on the same real spectra."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.conftest import real_path
from tests.xp.reference import gaiaxpy_frame_from_flat, gaiaxpy_frame_from_table
from xpdb.ingest.xp import fetch_xp
from xpdb.xp.calibrate import calibrate, convert

gaiaxpy = pytest.importorskip("gaiaxpy")


def run_gaiaxpy(data, truncation):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df, grid = gaiaxpy.calibrate(data, truncation=truncation, save_file=False)
    return df, grid


def assert_matches(ours, ref_df, rtol=1e-6):
    """Relative 1e-6 wherever the reference is above 1e-3 of its spectrum's peak; NaN where it is NaN."""
    index = {int(s): i for i, s in enumerate(ours.source_id)}
    assert len(ref_df) == len(ours.source_id)
    for _, row in ref_df.iterrows():
        i = index[int(row["source_id"])]
        for ref, got in ((np.asarray(row["flux"], float), ours.flux[i]),
                         (np.asarray(row["flux_error"], float), ours.flux_error[i])):
            np.testing.assert_array_equal(np.isnan(ref), np.isnan(got))
            ok = ~np.isnan(ref)
            big = ok & (np.abs(ref) > 1e-3 * np.nanmax(np.abs(ref)))
            np.testing.assert_allclose(got[big], ref[big], rtol=rtol, atol=0)


@pytest.mark.real_data
@pytest.mark.parametrize("truncation", [False, True])
@pytest.mark.parametrize("name", ["XP_CONTINUOUS_RAW.csv", "XP_CONTINUOUS_RAW.fits", "XP_CONTINUOUS_RAW.xml",
                                  "XP_CONTINUOUS_RAW.ecsv", "XP_CONTINUOUS_RAW_with_missing_BP.csv"])
def test_archive_files(name, truncation):
    path = real_path("gaiaxpy", name)
    ref, grid = run_gaiaxpy(str(path), truncation)
    ours = calibrate(path, truncation=truncation)
    np.testing.assert_array_equal(ours.wavelength, grid)
    assert ours.wavelength[0] == 336 and ours.wavelength[-1] == 1020 and len(ours.wavelength) == 343
    assert_matches(ours, ref)


@pytest.mark.real_data
def test_missing_band_is_nan_only_where_needed():
    ours = calibrate(real_path("gaiaxpy", "XP_CONTINUOUS_RAW_with_missing_BP.csv"))
    i = list(ours.source_id).index(5405570973190252288)
    assert np.isnan(ours.flux[i][ours.wavelength <= 635]).all()
    assert np.isfinite(ours.flux[i][ours.wavelength > 635]).all()


@pytest.mark.real_data
@pytest.mark.parametrize("truncation", [False, True])
def test_votable_with_correlations(truncation):
    path = real_path("xp_chunk", "xp_continuous_combined_weiler2023_examples.vot")
    frame = gaiaxpy_frame_from_table(path)
    ref, _ = run_gaiaxpy(frame, truncation)
    assert_matches(calibrate(path, truncation=truncation), ref)
    assert_matches(calibrate(frame, truncation=truncation), ref)  # the DataFrame input path too


@pytest.mark.real_data
@pytest.mark.parametrize("truncation", [False, True])
def test_chunk_of_2000_without_correlations(truncation):
    path = real_path("xp_chunk", "xp_continuous_combined_chunk0.fits")
    frame = gaiaxpy_frame_from_flat(path)
    ref, _ = run_gaiaxpy(frame.iloc[::10].reset_index(drop=True), truncation)
    ours = calibrate(path, truncation=truncation)
    keep = np.isin(ours.source_id, ref["source_id"].to_numpy())
    ours.source_id, ours.flux, ours.flux_error = ours.source_id[keep], ours.flux[keep], ours.flux_error[keep]
    assert_matches(ours, ref)


@pytest.mark.real_data
def test_chunk_with_valid_random_correlations():
    path = real_path("xp_chunk", "xp_continuous_combined_chunk0.fits")
    frame = gaiaxpy_frame_from_flat(path, correlations="random").iloc[:150].reset_index(drop=True)
    ref, _ = run_gaiaxpy(frame, False)
    assert_matches(calibrate(frame), ref)


@pytest.mark.real_data
def test_from_database_equals_from_file(db_url, conn):
    from xpdb.ingest.runs import ingest_file

    path = real_path("gaiaxpy", "XP_CONTINUOUS_RAW_with_missing_BP.csv")
    ingest_file(db_url, "xp", path)
    ids = [int(r[0]) for r in conn.execute("SELECT DISTINCT source_id FROM xpdb.xp_band ORDER BY 1")]
    from_db = calibrate(fetch_xp(conn, ids))
    from_file = calibrate(path)
    order = [list(from_file.source_id).index(s) for s in ids]
    np.testing.assert_allclose(from_db.flux, from_file.flux[order], rtol=1e-12, equal_nan=True)
    # the file's float32 errors and correlations are stored exactly
    np.testing.assert_allclose(from_db.flux_error, from_file.flux_error[order], rtol=1e-12, equal_nan=True)


@pytest.mark.real_data
def test_convert_matches_gaiaxpy():
    path = real_path("gaiaxpy", "XP_CONTINUOUS_RAW.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, grid = gaiaxpy.convert(str(path), save_file=False)
    ours = convert(path)
    np.testing.assert_allclose(ours.pseudo_wavelength, grid)
    for _, row in ref.iterrows():
        i = list(ours.source_id).index(int(row["source_id"]))
        flux = np.asarray(row["flux"], float)
        np.testing.assert_allclose(ours.flux[row["xp"].lower()][i], flux, rtol=1e-9, atol=1e-9 * np.abs(flux).max())


def test_wrong_number_of_coefficients_is_a_clear_error():
    import pyarrow as pa

    table = pa.table({"source_id": [1], "bp_coefficients": [[1.0] * 51], "bp_coefficient_errors": [[0.1] * 51]})
    with pytest.raises(ValueError, match="51.*55-coefficient"):
        calibrate(table)
