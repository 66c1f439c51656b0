"""``xpdb export hats``: the export opened with LSDB answers a cone search with exactly the rows
``xpdb cone`` answers, cross-matches with a second HATS catalogue, and keeps every value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from typer.testing import CliRunner

from xpdb.ingest.runs import ingest_file
from xpdb.query.cone import cone

lsdb = pytest.importorskip("lsdb", reason="lsdb is not installed (pip install 'xpdb[hats]')")
pytest.importorskip("hats_import", reason="hats-import is not installed (pip install 'xpdb[hats]')")

N = 1200
CONES = [(150.6, 20.7, 0.25), (151.3, 21.4, 0.4), (150.05, 20.05, 0.3), (152.5, 22.5, 0.1)]


def _sky(db_url, conn, tmp_path):
    """N sources on 2 x 2 deg with Gaia-like source_ids (level-12 nested HEALPix << 35), a hand-made
    model predicting 80 % of them, and stored features (some not computable) for 60 %."""
    from astropy_healpix import HEALPix

    rng = np.random.default_rng(20)
    ra = rng.uniform(150, 152, N)
    dec = rng.uniform(20, 22, N)
    pix = HEALPix(nside=2**12, order="nested").lonlat_to_healpix(ra * u.deg, dec * u.deg).astype(np.int64)
    ids = (pix << 35) + np.arange(N)
    lines = ["source_id,ra,dec,phot_g_mean_mag,bp_rp,ebv,phot_bp_rp_excess_factor,r_med_geo,parallax,pmra"]
    for i in range(N):
        lines.append(f"{ids[i]},{float(ra[i])!r},{float(dec[i])!r},{rng.uniform(9, 17):.3f},{rng.uniform(0.8, 1.7):.3f},"
                     f"{rng.uniform(0.01, 0.1):.3f},1.2,{rng.uniform(500, 8000):.1f},{rng.uniform(0.1, 2):.4f},"
                     f"{rng.normal(0, 5):.3f}")
    (tmp_path / "sky.csv").write_text("\n".join(lines) + "\n")
    ingest_file(db_url, "sources", tmp_path / "sky.csv")
    conn.execute("INSERT INTO xpdb.model (kind, name, version, hyperparameters, artifact) "
                 "VALUES ('uacsnet', 'hand', 1, '{}', '\\x00')")
    mid = conn.execute("SELECT model_id FROM xpdb.model WHERE name = 'hand'").fetchone()[0]
    predicted = rng.random(N) < 0.8
    with conn.cursor().copy("COPY xpdb.prediction (model_id, source_id, feh, feh_err, flags) FROM STDIN") as cp:
        for sid in ids[predicted]:
            cp.write_row((mid, int(sid), float(rng.normal(-0.8, 0.6)), float(rng.uniform(0.05, 0.3)), 2))
    pid = conn.execute("INSERT INTO xpdb.preprocessing (version) VALUES ('test-1') RETURNING preprocessing_id"
                       ).fetchone()[0]
    featured = np.flatnonzero(rng.random(N) < 0.6)
    flux = rng.normal(1, 0.2, (len(featured), 60)).astype("<f4")
    with conn.cursor().copy("COPY xpdb.xp_features (preprocessing_id, source_id, flux, flux_error, flags) "
                            "FROM STDIN") as cp:
        for k, i in enumerate(featured):
            usable = k % 7 != 0
            cp.write_row((pid, int(ids[i]), flux[k].tobytes() if usable else None,
                          (flux[k] * 0.01).tobytes() if usable else None, 0 if usable else 16))
    return mid, ids, ra, dec


def _import_other(path, ra, dec, oid):
    """A second, independent HATS catalogue made with hats-import the documented way."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from dask.distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.pipeline import pipeline_with_client

    pq.write_table(pa.table({"oid": oid, "ra_other": ra, "dec_other": dec}), path / "other.parquet")
    args = ImportArguments(output_artifact_name="other", output_path=path, input_file_list=[path / "other.parquet"],
                           file_reader="parquet", ra_column="ra_other", dec_column="dec_other", pixel_threshold=60,
                           highest_healpix_order=8, progress_bar=False, resume=False, tmp_dir=path / "tmp")
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0",
                worker_dashboard_address="127.0.0.1:0", local_directory=str(path / "dask")) as client:
        pipeline_with_client(args, client)
    return lsdb.read_hats(path / "other")


