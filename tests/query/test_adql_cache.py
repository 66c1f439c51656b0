"""Cached ADQL translations equal direct ones, and checked values are checked again."""

from __future__ import annotations

import random

import pytest

from xpdb.query.adql import ADQLError, to_postgresql
from xpdb.query.adql_cache import TranslationCache, decimal_literals, make_template, shape

CONE = ("SELECT source_id, ra, dec, phot_g_mean_mag, bp_rp0, feh, feh_err FROM xpdb.catalog "
        "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {r})) AND phot_g_mean_mag < {g}")
SHAPES = [
    CONE,
    "SELECT TOP 10 source_id, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra}, {dec})) AS d FROM xpdb.catalog "
    "WHERE DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra}, {dec})) < {r} ORDER BY d",
    "SELECT source_id FROM xpdb.catalog WHERE 1 = CONTAINS(POINT(ra, dec), BOX({ra}, {dec}, 0.5, 0.25)) "
    "AND feh > -{g}",
    "SELECT source_id FROM xpdb.catalog WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE({ra}, -{dec}, 0.25 + 0.5))",
    "SELECT source_id, 'a 1.5 string' AS s, \"weird 2.5\" FROM xpdb.catalog -- a comment 3.5\n"
    "WHERE ra BETWEEN {ra} AND {ra} + 1.0 AND phot_g_mean_mag < {g}",
]


def _query(template: str, rng: random.Random) -> str:
    return template.format(ra=f"{rng.uniform(0, 360):.6f}", dec=f"{rng.uniform(0, 89):.5f}",
                           r=f"{rng.uniform(0.01, 2):.3f}", g=f"{rng.uniform(10, 20):.2f}")


def _cached_translate(cache: TranslationCache, adql: str, max_rows: int | None):
    """What the service's ParserPool does, in process: the cache, else translate and store a template."""
    hit = cache.lookup(adql, max_rows)
    if hit is not None:
        return hit, True
    translated = to_postgresql(adql, max_rows=max_rows)
    if not cache.known_uncacheable(adql, max_rows):
        cache.store(adql, max_rows, make_template(adql, translated, to_postgresql, max_rows=max_rows))
    return translated, False


@pytest.mark.parametrize("template", SHAPES)
def test_cached_translations_equal_direct_ones(template):
    """Same SQL, TOP and tables; a BOX's numbers are its shape (its centre varies here: no reuse)."""
    rng = random.Random(7)
    cache = TranslationCache()
    hits = 0
    for _ in range(12):
        adql = _query(template, rng)
        for max_rows in (2000, None):
            got, hit = _cached_translate(cache, adql, max_rows)
            hits += hit
            want = to_postgresql(adql, max_rows=max_rows)
            assert (got.sql, got.top, tuple(got.tables)) == (want.sql, want.top, tuple(want.tables))
    if "BOX" in template:
        assert hits == 0
    else:
        assert hits >= 20  # after the first query of each max_rows, the shape is reused


def test_literals_inside_strings_names_comments_are_not_slots():
    adql = "SELECT 'x 1.5', \"c 2.5\" FROM t -- 3.5\nWHERE a < 4.5 AND b_1.5 = 1 AND c < 1e5"
    assert [adql[a:b] for a, b in decimal_literals(adql)] == ["4.5"]
    assert shape(adql)[1] == ["4.5"]


def test_box_and_computed_radius_are_part_of_the_shape():
    cache = TranslationCache()
    box = "SELECT source_id FROM xpdb.catalog WHERE 1 = CONTAINS(POINT(ra, dec), BOX(10.5, 20.5, {w}, 1.0))"
    _cached_translate(cache, box.format(w="1.0"), None)
    # another BOX width is another shape: the pole and range checks of BOX run again in the translator
    assert cache.lookup(box.format(w="2.0"), None) is None
    with pytest.raises(ADQLError, match="BOX width"):
        _cached_translate(cache, box.format(w="400.0"), None)


@pytest.mark.parametrize("bad, message", [({"dec": "95.0"}, "Dec must be between"),
                                          ({"r": "200.0"}, "radius must be between"),
                                          ({"ra": "1" + "0" * 400 + ".0"}, "RA must be a finite")])
def test_checked_values_are_checked_again(bad, message):
    cache = TranslationCache()
    good = {"ra": "150.5", "dec": "20.25", "r": "0.1", "g": "15.5"}
    _cached_translate(cache, CONE.format(**good), 2000)
    assert cache.lookup(CONE.format(**{**good, "ra": "151.5"}), 2000) is not None
    adql = CONE.format(**{**good, **bad})
    assert cache.lookup(adql, 2000) is None  # the cache refuses the value: the translator explains
    with pytest.raises(ADQLError, match=message):
        to_postgresql(adql, max_rows=2000)


def test_least_recently_used_shapes_go_first():
    cache = TranslationCache(max_shapes=2)
    queries = [f"SELECT source_id FROM xpdb.catalog WHERE ra < 1.5 AND {c} < 2.5" for c in ("dec", "feh", "g_mag")]
    for adql in queries:
        _cached_translate(cache, adql, None)
    assert cache.lookup(queries[0], None) is None
    assert cache.lookup(queries[2], None) is not None
