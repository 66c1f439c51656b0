"""The one column resolver every loader uses: schema column names to a file's own column names.

A schema column is found in a file by an explicit mapping (``{"feh": "FE_H"}``, CLI
``--map feh=FE_H``), else by its own name, else by the first of its known aliases
(VizieR and survey spellings), comparing names case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from xpdb.errors import ColumnError


def resolve(file_columns: Iterable[str], wanted: Mapping[str, Iterable[str]],
            mapping: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """(schema column -> file column, the file's columns nobody asked for).

    ``wanted`` maps each schema column to its aliases (its own name is always tried
    first). A mapping to a column the file lacks, or of a schema column that does not
    exist, is a ``ColumnError`` naming both.

    Examples
    --------
    >>> resolve(["SOURCE_ID", "Fe_H", "x"], {"source_id": (), "feh": ("fe_h",)})
    ({'source_id': 'SOURCE_ID', 'feh': 'Fe_H'}, ['x'])
    """
    columns = list(file_columns)
    lower = {c.lower(): c for c in columns}
    mapping = {k.lower(): v for k, v in (mapping or {}).items()}
    unknown = set(mapping) - set(wanted)
    if unknown:
        raise ColumnError(f"column mapping: unknown schema column(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(wanted)}")
    resolved: dict[str, str] = {}
    for target, aliases in wanted.items():
        if target in mapping:
            if mapping[target].lower() not in lower:
                raise ColumnError(f"column mapping {target}={mapping[target]} (CLI: --map): the file has no column "
                                  f"{mapping[target]!r}")
            resolved[target] = lower[mapping[target].lower()]
            continue
        for candidate in (target, *aliases):
            if candidate.lower() in lower:
                resolved[target] = lower[candidate.lower()]
                break
    used = {v.lower() for v in resolved.values()}
    return resolved, [c for c in columns if c.lower() not in used]