@pytest.mark.slow
def test_hats_export_cone_and_crossmatch_agree_with_the_database(db_url, conn, tmp_path):
    import xpdb

    mid, ids, ra, dec = _sky(db_url, conn, tmp_path)
    out = tmp_path / "hats"
    # a server default that rounds floats to 15 digits in text output must not touch the export
    conn.execute(f'ALTER DATABASE "{conn.info.dbname}" SET extra_float_digits = 0')
    with xpdb.connect(db_url) as db:
        # order 8 at most: hats-import's binning histograms the whole sky at the highest order (a fixed
        # ~15 s at its default 10 on this machine), and 0.2 deg pixels are plenty for a 2 x 2 deg sky
        result = db.export_hats(out, features=True, pixel_threshold=150, highest_order=8)
    assert result.rows == N and result.model == "hand:1"
    assert result.margin_path is not None and result.margin_path.is_dir()

    properties = (result.catalog_path / "hats.properties").read_text().splitlines()
    assert {"xpdb_model=hand:1", "xpdb_preprocessing=test-1", "hats_cols_sort=source_id"} <= set(properties)
    import pyarrow.parquet as pq

    schema = pq.read_schema(result.catalog_path / "dataset" / "_common_metadata")
    assert schema.field("ra").metadata[b"unit"] == b"deg" and b"UA-CSNet" in schema.field("FEH").metadata[b"description"]

    cat = lsdb.read_hats(out, columns="all")  # default: the hats_cols_default subset
    assert cat.margin is not None  # the collection's default margin is opened with the catalogue
    assert len(cat.get_healpix_pixels()) >= 8  # several partitions, so cones and matches cross edges
    frame = cat.compute()
    assert len(frame) == N and sorted(frame["source_id"]) == sorted(ids.tolist())
    position = dict(zip(ids.tolist(), zip(ra.tolist(), dec.tolist())))
    assert all(position[s] == (r, d) for s, r, d in zip(frame["source_id"], frame["ra"], frame["dec"]))  # bit for bit

    # every value as the database has it
    db_rows = {r[0]: r[1:] for r in conn.execute(
        "SELECT s.source_id, p.feh, p.feh_err, s.parallax, f.flux, f.flags FROM xpdb.gaia_source s "
        "LEFT JOIN xpdb.prediction p ON p.source_id = s.source_id AND p.model_id = %s "
        "LEFT JOIN xpdb.xp_features f ON f.source_id = s.source_id", (mid,))}
    assert len(db_rows) == N
    for row in frame.itertuples(index=False):
        feh, feh_err, parallax, flux, fflags = db_rows[row.source_id]
        if feh is None:
            assert pd.isna(row.FEH) and pd.isna(row.FEH_err)
        else:
            assert np.float32(row.FEH) == np.float32(feh) and np.float32(row.FEH_err) == np.float32(feh_err)
        assert row.parallax == parallax  # float64 through CSV text and Parquet, bit for bit
        if flux is None:
            assert row.xp_flux is None or pd.isna(row.xp_flux) is True
        else:
            assert np.array_equal(np.asarray(row.xp_flux, dtype="<f4"), np.frombuffer(flux, "<f4"))
        assert (pd.isna(row.xp_feature_flags) and fflags is None) or row.xp_feature_flags == fflags
    assert int(frame["FEH"].notna().sum()) == sum(1 for v in db_rows.values() if v[0] is not None)

    # cone searches: exactly the source_ids xpdb cone returns
    for ra0, dec0, radius in CONES:
        expected = {r[0] for r in cone(ra0, dec0, radius, model_id=mid, max_rows=100_000).rows}
        got = set(cat.cone_search(ra0, dec0, radius * 3600).compute()["source_id"].tolist())
        assert got == expected, (ra0, dec0, radius)
        assert expected or radius == 0.1  # the last cone is outside the sky: both empty

    # cross-match with a second HATS catalogue of perturbed positions of a subset
    rng = np.random.default_rng(5)
    pick = rng.choice(N, 300, replace=False)
    ra_o = ra[pick] + rng.normal(0, 0.15, 300) / 3600 / np.cos(np.radians(dec[pick]))
    dec_o = dec[pick] + rng.normal(0, 0.15, 300) / 3600
    other = _import_other(tmp_path, ra_o, dec_o, np.arange(300, dtype=np.int64) + 7_000_000)
    matched = other.crossmatch(cat, radius_arcsec=1.0, n_neighbors=1, suffixes=("", "_xpdb"),
                               suffix_method="overlapping_columns").compute()
    got_pairs = set(zip(matched["oid"].tolist(), matched["source_id"].tolist()))
    # expected: the nearest database source within 1 arcsec of each perturbed position
    idx, sep, _ = SkyCoord(ra_o * u.deg, dec_o * u.deg).match_to_catalog_sky(SkyCoord(ra * u.deg, dec * u.deg))
    expected_pairs = {(7_000_000 + k, int(ids[j])) for k, (j, s) in enumerate(zip(idx, sep.arcsec)) if s <= 1.0}
    assert len(expected_pairs) >= 295 and got_pairs == expected_pairs
    assert np.allclose(sorted(matched["_dist_arcsec"]), sorted(s for s in sep.arcsec if s <= 1.0), atol=1e-6)


def test_cli_export_hats_without_model_and_refuses_an_existing_folder(db_url, tmp_path):
    from xpdb.cli.main import app

    lines = ["source_id,ra,dec,phot_g_mean_mag"] + [f"{10 + i},{10 + i * 0.01},{-5 + i * 0.01},12.0" for i in range(50)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    ingest_file(db_url, "sources", tmp_path / "s.csv")
    runner = CliRunner()
    out = tmp_path / "h"
    first = runner.invoke(app, ["export", "hats", "--out", str(out), "--margin", "0", "--highest-order", "5"])
    assert first.exit_code == 0, first.output
    assert "50 sources without predictions" in " ".join(first.output.split())
    frame = lsdb.read_hats(out, columns="all").compute()
    assert sorted(frame["source_id"]) == list(range(10, 60)) and "FEH" not in frame.columns
    again = runner.invoke(app, ["export", "hats", "--out", str(out)])
    assert again.exit_code == 1 and "already exists; remove it" in " ".join(again.output.split())


def test_missing_hats_packages_give_the_install_command(monkeypatch, tmp_path):
    import sys

    from xpdb.query.hats import HatsExportError, export_hats

    monkeypatch.setitem(sys.modules, "hats_import", None)  # as if not installed
    with pytest.raises(HatsExportError, match=r"pip install 'xpdb\[hats\]'"):
        export_hats("postgresql:///never-reached", tmp_path / "out")
    assert not (tmp_path / "out").exists()
