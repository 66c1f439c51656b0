"""XP_CONTINUOUS input from anything: a file path, an astropy Table, a pandas DataFrame.

Everything becomes an ``XpBatch`` (``xpdb.xp.batch``): dense per-band arrays of
coefficients, errors and packed correlations, which the spectra math works on. The file
readers are imported only when a file or table has to be read, so the calculations stay
free of the ingest machinery (the database side is ``xpdb.ingest.xp.fetch_xp``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xpdb.xp.batch import XpBatch


def _pandas_to_arrow(df):
    """A DataFrame in GaiaXPy's input layout (arrays as numpy arrays, lists or bracketed strings)."""
    import pyarrow as pa

    columns = {}
    for name in df.columns:
        series = df[name]
        if series.dtype == object:
            sample = next((v for v in series if v is not None and not (isinstance(v, float) and np.isnan(v))), None)
            if isinstance(sample, (np.ndarray, list, tuple)):
                columns[name] = pa.array([None if v is None or (isinstance(v, float) and np.isnan(v))
                                          else np.asarray(v, dtype=float).ravel() for v in series],
                                         type=pa.list_(pa.float64()))
                continue
            if isinstance(sample, str):
                columns[name] = pa.array([None if not isinstance(v, str) else v for v in series], type=pa.string())
                continue
        columns[name] = pa.array(series.to_numpy(), from_pandas=True)
    return pa.table(columns)


def to_batch(data) -> XpBatch:
    """Convert any supported XP_CONTINUOUS input to an ``XpBatch``."""
    if isinstance(data, XpBatch):
        return data
    import pyarrow as pa

    from xpdb.ingest.readers import TableReader, _astropy_column_to_arrow
    from xpdb.ingest.xp import from_arrow

    if isinstance(data, (str, Path)):
        reader = TableReader(data, chunk_rows=1 << 30)
        try:
            tables = [c.table for c in reader.chunks()]
        finally:
            reader.close()
        return from_arrow(pa.concat_tables(tables) if len(tables) > 1 else tables[0])
    if isinstance(data, pa.Table):
        return from_arrow(data)
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return from_arrow(_pandas_to_arrow(data))
    except ImportError:  # pragma: no cover
        pass
    from astropy.table import Table

    if isinstance(data, Table):
        return from_arrow(pa.table([_astropy_column_to_arrow(data[n]) for n in data.colnames], names=data.colnames))
    raise TypeError(f"cannot read XP spectra from {type(data).__name__}; give a path, Table, DataFrame or XpBatch")
