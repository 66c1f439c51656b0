"""The XP data model in numpy: a batch of XP_CONTINUOUS rows as dense per-band arrays.

``XpBatch`` is what the spectra math (``xpdb.xp.calibrate``, ``xpdb.xp.photometry``,
``xpdb.xp.features``) works on, whatever the rows came from: a file, an astropy Table, a
DataFrame or the database. It lives here, not in ``ingest``, so that the calculations
import neither a database driver nor the file parsers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BANDS = ("bp", "rp")
BAND_SCALARS: dict[str, str] = {
    "basis_function_id": "int2",
    "degrees_of_freedom": "int2",
    "n_parameters": "int2",
    "n_measurements": "int2",
    "n_rejected_measurements": "int2",
    "standard_deviation": "float4",
    "chi_squared": "float4",
    "n_relevant_bases": "int2",
    "relative_shrinking": "float4",
}
BAND_ARRAYS: dict[str, type] = {
    "coefficients": np.float64,
    "coefficient_errors": np.float32,
    "coefficient_correlations": np.float32,
}


@dataclass
class Scalar:
    values: np.ndarray
    null: np.ndarray


@dataclass
class DenseArrays:
    """A batch of 1-D arrays, one per row, as a padded 2-D array."""

    values: np.ndarray  # (n, width), NaN beyond each row's length
    lengths: np.ndarray  # (n,) int, 0 for NULL rows
    null: np.ndarray  # (n,) bool
    bad_rows: dict[int, str] = field(default_factory=dict)  # row index -> why it could not be parsed

    @property
    def width(self) -> int:
        return self.values.shape[1]

    @classmethod
    def empty(cls, n: int, dtype) -> DenseArrays:
        return cls(np.empty((n, 0), dtype=dtype), np.zeros(n, dtype=np.int32), np.ones(n, dtype=bool))



@dataclass
class XpBatch:
    """A validated-or-not batch of XP_CONTINUOUS rows in dense numpy form."""

    n: int
    source_id: Scalar
    solution_id: Scalar
    scalars: dict[str, Scalar] = field(default_factory=dict)  # "bp_n_parameters" -> Scalar
    arrays: dict[str, DenseArrays] = field(default_factory=dict)  # "bp_coefficients" -> DenseArrays

    def band_present(self, band: str) -> np.ndarray:
        return ~self.arrays[f"{band}_coefficients"].null

    @classmethod
    def from_arrays(cls, source_id, *, bp_coefficients=None, bp_coefficient_errors=None,
                    bp_coefficient_correlations=None, rp_coefficients=None, rp_coefficient_errors=None,
                    rp_coefficient_correlations=None, bp_standard_deviation=None, rp_standard_deviation=None,
                    bp_n_relevant_bases=None, rp_n_relevant_bases=None) -> XpBatch:
        """A batch from numpy arrays of shape (n, k) per band (None: the band is missing).

        Correlations are the archive's packed strictly-lower triangle, k(k-1)/2 per row;
        without them the errors are taken as uncorrelated.

        Examples
        --------
        >>> import numpy as np
        >>> b = XpBatch.from_arrays([1], bp_coefficients=np.ones((1, 55)), bp_coefficient_errors=np.ones((1, 55)))
        >>> b.n, b.band_present("bp").tolist(), b.band_present("rp").tolist()
        (1, [True], [False])
        """
        ids = np.atleast_1d(np.asarray(source_id, dtype=np.int64))
        n = len(ids)
        out = cls(n=n, source_id=Scalar(ids, np.zeros(n, dtype=bool)),
                  solution_id=Scalar(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)))
        given = {"bp_coefficients": bp_coefficients, "bp_coefficient_errors": bp_coefficient_errors,
                 "bp_coefficient_correlations": bp_coefficient_correlations, "rp_coefficients": rp_coefficients,
                 "rp_coefficient_errors": rp_coefficient_errors,
                 "rp_coefficient_correlations": rp_coefficient_correlations}
        for key, dtype in ((f"{b}_{name}", dt) for b in BANDS for name, dt in BAND_ARRAYS.items()):
            value = given[key]
            if value is None:
                out.arrays[key] = DenseArrays.empty(n, dtype)
                continue
            values = np.asarray(value, dtype=dtype).reshape(n, -1)
            finite = np.isfinite(values).any(axis=1)
            out.arrays[key] = DenseArrays(values, np.where(finite, values.shape[1], 0).astype(np.int32), ~finite)
        scalars = {"bp_standard_deviation": bp_standard_deviation, "rp_standard_deviation": rp_standard_deviation,
                   "bp_n_relevant_bases": bp_n_relevant_bases, "rp_n_relevant_bases": rp_n_relevant_bases}
        for band in BANDS:
            for name, kind in BAND_SCALARS.items():
                key = f"{band}_{name}"
                dtype = np.float32 if kind.startswith("float") else np.int16
                value = scalars.get(key)
                if key == f"{band}_n_parameters":
                    value = out.arrays[f"{band}_coefficients"].lengths
                if value is None:
                    out.scalars[key] = Scalar(np.zeros(n, dtype=dtype), np.ones(n, dtype=bool))
                else:
                    out.scalars[key] = Scalar(np.asarray(value, dtype=dtype).reshape(n), np.zeros(n, dtype=bool))
        return out
