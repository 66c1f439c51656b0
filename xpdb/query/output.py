"""Writing query results: a terminal table, CSV, ECSV, VOTable, FITS or Parquet.

Results arrive as astropy Tables whose columns carry units, descriptions and UCDs (see
``xpdb.query.columns``); each format keeps them where it can: ECSV and Parquet metadata,
FITS TUNIT/TCOMM, VOTable unit/ucd/DESCRIPTION.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from xpdb.errors import OutputError

FORMATS = ("table", "csv", "ecsv", "votable", "fits", "parquet")
BINARY_FORMATS = ("fits", "parquet")


def to_votable(table, *, binary: bool = True, info: dict | None = None):
    """An astropy VOTableFile for ``table`` with units, UCDs and descriptions on its FIELDs."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info

    vot = from_table(table)
    resource = vot.resources[0]
    vt = resource.tables[0]
    for field_ in vt.fields:
        col = table[field_.name]
        ucd = col.meta.get("ucd") if hasattr(col, "meta") else None
        if ucd:
            field_.ucd = ucd
        if col.description:
            field_.description = col.description
    vt.format = "binary2" if binary else "tabledata"
    for name, value in (info or {}).items():
        resource.infos.append(Info(name=name, value=str(value)))
    return vot


def write_table(table, fmt: str, out: Path | None, *, info: dict | None = None) -> None:
    """Write ``table`` in ``fmt`` to ``out`` (or stdout for the text formats)."""
    if fmt not in FORMATS:
        raise OutputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if out is None and fmt in BINARY_FORMATS:
        raise OutputError(f"the {fmt} format needs an output file (CLI: --out FILE)")
    if fmt == "table":
        from rich.console import Console
        from rich.table import Table as RichTable

        rich = RichTable(show_lines=False)
        for name in table.colnames:
            unit = table[name].unit
            rich.add_column(f"{name}" + (f"\n[{unit}]" if unit else ""), justify="right", no_wrap=True)
        for row in table:
            rich.add_row(*[_cell(v) for v in row])
        target = open(out, "w") if out else None
        try:
            console = Console(file=target or sys.stdout)
            if target or not console.is_terminal:  # a file or a pipe: never cut values to 80 columns
                console = Console(file=target or sys.stdout, width=100 + 24 * len(table.colnames))
            console.print(rich)
        finally:
            if target:
                target.close()
        return
    for key, value in (info or {}).items():
        table.meta[key] = value
    if fmt == "votable":
        vot = to_votable(table, binary=False, info=info)
        if out is None:
            buf = io.BytesIO()
            vot.to_xml(buf)
            sys.stdout.write(buf.getvalue().decode())
        else:
            vot.to_xml(str(out))
        return
    astropy_format = {"csv": "ascii.csv", "ecsv": "ascii.ecsv", "fits": "fits", "parquet": "parquet"}[fmt]
    if out is None:
        buf = io.StringIO()
        table.write(buf, format=astropy_format)
        sys.stdout.write(buf.getvalue())
    else:
        kwargs = {"serialize_meta": True} if fmt == "parquet" else {}
        table.write(out, format=astropy_format, overwrite=True, **kwargs)


def _cell(value) -> str:
    import numpy as np

    if value is np.ma.masked or value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)
