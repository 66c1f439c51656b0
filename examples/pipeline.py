# %% [markdown]
# # xpdb from Python: the whole pipeline on a small synthetic sky
#
# Everything below uses only `import xpdb`. It runs as a script (`python examples/pipeline.py`)
# or cell by cell in a notebook. With no `XPDB_DATABASE_URL`, `xpdb.connect()` starts its own
# PostgreSQL under `XPDB_HOME` (default `./.xpdb`).

# %%
import os
import tempfile
from pathlib import Path

import xpdb

work = Path(os.environ.get("XPDB_EXAMPLE_DIR") or tempfile.mkdtemp(prefix="xpdb-example-"))
db = xpdb.connect()
print(db)

# %% [markdown]
# A synthetic sky in the Gaia archive's formats (every file says it is synthetic), then the
# archive's own loaders: sources, XP_CONTINUOUS, reference labels, cluster members.

# %%
paths = xpdb.synthetic_sky(1500, work / "sky", seed=11)
for report in db.ingest("sources", paths["gaia_source"]) + db.ingest("xp", paths["xp_continuous"]):
    print(report.path, report.status, report.rows_loaded)
db.ingest("labels", paths["labels_pastel"], catalog="PASTEL")
db.ingest("labels", paths["labels_saga"], catalog="SAGA")
db.ingest("members", paths["members_NGC5904"], cluster="NGC5904", feh_ref=-1.18)
print(db.ingest_runs()["run_id", "kind", "target", "status", "rows_loaded"])

# %% [markdown]
# The 60-pixel features, UA-CSNet trained on the PASTEL-like labels and tested on the
# SAGA-like ones (a short schedule here), and the ridge baseline on the same stars.

# %%
run = db.features()
print(f"features: {run.processed} computed, {run.usable} usable")
model = db.train("uacsnet", labels="PASTEL", test_labels="SAGA", epochs=60, patience=60, ablation=False)
ridge = db.train("ridge", labels="PASTEL", test_labels="SAGA")
print(db.compare([model.ref, ridge.ref]))

# %% [markdown]
# A leased inference job (one local worker), then queries: a cone search around NGC 5904,
# ADQL over the catalogue, and the catalogue exported as FITS.

# %%
job = db.infer(model.ref, selection="final_sample", workers=1)
print("job", job.job_id, job.state, job.progress())
cone = db.cone(229.6384, 2.0810, "10arcmin")
print(cone["source_id", "phot_g_mean_mag", "feh", "feh_err"][:5])
poor = db.query("SELECT TOP 5 source_id, feh, feh_err FROM catalog ORDER BY feh")
print(poor)
rows = db.export(work / "catalog.fits")
print(f"exported {rows} rows to {work / 'catalog.fits'}")

# %% [markdown]
# The pure functions need no database: calibrated spectra and features from the same file.

# %%
spectra = xpdb.calibrate(paths["xp_continuous"])
features = xpdb.features(spectra, [0.05] * len(spectra.source_id))
print(spectra.flux.shape, features.flux.shape, int(features.usable.sum()))
