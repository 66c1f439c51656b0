"""A synthetic sky in the Gaia archive's formats, with known truth (for demos, tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path


def synthetic_sky(n: int, out: str | Path, *, seed: int = 42, format: str = "fits") -> dict[str, Path]:
    """Write a synthetic sky of ``n`` stars into ``out``; returns table name -> file path.

    Tables: ``gaia_source``, ``xp_continuous`` (the archive's layout), ``labels_pastel`` and
    ``labels_saga`` (PASTEL- and SAGA-like labels), ``members_<cluster>``, ``clusters`` and
    ``truth``. Every file says in its metadata that it is synthetic. The same seed gives
    the same sky.

    Examples
    --------
    >>> import xpdb
    >>> paths = xpdb.synthetic_sky(300, "sky", seed=7)             # doctest: +SKIP
    >>> sorted(paths)[:3]                                          # doctest: +SKIP
    ['clusters', 'gaia_source', 'labels_pastel']
    """
    from xpdb.synth.sky import make_sky
    from xpdb.synth.writers import write_sky

    return write_sky(make_sky(n, seed=seed), Path(out), format)
