"""xpdb: a PostgreSQL-backed catalogue service for Gaia DR3 BP/RP (XP) spectra.

Stages, one folder each, data flowing one way:
config -> db -> ingest -> xp -> models -> jobs -> query -> service/report.

The public surface:

* ``xpdb.connect(url=None)`` -> ``Database``: ingest, features, train, infer, cone, query,
  sql, export, report, models (see ``xpdb.api``);
* ``xpdb.calibrate(data)`` and ``xpdb.features(data, ebv)``: the spectra math, with no
  database (importing them loads neither a database driver nor the file parsers);
* ``xpdb.synthetic_sky(n, out)``: a synthetic sky in the archive's formats, with known truth;
* ``xpdb.XpdbError``: the base of every error xpdb raises on purpose (``xpdb.errors``).

Names are imported on first use, so ``import xpdb`` is cheap.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xpdb")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

_EXPORTS = {
    "connect": ("xpdb.api", "connect"),
    "Database": ("xpdb.api", "Database"),
    "Job": ("xpdb.api", "Job"),
    "Model": ("xpdb.api", "Model"),
    "calibrate": ("xpdb.xp.calibrate", "calibrate"),
    "features": ("xpdb.xp.features", "features_of"),
    "Preprocessing": ("xpdb.xp.features", "Preprocessing"),
    "synthetic_sky": ("xpdb.synth", "synthetic_sky"),
    "XpdbError": ("xpdb.errors", "XpdbError"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        module, attribute = _EXPORTS[name]
        value = getattr(import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xpdb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
