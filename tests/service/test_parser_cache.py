"""The service's parser pool reuses translations by query shape, in its worker processes' terms."""

from __future__ import annotations

import pytest

from xpdb.query.adql import ADQLError, to_postgresql
from xpdb.service.parsing import ParserPool

QUERY = ("SELECT source_id, feh FROM xpdb.catalog "
         "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {r}))")


def test_pool_reuses_a_shape_and_still_refuses_bad_values():
    pool = ParserPool(small_workers=1, large_workers=1, timeout_s=60)
    try:
        first = QUERY.format(ra="150.5", dec="20.25", r="0.1")
        assert pool.translate(first, max_rows=2000).sql == to_postgresql(first, max_rows=2000).sql
        got = pool.translate(first, max_rows=2000)
        assert got.sql == to_postgresql(first, max_rows=2000).sql
        assert pool.cache.hits == 1  # the second time, from the template the worker made
        other = QUERY.format(ra="10.125", dec="-5.5", r="0.25")  # -5.5: a sign in the text, another shape
        assert pool.translate(other, max_rows=2000).sql == to_postgresql(other, max_rows=2000).sql
        again = QUERY.format(ra="200.75", dec="45.5", r="1.5")
        hits = pool.cache.hits
        assert pool.translate(again, max_rows=2000).sql == to_postgresql(again, max_rows=2000).sql
        assert pool.cache.hits == hits + 1
        with pytest.raises(ADQLError, match="radius must be between 0 and 180"):
            pool.translate(QUERY.format(ra="200.75", dec="45.5", r="190.5"), max_rows=2000)
        assert pool.translate(again, max_rows=10).sql == to_postgresql(again, max_rows=10).sql  # max_rows in the key
    finally:
        pool.close()
