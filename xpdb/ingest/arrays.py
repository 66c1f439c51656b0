"""Array-valued columns as the archive writes them, turned into dense 2-D numpy arrays.

The Gaia archive writes XP arrays as bracketed text in CSV (``"(1.0, 2.0, ...)"``), as
JSON lists in ECSV (``"[1.0, null, ...]"``), as variable-length arrays in FITS and
VOTable and as list columns in Parquet; the flat layout has one column per element
(``bp_coeff_0``..). Every form ends as ``DenseArrays``: values padded with NaN, the used
length of each row, and which rows are NULL. Lists are unpacked with Arrow compute kernels
and text is parsed by ``textnumbers``; both release the GIL, so columns can be parsed in
parallel threads.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xpdb.xp.batch import DenseArrays


def _from_list_array(arr: pa.Array, dtype) -> DenseArrays:
    """Arrow (fixed-size) list array -> dense numpy, with nested NULLs as NaN."""
    n = len(arr)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_fixed_size_list(arr.type):
        arr = arr.cast(pa.list_(arr.type.value_type))
    null = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int32)
    flat = pc.list_flatten(arr)
    flat = flat.cast(pa.from_numpy_dtype(np.dtype(dtype)), safe=False)
    flat_np = np.asarray(flat.fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=dtype)
    width = int(lengths.max()) if n else 0
    if n and np.all(lengths[~null] == width) and np.all(lengths[null] == 0):
        values = np.full((n, width), np.nan, dtype=dtype)
        values[~null] = flat_np.reshape(-1, width) if width else values[~null]
    else:
        values = np.full((n, width), np.nan, dtype=dtype)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        rows = np.repeat(np.arange(n), lengths)
        cols = np.arange(len(flat_np)) - np.repeat(starts, lengths)
        values[rows, cols] = flat_np
    return DenseArrays(values, lengths, null)


def _from_text_array(arr: pa.Array, dtype) -> DenseArrays:
    """Bracketed text (``(a, b)``, ``[a, null]``) -> dense numpy; bad rows are reported, not fatal."""
    from xpdb.ingest.textnumbers import parse_number_lists  # numba: only when there is text to parse

    values, lengths, null, bad = parse_number_lists(arr, dtype)
    return DenseArrays(values, lengths, null, bad)


def dense_arrays(arr: pa.Array | pa.ChunkedArray, dtype) -> DenseArrays:
    """Any array-valued Arrow column (list, fixed-size list, or bracketed text) as ``DenseArrays``."""
    typ = arr.type
    if any(check(typ) for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary,
                                    pa.types.is_large_binary)):
        return _from_text_array(arr, dtype)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return _from_list_array(arr, dtype)
    if pa.types.is_null(typ):
        return DenseArrays.empty(len(arr), dtype)
    raise TypeError(f"not an array column (Arrow type {typ})")


def dense_from_flat(columns: list[pa.Array], dtype) -> DenseArrays:
    """The flat layout: one scalar column per element (``bp_coeff_0``, ``bp_coeff_1``, ...).

    A row whose elements are all NULL is a NULL array (a missing band).
    """
    n = len(columns[0]) if columns else 0
    values = np.empty((n, len(columns)), dtype=dtype)
    nulls = np.zeros((n, len(columns)), dtype=bool)
    for j, col in enumerate(columns):
        col = col.cast(pa.from_numpy_dtype(np.dtype(dtype)), safe=False)
        nulls[:, j] = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        values[:, j] = np.asarray(col.fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=dtype)
    null = nulls.all(axis=1) if len(columns) else np.ones(n, dtype=bool)
    lengths = np.where(null, 0, len(columns)).astype(np.int32)
    return DenseArrays(values, lengths, null)
