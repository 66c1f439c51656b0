"""xpdb's own VOTable reader (BINARY2, BINARY, TABLEDATA) gives what astropy's parser gives."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from astropy.io.votable import from_table, parse_single_table
from astropy.table import MaskedColumn, Table

from xpdb.ingest.votable_fast import Unsupported, read_votable


def _document(fmt: str, n: int = 7) -> bytes:
    rng = np.random.default_rng(1)
    table = Table({"source_id": np.arange(n, dtype=np.int64) * 3, "g": rng.normal(size=n).astype(np.float32),
                   "n": MaskedColumn(np.arange(n, dtype=np.int16), mask=(np.arange(n) == 2) & (fmt != "binary")),
                   "name": [f"star {i}" for i in range(n)]})
    cells = np.empty(n, dtype=object)
    lengths = [55, 55, 0, 55, 3, 55, 55][:n]
    cells[:] = [np.ma.masked_array(rng.normal(size=k), mask=np.zeros(k, dtype=bool)) for k in lengths]
    table["coefficients"] = cells
    vot = from_table(table)
    vot.get_first_table().format = fmt
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BINARY cannot mark the masked short NULL: astropy warns
        vot.to_xml(out)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["binary2", "binary", "tabledata"])
def test_same_values_as_astropy(fmt):
    data = _document(fmt)
    ours, _ = read_votable(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy warns about the masked short it wrote without a null value
        theirs = parse_single_table(io.BytesIO(data)).to_table()
    assert ours.column("source_id").to_pylist() == list(theirs["source_id"])
    assert np.allclose(ours.column("g").to_numpy(), theirs["g"])
    assert ours.column("name").to_pylist() == list(theirs["name"])
    if fmt != "binary":  # BINARY has no NULL bitmap: the masked short is written as its value
        assert ours.column("n").to_pylist()[2] is None
    for got, want in zip(ours.column("coefficients").to_pylist(), theirs["coefficients"]):
        if len(want) == 0:
            assert got is None
        else:
            assert np.allclose(got, np.asarray(want))


def test_unsupported_and_truncated():
    table = Table({"flag": np.array([True, False])})  # written as datatype="bit": astropy reads those
    out = io.BytesIO()
    from_table(table).to_xml(out)
    with pytest.raises(Unsupported):
        read_votable(out.getvalue())
    data = _document("binary2")
    start = data.index(b"<STREAM")
    stream_start = data.index(b">", start) + 1
    cut = data[:stream_start] + data[stream_start:stream_start + 400] + data[data.index(b"</STREAM>"):]
    with pytest.raises(ValueError, match="truncated"):
        read_votable(cut)


def test_tabledata_with_entities_and_odd_cells_goes_through_the_xml_parser():
    data = _document("tabledata").replace(b"<TD>star 1</TD>", b"<TD>star &amp; 1</TD>")
    ours, _ = read_votable(data)
    assert ours.column("name").to_pylist()[1] == "star & 1"
    data = _document("tabledata").replace(b"<TD>star 1</TD>", b"<TD/>")
    ours, _ = read_votable(data)
    assert ours.column("name").to_pylist()[1] is None and ours.column("name").to_pylist()[3] == "star 3"
