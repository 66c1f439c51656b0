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
