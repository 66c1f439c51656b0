"""Write sampled XP spectra in the Gaia archive's XP_SAMPLED layouts (for the tests).

The layouts follow real archive files (astroquery's test downloads and GaiaXPy's copies
of RAW files): RAW is one row per source with 343-sample arrays, written as
``"(a, b, ...)"`` in CSV, JSON lists in ECSV (``subtype: float32[null]``), ``PE()``
variable-length arrays in FITS and ``arraysize="*"`` in VOTable; INDIVIDUAL is one
343-row file per source with a wavelength column and the source_id in a column (CSV),
the metadata (ECSV), a PARAM (VOTable) or the ``SOURCEID`` keyword (FITS).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

UNIT = "W.m**-2.nm**-1"


def _f32(x) -> str:
    return np.format_float_scientific(np.float32(x), unique=True, exp_digits=2).replace("e", "E")


def write_raw(path: Path, fmt: str, source_id, solution_id, ra, dec, flux, flux_error) -> Path:
    """The RAW (DATAMODEL_GAIA) layout in one of csv, ecsv, fits, votable."""
    n = len(source_id)
    flux = np.asarray(flux, np.float32)
    flux_error = np.asarray(flux_error, np.float32)
    if fmt == "csv":
        lines = ["source_id,solution_id,ra,dec,flux,flux_error"]
        for i in range(n):
            f = "(" + ", ".join(_f32(v) for v in flux[i]) + ")"
            e = "(" + ", ".join(_f32(v) for v in flux_error[i]) + ")"
            lines.append(f'{source_id[i]},{solution_id[i]},{ra[i]!r},{dec[i]!r},"{f}","{e}"')
        path.write_text("\n".join(lines) + "\n")
        return path
    if fmt == "ecsv":
        header = [
            "# %ECSV 1.0", "# ---", "# delimiter: ','", "# datatype:",
            "# - {name: source_id, datatype: int64}", "# - {name: solution_id, datatype: int64}",
            "# - {name: ra, unit: deg, datatype: float64}", "# - {name: dec, unit: deg, datatype: float64}",
            f"# - {{name: flux, unit: {UNIT}, datatype: string, subtype: 'float32[null]'}}",
            f"# - {{name: flux_error, unit: {UNIT}, datatype: string, subtype: 'float32[null]'}}",
            "# schema: astropy-2.0", "source_id,solution_id,ra,dec,flux,flux_error"]
        rows = []
        for i in range(n):
            f = "[" + ",".join(_f32(v) for v in flux[i]) + "]"
            e = "[" + ",".join(_f32(v) for v in flux_error[i]) + "]"
            rows.append(f'{source_id[i]},{solution_id[i]},{ra[i]!r},{dec[i]!r},"{f}","{e}"')
        path.write_text("\n".join(header + rows) + "\n")
        return path
    if fmt == "fits":
        from astropy.io import fits

        cols = [fits.Column("source_id", "K", array=np.asarray(source_id, np.int64)),
                fits.Column("solution_id", "K", array=np.asarray(solution_id, np.int64)),
                fits.Column("ra", "D", unit="deg", array=np.asarray(ra)),
                fits.Column("dec", "D", unit="deg", array=np.asarray(dec)),
                fits.Column("flux", "PE()", unit=UNIT, array=np.array(list(flux), dtype=object)),
                fits.Column("flux_error", "PE()", unit=UNIT, array=np.array(list(flux_error), dtype=object))]
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path, overwrite=True)
        return path
    if fmt == "votable":
        _write_votable(path, source_id, solution_id, ra, dec, flux, flux_error)
        return path
    raise ValueError(fmt)


def _write_votable(path: Path, source_id, solution_id, ra, dec, flux, flux_error) -> None:
    """BINARY2 with variable-length float arrays, as the archive writes RAW VOTables."""
    from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile

    vot = VOTableFile()
    resource = Resource()
    vot.resources.append(resource)
    table = TableElement(vot)
    resource.tables.append(table)
    table.fields.extend([
        Field(vot, name="source_id", datatype="long"), Field(vot, name="solution_id", datatype="long"),
        Field(vot, name="ra", datatype="double", unit="deg"), Field(vot, name="dec", datatype="double", unit="deg"),
        Field(vot, name="flux", datatype="float", arraysize="*", unit=UNIT),
        Field(vot, name="flux_error", datatype="float", arraysize="*", unit=UNIT)])
    n = len(source_id)
    table.create_arrays(n)
    for i in range(n):
        table.array[i] = (source_id[i], solution_id[i], ra[i], dec[i],
                          np.ma.masked_array(np.asarray(flux[i], np.float32), mask=False),
                          np.ma.masked_array(np.asarray(flux_error[i], np.float32), mask=False))
    table.format = "binary2"
    vot.to_xml(str(path))


def write_individual(folder: Path, fmt: str, source_id, solution_id, ra, dec, flux, flux_error,
                     wavelength) -> list[Path]:
    """The INDIVIDUAL (DATAMODEL_STANDARD) layout: one file per source, named as the archive names them."""
    paths = []
    ext = {"csv": "csv", "ecsv": "ecsv", "fits": "fits", "votable": "xml"}[fmt]
    for i in range(len(source_id)):
        path = folder / f"XP_SAMPLED-Gaia DR3 {source_id[i]}.{ext}"
        f = np.asarray(flux[i], np.float32)
        e = np.asarray(flux_error[i], np.float32)
        if fmt == "csv":
            lines = ["source_id,solution_id,ra,dec,wavelength,flux,flux_error"]
            lines += [f"{source_id[i]},{solution_id[i]},{ra[i]!r},{dec[i]!r},{w!r},{_f32(a)},{_f32(b)}"
                      for w, a, b in zip(wavelength, f, e)]
            path.write_text("\n".join(lines) + "\n")
        elif fmt == "ecsv":
            from astropy import units as u
            from astropy.table import Table

            t = Table({"wavelength": np.asarray(wavelength) * u.nm, "flux": f * u.Unit("W m-2 nm-1"),
                       "flux_error": e * u.Unit("W m-2 nm-1")})
            t.meta.update({"source_id": int(source_id[i]), "solution_id": int(solution_id[i]),
                           "spatialLocation": [float(ra[i]), float(dec[i])], "DataModel": "Spectrum 1.01"})
            t.write(path, format="ascii.ecsv")
        elif fmt == "fits":
            from astropy.io import fits

            hdu = fits.BinTableHDU.from_columns([
                fits.Column("wavelength", "D", unit="nm", array=np.asarray(wavelength)),
                fits.Column("flux", "E", unit=UNIT, array=f), fits.Column("flux_error", "E", unit=UNIT, array=e)])
            hdu.header["SOURCEID"] = str(source_id[i])
            hdu.header["SOLUTION"] = str(solution_id[i])
            hdu.header["POS"] = f"({ra[i]!r}, {dec[i]!r})"
            fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
        else:
            from astropy.io.votable.tree import Field, Param, Resource, TableElement, VOTableFile

            vot = VOTableFile()
            resource = Resource()
            vot.resources.append(resource)
            table = TableElement(vot)
            resource.tables.append(table)
            table.params.extend([Param(vot, name="source_id", datatype="long", value=int(source_id[i])),
                                 Param(vot, name="solution_id", datatype="long", value=int(solution_id[i]))])
            table.fields.extend([Field(vot, name="wavelength", datatype="double", unit="nm"),
                                 Field(vot, name="flux", datatype="float", unit=UNIT),
                                 Field(vot, name="flux_error", datatype="float", unit=UNIT)])
            table.create_arrays(len(wavelength))
            for j in range(len(wavelength)):
                table.array[j] = (wavelength[j], f[j], e[j])
            vot.to_xml(str(path))
        paths.append(path)
    return paths

