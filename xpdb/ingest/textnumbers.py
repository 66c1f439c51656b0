"""Bracketed number lists (``"(1.5, -2e-3)"``, ``"[1.0,null]"``) parsed straight from Arrow buffers.

Archive CSV and ECSV carry each XP array as one text cell: 2 x 1,485 correlations per
source, so text ingest is bound by turning decimal text into binary floats. Arrow's
split-and-cast kernels cost ~100 ns a number because they materialise every token as a
string first; this module walks the Arrow string buffers once, with numba, writing each
number into a NaN-padded ``(n, width)`` matrix.

Exactness is the contract: every value equals what a correctly rounding ``strtod``/
``strtof`` (glibc; also Arrow's cast) gives for the same text.
- Clinger's fast path: an integer mantissa <= 2^53 and a power of ten |e| <= 22 are both
  exact doubles, so one IEEE multiply or divide rounds correctly.
- Mantissas of up to 18 digits beyond that (the 17 digits of a double's ``repr``) and
  other exponents: the Eisel-Lemire algorithm (a 128-bit product with a truncated power of
  ten, as Go's ``strconv`` and fast_float do it), which either rounds correctly or says it
  cannot decide.
- Anything else (undecided, longer mantissas, subnormal or overflowing results, long
  tokens) goes to the C library's ``strtod_l`` (in the "C" locale) on a NUL-terminated copy
  of the token.
- float32 output: the correctly rounded double is rounded again to float32; that double
  rounding can only err when the double lies exactly halfway between two float32 values,
  or outside float32's normal range, so those tokens (and every token that needed the slow
  path) are re-read with ``strtof`` instead.
``nan``, ``null``, ``inf`` and ``infinity`` (any case, signed) are accepted; the
validation stage decides whether a non-finite value is acceptable.

Digits after the decimal point are read eight at a time (one unaligned 64-bit load, checked
and combined with integer arithmetic: SWAR), which is where float32 text spends its bytes.
"""

from __future__ import annotations

import ctypes

import numba as nb
import numpy as np
import pyarrow as pa
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

# The C library's correctly rounding parsers, in the "C" locale whatever the process's LC_NUMERIC.
_strtod_l = types.ExternalFunction("strtod_l", types.float64(types.intp, types.intp, types.intp))
_strtof_l = types.ExternalFunction("strtof_l", types.float32(types.intp, types.intp, types.intp))
_libc = ctypes.CDLL(None)
_libc.newlocale.restype = ctypes.c_void_p
_libc.newlocale.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]
_C_LOCALE = _libc.newlocale(1 << 1, b"C", None)  # LC_NUMERIC_MASK; the other categories are "C" too

_POW10 = np.array([10.0**i for i in range(23)], dtype=np.float64)
_MAX_EXACT_MANTISSA = 1 << 53
_FLOAT32_MIDPOINT_BITS = np.uint64(0x10000000)  # a double's low 29 mantissa bits at a float32 midpoint
_LOW29 = np.uint64(0x1FFFFFFF)
_SCRATCH_BYTES = 512  # longest token handed to strtod; longer ones are reported as unparseable

# token status from _parse_number
_EXACT, _FLOAT32_RISK, _NEEDS_LIBC, _NOT_A_NUMBER = 0, 1, 2, 3

_U = np.uint64
_ASCII_ZEROS = _U(0x3030303030303030)  # eight '0' bytes
_ABOVE_NINE = _U(0x7676767676767676)  # added to (byte - '0'): the high bit is set from 10 on
_HIGH_BITS = _U(0x8080808080808080)
_SWAR_MASK, _SWAR_MUL1, _SWAR_MUL2 = _U(0x000000FF000000FF), _U(0x000F424000000064), _U(0x0000271000000001)
_POW10_INT = np.array([10**i for i in range(9)], dtype=np.int64)


