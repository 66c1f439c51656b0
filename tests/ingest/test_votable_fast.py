"""xpdb's own VOTable reader (BINARY2, BINARY, TABLEDATA) gives what astropy's parser gives."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from astropy.io.votable import from_table, parse_single_table
from astropy.table import MaskedColumn, Table

from tests.conftest import real_path
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


# -- real archive files, and the same rows in every VOTable serialization ------------------------------------
def _astropy_table(data: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_single_table(io.BytesIO(data)).to_table(use_names_over_ids=True)


def _assert_same_as_astropy(data: bytes) -> int:
    """Every column of xpdb's reading equals astropy's (values, NULLs, array lengths); the number of rows."""
    ours, _ = read_votable(data)
    theirs = _astropy_table(data)
    assert ours.column_names == list(theirs.colnames)
    for name in theirs.colnames:
        got = ours.column(name).to_pylist()
        want = theirs[name]
        assert len(got) == len(want), name
        for i, (g, w) in enumerate(zip(got, want)):
            if np.ma.is_masked(w) and np.ndim(w) == 0:
                assert g is None, (name, i)
            elif isinstance(g, list) or g is None:
                # at the FIELD's precision (astropy reads TABLEDATA float arrays as float64)
                dtype = ours.column(name).type.value_type.to_pandas_dtype()
                w = np.ma.filled(np.ma.asarray(w).astype(dtype), np.nan)
                if len(w) == 0:
                    assert g is None or g == [], (name, i)
                else:
                    np.testing.assert_array_equal(np.asarray(g, dtype=dtype), w, err_msg=f"{name} row {i}")
            elif isinstance(g, float):
                assert (np.isnan(g) and np.isnan(w)) or g == w, (name, i, g, w)
            else:
                assert g == w, (name, i, g, w)
    return ours.num_rows


@pytest.mark.real_data
@pytest.mark.parametrize("parts", [("gaiaxpy", "XP_CONTINUOUS_RAW.xml"),
                                   ("xp_chunk", "xp_continuous_combined_weiler2023_examples.vot")])
def test_real_archive_files_read_as_astropy_reads_them(parts):
    data = real_path(*parts).read_bytes()
    assert _assert_same_as_astropy(data) >= 2


@pytest.mark.real_data
@pytest.mark.parametrize("fmt", ["binary2", "binary", "tabledata"])
def test_real_rows_in_every_serialization(fmt):
    """The archive's rows (one without BP) written by astropy as BINARY2, BINARY and TABLEDATA."""
    from astropy.table import vstack

    rows = _astropy_table(real_path("gaiaxpy", "XP_CONTINUOUS_RAW.xml").read_bytes())
    more = _astropy_table(real_path("xp_chunk", "xp_continuous_combined_weiler2023_examples.vot").read_bytes())
    table = vstack([rows, more[rows.colnames]], metadata_conflicts="silent")
    for name in ("bp_coefficients", "bp_coefficient_errors", "bp_coefficient_correlations"):
        cells = np.empty(len(table), dtype=object)
        cells[:] = [np.ma.masked_array(np.asarray(v), mask=np.zeros(len(v), dtype=bool)) for v in table[name]]
        cells[1] = np.ma.masked_array(np.zeros(0), mask=np.zeros(0, dtype=bool))  # a source without BP
        table[name] = cells
    vot = from_table(table)
    vot.get_first_table().format = fmt
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vot.to_xml(out)
    assert _assert_same_as_astropy(out.getvalue()) == len(table)


@pytest.mark.parametrize("plain", [True, False])
def test_tabledata_errors_name_the_row_and_column(plain):
    """In plain TABLEDATA (cells found by the compiled scan) and in TABLEDATA the XML parser reads."""
    data = _document("tabledata")
    assert b"<TD/>" in data  # astropy writes the NULL short as <TD/>: the XML parser reads this document
    if plain:
        data = data.replace(b"<TD/>", b"<TD></TD>")
    row4 = data.split(b"<TR>")[4]
    coefficients = row4.split(b"<TD>")[5].split(b"</TD>")[0]
    damaged = coefficients.replace(b" ", b" 1.5x ", 1)
    with pytest.raises(ValueError, match=r"row 4, column 'coefficients': unparseable number '1\.5x'"):
        read_votable(data.replace(coefficients, damaged))
    source = row4.split(b"<TD>")[1].split(b"</TD>")[0]
    with pytest.raises(ValueError, match=r"row 4, column 'source_id': 'nine' is not an integer"):
        read_votable(data.replace(b"<TD>" + source + b"</TD>", b"<TD>nine</TD>", 1))
    with pytest.raises(ValueError, match=r"row 4, column 'n': 70000 is outside the range of short"):
        read_votable(data.replace(row4, row4.replace(b"<TD>3</TD>", b"<TD>70000</TD>", 1)))


def test_binary_truncation_names_the_row_and_column():
    data = _document("binary2", n=7)
    start = data.index(b">", data.index(b"<STREAM")) + 1
    end = data.index(b"</STREAM>")
    import base64

    raw = base64.b64decode(data[start:end])
    cut = base64.b64encode(raw[:len(raw) - 200])  # inside the last row's coefficients
    with pytest.raises(ValueError, match=r"row 7, column 'coefficients': the binary stream ends inside the row"):
        read_votable(data[:start] + cut + data[end:])


def test_ingest_reports_the_file_for_bad_tabledata(db_url, tmp_path):
    from xpdb.ingest.readers import IngestFileError
    from xpdb.ingest.runs import ingest_file

    data = _document("tabledata")
    row4 = data.split(b"<TR>")[4]
    coefficients = row4.split(b"<TD>")[5].split(b"</TD>")[0]
    path = tmp_path / "bad.vot"
    path.write_bytes(data.replace(coefficients, coefficients.replace(b" ", b" 1.5x ", 1)))
    with pytest.raises(IngestFileError) as info:
        ingest_file(db_url, "xp", path)
    assert "bad.vot" in str(info.value) and "row 4, column 'coefficients'" in str(info.value)
