"""Published cluster values: `xpdb ingest cluster-values`, matching by name (M5 = NGC 5904), cluster_summary.feh_paper."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from tests.conftest import real_path
from xpdb.cli.main import app
from xpdb.errors import IngestFileError
from xpdb.ingest.cluster_values import ingest_cluster_values


def test_the_shared_cluster_paper_csv(db_url, conn):
    path = real_path("clusters", "cluster_paper.csv")
    result = CliRunner().invoke(app, ["ingest", "cluster-values", str(path)])
    assert result.exit_code == 0, result.output
    rows = dict(conn.execute("SELECT cluster_key, (feh, feh_err, value_column, n_member) FROM xpdb.cluster_value "
                             "WHERE source = 'cluster_paper.csv'").fetchall())
    assert len(rows) == 42
    # the paper's value is feh_c (the only [Fe/H] of the file, on the APOGEE scale of section 4.2.3)
    assert rows["ngc5904"] == ("-1.19", "0.07", "feh_c", "24")
    assert rows["ngc2682"] == ("0", "0.01", "feh_c", "22")
    extra = conn.execute("SELECT extra FROM xpdb.cluster_value WHERE cluster_key = 'ngc5904'").fetchone()[0]
    assert extra["moh_kvxp"] == -1.26 and extra["moh_ap"] == -1.22
    again = CliRunner().invoke(app, ["ingest", "cluster-values", str(path)])
    assert again.exit_code == 0 and "already loaded" in again.output


def test_values_match_clusters_by_name_and_another_column(db_url, conn, tmp_path):
    path = tmp_path / "values.csv"
    path.write_text("Cluster,moh_ap,feh_c,e_feh_c\nM 5,-1.22,-1.19,0.07\nMessier 67,0.01,0.00,0.01\n,1,1,1\nM13,x,,0.1\n")
    report = ingest_cluster_values(db_url, path, value_column="moh_ap", source="test values")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (4, 2, 2)
    got = dict(conn.execute("SELECT cluster_key, feh FROM xpdb.cluster_value").fetchall())
    assert got == {"ngc5904": pytest.approx(-1.22), "ngc2682": pytest.approx(0.01)}
    assert conn.execute("SELECT feh_err FROM xpdb.cluster_value WHERE cluster_key = 'ngc5904'").fetchone()[0] is None
    assert conn.execute("SELECT xpdb.cluster_key('NGC 5904') = xpdb.cluster_key('m5')").fetchone()[0]
    with pytest.raises(IngestFileError, match="no column 'feh_x'"):
        ingest_cluster_values(db_url, path, value_column="feh_x", replace=True)


def test_cluster_and_catalogue_defaults_by_name(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO xpdb.cluster (name) VALUES ('NGC 6791'), ('NGC2682')")
        conn.execute("INSERT INTO xpdb.reference_catalog (name) VALUES ('SAGA'), ('PASTEL'), ('LAMOST DR9'), "
                     "('APOGEE'), ('SDSS')")
        clusters = dict(conn.execute("SELECT name, (selection, bp_rp0_min, min_membership_probability) "
                                     "FROM xpdb.cluster").fetchall())
        catalogues = dict(conn.execute("SELECT name, validation_selection FROM xpdb.reference_catalog").fetchall())
    assert clusters == {"NGC 6791": ("final_sample", "1.05", "0.5"), "NGC2682": ("final_sample", None, "0.5")}
    assert catalogues == {"SAGA": "giant_sample", "PASTEL": "giant_sample", "LAMOST DR9": "survey_validation",
                          "APOGEE": "spectroscopic_giants", "SDSS": "survey_validation"}


def test_validation_selection_set_on_ingest_and_kept(db_url, conn, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("source_id,feh\n11,-1.0\n12,-2.0\n")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "labels", "--catalog", "LAMOST", str(path)]).exit_code == 0
    selection = "SELECT validation_selection FROM xpdb.reference_catalog WHERE name = 'LAMOST'"
    assert conn.execute(selection).fetchone()[0] == "survey_validation"  # by name
    result = runner.invoke(app, ["ingest", "labels", "--catalog", "LAMOST", "--replace", "--validation-selection",
                                 "giant_sample", str(path)])
    assert result.exit_code == 0, result.output
    assert conn.execute(selection).fetchone()[0] == "giant_sample"  # overridden
    assert runner.invoke(app, ["ingest", "labels", "--catalog", "LAMOST", "--replace", str(path)]).exit_code == 0
    assert conn.execute(selection).fetchone()[0] == "giant_sample"  # kept on a reload without the option
    bad = runner.invoke(app, ["ingest", "labels", "--catalog", "LAMOST", "--replace", "--validation-selection",
                              "everything", str(path)])
    assert bad.exit_code != 0 and "unknown validation selection" in bad.output