@intrinsic
def _load8(typingctx, array_type, index_type):
    """The 8 bytes at ``array[index]`` as one little-endian uint64 (an unaligned load; the caller checks bounds)."""

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        address = builder.bitcast(builder.gep(array.data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(address, align=1)

    return types.uint64(array_type, index_type), codegen


def _bit_count_intrinsic(name: str):
    @intrinsic
    def count(typingctx, value_type):
        def codegen(context, builder, signature, args):
            fnty = ir.FunctionType(ir.IntType(64), [ir.IntType(64), ir.IntType(1)])
            fn = builder.module.declare_intrinsic(name, [ir.IntType(64)], fnty)
            return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 0)])

        return types.uint64(types.uint64), codegen

    return count


_cttz = _bit_count_intrinsic("llvm.cttz")  # trailing zero bits of a uint64 (64 for 0)
_ctlz = _bit_count_intrinsic("llvm.ctlz")  # leading zero bits


@intrinsic
def _mulhi(typingctx, a_type, b_type):
    """The high 64 bits of the 128-bit product of two uint64."""

    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        return builder.trunc(builder.lshr(product, ir.Constant(i128, 64)), ir.IntType(64))

    return types.uint64(types.uint64, types.uint64), codegen


@intrinsic
def _double_from_bits(typingctx, bits_type):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen


@nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _eight_digits(w):
    """The value of eight decimal digits held as bytes 0-9 in ``w`` (first digit in the lowest byte)."""
    w = (w * _U(10)) + (w >> _U(8))
    return np.int64((((w & _SWAR_MASK) * _SWAR_MUL1) + (((w >> _U(16)) & _SWAR_MASK) * _SWAR_MUL2)) >> _U(32))


# Eisel-Lemire: 128-bit mantissas of 10**q (5**q normalised so that bit 127 is set), rounded down
_EL_MIN_EXP10, _EL_MAX_EXP10 = -342, 308


def _eisel_lemire_table() -> tuple[np.ndarray, np.ndarray]:
    high = np.zeros(_EL_MAX_EXP10 - _EL_MIN_EXP10 + 1, dtype=np.uint64)
    low = np.zeros_like(high)
    for q in range(_EL_MIN_EXP10, _EL_MAX_EXP10 + 1):
        if q >= 0:
            five = 5**q
            shift = five.bit_length() - 128
            value = five >> shift if shift > 0 else five << -shift
        else:
            five = 5**-q
            value = (1 << (five.bit_length() + 127)) // five
            if value.bit_length() < 128:
                value = (1 << (five.bit_length() + 128)) // five
        high[q - _EL_MIN_EXP10], low[q - _EL_MIN_EXP10] = value >> 64, value & ((1 << 64) - 1)
    return high, low


_EL_HIGH, _EL_LOW = _eisel_lemire_table()
_LOW9 = _U(0x1FF)
_MANTISSA52 = _U(0x000FFFFFFFFFFFFF)


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _eisel_lemire(mantissa, exp10):
    """(decided, value): the correctly rounded double of ``mantissa * 10**exp10`` (0 < mantissa < 2**63),
    or decided False (an ambiguous product, a subnormal or infinite result: the C library decides)."""
    if exp10 < _EL_MIN_EXP10 or exp10 > _EL_MAX_EXP10:
        return False, 0.0
    man = _U(mantissa)
    clz = _ctlz(man)
    man = man << clz
    exp2 = _U(((217706 * exp10) >> 16) + 64 + 1023) - clz
    i = exp10 - _EL_MIN_EXP10
    power_high = _EL_HIGH[i]
    x_high = _mulhi(man, power_high)
    x_low = man * power_high
    if (x_high & _LOW9) == _LOW9 and x_low + man < man:  # the low half of the power may carry into the result
        power_low = _EL_LOW[i]
        y_high = _mulhi(man, power_low)
        y_low = man * power_low
        merged_high = x_high
        merged_low = x_low + y_high
        if merged_low < x_low:
            merged_high += _U(1)
        if (merged_high & _LOW9) == _LOW9 and merged_low + _U(1) == _U(0) and y_low + man < man:
            return False, 0.0
        x_high = merged_high
        x_low = merged_low
    msb = x_high >> _U(63)
    bits = x_high >> (msb + _U(9))
    exp2 -= _U(1) ^ msb
    if x_low == _U(0) and (x_high & _LOW9) == _U(0) and (bits & _U(3)) == _U(1):  # exactly half-way
        return False, 0.0
    bits += bits & _U(1)
    bits >>= _U(1)
    if bits >> _U(53) > _U(0):
        bits >>= _U(1)
        exp2 += _U(1)
    if exp2 - _U(1) >= _U(0x7FF - 1):  # subnormal or infinite
        return False, 0.0
    return True, _double_from_bits((exp2 << _U(52)) | (bits & _MANTISSA52))


@nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _is_space(c):
    return c == 32 or c == 9 or c == 13 or c == 10


@nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _is_bracket_or_space(c):
    return c == 32 or c == 9 or c == 13 or c == 10 or c == 40 or c == 41 or c == 91 or c == 93


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _trimmed_span(data, a, b):
    while a < b and _is_bracket_or_space(data[a]):
        a += 1
    while b > a and _is_bracket_or_space(data[b - 1]):
        b -= 1
    return a, b


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _count_tokens(data, starts, ends, valid, spaced):
    """Numbers per row (commas + 1 inside the brackets; with ``spaced``, runs of non-blanks); 0 for NULL or
    empty rows."""
    n = starts.shape[0]
    lengths = np.zeros(n, np.int32)
    for i in range(n):
        if not valid[i]:
            continue
        a, b = _trimmed_span(data, starts[i], ends[i])
        if a == b:
            continue
        count = 1
        for k in range(a, b):
            if spaced:
                if _is_space(data[k]) and not _is_space(data[k - 1]):
                    count += 1
            elif data[k] == 44:
                count += 1
        lengths[i] = count
    return lengths


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _word_value(data, p, e, neg, signed):
    """``nan``/``null``/``inf``/``infinity`` (any case); (status, value)."""
    m = e - p
    c0 = data[p] | 32
    if m == 3 and c0 == 110 and (data[p + 1] | 32) == 97 and (data[p + 2] | 32) == 110:
        return _EXACT, np.nan
    if (m == 4 and not signed and c0 == 110 and (data[p + 1] | 32) == 117
            and (data[p + 2] | 32) == 108 and (data[p + 3] | 32) == 108):
        return _EXACT, np.nan
    if (m == 3 or m == 8) and c0 == 105 and (data[p + 1] | 32) == 110 and (data[p + 2] | 32) == 102:
        if m == 8 and not ((data[p + 3] | 32) == 105 and (data[p + 4] | 32) == 110 and (data[p + 5] | 32) == 105
                           and (data[p + 6] | 32) == 116 and (data[p + 7] | 32) == 121):
            return _NOT_A_NUMBER, np.nan
        return _EXACT, (-np.inf if neg else np.inf)
    return _NOT_A_NUMBER, np.nan


@nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _is_alpha(c):
    return 97 <= (c | 32) <= 122


@nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _digit_run(data, p, b, mantissa):
    """Consume the digits at ``data[p:b]``, appending them to ``mantissa``; (mantissa, end).

    The mantissa wraps silently past 18 digits; callers count digits.
    """
    while p < b:
        d = np.int64(data[p]) - 48
        if d < 0 or d > 9:
            break
        mantissa = mantissa * 10 + d
        p += 1
    return mantissa, p


@nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _parse_number(data, p, b):
    """The number starting at ``data[p]`` (stopping at the first byte that cannot continue it).

    Returns (status, value, end). One pass, no branches on leading zeros: at most 18
    digits accumulate exactly in an int64; longer mantissas go to the C library.
    """
    s = p
    neg = False
    if p < b and (data[p] == 45 or data[p] == 43):
        neg = data[p] == 45
        p += 1
    if p < b and _is_alpha(data[p]):
        q = p
        while q < b and _is_alpha(data[q]):
            q += 1
        status, v = _word_value(data, p, q, neg, p != s)
        return status, v, q
    first = p
    mantissa, p = _digit_run(data, p, b, 0)
    digits = p - first
    exp10 = 0
    if p < b and data[p] == 46:
        p += 1
        first = p
        mantissa, p = _digit_run(data, p, b, mantissa)
        digits += p - first
        exp10 = first - p
    if digits == 0:
        return _NOT_A_NUMBER, np.nan, p
    if p < b and (data[p] | 32) == 101:
        p += 1
        exp_neg = False
        if p < b and (data[p] == 45 or data[p] == 43):
            exp_neg = data[p] == 45
            p += 1
        exponent = 0
        first = p
        while p < b:
            d = np.int64(data[p]) - 48
            if d < 0 or d > 9:
                break
            if exponent < 100000:
                exponent = exponent * 10 + d
            p += 1
        if p == first:
            return _NOT_A_NUMBER, np.nan, p
        exp10 += -exponent if exp_neg else exponent
    if digits > 18:
        return _NEEDS_LIBC, np.nan, p
    if mantissa == 0:
        return _EXACT, (-0.0 if neg else 0.0), p
    if mantissa > _MAX_EXACT_MANTISSA or exp10 < -22 or exp10 > 22:
        decided, v = _eisel_lemire(mantissa, exp10)
        if not decided:
            return _NEEDS_LIBC, np.nan, p
        return _EXACT, (-v if neg else v), p
    v = np.float64(mantissa)
    v = v * _POW10[exp10] if exp10 >= 0 else v / _POW10[-exp10]
    return _EXACT, (-v if neg else v), p


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _libc_value(data, s, e, single, scratch, c_locale):
    """Correctly rounded value of the token ``data[s:e]`` from ``strtof``/``strtod``; (ok, value)."""
    m = e - s
    if m >= scratch.shape[0]:
        return False, np.nan
    for k in range(m):
        scratch[k] = data[s + k]
    scratch[m] = 0  # the C functions want a NUL-terminated string
    text = scratch.ctypes.data
    return True, (np.float64(_strtof_l(text, 0, c_locale)) if single else _strtod_l(text, 0, c_locale))


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _general_token(data, s, b, single, scratch, c_locale, spaced):
    """Any token starting at ``data[s]`` (words, spaces, long mantissas, junk): (ok, value, end, separator).

    ``spaced``: tokens are separated by blanks (VOTable TABLEDATA arrays), not commas.
    """
    status, v, e = _parse_number(data, s, b)
    p = e
    if spaced:
        if p < b and not _is_space(data[p]):  # trailing text: the whole token is bad
            status = _NOT_A_NUMBER
            while p < b and not _is_space(data[p]):
                p += 1
            e = p
    else:
        while p < b and _is_space(data[p]):
            p += 1
    if not spaced and p < b and data[p] != 44:  # trailing text: the whole token is bad
        status = _NOT_A_NUMBER
        while p < b and data[p] != 44:
            p += 1
        e = p
        while e > s and _is_space(data[e - 1]):
            e -= 1
    if status == _EXACT and single and _float32_risk(v):
        status = _FLOAT32_RISK
    if status == _NEEDS_LIBC or status == _FLOAT32_RISK:
        ok, v = _libc_value(data, s, e, single, scratch, c_locale)
        status = _EXACT if ok else _NOT_A_NUMBER
    return status == _EXACT, v, e, p


@nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _float32_risk(v):
    """True when rounding the double ``v`` to float32 may differ from rounding its decimal text."""
    if v != v or v == 0.0 or v == np.inf or v == -np.inf:
        return False
    a = abs(v)
    if a < 1.1754943508222875e-38 or a > 3.4028234663852886e38:
        return True
    return (_bits(v) & _LOW29) == _FLOAT32_MIDPOINT_BITS


