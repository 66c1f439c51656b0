"""Validation as the paper does it: which stars each reference catalogue and each cluster is judged on.

Reference catalogues (section 4.2). Each catalogue has a ``validation_selection`` (a column of
``xpdb.reference_catalog``), one of ``xpdb.selection.SELECTIONS``:

* ``giant_sample`` (the six cuts of section 2.3) for SAGA and PASTEL, the paper's test and
  training sets (section 4.2.1);
* ``survey_validation`` (the first three cuts and E(B-V) < 0.5, section 4.2.2) for LAMOST,
  SDSS/SEGUE, the external Gaia catalogues and any other survey - the default;
* ``spectroscopic_giants`` for the APOGEE library's labels (no parallaxes: the colour domain and
  the catalogue's logg < 3.6);

set on ingest by name (``default_validation_selection``) and overridable
(``xpdb ingest labels --validation-selection``). ``xpdb.xm_validation`` marks every
cross-matched star ``in_scope`` by its catalogue's selection; ``validation_summary`` and the
report's figures use exactly those stars, over all G (scope ``all``, the paper's SAGA figure of
0.22 dex is over all 649 stars) and at G < 15 (scope ``g<15``).

Clusters (section 4.2.3). Members count when they pass the cluster's ``selection`` (the first
three cuts, ``final_sample``), its colour cut ``bp_rp0_min`` ((BP-RP)0 > 1.05 for NGC 6791, to
keep giants only), its ``min_membership_probability`` (0.5 unless set) and carry none of the
prediction flags in ``CLUSTER_EXCLUDED_FLAGS``; ``xpdb.xm_cluster_sample`` marks them
``in_sample`` and ``cluster_summary`` fits a Gaussian with 3-sigma clipping to their [Fe/H]
(``xpdb.models.evaluate.clipped_gaussian_fit``, the SQL function ``xpdb.clipped_gaussian_fit``).

The SQL of the views and functions below is rendered from these definitions and frozen into
migration 0015_validation (``python -m xpdb.validation`` prints it); tests check that the database's
objects still equal what this module renders.
"""

from __future__ import annotations

import re

from xpdb import selection
from xpdb.flags import PredictionFlag

VALIDATION_SELECTIONS = ("giant_sample", "survey_validation", "spectroscopic_giants", "final_sample")
CLUSTER_SELECTIONS = ("final_sample", "giant_sample", "survey_validation", "model_domain")  # no label conditions
DEFAULT_VALIDATION_SELECTION = "survey_validation"
# catalogue-name prefixes (normalised: lower case, letters and digits) -> validation selection
VALIDATION_BY_NAME = (("pastel", "giant_sample"), ("saga", "giant_sample"), ("apogee", "spectroscopic_giants"))

CLUSTER_SELECTION = "final_sample"  # the paper's membership selection: the first three cuts (section 4.2.3)
DEFAULT_MIN_MEMBERSHIP_PROBABILITY = 0.5
CLUSTER_COLOUR_CUTS = {"ngc6791": 1.05}  # cluster key -> (BP-RP)0 lower limit: "a pure sample of giant stars"
CLUSTER_EXCLUDED_FLAGS = PredictionFlag.MISSING_BAND | PredictionFlag.NO_FEATURES
CLIP_NSIGMA = 3.0

