"""The notebook-style example (examples/pipeline.py) runs end to end with only ``import xpdb``."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import psycopg
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pipeline.py"


@pytest.mark.slow
def test_the_example_runs_the_whole_pipeline(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XPDB_EXAMPLE_DIR", str(tmp_path))
    assert os.environ["XPDB_DATABASE_URL"] == db_url
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "exported" in out and (tmp_path / "catalog.fits").exists()
    with psycopg.connect(db_url) as conn:
        kinds = {r[0] for r in conn.execute("SELECT kind FROM xpdb.model")}
        predictions = conn.execute("SELECT count(*), count(feh) FROM xpdb.prediction").fetchone()
        done = conn.execute("SELECT state FROM xpdb.job").fetchone()[0]
    assert kinds == {"uacsnet", "ridge"} and done == "done" and predictions[1] > 0


def test_the_public_names_are_documented():
    import xpdb

    for name in xpdb.__all__:
        if name == "__version__":
            continue
        obj = getattr(xpdb, name)
        assert obj.__doc__ and len(obj.__doc__.strip()) > 20, name
    for method in ("ingest", "features", "train", "infer", "cone", "query", "sql", "export", "report", "models",
                   "compare"):
        doc = getattr(xpdb.Database, method).__doc__
        assert doc and doc.strip(), method


def test_the_readme_flag_tables_are_the_flags_module():
    """Flags are defined once (xpdb.flags); the README's tables must be what it generates."""
    from xpdb import flags

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for kind in (flags.FeatureFlag, flags.PredictionFlag):
        assert flags.markdown_table(kind) in readme, f"regenerate the README table of {kind.__name__}"