@intrinsic
def _bits(typingctx, value_type):
    """The IEEE bits of a double as uint64."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _fill_rows(data, starts, ends, valid, out, single, scratch, c_locale, spaced):
    """Parse every row into ``out[i, :length]``, NaN after; (lengths, first bad token and its span, fits).

    One pass over the text. ``fits`` is False, and the work incomplete, when a row holds
    more numbers than ``out`` has columns. The loop body is the common case only (optional
    sign, digits, point, digits read eight at a time, exponent, then a comma or blank; Clinger's
    fast path or Eisel-Lemire); anything else goes to
    ``_general_token``. The common case repeats ``_parse_number``'s scan on purpose: as an
    inlined call returning a tuple it made the whole parse a third slower.
    """
    n = starts.shape[0]
    width = out.shape[1]
    lengths = np.zeros(n, np.int32)
    bad_token = np.full(n, -1, np.int64)
    bad_span = np.zeros((n, 2), np.int64)
    for i in range(n):
        a, b = _trimmed_span(data, starts[i], ends[i])
        j = 0
        if valid[i] and a < b:
            p = a
            while True:
                if j == width:
                    return lengths, bad_token, bad_span, False
                while p < b and (data[p] == 32 or (spaced and _is_space(data[p]))):
                    p += 1
                s = p
                neg = False
                if p < b and (data[p] == 45 or data[p] == 43):
                    neg = data[p] == 45
                    p += 1
                m = 0
                q = p
                while p < b:
                    d = np.int64(data[p]) - 48
                    if d < 0 or d > 9:
                        break
                    m = m * 10 + d
                    p += 1
                digits = p - q
                e = 0
                if p < b and data[p] == 46:
                    p += 1
                    q = p
                    while p + 8 <= b:  # the fraction's digits, eight at a time while the cell has eight more bytes
                        w = _load8(data, p) - _ASCII_ZEROS
                        if ((w + _ABOVE_NINE) | w) & _HIGH_BITS:
                            break
                        m = m * 100000000 + _eight_digits(w)
                        p += 8
                    while p < b:
                        d = np.int64(data[p]) - 48
                        if d < 0 or d > 9:
                            break
                        m = m * 10 + d
                        p += 1
                    digits += p - q
                    e = q - p
                if p < b and (data[p] | 32) == 101:
                    p += 1
                    en = False
                    if p < b and (data[p] == 45 or data[p] == 43):
                        en = data[p] == 45
                        p += 1
                    x = 0
                    q = p
                    while p < b and 48 <= data[p] <= 57 and p - q < 6:
                        x = x * 10 + (np.int64(data[p]) - 48)
                        p += 1
                    if p == q:
                        digits = 0
                    e += -x if en else x
                ended = p == b or (_is_space(data[p]) if spaced else data[p] == 44)
                if ended and 0 < digits <= 15 and -22 <= e <= 22:
                    v = np.float64(m)
                    v = v * _POW10[e] if e >= 0 else v / _POW10[-e]
                    if neg:
                        v = -v
                    if single and _float32_risk(v):
                        ok, v = _libc_value(data, s, p, single, scratch, c_locale)
                    decided = True
                elif ended and 0 < digits <= 18 and m != 0:  # a double's 17 digits, or a larger exponent
                    decided, v = _eisel_lemire(m, e)
                    if decided:
                        if neg:
                            v = -v
                        if single and _float32_risk(v):
                            ok, v = _libc_value(data, s, p, single, scratch, c_locale)
                else:
                    decided = False
                if not decided:
                    ok, v, e2, p = _general_token(data, s, b, single, scratch, c_locale, spaced)
                    if not ok:
                        if bad_token[i] < 0:
                            bad_token[i] = j
                            bad_span[i, 0] = s
                            bad_span[i, 1] = e2
                        v = np.nan
                out[i, j] = v
                j += 1
                if p >= b:
                    break
                p += 1  # the comma
        lengths[i] = j
        for k in range(j, width):
            out[i, k] = np.nan
    return lengths, bad_token, bad_span, True


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, int64 offsets, validity) of a string or binary Arrow array, without copying the bytes."""
    n = len(arr)
    offset_type = np.int64 if (pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)) else np.int32
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type, count=n + 1,
                            offset=arr.offset * np.dtype(offset_type).itemsize).astype(np.int64)
    data = (np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None and buffers[2].size
            else np.zeros(1, np.uint8))
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return data, offsets, valid