# Messier clusters by their NGC (or other) names, so that "M5" and "NGC 5904" are one cluster.
MESSIER = {
    2: "ngc7089", 3: "ngc5272", 4: "ngc6121", 5: "ngc5904", 6: "ngc6405", 7: "ngc6475", 9: "ngc6333",
    10: "ngc6254", 11: "ngc6705", 12: "ngc6218", 13: "ngc6205", 14: "ngc6402", 15: "ngc7078", 18: "ngc6613",
    19: "ngc6273", 21: "ngc6531", 22: "ngc6656", 23: "ngc6494", 25: "ic4725", 26: "ngc6694", 28: "ngc6626",
    29: "ngc6913", 30: "ngc7099", 34: "ngc1039", 35: "ngc2168", 36: "ngc1960", 37: "ngc2099", 38: "ngc1912",
    39: "ngc7092", 41: "ngc2287", 44: "ngc2632", 45: "melotte22", 46: "ngc2437", 47: "ngc2422", 48: "ngc2548",
    50: "ngc2323", 52: "ngc7654", 53: "ngc5024", 54: "ngc6715", 55: "ngc6809", 56: "ngc6779", 62: "ngc6266",
    67: "ngc2682", 68: "ngc4590", 69: "ngc6637", 70: "ngc6681", 71: "ngc6838", 72: "ngc6981", 75: "ngc6864",
    79: "ngc1904", 80: "ngc6093", 92: "ngc6341", 93: "ngc2447", 103: "ngc581", 107: "ngc6171",
}


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def default_validation_selection(catalog: str) -> str:
    """The paper's validation selection for a catalogue called ``catalog`` (see the module docstring)."""
    key = _normalise(catalog)
    for prefix, name in VALIDATION_BY_NAME:
        if key.startswith(prefix):
            return name
    return DEFAULT_VALIDATION_SELECTION


def cluster_key(name: str) -> str:
    """A cluster's canonical key: lower case letters and digits, Messier numbers as NGC names (M5 -> ngc5904)."""
    key = _normalise(name)
    m = re.fullmatch(r"(?:m|messier)0*(\d+)", key)
    if m and int(m.group(1)) in MESSIER:
        return MESSIER[int(m.group(1))]
    return key


def default_bp_rp0_min(cluster: str) -> float | None:
    """The cluster's (BP-RP)0 lower limit, or None (NGC 6791: 1.05, section 4.2.3)."""
    return CLUSTER_COLOUR_CUTS.get(cluster_key(cluster))


# -- SQL rendered from the definitions above (frozen in migration 0015_validation) -----------------------

def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def default_validation_selection_function_sql() -> str:
    cases = "\n".join(f"         WHEN k LIKE {_quote(prefix + '%')} THEN {_quote(name)}" for prefix, name in VALIDATION_BY_NAME)
    return (
        "CREATE OR REPLACE FUNCTION xpdb.default_validation_selection(catalog text) RETURNS text\n"
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$\n"
        "  SELECT CASE\n" + cases + f"\n         ELSE {_quote(DEFAULT_VALIDATION_SELECTION)} END\n"
        "  FROM (SELECT regexp_replace(lower(catalog), '[^a-z0-9]', '', 'g') AS k) AS n $$")


def cluster_key_function_sql() -> str:
    pairs = ", ".join(f"({n}, {_quote(v)})" for n, v in sorted(MESSIER.items()))
    return (
        "CREATE OR REPLACE FUNCTION xpdb.cluster_key(name text) RETURNS text\n"
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$\n"
        "  SELECT coalesce((SELECT m.ngc FROM (VALUES " + pairs + ") AS m(number, ngc)\n"
        "                   WHERE k ~ '^(m|messier)0*[0-9]+$' AND m.number = substring(k FROM '[0-9]+$')::integer),\n"
        "                  k)\n"
        "  FROM (SELECT regexp_replace(lower(name), '[^a-z0-9]', '', 'g') AS k) AS n $$")


def default_bp_rp0_min_function_sql() -> str:
    cases = "\n".join(f"         WHEN {_quote(k)} THEN {v!r}::real" for k, v in sorted(CLUSTER_COLOUR_CUTS.items()))
    return (
        "CREATE OR REPLACE FUNCTION xpdb.default_bp_rp0_min(cluster text) RETURNS real\n"
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$\n"
        "  SELECT CASE xpdb.cluster_key(cluster)\n" + cases + "\n         END $$")


