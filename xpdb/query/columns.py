"""Units, UCDs and descriptions of the columns users query, for every output format.

Names follow the Gaia archive (gaia_source) and the paper's Table 2 (catalogue). The
VOTable writer, FITS headers, ECSV metadata and TAP_SCHEMA all read this one table.
Abundances are in dex, which no unit standard (FITS, VOUnit, CDS) knows: their unit is
left empty and the description says "[dex]".
"""

from __future__ import annotations

from dataclasses import dataclass

from xpdb.flags import PredictionFlag, column_description


@dataclass(frozen=True)
class ColumnMeta:
    unit: str | None
    ucd: str | None
    description: str


COLUMNS: dict[str, ColumnMeta] = {
    "source_id": ColumnMeta(None, "meta.id;meta.main", "Unique source identifier (unique within a particular Data Release)"),
    "ra": ColumnMeta("deg", "pos.eq.ra;meta.main", "Right ascension (ICRS, epoch J2016.0)"),
    "dec": ColumnMeta("deg", "pos.eq.dec;meta.main", "Declination (ICRS, epoch J2016.0)"),
    "ra_error": ColumnMeta("mas", "stat.error;pos.eq.ra", "Standard error of right ascension"),
    "dec_error": ColumnMeta("mas", "stat.error;pos.eq.dec", "Standard error of declination"),
    "l": ColumnMeta("deg", "pos.galactic.lon", "Galactic longitude"),
    "b": ColumnMeta("deg", "pos.galactic.lat", "Galactic latitude"),
    "gl": ColumnMeta("deg", "pos.galactic.lon", "Galactic longitude"),
    "gb": ColumnMeta("deg", "pos.galactic.lat", "Galactic latitude"),
    "parallax": ColumnMeta("mas", "pos.parallax.trig", "Parallax"),
    "parallax_error": ColumnMeta("mas", "stat.error;pos.parallax.trig", "Standard error of parallax"),
    "pmra": ColumnMeta("mas.yr**-1", "pos.pm;pos.eq.ra", "Proper motion in right ascension (times cos dec)"),
    "pmra_error": ColumnMeta("mas.yr**-1", "stat.error;pos.pm;pos.eq.ra", "Standard error of pmra"),
    "pmdec": ColumnMeta("mas.yr**-1", "pos.pm;pos.eq.dec", "Proper motion in declination"),
    "pmdec_error": ColumnMeta("mas.yr**-1", "stat.error;pos.pm;pos.eq.dec", "Standard error of pmdec"),
    "ruwe": ColumnMeta(None, "stat.error", "Renormalised unit weight error"),
    "phot_g_mean_mag": ColumnMeta("mag", "phot.mag;em.opt", "G-band mean magnitude (Vega)"),
    "phot_bp_mean_mag": ColumnMeta("mag", "phot.mag;em.opt.B", "Integrated BP mean magnitude (Vega)"),
    "phot_rp_mean_mag": ColumnMeta("mag", "phot.mag;em.opt.R", "Integrated RP mean magnitude (Vega)"),
    "bp_rp": ColumnMeta("mag", "phot.color;em.opt.B;em.opt.R", "BP - RP colour"),
    "phot_bp_rp_excess_factor": ColumnMeta(None, "arith.factor;phot.flux;em.opt", "BP/RP excess factor"),
    "radial_velocity": ColumnMeta("km.s**-1", "spect.dopplerVeloc.opt", "Radial velocity"),
    "ebv": ColumnMeta("mag", "phys.absorption;em.opt.B", "E(B-V) from the Schlegel, Finkbeiner & Davis (1998) map"),
    "rgeo": ColumnMeta("pc", "pos.distance", "Geometric distance r_med_geo of Bailer-Jones et al. (2021)"),
    "bp_rp0": ColumnMeta("mag", "phot.color;em.opt.B;em.opt.R", "Dereddened (intrinsic) BP - RP colour"),
    "g0": ColumnMeta("mag", "phot.mag;em.opt", "Dereddened G magnitude"),
    "m_g": ColumnMeta("mag", "phys.magAbs;em.opt", "Absolute G magnitude (dereddened; distance rgeo or 1/parallax)"),
    "distance_pc": ColumnMeta("pc", "pos.distance", "Distance used: rgeo, else 1000/parallax"),
    "z_kpc": ColumnMeta("kpc", "pos.cartesian.z", "Distance from the Galactic plane"),
    "feh": ColumnMeta(None, "phys.abund.Fe", "[Fe/H] from UA-CSNet [dex]"),
    "feh_err": ColumnMeta(None, "stat.error;phys.abund.Fe", "Predicted [Fe/H] uncertainty (UA-CSNet; use for G < 15) [dex]"),
    "flags": ColumnMeta(None, "meta.code.qual", "Prediction " + column_description(PredictionFlag)),
    "feh_ref": ColumnMeta(None, "phys.abund.Fe", "Reference [Fe/H] of the cross-matched catalogue [dex]"),
    "feh_ref_err": ColumnMeta(None, "stat.error;phys.abund.Fe", "Uncertainty of the reference [Fe/H] [dex]"),
    "delta_feh": ColumnMeta(None, "arith.diff;phys.abund.Fe", "FEH - FEH_ref [dex]"),
    "dist": ColumnMeta("deg", "pos.angDistance", "Angular distance from the cone centre"),
    "dist_arcsec": ColumnMeta("arcsec", "pos.angDistance", "Angular distance from the cone centre"),
    "membership_probability": ColumnMeta(None, "stat.probability", "Cluster membership probability"),
    "model": ColumnMeta(None, "meta.id", "Model NAME:VERSION"),
    "model_id": ColumnMeta(None, "meta.id", "Model identifier in xpdb.model"),
    # stellar labels (xpdb.label_prediction, the catalogue's transformer columns)
    "teff": ColumnMeta("K", "phys.temperature.effective", "Effective temperature [K]"),
    "teff_err": ColumnMeta("K", "stat.error;phys.temperature.effective", "Uncertainty of the effective temperature [K]"),
    "logg": ColumnMeta(None, "phys.gravity", "Surface gravity log g [dex, cgs]"),
    "logg_err": ColumnMeta(None, "stat.error;phys.gravity", "Uncertainty of log g [dex]"),
    "m_h": ColumnMeta(None, "phys.abund.Z", "Metallicity [M/H] [dex]"),
    "m_h_err": ColumnMeta(None, "stat.error;phys.abund.Z", "Uncertainty of [M/H] [dex]"),
    "alpha_m": ColumnMeta(None, "phys.abund", "[alpha/M] [dex]"),
    "alpha_m_err": ColumnMeta(None, "stat.error;phys.abund", "Uncertainty of [alpha/M] [dex]"),
}

# The paper's Table 2 names (exports use them).
TABLE2 = (("source_id", "source_id"), ("gl", "gl"), ("gb", "gb"), ("ra", "ra"), ("dec", "dec"),
          ("phot_bp_rp_excess_factor", "phot_bp_rp_excess_factor"), ("bp_rp0", "BP_RP0"),
          ("phot_g_mean_mag", "PHOT_G_MEAN_MAG"), ("m_g", "M_G"), ("ebv", "EBV"), ("rgeo", "rgeo"),
          ("feh", "FEH"), ("feh_err", "FEH_err"))


def meta(name: str) -> ColumnMeta | None:
    return COLUMNS.get(name.lower())