def parse_number_lists(arr: pa.Array | pa.ChunkedArray, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str]]:
    """A string column of bracketed number lists -> (values (n, width), lengths, null, bad rows).

    NULL cells and cells that are empty inside their brackets are NULL arrays (length 0). A
    row holding text that is not a number is reported in ``bad rows`` (row index -> reason
    naming the token) and its unparseable elements are NaN. A chunked column is parsed
    chunk by chunk into one matrix, so the text is never copied. The width comes from the
    first rows (archive arrays have one length per column); a longer row later on costs a
    counting pass and a second parse.
    """
    pieces = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    parts = [_buffers(piece) for piece in pieces]
    n = sum(len(valid) for _, _, valid in parts)
    width = next((int(_count_tokens(data, offsets[:-1][:64], offsets[1:][:64], valid[:64], False).max())
                  for data, offsets, valid in parts if len(valid)), 0)
    result = _parse_parts(parts, n, width, dtype)
    if result is None:
        width = max((int(_count_tokens(data, offsets[:-1], offsets[1:], valid, False).max())
                     for data, offsets, valid in parts if len(valid)), default=0)
        result = _parse_parts(parts, n, width, dtype)
    return result


def _parse_parts(parts, n: int, width: int, dtype):
    """Parse each piece into its rows of one matrix; None when some row is wider than ``width``."""
    values = np.empty((n, width), dtype=dtype)
    lengths = np.zeros(n, np.int32)
    single = np.dtype(dtype) == np.float32
    scratch = np.zeros(_SCRATCH_BYTES, np.uint8)
    bad: dict[int, str] = {}
    row0 = 0
    for data, offsets, valid in parts:
        rows = len(valid)
        piece_lengths, bad_token, bad_span, fits = _fill_rows(data, offsets[:-1], offsets[1:], valid,
                                                              values[row0:row0 + rows], single, scratch, _C_LOCALE,
                                                              False)
        if not fits:
            return None
        lengths[row0:row0 + rows] = piece_lengths
        for row in np.flatnonzero(bad_token >= 0):
            start, stop = bad_span[row]
            token = bytes(data[start:stop]).decode("utf-8", errors="replace")
            bad[row0 + int(row)] = f"unparseable number {token!r}"
        row0 += rows
    return values, lengths, lengths == 0, bad


def parse_number_spans(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, dtype, *, spaced: bool,
                       width: int | None = None) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Number lists at ``data[starts[i]:ends[i]]`` (bytes, read in place) -> (values (n, width), lengths, bad rows).

    ``spaced``: numbers separated by blanks (VOTable TABLEDATA) instead of commas. ``width``, when known
    (a fixed arraysize), saves the counting pass; a row holding more numbers than it says is
    counted again. Empty cells have length 0. ``bad rows`` maps a row index to the unparseable token.
    """
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    n = len(starts)
    valid = np.ones(n, dtype=bool)
    single = np.dtype(dtype) == np.float32
    scratch = np.zeros(_SCRATCH_BYTES, np.uint8)
    for attempt in range(2):
        if attempt:  # a row is wider than the first rows: count them all
            width = int(_count_tokens(data, starts, ends, valid, spaced).max())
        elif width is None:  # arrays of one length per column, as archives write them: the first rows tell
            width = int(_count_tokens(data, starts[:64], ends[:64], valid[:64], spaced).max()) if n else 0
        values = np.empty((n, width), dtype=dtype)
        lengths, bad_token, bad_span, fits = _fill_rows(data, starts, ends, valid, values, single, scratch,
                                                        _C_LOCALE, spaced)
        if fits:
            break
    bad = {}
    for row in np.flatnonzero(bad_token >= 0):
        start, stop = bad_span[row]
        bad[int(row)] = f"unparseable number {bytes(data[start:stop]).decode('utf-8', errors='replace')!r}"
    return values, lengths, bad


def warm_up() -> None:
    """Load (or compile, on first use after install) the parser for both output types."""
    sample = pa.array(["(1.5, -2e-3)"])
    parse_number_lists(sample, np.float32)
    parse_number_lists(sample, np.float64)
