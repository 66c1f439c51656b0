"""Reusing ADQL translations for queries that differ only in their decimal numbers.

Translating ADQL (an ANTLR parse in Python) costs milliseconds of CPU, more than running a
small cone query; clients such as the load test or a TOPCAT activation action send the same
query again and again with other positions. A :class:`Template` remembers one translation
with its decimal literals (``150.25``, ``.5``; not integers, which TOP, ``= 1`` and
function arguments use, nor exponent forms such as ``1e-3``) as slots, so that a query of the same shape is translated by
substituting its numbers into the SQL, without parsing.

Reuse is exact or not at all:

- the SQL is made by translating the query with every free decimal literal replaced by a
  distinct sentinel; a slot exists only where its sentinel comes back in the SQL exactly
  once, verbatim (the translator re-emits number tokens as written), and TOP and the tables
  read must be those of the real translation; otherwise the shape is not cached;
- literals whose value the translator checks (CIRCLE centres and radii, POINT, POLYGON and
  DISTANCE positions, BOX) are slots only when they are the whole argument, and a reused
  translation checks them again (RA finite, Dec within [-90, 90], radius within [0, 180]); a
  value that fails goes to the translator, which gives its own error message. Literals inside
  a checked expression (``0.5 + 0.1``, a BOX) are part of the shape: another value there is
  another shape.

Tests compare cached and direct translations of the same queries (tests/query/test_adql_cache.py).
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from xpdb.query.adql import ADQLError, TranslatedQuery

# what the lexer reads as one token and this module must skip: strings ('' escapes), delimited
# identifiers, comments; and the decimal literals (with a point or an exponent) not inside a name
_SKIP_OR_DECIMAL = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*"
    r"|(?<![\w.])(\d+\.\d*|\.\d+)(?![\w.])")
_HOLE = "\x00#"  # stands for a decimal literal in a shape key (a NUL never reaches the translator)


def decimal_literals(adql: str) -> list[tuple[int, int]]:
    """(start, end) of every decimal literal of ``adql`` outside strings, quoted names and comments."""
    return [m.span(1) for m in _SKIP_OR_DECIMAL.finditer(adql) if m.group(1) is not None]


def _sentinel(k: int) -> str:
    return f"0.{k:04d}73159265358979"  # within [0, 1): passes every range the translator checks


@dataclass(frozen=True)
class Template:
    """One translation with slots for decimal literals; ``fill`` makes the SQL for other values."""

    max_rows: int | None
    pinned: tuple[tuple[int, str], ...]  # (literal index, its text): literals that are part of the shape
    parts: tuple[str, ...]  # SQL between the slots
    slots: tuple[int, ...]  # literal index whose text goes after parts[i]
    checks: tuple[tuple[int, str, int], ...]  # (literal index, 'ra'/'dec'/'radius', sign)
    top: int | None
    tables: tuple

    def matches(self, texts: list[str]) -> bool:
        return all(texts[i] == text for i, text in self.pinned)

    def fill(self, texts: list[str]) -> TranslatedQuery | None:
        """The translation for literal ``texts``; None when a checked value fails its check."""
        for index, what, sign in self.checks:
            try:
                value = sign * float(texts[index])
            except ValueError:
                return None
            if not math.isfinite(value) or (what == "dec" and not -90 <= value <= 90) or \
                    (what == "radius" and not 0 <= value <= 180):
                return None
        sql = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:]):
            sql += (texts[slot], part)
        return TranslatedQuery(sql="".join(sql), top=self.top, tables=self.tables)


def shape(adql: str) -> tuple[str, list[str]]:
    """(the query with its decimal literals as holes, the literals' texts)."""
    spans = decimal_literals(adql)
    pieces, texts, last = [], [], 0
    for start, end in spans:
        pieces += (adql[last:start], _HOLE)
        texts.append(adql[start:end])
        last = end
    pieces.append(adql[last:])
    return "".join(pieces), texts


def make_template(adql: str, translated: TranslatedQuery, translate: Callable[..., TranslatedQuery], *,
                  max_rows: int | None) -> Template | None:
    """A Template from ``adql`` and its translation ``translated`` (one more translation, with sentinels);
    None when the shape cannot be reused exactly."""
    spans = decimal_literals(adql)
    if not spans:
        return None
    index = {start: i for i, (start, _) in enumerate(spans)}
    pinned, checks = set(), []
    for offset, what, sign in translated.checks:
        i = index.get(offset)
        if i is None:
            continue  # an integer literal: part of the shape anyway
        if what == "pin":
            pinned.add(i)
        else:
            checks.append((i, what, sign))
    checks = [c for c in checks if c[0] not in pinned]
    free = [i for i in range(len(spans)) if i not in pinned]
    if not free:
        return None
    sentinels = {i: _sentinel(k) for k, i in enumerate(free)}
    if any(s in adql for s in sentinels.values()):
        return None
    pieces, last = [], 0
    for i, (start, end) in enumerate(spans):
        pieces += (adql[last:start], sentinels.get(i, adql[start:end]))
        last = end
    pieces.append(adql[last:])
    try:
        probe = translate("".join(pieces), max_rows=max_rows)
    except ADQLError:
        return None
    if probe.top != translated.top or tuple(probe.tables) != tuple(translated.tables):
        return None
    where = []
    for i, sentinel in sentinels.items():
        if probe.sql.count(sentinel) != 1:
            return None
        where.append((probe.sql.index(sentinel), i, sentinel))
    where.sort()
    parts, slots, last = [], [], 0
    for position, i, sentinel in where:
        parts.append(probe.sql[last:position])
        slots.append(i)
        last = position + len(sentinel)
    parts.append(probe.sql[last:])
    texts = [adql[a:b] for a, b in spans]
    template = Template(max_rows=max_rows, pinned=tuple((i, texts[i]) for i in sorted(pinned)), parts=tuple(parts),
                        slots=tuple(slots), checks=tuple(checks), top=translated.top,
                        tables=tuple(tuple(t) for t in translated.tables))
    if template.fill(texts) is None or template.fill(texts).sql != translated.sql:
        return None  # the template must give back the translation it was made from
    return template


class TranslationCache:
    """Templates by query shape and ``max_rows``, least recently used first out (thread-safe)."""

    def __init__(self, max_shapes: int = 256, per_shape: int = 8):
        self.max_shapes, self.per_shape = max_shapes, per_shape
        self._shapes: OrderedDict[tuple[str, int | None], list[Template | None]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def lookup(self, adql: str, max_rows: int | None) -> TranslatedQuery | None:
        """The translation of ``adql`` from a template of its shape, or None."""
        key, texts = shape(adql)
        if not texts:
            return None
        with self._lock:
            templates = self._shapes.get((key, max_rows))
            if templates is not None:
                self._shapes.move_to_end((key, max_rows))
                templates = list(templates)
        for template in templates or ():
            if template is not None and template.matches(texts):
                result = template.fill(texts)
                if result is not None:
                    self.hits += 1
                    return result
        self.misses += 1
        return None

    def known_uncacheable(self, adql: str, max_rows: int | None) -> bool:
        """True when this shape was found not to be reusable (no template is worth making)."""
        key, texts = shape(adql)
        with self._lock:
            return not texts or None in self._shapes.get((key, max_rows), ())

    def store(self, adql: str, max_rows: int | None, template: Template | None) -> None:
        """Remember ``template`` (None: the shape is not reusable) for the shape of ``adql``."""
        key, _ = shape(adql)
        with self._lock:
            templates = self._shapes.setdefault((key, max_rows), [])
            self._shapes.move_to_end((key, max_rows))
            if template is None:
                if None not in templates:
                    templates.append(None)
            elif template not in templates:
                templates.insert(0, template)
            del templates[self.per_shape:]
            while len(self._shapes) > self.max_shapes:
                self._shapes.popitem(last=False)
