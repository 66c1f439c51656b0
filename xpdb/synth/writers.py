"""Write synthetic tables in the Gaia archive's formats, each saying it is synthetic.

Array columns are written as the archive does: variable-length arrays in FITS,
bracketed text in CSV (``"(1.0, 2.0)"``) and JSON lists in ECSV, list columns in
Parquet. The synthetic flag is in each format's metadata: FITS header keywords,
the ECSV YAML header, Parquet key-value metadata, and a leading ``#`` comment in CSV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FORMATS = ("fits", "parquet", "ecsv", "csv")
SUFFIX = {"fits": ".fits", "parquet": ".parquet", "ecsv": ".ecsv", "csv": ".csv"}


def text_arrays(table: pa.Table, open_: str, close: str) -> pa.Table:
    """List columns as the archive's bracketed text, e.g. ``(1.0, 2.0)`` with ``open_='('``."""
    out = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_list(col.type):
            text = pc.binary_join(col.cast(pa.list_(pa.string())), ", ")
            col = pc.binary_join_element_wise(open_, text, close, "")
        out[name] = col
    return pa.table(out)


def _astropy(table: pa.Table, meta: dict):
    from astropy.table import Table

    columns = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_list(col.type):
            dtype = col.type.value_type.to_pandas_dtype()
            cells = np.empty(len(col), dtype=object)
            offsets = col.offsets.to_numpy()
            values = col.flatten().to_numpy(zero_copy_only=False).astype(dtype)
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            for i in range(len(col)):
                cells[i] = values[offsets[i]:offsets[i + 1]] if valid[i] else np.empty(0, dtype=dtype)
            columns[name] = cells
        elif pa.types.is_string(col.type):
            columns[name] = np.asarray(col.fill_null("").to_pylist(), dtype=str)
        else:
            arr = col.to_numpy(zero_copy_only=False)
            if col.null_count:
                arr = np.ma.masked_array(col.fill_null(0).to_numpy(zero_copy_only=False),
                                         mask=col.is_null().to_numpy(zero_copy_only=False))
            columns[name] = arr
    t = Table(columns)
    t.meta.update(meta)
    return t


def write_table(table: pa.Table, path: Path, fmt: str, meta: dict) -> Path:
    """Write one table in ``fmt`` with ``meta`` (which includes ``synthetic: true``)."""
    path = Path(path)
    if fmt == "parquet":
        schema_meta = {k.encode(): str(v).encode() for k, v in meta.items()}
        pq.write_table(table.replace_schema_metadata(schema_meta), path)
    elif fmt == "csv":
        comment = "# " + "; ".join(f"{k}={v}" for k, v in meta.items()) + "\n"
        body = path.with_suffix(".body")
        pacsv.write_csv(text_arrays(table, "(", ")"), body)
        with open(path, "w") as fh:
            fh.write(comment)
            with open(body) as src:
                for block in iter(lambda: src.read(1 << 22), ""):
                    fh.write(block)
        body.unlink()
    elif fmt == "ecsv":
        head = _astropy(table.slice(0, 1), meta)
        tmp = path.with_suffix(".head.ecsv")
        head.write(tmp, format="ascii.ecsv", delimiter=",", overwrite=True)
        header = [line for line in tmp.read_text().splitlines() if line.startswith("#")]
        tmp.unlink()
        body = path.with_suffix(".body")
        pacsv.write_csv(text_arrays(table, "[", "]"), body)
        with open(path, "w") as fh:
            fh.write("\n".join(header) + "\n")
            with open(body) as src:
                for block in iter(lambda: src.read(1 << 22), ""):
                    fh.write(block)
        body.unlink()
    elif fmt == "fits":
        from astropy.io import fits

        t = _astropy(table, {})
        hdu = fits.table_to_hdu(t)
        hdu.header["XPDBSYN"] = (True, "synthetic data made by xpdb synth, not Gaia")
        if "seed" in meta:
            hdu.header["XPDBSEED"] = (int(meta["seed"]), "xpdb synth random seed")
        hdu.header["COMMENT"] = "SYNTHETIC: not real Gaia data (xpdb synth)"
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return path


README = """Synthetic Gaia-like data made by `xpdb synth` (seed {seed}). NOT real Gaia data.

gaia_source{ext}      gaia_source columns (+ ebv = E(B-V)_SFD-like, r_med_geo)
xp_continuous{ext}    XP_CONTINUOUS in the archive layout, with correlations
truth{ext}            the generating parameters: Teff, logg, [Fe/H], [alpha/Fe], [C/Fe], carbon_enhanced,
                      true E(B-V) and the catalogue's (ebv_sfd, sfd_scale), R(V), the blue systematic,
                      the label catalogue's offset and error, cluster membership, distance, (BP-RP)_0
labels_pastel{ext}    PASTEL-like reference labels (training; unbiased, 0.07 dex)
labels_saga{ext}      SAGA-like reference labels (testing; no source in common with PASTEL;
                      +0.10 dex offset and larger errors below [Fe/H] = -2)
members_<cluster>{ext} member lists of five synthetic clusters (with field contaminants);
                      clusters{ext} their reference [Fe/H] and the true mean

Load with:
  xpdb ingest sources gaia_source{ext}
  xpdb ingest xp xp_continuous{ext}
  xpdb ingest labels --catalog PASTEL labels_pastel{ext}
  xpdb ingest labels --catalog SAGA labels_saga{ext}
  xpdb ingest members --cluster NGC6397 --feh-ref -2.02 members_NGC6397{ext}   (see clusters{ext})
"""


def write_sky(sky, out: Path, fmt: str = "fits") -> dict[str, Path]:
    """Write every table of a synthetic sky into ``out``; returns name -> path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ext = SUFFIX[fmt]
    meta = {"synthetic": True, "generator": "xpdb synth", "seed": sky.seed,
            "note": "synthetic sky with known truth; not real Gaia data"}
    tables = {"gaia_source": sky.gaia_source, "xp_continuous": sky.xp_continuous, "truth": sky.truth,
              "labels_pastel": sky.labels["pastel"], "labels_saga": sky.labels["saga"], "clusters": sky.clusters}
    tables.update({f"members_{name}": t for name, t in sky.members.items()})
    paths = {name: write_table(table, out / f"{name}{ext}", fmt, meta) for name, table in tables.items()}
    (out / "README.txt").write_text(README.format(seed=sky.seed, ext=ext))
    return paths
