"""The numpy BINARY2 writer of results gives documents that read back as astropy's do."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy import units as u
from astropy.io.votable import parse_single_table
from astropy.table import MaskedColumn, Table

from xpdb.service import documents
from xpdb.service.params import VOTABLE, VOTABLE_TD


def _table(n: int = 50) -> Table:
    rng = np.random.default_rng(2)
    table = Table({
        "source_id": np.arange(n, dtype=np.int64) * 7,
        "ra": rng.uniform(0, 360, n) * u.deg,
        "g": MaskedColumn(rng.normal(size=n).astype(np.float32), mask=np.arange(n) % 5 == 0),
        "k": MaskedColumn(np.arange(n, dtype=np.int32), mask=np.arange(n) % 7 == 0),
        "s": np.arange(n, dtype=np.int16),
        "ok": MaskedColumn(np.arange(n) % 2 == 0, mask=np.arange(n) % 11 == 0),
        # NULL text is "" underneath, as the service's results hold it
        "name": MaskedColumn([f"star {i}" * (i % 4) * (i % 9 != 0) for i in range(n)], mask=np.arange(n) % 9 == 0),
        "greek": [f"α{i}" for i in range(n)],
        "size": np.zeros(n),
    })
    table["ra"].description = "Right ascension"
    table["ra"].meta["ucd"] = "pos.eq.ra;meta.main"
    return table


@pytest.mark.parametrize("n", [0, 1, 50])
@pytest.mark.parametrize("fmt", [VOTABLE, VOTABLE_TD])
@pytest.mark.parametrize("overflow", [False, True])
def test_fast_writer_reads_back_like_astropy(monkeypatch, overflow, fmt, n):
    table = _table(n)
    fast = documents.result_document(table, fmt, overflow=overflow, infos={"QUERY": "SELECT <x>"},
                                     overflow_message="cut" if overflow else None)
    monkeypatch.setattr(documents, "FAST_WRITER", False)
    slow = documents.result_document(table, fmt, overflow=overflow, infos={"QUERY": "SELECT <x>"},
                                     overflow_message="cut" if overflow else None)
    ours, theirs = (parse_single_table(io.BytesIO(doc)) for doc in (fast, slow))
    for a, b in zip(ours.fields, theirs.fields):
        assert (a.name, a.datatype, a.arraysize, str(a.unit), a.ucd) == (b.name, b.datatype, b.arraysize, str(b.unit),
                                                                        b.ucd)
    got, want = ours.to_table(), theirs.to_table()
    for name in table.colnames:
        assert list(np.ma.getmaskarray(got[name])) == list(np.ma.getmaskarray(want[name])), name
        keep = ~np.ma.getmaskarray(want[name])
        assert list(np.asarray(got[name])[keep]) == list(np.asarray(want[name])[keep]), name
    assert (b'value="OVERFLOW"' in fast) == overflow and b"SELECT &lt;x&gt;" in fast


def _result(n: int):
    """A query result as run_readonly leaves it: numpy numbers, text as lists of str, NULL masks."""
    from xpdb.query.run import QueryResult

    rng = np.random.default_rng(4)
    every = np.arange(n)
    data = [np.arange(n, dtype=np.int64) * 1024, rng.uniform(0, 360, n), rng.normal(size=n).astype(np.float32),
            np.arange(n, dtype=np.int16), every % 2 == 0, [f"star <{i}> & co" for i in range(n)],
            [f"α{i}" for i in range(n)], np.zeros(n)]
    masks = [np.zeros(n, bool), np.zeros(n, bool), every % 5 == 0, every % 7 == 0, every % 11 == 0, every % 9 == 0,
             np.zeros(n, bool), np.zeros(n, bool)]
    data[2][masks[2]] = np.nan
    data[5] = ["" if m else v for v, m in zip(data[5], masks[5])]
    # column names of xpdb (units, UCDs, descriptions from xpdb.query.columns), one repeated
    return QueryResult(["source_id", "ra", "feh", "flags", "ok", "name", "greek", "ra"], [20, 701, 700, 21, 16, 25,
                                                                                          25, 701], data, masks)


@pytest.mark.parametrize("n", [0, 1, 40])
@pytest.mark.parametrize("fmt", [VOTABLE, VOTABLE_TD])
@pytest.mark.parametrize("overflow", [False, True])
def test_results_are_written_without_a_table_as_with_one(overflow, fmt, n):
    """The service writes a query's VOTable straight from its arrays: the bytes of writing its astropy Table."""
    result = _result(n)
    if overflow:
        result.overflow, result.overflow_reason, result.max_rows = True, "rows", n
    infos = {"QUERY": "SELECT <x>", "MAXREC": n}
    direct = documents.query_document(result, fmt, infos=infos, datalink="http://host/")
    through_table = documents.result_document(result.to_table(), fmt, overflow=result.overflow, infos=infos,
                                              overflow_message=result.overflow_message, datalink="http://host/")
    assert direct == through_table
    table = parse_single_table(io.BytesIO(direct)).to_table()
    assert table.colnames == ["source_id", "ra", "feh", "flags", "ok", "name", "greek", "ra_2"]
    assert str(table["ra"].unit) == "deg" and len(table) == n
    assert (b'value="OVERFLOW"' in direct) == overflow and b"datalink" in direct.lower()
