"""Calibrated sampled XP spectra of stored sources, computed on the fly (DataLink and ``xpdb spectrum``).

The stored XP_CONTINUOUS coefficients are calibrated to absolute flux on GaiaXPy's default
grid (336-1020 nm in 2 nm steps, :func:`xpdb.xp.calibrate.calibrate`); sources stored only
as XP_SAMPLED are served as stored. The result is one row per (source, wavelength), with
``flux`` and ``flux_error`` in W nm^-1 m^-2, so that every format (VOTable, FITS, ECSV,
CSV) can hold it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPECTRUM_FORMATS = {"votable": "application/x-votable+xml", "fits": "application/fits", "ecsv": "text/x-ecsv",
                    "csv": "text/csv"}


class NoSpectrum(LookupError):
    """None of the requested sources has a stored XP spectrum."""


def spectra_table(conn, source_ids: Sequence[int]):
    """The calibrated sampled spectra of ``source_ids`` as a long astropy Table (sources without one are left
    out; the ``missing`` meta lists them)."""
    from astropy import units as u
    from astropy.table import Table

    from xpdb.ingest.sampled import fetch_sampled
    from xpdb.ingest.xp import fetch_xp
    from xpdb.xp.calibrate import calibrate

    ids = np.unique(np.asarray([int(s) for s in source_ids], dtype=np.int64))
    batch = fetch_xp(conn, ids)
    spectra = calibrate(batch)
    have = np.isfinite(spectra.flux).any(axis=1)
    parts = []
    order = {int(s): i for i, s in enumerate(spectra.source_id)}
    rows = np.array([order[int(s)] for s in ids])
    flux, err, wl = spectra.flux[rows], spectra.flux_error[rows], spectra.wavelength
    present = have[rows]
    for k in np.flatnonzero(present):
        parts.append((ids[k], wl, flux[k], err[k], "continuous"))
    lacking = ids[~present]
    if len(lacking):
        stored = fetch_sampled(conn, lacking)
        for k in np.flatnonzero(stored.present):
            parts.append((lacking[k], stored.wavelength, stored.flux[k], stored.flux_error[k], "sampled"))
    if not parts:
        raise NoSpectrum(f"no XP spectrum is stored for source_id {', '.join(str(i) for i in ids[:10])}"
                         + (" ..." if len(ids) > 10 else ""))
    parts.sort(key=lambda p: p[0])
    table = Table({
        "source_id": np.concatenate([np.full(len(p[1]), p[0], dtype=np.int64) for p in parts]),
        "wavelength": np.concatenate([p[1] for p in parts]) * u.nm,
        "flux": np.concatenate([p[2] for p in parts]) * u.Unit("W nm-1 m-2"),
        "flux_error": np.concatenate([p[3] for p in parts]) * u.Unit("W nm-1 m-2"),
    })
    table["source_id"].description = "Gaia DR3 source_id"
    table["wavelength"].description = "Wavelength (GaiaXPy's default grid for calibrated continuous spectra)"
    table["flux"].description = "Calibrated flux, from the XP_CONTINUOUS coefficients (or the stored XP_SAMPLED)"
    table["flux_error"].description = "Error of the flux (full covariance where the coefficients have it)"
    for name, ucd in (("source_id", "meta.id;meta.main"), ("wavelength", "em.wl"),
                      ("flux", "phot.flux.density;em.wl"), ("flux_error", "stat.error;phot.flux.density;em.wl")):
        table[name].meta["ucd"] = ucd
    found = {int(p[0]) for p in parts}
    table.meta["origin"] = {str(p[0]): p[4] for p in parts}
    table.meta["missing"] = [int(i) for i in ids if int(i) not in found]
    return table


def write_spectra(table, fmt: str, out) -> None:
    """Write a spectra table as ``fmt`` (votable, fits, ecsv or csv) to a path or binary file object."""
    from xpdb.query.output import to_votable

    if fmt not in SPECTRUM_FORMATS:
        raise ValueError(f"unknown spectrum format {fmt!r}; choose one of {', '.join(SPECTRUM_FORMATS)}")
    if not hasattr(out, "write"):
        out = str(out)
    if fmt == "votable":
        to_votable(table, binary=True).to_xml(out)
    elif fmt == "fits":  # FITS headers take scalars only
        table = table.copy(copy_data=False)
        table.meta = {k: v for k, v in table.meta.items() if isinstance(v, (str, int, float, bool))}
        table.write(out, format="fits", **({"overwrite": True} if not hasattr(out, "write") else {}))
    else:
        import io

        text = io.StringIO()
        table.write(text, format="ascii.ecsv" if fmt == "ecsv" else "ascii.csv")
        if hasattr(out, "write"):
            out.write(text.getvalue().encode())
        else:
            with open(out, "w") as handle:
                handle.write(text.getvalue())
