"""The sample selections, defined once: the paper's cuts and the named samples built from them.

Each cut is an SQL condition on the columns of ``xpdb.source_photometry`` (dereddened
photometry per source). The views ``giant_sample``, ``final_sample`` and
``model_domain`` are these selections (migrations freeze the SQL that ``view_sql``
renders; a test checks that the database's views still equal it). Training, inference
jobs, validation scopes and prediction flags all read the cuts from here.

The APOGEE library has no parallaxes, so cuts 2b-4 (absolute magnitude, |Z|, latitude)
cannot be applied to it: real giants are selected by the model's colour domain and the
spectroscopic surface gravity, ``logg < 3.6`` (``spectroscopic_giants``).
"""

from __future__ import annotations

from dataclasses import dataclass

from xpdb.errors import CatalogNotFound


@dataclass(frozen=True)
class Cut:
    name: str
    sql: str  # a condition on source_photometry's columns, alias-free, without a top-level OR
    description: str


CUTS: dict[str, Cut] = {c.name: c for c in (
    Cut("excess_factor", "phot_bp_rp_excess_factor < 1.15 + 0.19 * bp_rp0 ^ 2",
        "1. reliable BP/RP fluxes: phot_bp_rp_excess_factor < 1.15 + 0.19 (BP-RP)0^2 (Xu et al. 2022)"),
    Cut("colour_domain", "bp_rp0 > 0.7 AND bp_rp0 < 1.9", "2a. the model's colour domain 0.7 < (BP-RP)0 < 1.9"),
    Cut("giant_branch", "m_g < -(bp_rp0 ^ 2) + 6.5 * bp_rp0 - 1.8",
        "2b. red giants: M_G < -(BP-RP)0^2 + 6.5 (BP-RP)0 - 1.8 (Xu et al. 2022)"),
    Cut("off_plane", "abs(z_kpc) > 0.2", "3. |Z| > 0.2 kpc from the Galactic plane"),
    Cut("high_latitude", "abs(b) > 20", "4. |b| > 20 deg"),
    Cut("low_extinction", "ebv < 0.2", "5. E(B-V)_SFD < 0.2"),
    Cut("not_too_bright", "g0 > 6", "6. G_0 > 6"),
    Cut("survey_extinction", "ebv < 0.5", "E(B-V)_SFD < 0.5 (final sample and survey validation, sections 4.2.2, 4.3)"),
)}


@dataclass(frozen=True)
class Selection:
    """A named sample: cuts on ``source_photometry``, and optionally a condition on the labels."""

    name: str
    cuts: tuple[str, ...]
    description: str
    label_condition: str | None = None  # on reference_label (alias l) of the catalogue in use
    view: bool = True  # a view of this name exists in the database
    short: str = ""  # the cuts in a few words (validation_summary.cuts)

    def where(self, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        parts = [_qualify(CUTS[c].sql, prefix) for c in self.cuts]
        return " AND ".join(parts) if parts else "true"  # cuts are conjunctions: no parentheses needed


SELECTIONS: dict[str, Selection] = {s.name: s for s in (
    Selection("giant_sample", ("excess_factor", "colour_domain", "giant_branch", "off_plane", "high_latitude",
                               "low_extinction", "not_too_bright"),
              "the six cuts of section 2.3 (the paper's training and test sets)",
              short="cuts 1-6 of section 2.3"),
    Selection("final_sample", ("excess_factor", "colour_domain", "giant_branch", "off_plane"),
              "the first three cuts: the paper's catalogue selection (section 4.3)",
              short="cuts 1-3 of section 2.3"),
    Selection("model_domain", ("colour_domain",), "the model's colour domain 0.7 < (BP-RP)0 < 1.9",
              short="0.7 < (BP-RP)0 < 1.9"),
    Selection("survey_validation", ("excess_factor", "colour_domain", "giant_branch", "off_plane",
                                    "survey_extinction"),
              "the first three cuts and E(B-V) < 0.5: how the paper compares with LAMOST, SDSS and other "
              "surveys (section 4.2.2)", view=False, short="cuts 1-3 of section 2.3 and E(B-V) < 0.5"),
    Selection("spectroscopic_giants", ("colour_domain",),
              "real giants without parallaxes: 0.7 < (BP-RP)0 < 1.9 and the catalogue's logg < 3.6",
              label_condition="l.logg < 3.6", view=False, short="0.7 < (BP-RP)0 < 1.9 and logg_ref < 3.6"),
)}

_COLUMNS = ("phot_bp_rp_excess_factor", "bp_rp0", "m_g", "z_kpc", "ebv", "g0", "b")


def _qualify(sql: str, prefix: str) -> str:
    """Prefix the source_photometry column names of a cut (``b`` only as a whole word)."""
    if not prefix:
        return sql
    import re

    return re.sub(r"\b(" + "|".join(_COLUMNS) + r")\b", lambda m: prefix + m.group(1), sql)


def get(name: str) -> Selection:
    """The selection called ``name``, or a clear error listing the known ones."""
    try:
        return SELECTIONS[name]
    except KeyError:
        raise CatalogNotFound(f"unknown selection {name!r}; known: {', '.join(SELECTIONS)}") from None


def view_sql(name: str) -> str:
    """The CREATE VIEW statement of a selection view (what migrations freeze)."""
    sel = get(name)
    return (f"CREATE OR REPLACE VIEW xpdb.{sel.name} AS\nSELECT p.* FROM xpdb.source_photometry AS p\n"
            f"WHERE {sel.where('p')}")
