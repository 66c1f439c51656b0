"""The text-array parser against independent references: Python's float (double) and Arrow's cast (float32)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.conftest import real_path
from xpdb.ingest.textnumbers import parse_number_lists, parse_number_spans


def arrow_cast(tokens: list[str], dtype) -> np.ndarray:
    """Arrow's own string -> float cast (fast_float, correctly rounded for each width)."""
    return pc.cast(pa.array(tokens), pa.from_numpy_dtype(np.dtype(dtype))).to_numpy(zero_copy_only=False)


def random_tokens(rng: np.random.Generator, n: int, dtype) -> list[str]:
    """Numbers written the ways archives and writers do: repr, %g, %e, Java's E notation, padded."""
    scale = 38 if dtype == np.float32 else 300
    values = rng.normal(0, 1, n) * 10.0 ** rng.integers(-scale - 7, scale, n)
    values = values.astype(dtype)
    styles = [repr, lambda v: "%.9g" % v, lambda v: "%.6e" % v, lambda v: "%.17g" % v,
              lambda v: repr(v).upper(), lambda v: "%.20f" % v if abs(v) < 1e3 else repr(v)]
    return [styles[i % len(styles)](float(v)) for i, v in enumerate(values)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_value_is_correctly_rounded(dtype):
    rng = np.random.default_rng(3)
    tokens = random_tokens(rng, 30_000, dtype)
    one = np.float32(1.0)
    midpoint = (float(one) + float(np.nextafter(one, np.float32(2)))) / 2  # exactly between two float32
    tokens += [repr(midpoint), "%.25f" % midpoint, "%.25f" % midpoint + "1", "1.0000000596046447",
               "9007199254740993", "123456789012345678901234567890", "0.000000000000000000000000001",
               "1e-45", "1.4e-45", "3.4028235e38", "3.5e38", "1e-400", "4.9e-324", "2.2250738585072011e-308",
               "-0", "0.0", "+7", "-.5", "5.", "1E5", "2.6951748E-4"]
    column = pa.array(["(" + ", ".join(tokens[i:i + 997]) + ")" for i in range(0, len(tokens), 997)])
    values, lengths, null, bad = parse_number_lists(column, dtype)
    assert not bad and not null.any()
    got = np.concatenate([values[i, :lengths[i]] for i in range(len(lengths))])
    expected = (np.array([float(t) for t in tokens]) if dtype == np.float64 else arrow_cast(tokens, np.float32))
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    assert same.all(), [(tokens[i], got[i], expected[i]) for i in np.flatnonzero(~same)[:5]]
    assert np.array_equal(np.signbit(got), np.signbit(expected))


def near_halfway_tokens(rng: np.random.Generator, n: int) -> list[str]:
    """17- and 18-digit decimals within a few units of the last digit of the midpoint between two doubles:
    where a 128-bit product with a truncated power of ten must decide the rounding, or give up."""
    from decimal import Decimal, getcontext

    getcontext().prec = 60
    values = rng.normal(0, 1, n) * 10.0 ** rng.integers(-300, 300, n)
    tokens = []
    for i, v in enumerate(values):
        mid = (Decimal(float(v)) + Decimal(float(np.nextafter(v, np.inf)))) / 2
        digits = 17 + i % 2
        sign, coefficient, exponent = mid.as_tuple()
        shown = "".join(map(str, coefficient))[:digits]
        cut = exponent + len(coefficient) - digits
        tokens.append(f"{'-' if sign else ''}{int(shown) + (i % 5) - 2}e{cut}")
    return tokens


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blank_separated_cells_are_correctly_rounded(dtype):
    """TABLEDATA's layout (numbers between blanks, read in place): the same values as Python's float and Arrow's
    cast, also for fractions whose digits end exactly at an 8-byte block or at the cell's end before a digit."""
    rng = np.random.default_rng(11)
    tokens = random_tokens(rng, 20_000, dtype) + near_halfway_tokens(rng, 4_000)
    tokens += ["0.12345678", "0.1234567", "0.123456789", "1.1234567812345678", "-0.0000000012345678",
               "12345678.12345678", "0.99999999999999999", "2.2250738585072014e-308", "9007199254740993.0"]
    cells = [" ".join(tokens[i:i + 499]) for i in range(0, len(tokens), 499)]
    cells += ["1.5 0.1234", "5678 0.12345678", "9 -0.1", "23456789 2"]  # digits across cell ends
    tokens += ["1.5", "0.1234", "5678", "0.12345678", "9", "-0.1", "23456789", "2"]
    text = "".join(cells).encode()  # cells back to back: a cell's last digits are followed by the next cell's
    ends = np.cumsum([len(c.encode()) for c in cells])
    starts = np.concatenate(([0], ends[:-1]))
    values, lengths, bad = parse_number_spans(np.frombuffer(text, np.uint8), starts, ends, dtype, spaced=True)
    assert not bad and lengths.sum() == len(tokens)
    got = np.concatenate([values[i, :lengths[i]] for i in range(len(lengths))])
    expected = (np.array([float(t) for t in tokens]) if dtype == np.float64 else arrow_cast(tokens, np.float32))
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    assert same.all(), [(tokens[i], got[i], expected[i]) for i in np.flatnonzero(~same)[:5]]
    assert np.array_equal(np.signbit(got), np.signbit(expected))


def test_layouts_nulls_and_padding():
    column = pa.array(["(1.5, -2.0, 3e2)", "[4,null,NaN]", None, "()", "[ ]", " ( 7 ,8 ) ", "[inf, -Infinity]"])
    values, lengths, null, bad = parse_number_lists(column, np.float64)
    assert not bad
    assert lengths.tolist() == [3, 3, 0, 0, 0, 2, 2]
    assert null.tolist() == [False, False, True, True, True, False, False]
    np.testing.assert_array_equal(values[0], [1.5, -2.0, 300.0])
    assert values[1, 0] == 4 and np.isnan(values[1, 1:]).all()
    np.testing.assert_array_equal(values[5, :2], [7, 8])
    assert np.isnan(values[5, 2]) and np.isnan(values[2:5]).all()
    assert values[6, 0] == np.inf and values[6, 1] == -np.inf


def test_a_wide_row_after_the_first_rows_is_not_cut():
    rows = ["(1, 2)"] * 100 + ["(1, 2, 3, 4, 5)"] + ["(9)"]
    values, lengths, _, bad = parse_number_lists(pa.array(rows), np.float32)
    assert not bad and values.shape == (102, 5)
    assert lengths[99:].tolist() == [2, 5, 1]
    np.testing.assert_array_equal(values[100], [1, 2, 3, 4, 5])
    assert values[101, 0] == 9 and np.isnan(values[101, 1:]).all()


def test_chunked_binary_and_string_columns_agree():
    rng = np.random.default_rng(5)
    rows = ["(" + ", ".join(random_tokens(rng, 40, np.float32)) + ")" for _ in range(30)]
    reference = parse_number_lists(pa.array(rows), np.float32)
    chunked = pa.chunked_array([pa.array(rows[:7]), pa.array(rows[7:8]), pa.array(rows[8:])])
    for column in (chunked, pa.array(rows, type=pa.binary()), pa.array(rows, type=pa.large_string()),
                   pa.array(["junk"] + rows).slice(1)):
        values, lengths, null, bad = parse_number_lists(column, np.float32)
        assert np.array_equal(values, reference[0], equal_nan=True) and np.array_equal(lengths, reference[1])


@pytest.mark.parametrize("text,token", [("(1, 2, x3)", "x3"), ("(1,,2)", ""), ("(1e, 2)", "1e"),
                                        ("(1.2.3)", "1.2.3"), ("(--1)", "--1"), ("(1e5x, 2)", "1e5x"),
                                        ("(1, 2,)", ""), ("(0x1p3)", "0x1p3"), ("(1 2)", "1 2")])
def test_unparseable_text_names_the_row_and_token(text, token):
    values, lengths, _, bad = parse_number_lists(pa.array(["(1.0, 2.0)", text]), np.float64)
    assert bad == {1: f"unparseable number {token!r}"}
    np.testing.assert_array_equal(values[0, :2], [1.0, 2.0])


def test_real_archive_csv_matches_arrow_split_and_cast():
    import pyarrow.csv as pacsv

    path = real_path("gaiaxpy", "XP_CONTINUOUS_RAW.csv")
    table = pacsv.read_csv(path)
    for name, dtype in [("bp_coefficients", np.float64), ("rp_coefficient_errors", np.float32),
                        ("rp_coefficient_correlations", np.float32)]:
        column = table.column(name)
        values, lengths, null, bad = parse_number_lists(column, dtype)
        assert not bad and not null.any()
        tokens = pc.list_flatten(pc.split_pattern(pc.utf8_trim(column, characters="()"), ", "))
        expected = pc.cast(tokens, pa.from_numpy_dtype(np.dtype(dtype))).to_numpy()
        assert np.array_equal(values[:, :lengths[0]].ravel(), expected)