def _scope_case(column: str, names: tuple[str, ...], photometry: str, label: str | None = None) -> str:
    """CASE on a selection-name column: true when the star passes that selection (false when unknown)."""
    lines = []
    for name in names:
        sel = selection.get(name)
        condition = sel.where(photometry)
        if sel.label_condition:
            if label is None:
                raise ValueError(f"selection {name} needs the reference label")
            condition += " AND " + sel.label_condition.replace("l.", f"{label}.")
        lines.append(f"        WHEN {_quote(name)} THEN coalesce({condition}, false)")
    return f"CASE {column}\n" + "\n".join(lines) + "\n        ELSE false END"


def _cuts_case(column: str, names: tuple[str, ...]) -> str:
    lines = [f"        WHEN {_quote(name)} THEN {_quote(selection.get(name).short)}" for name in names]
    return f"CASE {column}\n" + "\n".join(lines) + "\n    END"


def xm_validation_view_sql() -> str:
    """``xpdb.xm_validation``: xm_reference with each catalogue's validation selection and ``in_scope``."""
    return (
        "CREATE OR REPLACE VIEW xpdb.xm_validation AS\n"
        "SELECT x.*, rc.validation_selection AS selection,\n"
        f"    {_cuts_case('rc.validation_selection', VALIDATION_SELECTIONS)} AS cuts,\n"
        f"    {_scope_case('rc.validation_selection', VALIDATION_SELECTIONS, 'p', 'l')} AS in_scope\n"
        "FROM xpdb.xm_reference AS x\n"
        "JOIN xpdb.reference_catalog AS rc ON rc.name = x.catalog\n"
        "JOIN xpdb.reference_label AS l ON l.label_id = x.label_id\n"
        "LEFT JOIN xpdb.source_photometry AS p ON p.source_id = x.source_id")


def xm_cluster_sample_view_sql() -> str:
    """``xpdb.xm_cluster_sample``: cluster members with predictions and whether each counts (``in_sample``)."""
    flags = int(CLUSTER_EXCLUDED_FLAGS)
    cuts = _scope_case("cl.selection", CLUSTER_SELECTIONS, "p").replace("\n", "\n    ")
    described = _cuts_case("cl.selection", CLUSTER_SELECTIONS).replace("\n", "\n    ")
    return (
        "CREATE OR REPLACE VIEW xpdb.xm_cluster_sample AS\n"
        "SELECT y.*, y.passes_selection AND y.passes_colour AND y.passes_probability AND y.passes_flags AS in_sample\n"
        "FROM (\n"
        "  SELECT x.*, cl.selection, cl.bp_rp0_min, cl.min_membership_probability,\n"
        f"    {described} AS cuts,\n"
        f"    {cuts} AS passes_selection,\n"
        "    (cl.bp_rp0_min IS NULL OR coalesce(x.bp_rp0 > cl.bp_rp0_min, false)) AS passes_colour,\n"
        "    (cl.min_membership_probability IS NULL OR x.membership_probability IS NULL\n"
        "     OR x.membership_probability >= cl.min_membership_probability) AS passes_probability,\n"
        f"    (coalesce(x.flags, 0) & {flags} = 0 AND x.feh IS NOT NULL) AS passes_flags\n"
        "  FROM xpdb.xm_cluster_members AS x\n"
        "  JOIN xpdb.cluster AS cl ON cl.name = x.cluster\n"
        "  LEFT JOIN xpdb.source_photometry AS p ON p.source_id = x.source_id\n"
        ") AS y")


def rendered() -> dict[str, str]:
    """Every statement of migration 0015_validation that is rendered from Python, by object name."""
    return {"default_validation_selection": default_validation_selection_function_sql(),
            "cluster_key": cluster_key_function_sql(),
            "default_bp_rp0_min": default_bp_rp0_min_function_sql(),
            "xm_validation": xm_validation_view_sql(),
            "xm_cluster_sample": xm_cluster_sample_view_sql()}


if __name__ == "__main__":  # print the rendered SQL (what migration 0015_validation froze)
    for name, sql in rendered().items():
        print(f"-- {name}: rendered by xpdb.validation\n{sql};\n")
