"""xpdb: a PostgreSQL-backed catalogue service for Gaia DR3 BP/RP (XP) spectra.

Stages, one folder each, data flowing one way:
config -> db -> ingest -> xp -> models -> jobs -> query -> service/report.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xpdb")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
