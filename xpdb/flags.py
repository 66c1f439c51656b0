"""Every bit flag xpdb stores, defined once, with the descriptions that documentation uses.

``FeatureFlag`` bits live in ``xp_features.flags`` (why a star's model input could not be
computed, or is suspect); ``PredictionFlag`` bits in ``prediction.flags`` (where a
prediction should be used with care). ``describe`` turns a stored integer into words;
the README tables and the TAP column descriptions are generated from ``DESCRIPTIONS``.
"""

from __future__ import annotations

from enum import IntFlag


class FeatureFlag(IntFlag):
    """Bits of ``xp_features.flags``."""

    MISSING_EBV = 1  # no E(B-V): skipped, never dereddened with zero
    MISSING_BAND = 2  # BP or RP absent
    NOT_COMPUTABLE = 4  # some pixel or the normalisation is not finite/positive
    CORRECTION_RANGE = 8  # outside the validity range of the systematic correction
    NO_SPECTRUM = 16  # no XP spectrum stored for the source


class PredictionFlag(IntFlag):
    """Bits of ``prediction.flags``."""

    OUTSIDE_COLOUR = 1
    FAINT = 2
    HIGH_EXTINCTION = 4
    MISSING_BAND = 8
    NO_FEATURES = 16
    NOT_GIANT = 32


# Keyed by class, then name: members of the two kinds share values (and IntFlag members hash as ints).
DESCRIPTIONS: dict[type[IntFlag], dict[str, str]] = {
    FeatureFlag: {
        "MISSING_EBV": "missing E(B-V): the spectrum cannot be dereddened",
        "MISSING_BAND": "BP or RP spectrum missing",
        "NOT_COMPUTABLE": "features not computable (a pixel or the normalisation is not finite and positive)",
        "CORRECTION_RANGE": "outside the validity range of the systematic-error correction",
        "NO_SPECTRUM": "no XP spectrum stored",
    },
    PredictionFlag: {
        "OUTSIDE_COLOUR": "outside the model's colour domain 0.7 < (BP-RP)0 < 1.9",
        "FAINT": "G > 15: FEH_err not recommended (section 4.1)",
        "HIGH_EXTINCTION": "E(B-V) >= 0.5: outside the final sample (section 4.3)",
        "MISSING_BAND": "BP or RP spectrum missing",
        "NO_FEATURES": "features not computable: no prediction",
        "NOT_GIANT": "fails the six giant_sample cuts (section 2.3)",
    },
}


def description(bit: IntFlag) -> str:
    """What one flag bit means."""
    return DESCRIPTIONS[type(bit)][bit.name]


# Feature flags that make the input unusable: the model is not run on such a star.
UNUSABLE_FEATURES = FeatureFlag.MISSING_EBV | FeatureFlag.NOT_COMPUTABLE | FeatureFlag.NO_SPECTRUM


def describe(value: int, kind: type[IntFlag] = PredictionFlag) -> list[str]:
    """The descriptions of the bits set in ``value``.

    Examples
    --------
    >>> describe(2 | 4)
    ['G > 15: FEH_err not recommended (section 4.1)', 'E(B-V) >= 0.5: outside the final sample (section 4.3)']
    """
    return [description(bit) for bit in kind if int(value) & int(bit)]


def column_description(kind: type[IntFlag]) -> str:
    """One line for a ``flags`` column: every bit with its meaning."""
    return "bit flags: " + "; ".join(f"{int(bit)} = {description(bit)}" for bit in kind)


def markdown_table(kind: type[IntFlag]) -> str:
    """The README's table of one flag kind."""
    rows = [f"| {int(bit)} | `{bit.name}` | {description(bit)} |" for bit in kind]
    return "\n".join(["| bit | name | meaning |", "|---|---|---|", *rows])
