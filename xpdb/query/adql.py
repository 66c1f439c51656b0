"""ADQL 2.1 to PostgreSQL: translate the queries Gaia archive users write into SQL on q3c.

Approach. The query is parsed with the ANTLR4 grammar of ``queryparser-python3``
(``queryparser.adql.ADQLLexer`` / ``ADQLParser``); its own translator is not used (it emits
pg_sphere, rewrites text with string replacements and ``eval``s geometry arguments).
Instead this module walks the parse tree and prints every node back as PostgreSQL, node by
node, so nothing but the parsed query reaches the SQL: identifiers, numbers and strings are
re-emitted from their tokens (strings re-quoted, identifiers that are reserved words in
PostgreSQL quoted), and the nodes whose meaning differs are rewritten:

- ``SELECT TOP n`` becomes ``LIMIT n``; with ``max_rows`` the outer query gets
  ``LIMIT min(n, max_rows + 1)`` so that the caller can tell an overflow.
- ``CONTAINS(POINT(ra, dec), CIRCLE(ra0, dec0, r)) = 1`` (either side of ``=``; ``= 0``
  negates) becomes ``q3c_radial_query(ra, dec, ra0, dec0, r)`` when the centre is constant
  (and with the two positions swapped when the point is the constant one), so the q3c index
  on ``q3c_ang2ipix(ra, dec)`` of the point's table is used; when both carry columns (a
  cross-match) it becomes ``q3c_join(ra0, dec0, ra, dec, r)``, which uses the index of the
  POINT's table. ``INTERSECTS`` with a POINT is the same as ``CONTAINS``.
- ``DISTANCE(p1, p2)`` and ``DISTANCE(ra1, dec1, ra2, dec2)`` become ``q3c_dist`` (degrees);
  ``DISTANCE(...) < r`` (or ``<=``, or ``r > DISTANCE(...)``) in a search condition becomes
  the cone above, so it is indexed too (q3c's cone is strict, ``<``, also for ``<=``).
- ``POLYGON`` becomes ``q3c_poly_query(ra, dec, ARRAY[ra1, dec1, ...])`` (great-circle
  edges). ``BOX(ra, dec, w, h)`` is the polygon with corners ``ra ± w/2, dec ± h/2`` (plain
  offsets in RA, not divided by cos(dec); its edges are great circles, not parallels).
- ``COORD1``/``COORD2`` of a POINT are its RA/Dec. Geometry anywhere else (a POINT in the
  select list, AREA, a point-valued column...) is an :class:`ADQLError`. Coordinate systems
  may be ``''`` or ICRS (with any reference position); all values are ICRS degrees.
- Functions: CEILING -> ceil, LOG -> ln, LOG10 -> log10, TRUNCATE -> trunc, RAND() ->
  random() (a seed is ignored), ROUND/TRUNCATE with digits and MOD go through numeric and
  return double precision; LOWER, UPPER, COALESCE, ``CAST(x AS type)`` (the ADQL 2.1 types)
  and Gaia's ``GAIA_HEALPIX_INDEX(n, source_id)``; any other function name is an error.
  ``^`` (bitwise xor) becomes ``#``, hexadecimal literals become decimal.
- Schema ``gaiadr3`` is mapped to ``xpdb``, ``TAP_UPLOAD`` to ``pg_temp`` (uploaded tables, see
  :mod:`xpdb.query.upload`); other names are left as written.

Before parsing, the token stream is adapted where the grammar falls short: the SQL words the
lexer reserves but no rule uses (``catalog``, ``zone``, ``size``, ``value``, ``e``...) are read
as names; ``LOWER(``, ``UPPER(``, ``COALESCE(`` as function calls; ``CAST(x AS type)`` as a
call whose type is checked against a list. Parsing is two-stage (fast SLL, then full LL when
that fails, for the error message).

Checks: the query may be at most ``max_length`` characters (default MAX_QUERY_LENGTH; parsing
time grows with it); constant geometry must make sense - a CIRCLE radius or the ``r`` of
``DISTANCE(...) < r`` within [0, 180] degrees, Dec within [-90, 90], POLYGON vertices finite,
BOX sides within range and not beyond a pole - else an ADQLError says which argument. The
tables a query reads are returned in ``TranslatedQuery.tables`` (common table expressions
excluded), so that the caller can refuse tables it does not publish.

Thread safety: every thread parses with its own ANTLR prediction caches (the runtime
otherwise shares them between all parsers of a grammar, unguarded), so translations in
different threads need no lock and never wait for each other.

Limits, from the grammar: no CASE, no scalar subqueries in expressions (subqueries go in FROM,
IN and EXISTS), IS NULL only on columns, only ASCII in names and strings, no block comments;
brackets may nest 40 deep. Anything that does not parse is an :class:`ADQLError` with the
1-based line and column. The SQL may contain ``%`` in literals: run it without parameters.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field

import antlr4
from antlr4.atn.PredictionMode import PredictionMode
from antlr4.error.ErrorListener import ErrorListener
from antlr4.error.Errors import ParseCancellationException
from antlr4.error.ErrorStrategy import BailErrorStrategy, DefaultErrorStrategy
from antlr4.ListTokenSource import ListTokenSource
from antlr4.atn.LexerATNSimulator import LexerATNSimulator
from antlr4.atn.ParserATNSimulator import ParserATNSimulator
from antlr4.dfa.DFA import DFA
from antlr4.PredictionContext import PredictionContextCache
from antlr4.ParserRuleContext import ParserRuleContext
from antlr4.Token import CommonToken
from antlr4.tree.Tree import TerminalNode
from queryparser.adql.ADQLLexer import ADQLLexer as L
from queryparser.adql.ADQLParser import ADQLParser as P

from xpdb.errors import ADQLError

__all__ = ["ADQLError", "TranslatedQuery", "to_postgresql"]

# Words PostgreSQL 15 reserves (pg_get_keywords() categories R and T): quoted as identifiers.
_PG_RESERVED = frozenset("""
all analyse analyze and any array as asc asymmetric authorization binary both case cast check
collate collation column concurrently constraint create cross current_catalog current_date
current_role current_schema current_time current_timestamp current_user default deferrable desc
distinct do else end except false fetch for foreign freeze from full grant group having ilike in
initially inner intersect into is isnull join lateral leading left like limit localtime
localtimestamp natural not notnull null offset on only or order outer overlaps placing primary
references returning right select session_user similar some symmetric table tablesample then to
trailing true union unique user using variadic verbose when where window with
""".split())
_SCHEMAS = {"gaiadr3": "xpdb", "tap_upload": "pg_temp"}  # TAP_UPLOAD: the temporary tables of uploads
_COORD_SYSTEMS = frozenset({"", "ICRS", "ICRS GEOCENTER", "ICRS BARYCENTER", "ICRS TOPOCENTER"})
_CAST_TYPE = re.compile(r"^(SMALLINT|INTEGER|INT|BIGINT|REAL|DOUBLE PRECISION|TIMESTAMP"
                        r"|(CHAR|CHARACTER|VARCHAR|CHARACTER VARYING)(?: \( (\d+) \))?)$")
_PG_TYPES = {"INT": "integer", "CHARACTER": "char", "CHARACTER VARYING": "varchar"}
_SIMPLE = re.compile(r'^[\w."]+$')


def _unused_tokens() -> frozenset[int]:
    """Token types that no parser rule uses (among them SQL's reserved words: CATALOG, ZONE, E...)."""
    used = {n for state in P.atn.states for t in state.transitions if t.label is not None
            for interval in t.label.intervals for n in interval}
    return frozenset(range(1, len(L.symbolicNames))) - used


# words read as names: those the grammar never uses (so 'catalog' is a column), and LOWER before '('
_NAME_WORDS = _unused_tokens() - {L.CAST, L.CASE, L.WHEN, L.THEN, L.ELSE, L.END}
_WORD = re.compile(r"^[A-Za-z_]\w*$")
_SET_OPERATORS = {L.UNION, L.EXCEPT, L.INTERSECT}
_MATH = {"ABS": "abs", "CEILING": "ceil", "DEGREES": "degrees", "EXP": "exp", "FLOOR": "floor",
         "LOG": "ln", "LOG10": "log10", "PI": "pi", "POWER": "power", "RADIANS": "radians",
         "SQRT": "sqrt", "ROUND": "round", "TRUNCATE": "trunc"}
_MAX_NESTING = 40  # brackets
MAX_QUERY_LENGTH = 1_000_000  # characters; parsing takes about 10 s a million on a slow core
_CACHES = threading.local()  # per thread: ANTLR's prediction caches (shared by class otherwise, unguarded)


@dataclass
class TranslatedQuery:
    """The PostgreSQL to run, and the TOP n of the outer SELECT if any (None for a UNION); already a LIMIT."""

    sql: str  # PostgreSQL to run
    top: int | None  # the TOP n of the query, if any (already applied as LIMIT in sql)
    # the tables read, as (schema or None, name): unquoted names lower-cased, gaiadr3 as xpdb
    tables: tuple[tuple[str | None, str], ...] = field(default_factory=tuple)
    # the numeric literals whose value the translator checked, as (character offset in the ADQL, what, sign):
    # what is 'ra', 'dec' or 'radius' for a literal that is the whole (signed) argument, 'pin' for a literal
    # inside a checked expression (xpdb.query.adql_cache reuses a translation only for other values that
    # pass the same checks)
    checks: tuple[tuple[int, str, int], ...] = field(default_factory=tuple)


def to_postgresql(adql: str, *, max_rows: int | None = None, max_length: int = MAX_QUERY_LENGTH) -> TranslatedQuery:
    """Translate one ADQL SELECT to PostgreSQL on q3c; with max_rows, at most max_rows + 1 rows."""
    if max_rows is not None and max_rows < 0:
        raise ValueError("max_rows must be >= 0")
    if len(adql) > max_length:
        raise ADQLError(f"the query is {len(adql):,} characters long; this service accepts at most {max_length:,} "
                        "(upload long lists of ids as a table is not supported: split the query)")
    try:
        tree, casts = _parse(adql)
        return _Emitter(casts, max_rows).translate(tree)
    except RecursionError:
        raise ADQLError("the query is nested too deeply") from None


def _simulators() -> tuple:
    """This thread's (lexer DFAs, lexer cache, parser DFAs, parser cache)."""
    caches = getattr(_CACHES, "value", None)
    if caches is None:
        caches = _CACHES.value = (
            [DFA(state, i) for i, state in enumerate(L.atn.decisionToState)], PredictionContextCache(),
            [DFA(state, i) for i, state in enumerate(P.atn.decisionToState)], PredictionContextCache())
    return caches


def _error_at(node, message: str) -> ADQLError:
    """An ADQLError at a parse-tree node or a token."""
    if isinstance(node, TerminalNode):
        node = node.symbol
    token = node.start if isinstance(node, ParserRuleContext) else node
    return ADQLError(message, token.line, token.column + 1)


class _Listener(ErrorListener):
    """Keeps the first lexer or parser error as an ADQLError naming the offending token."""

    def __init__(self):
        self.error: ADQLError | None = None
        self.end: CommonToken | None = None  # the ';' added after the query, if any

    def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e):  # noqa: N802, N803
        if self.error is not None:
            return
        if offendingSymbol is None:  # the lexer's
            self.error = ADQLError(f"syntax error: {msg}", line, column + 1)
            return
        if offendingSymbol.type == antlr4.Token.EOF or offendingSymbol is self.end:
            found = "end of the query"
        else:
            found = repr(offendingSymbol.text)
        expecting = f", expecting {msg.split(' expecting ', 1)[1]}" if " expecting " in msg else ""
        self.error = ADQLError(f"syntax error: unexpected {found}{expecting}", line, column + 1)


def _parse(adql: str):
    """Lex, adapt the tokens to the grammar, parse; the tree and the CAST target types."""
    listener = _Listener()
    lexer_dfa, lexer_cache, parser_dfa, parser_cache = _simulators()
    lexer = L(antlr4.InputStream(adql))
    lexer._interp = LexerATNSimulator(lexer, L.atn, lexer_dfa, lexer_cache)
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    tokens = [t for t in lexer.getAllTokens() if t.channel == antlr4.Token.DEFAULT_CHANNEL]
    if listener.error:
        raise listener.error
    if not tokens:
        raise ADQLError("the query is empty")
    if tokens[0].type not in (L.SELECT, L.WITH, L.LPAREN):
        raise _error_at(tokens[0], f"only a single SELECT query is allowed, not {tokens[0].text.upper()}")
    depth = 0
    for token in tokens:  # the parser's time grows steeply with nesting (and Python's stack is finite)
        depth += {L.LPAREN: 1, L.RPAREN: -1}.get(token.type, 0)
        if depth > _MAX_NESTING:
            raise _error_at(token, f"brackets nest more than {_MAX_NESTING} deep")
    casts = _adapt_tokens(tokens)
    if tokens[-1].type != L.SEMI:  # the grammar wants the ';'
        last = tokens[-1]
        listener.end = _token(L.SEMI, ";", last)
        if "\n" not in last.text:
            listener.end.column += len(last.text)
        tokens.append(listener.end)
    stream = antlr4.CommonTokenStream(ListTokenSource(tokens))
    parser = P(stream)
    parser._interp = ParserATNSimulator(parser, P.atn, parser_dfa, parser_cache)
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    # two-stage parsing: SLL prediction is some 30x faster and right for nearly every query;
    # when it fails, full LL parses again (and reports the error, if there is one)
    parser._interp.predictionMode = PredictionMode.SLL
    parser._errHandler = BailErrorStrategy()
    try:
        tree = parser.query()
    except ParseCancellationException:
        stream.seek(0)
        parser.reset()
        parser._interp.predictionMode = PredictionMode.LL
        parser._errHandler = DefaultErrorStrategy()
        tree = parser.query()
    if listener.error:
        raise listener.error
    extra = stream.LT(1)
    if extra.type != antlr4.Token.EOF:
        raise _error_at(extra, "only a single SELECT query is allowed; remove what follows its end")
    return tree, casts


def _token(kind: int, text: str, at) -> CommonToken:
    token = CommonToken(type=kind)
    token.text, token.line, token.column = text, at.line, at.column
    return token


def _adapt_tokens(tokens: list) -> dict:
    """Read unused SQL words as names and CAST(...) as a call (in place); the CAST types by name token.

    ``CAST(x AS type)`` becomes ``CAST(x, 'type')``: the type is checked here and
    remembered, and the literal standing in for it is never emitted.
    """
    casts = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        call = i + 1 < len(tokens) and tokens[i + 1].type == L.LPAREN
        if call and token.type == L.CAST:
            depth, as_at, end = 0, None, None
            for j in range(i + 1, len(tokens)):
                depth += {L.LPAREN: 1, L.RPAREN: -1}.get(tokens[j].type, 0)
                if depth == 1 and tokens[j].type == L.AS:
                    as_at = j
                if depth == 0:
                    end = j
                    break
            if as_at is None or end is None:
                raise _error_at(token, "CAST needs the form CAST(value AS type)")
            words = " ".join(t.text.upper() for t in tokens[as_at + 1:end])
            match = _CAST_TYPE.match(words)
            if not match:
                raise _error_at(tokens[as_at], f"cannot CAST to {words or 'nothing'}")
            base = match.group(2) or match.group(1)
            pg_type = _PG_TYPES.get(base, base.lower()) + (f"({match.group(3)})" if match.group(3) else "")
            token.type = L.ID
            casts[token] = pg_type
            tokens[as_at:end] = [_token(L.COMMA, ",", tokens[as_at]), _token(L.CSL, "''", tokens[as_at])]
        elif token.type in _NAME_WORDS and _WORD.match(token.text) or call and token.type == L.LOWER:
            token.type = L.ID
        i += 1
    return casts


def _join(parts: list[str]) -> str:
    """Children's SQL separated by spaces, but none around '.' and inside brackets."""
    out, previous = [], None
    for part in parts:
        if previous is not None and part not in (",", ")", ".") and previous not in ("(", "."):
            out.append(" ")
        out.append(part)
        previous = part
    return "".join(out)


def _unwrap(node):
    """The first node below that has more than one child (or is a terminal)."""
    while not isinstance(node, TerminalNode) and node.getChildCount() == 1 \
            and not isinstance(node.getChild(0), TerminalNode):
        node = node.getChild(0)
    return node


def _paren(sql: str) -> str:
    return sql if _SIMPLE.match(sql) else f"({sql})"


def _has_column(node) -> bool:
    if isinstance(node, P.Column_referenceContext):
        return True
    return not isinstance(node, TerminalNode) and any(_has_column(c) for c in node.getChildren())


def _string_value(literal) -> str:
    return literal.getText()[1:-1].replace("''", "'")


@dataclass
class _Pos:
    ra: str
    dec: str
    columns: bool  # refers to a table's columns (else constant)


class _Emitter:
    """Prints a parse tree back as PostgreSQL."""

    def __init__(self, casts: dict, max_rows: int | None):
        self.casts, self.max_rows, self.outer = casts, max_rows, None
        self.checks: list[tuple[int, str, int]] = []
        self.handlers = {
            P.QueryContext: lambda c: self.emit(c.query_expression()),
            P.Select_queryContext: self._select_query,
            P.As_clauseContext: lambda c: "AS " + self.emit(c.column_name()),
            P.Correlation_specificationContext: lambda c: "AS " + self.emit(c.correlation_name()),
            P.Derived_columnContext: self._derived_column,
            P.Schema_nameContext: self._schema_name,
            P.Exact_numeric_literalContext: lambda c: c.getText(),
            P.Signed_integerContext: lambda c: c.getText(),
            P.Unsigned_hexadecimalContext: lambda c: str(int(c.getText(), 16)),
            P.Character_string_literalContext: self._string,
            P.Bitwise_xorContext: lambda c: "#",
            P.Math_functionContext: self._math_function,
            P.Trig_functionContext: lambda c: self._call(c.getChild(0).getText().lower(),
                                                         c.numeric_value_expression()),
            P.Set_function_specificationContext: self._set_function,
            P.General_set_functionContext: self._set_function,
            P.User_defined_functionContext: self._function,
            P.Contains_predicateContext: self._geometry_predicate,
            P.Intersects_predicateContext: self._geometry_predicate,
            P.ContainsContext: lambda c: f"CAST({self._contains(c)} AS integer)",
            P.IntersectsContext: lambda c: f"CAST({self._contains(c)} AS integer)",
            P.Comparison_predicateContext: self._comparison,
            P.DistanceContext: self._distance,
            P.PointContext: self._not_here,
            P.CircleContext: self._not_here,
            P.PolygonContext: self._not_here,
            P.BoxContext: self._not_here,
            P.AreaContext: self._not_here,
        }

    def translate(self, tree) -> TranslatedQuery:
        self.outer = _outer_select(tree)
        sql = self.emit(tree)
        top = None
        if self.outer is not None and self.outer.set_limit() is not None:
            top = int(self.outer.set_limit().unsigned_decimal().getText())
        if self.outer is None and self.max_rows is not None:
            sql = f"SELECT * FROM ({sql}) AS adql_result LIMIT {self.max_rows + 1}"
        return TranslatedQuery(sql=sql, top=top, tables=_tables_read(tree), checks=tuple(self.checks))

    def emit(self, node) -> str:
        if isinstance(node, TerminalNode):
            token = node.symbol
            if token.type == L.ID:
                return _identifier(token.text)
            return token.text
        handler = self.handlers.get(type(node))
        if handler is not None:
            return handler(node)
        chain = []  # a left-recursive rule (a AND b AND c...): walk down its first children without recursion
        while node.getChildCount() > 1 and type(node.getChild(0)) is type(node):
            chain.append(node)
            node = node.getChild(0)
        sql = _join([self.emit(child) for child in node.getChildren()])
        for parent in reversed(chain):
            sql = _join([sql, *(self.emit(child) for child in list(parent.getChildren())[1:])])
        return sql

    # -- queries -------------------------------------------------------------------------------
    def _select_query(self, ctx) -> str:
        parts = [self.emit(c) for c in ctx.getChildren() if not isinstance(c, P.Set_limitContext)]
        limit = int(ctx.set_limit().unsigned_decimal().getText()) if ctx.set_limit() else None
        if ctx is self.outer and self.max_rows is not None:
            limit = self.max_rows + 1 if limit is None else min(limit, self.max_rows + 1)
        if limit is None:
            return _join(parts)
        sql = _join([*parts, f"LIMIT {limit}"])
        return f"({sql})" if _in_set_operation(ctx) else sql

    def _derived_column(self, ctx) -> str:
        sql = self.emit(ctx.value_expression())
        if ctx.as_clause() is not None:
            return f"{sql} {self.emit(ctx.as_clause())}"
        if isinstance(_unwrap(ctx.value_expression()), P.DistanceContext):
            return f"{sql} AS distance"
        return sql

    def _schema_name(self, ctx) -> str:
        name = ctx.getText()
        if name.startswith('"'):
            return name
        return _identifier(_SCHEMAS.get(name.lower(), name))

    def _string(self, ctx) -> str:
        value = _string_value(ctx)
        quoted = value.replace("'", "''")
        if "\\" in value:  # an escape string reads the same whatever standard_conforming_strings says
            return "E'" + quoted.replace("\\", "\\\\") + "'"
        return f"'{quoted}'"

    def _not_here(self, ctx):
        name = ctx.start.text.upper()
        if name == "AREA":
            raise _error_at(ctx, "AREA is not supported")
        raise _error_at(ctx, f"{name} is only supported inside CONTAINS, INTERSECTS, DISTANCE, COORD1 and COORD2")

    # -- functions -----------------------------------------------------------------------------
    def _call(self, name: str, args) -> str:
        return f"{name}({', '.join(self.emit(a) for a in args)})"

    def _math_function(self, ctx) -> str:
        name = ctx.getChild(0).getText().upper()
        args = [self.emit(a) for a in ctx.numeric_value_expression()]
        if name == "RAND":
            return "random()"
        if name == "MOD":
            return f"CAST(mod(CAST({args[0]} AS numeric), CAST({args[1]} AS numeric)) AS double precision)"
        if name in ("ROUND", "TRUNCATE") and ctx.signed_integer() is not None:
            digits = self.emit(ctx.signed_integer())
            return f"CAST({_MATH[name]}(CAST({args[0]} AS numeric), {digits}) AS double precision)"
        return f"{_MATH[name]}({', '.join(args)})"

    def _set_function(self, ctx) -> str:
        if isinstance(ctx, P.Set_function_specificationContext):
            if ctx.general_set_function() is not None:
                return self.emit(ctx.general_set_function())
            return "COUNT(*)"
        quantifier = f"{ctx.set_quantifier().getText().upper()} " if ctx.set_quantifier() else ""
        return f"{ctx.set_function_type().getText().upper()}({quantifier}{self.emit(ctx.value_expression())})"

    def _function(self, ctx) -> str:
        name_node = ctx.user_defined_function_name()
        name = name_node.getText().upper()
        args = [p.value_expression() for p in ctx.user_defined_function_param()]

        def arity(n: int) -> None:
            if len(args) != n:
                raise _error_at(name_node, f"{name} takes {n} argument{'s' * (n != 1)}, not {len(args)}")

        if name_node.start in self.casts:
            return f"CAST({self.emit(args[0])} AS {self.casts[name_node.start]})"
        if name in ("LOWER", "UPPER"):
            arity(1)
            return self._call(name.lower(), args)
        if name == "COALESCE":
            if not args:
                raise _error_at(name_node, "COALESCE needs at least one argument")
            return self._call("coalesce", args)
        if name in ("COORD1", "COORD2"):
            arity(1)
            point = _unwrap(args[0])
            if not isinstance(point, P.PointContext):
                raise _error_at(args[0], f"{name} is only supported on a POINT(...)")
            pos = self._point(point)
            return _paren(pos.ra if name == "COORD1" else pos.dec)
        if name == "GAIA_HEALPIX_INDEX":
            arity(2)
            order, source_id = (self.emit(a) for a in args)
            return f"({_paren(source_id)} >> (59 - 2 * {_paren(order)}))"
        raise _error_at(name_node, f"unknown function {name}")

    # -- geometry ------------------------------------------------------------------------------
    def _coord_sys(self, ctx) -> None:
        if ctx is None:
            return
        literal = _unwrap(ctx)
        if not isinstance(literal, P.Character_string_literalContext):
            raise _error_at(ctx, "the coordinate system must be a string such as 'ICRS'")
        system = " ".join(_string_value(literal).upper().split())
        if system not in _COORD_SYSTEMS:
            raise _error_at(ctx, f"coordinate system {system!r} is not supported; use 'ICRS'")

    def _point(self, ctx) -> _Pos:
        self._coord_sys(ctx.coord_sys())
        return self._pair(ctx.coordinates())

    def _pair(self, coordinates) -> _Pos:
        return self._coordinates(coordinates.coordinate1(), coordinates.coordinate2())

    def _coordinates(self, ra, dec) -> _Pos:
        pos = _Pos(self.emit(ra), self.emit(dec), _has_column(ra) or _has_column(dec))
        self._note(ra, "ra")
        self._note(dec, "dec")
        _check_position(pos.ra, pos.dec, ra, dec)
        return pos

    def _note(self, node, what: str) -> None:
        """Remember the numeric literals of ``node``, whose value is checked as ``what`` (see TranslatedQuery)."""
        terminals = []
        stack = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, TerminalNode):
                terminals.append(item.symbol)
            else:
                stack.extend(reversed(list(item.getChildren())))
        numbers = [t for t in terminals if _LITERAL.fullmatch(t.text or "")]
        signs = [t for t in terminals if t.text in ("-", "+")]
        if len(numbers) == 1 and len(terminals) == 1 + len(signs) and len(signs) <= 1 \
                and terminals[-1] is numbers[0] and what != "pin":
            self.checks.append((numbers[0].start, what, -1 if signs and signs[0].text == "-" else 1))
        else:
            self.checks.extend((t.start, "pin", 1) for t in numbers)

    def _point_of(self, coord_value) -> _Pos:
        point = _unwrap(coord_value)
        if not isinstance(point, P.PointContext):
            raise _error_at(coord_value, "only an explicit POINT(...) is supported here")
        return self._point(point)

    def _cone(self, point: _Pos, centre: _Pos, radius: str, at, what: str = "the CIRCLE radius") -> str:
        """Points within radius of centre, written so that q3c can use an index."""
        value = _constant(radius)
        self._note(at, "radius")
        if value is not None and not 0 <= value <= 180:
            raise _error_at(at, f"{what} must be between 0 and 180 degrees, not {_show(value)}")
        if value is None:  # computed by the query: checked by the database (migration 0014_adql_radius)
            label = what.replace("'", "''")
            radius = f"xpdb.adql_radius(({radius})::double precision, '{label}')"
        if not centre.columns:
            return f"q3c_radial_query({point.ra}, {point.dec}, {centre.ra}, {centre.dec}, {radius})"
        if not point.columns:
            return f"q3c_radial_query({centre.ra}, {centre.dec}, {point.ra}, {point.dec}, {radius})"
        return f"q3c_join({centre.ra}, {centre.dec}, {point.ra}, {point.dec}, {radius})"

    def _contains(self, ctx) -> str:
        first, second = (_unwrap(g) for g in ctx.geometry_value_expression())
        name = ctx.start.text.upper()
        if isinstance(ctx, P.IntersectsContext) and isinstance(second, P.PointContext):
            first, second = second, first
        if not isinstance(first, P.PointContext):
            raise _error_at(ctx.geometry_value_expression(0), f"{name} is only supported with a POINT "
                            "as its first argument")
        point = self._point(first)
        if isinstance(second, P.CircleContext):
            self._coord_sys(second.coord_sys())
            centre = second.circle_center()
            if centre.coordinates() is not None:
                return self._cone(point, self._pair(centre.coordinates()), self.emit(second.radius()), second.radius())
            return self._cone(point, self._point_of(centre.coord_value()), self.emit(second.radius()),
                              second.radius())
        if isinstance(second, P.PolygonContext):
            self._coord_sys(second.coord_sys())
            pairs = second.coordinates()
            if len(pairs) < 3:
                raise _error_at(second, f"a POLYGON needs at least 3 vertices, not {len(pairs)}")
            vertices = [c for pair in pairs for c in (lambda p: (p.ra, p.dec))(self._pair(pair))]
        elif isinstance(second, P.BoxContext):
            self._note(second, "pin")  # its sides and centre are checked together
            self._coord_sys(second.coord_sys())
            centre = self._pair(second.coordinates())
            ra, dec = _paren(centre.ra), _paren(centre.dec)
            sides = second.numeric_value_expression()
            width, height = (_constant(self.emit(v)) for v in sides)
            if width is not None and not 0 <= width <= 360:
                raise _error_at(sides[0], f"the BOX width must be between 0 and 360 degrees, not {_show(width)}")
            if height is not None and not 0 <= height <= 180:
                raise _error_at(sides[1], f"the BOX height must be between 0 and 180 degrees, not {_show(height)}")
            dec_value = _constant(centre.dec)
            if height is not None and dec_value is not None and abs(dec_value) + height / 2 > 90:
                raise _error_at(sides[1], f"the BOX reaches beyond a pole (Dec {_show(dec_value)} "
                                f"+/- {_show(height / 2)} degrees)")
            half_w, half_h = (f"{_paren(self.emit(v))} / 2.0" for v in sides)
            vertices = [f"{ra} - {half_w}", f"{dec} - {half_h}", f"{ra} + {half_w}", f"{dec} - {half_h}",
                        f"{ra} + {half_w}", f"{dec} + {half_h}", f"{ra} - {half_w}", f"{dec} + {half_h}"]
        else:
            raise _error_at(ctx.geometry_value_expression(1), f"{name} is only supported with a CIRCLE, "
                            "POLYGON or BOX as its second argument")
        array = f"CAST(ARRAY[{', '.join(vertices)}] AS double precision[])"
        return f"q3c_poly_query({point.ra}, {point.dec}, {array})"

    def _geometry_predicate(self, ctx) -> str:
        value = ctx.INT()
        geometry = ctx.contains() if isinstance(ctx, P.Contains_predicateContext) else ctx.intersects()
        if value.getText() not in ("0", "1"):
            raise _error_at(value, f"{geometry.start.text.upper()} can only be compared with 0 or 1")
        sql = self._contains(geometry)
        return sql if value.getText() == "1" else f"NOT {sql}"

    def _distance_positions(self, ctx) -> tuple[_Pos, _Pos]:
        if ctx.coord_value():
            first, second = (self._point_of(v) for v in ctx.coord_value())
            return first, second
        ra1, dec1, ra2, dec2 = ctx.numeric_value_expression()
        return self._coordinates(ra1, dec1), self._coordinates(ra2, dec2)

    def _distance(self, ctx) -> str:
        first, second = self._distance_positions(ctx)
        return f"q3c_dist({first.ra}, {first.dec}, {second.ra}, {second.dec})"

    def _comparison(self, ctx) -> str:
        left, right = ctx.value_expression()
        op = ctx.comp_op().getText()
        if isinstance(_unwrap(left), P.DistanceContext) and op in ("<", "<="):
            distance, radius = _unwrap(left), right
        elif isinstance(_unwrap(right), P.DistanceContext) and op in (">", ">="):
            distance, radius = _unwrap(right), left
        else:
            return _join([self.emit(left), op, self.emit(right)])
        first, second = self._distance_positions(distance)
        return self._cone(first, second, self.emit(radius), radius, "the radius r of DISTANCE(...) < r")


_LITERAL = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([-+*/()]))")


def _constant(sql: str) -> float | None:
    """The value of ``sql`` when it is arithmetic on numbers only (+ - * / and brackets), else None."""
    tokens: list[str] = []
    pos = 0
    text = sql.strip()
    while pos < len(text):
        m = _NUMBER.match(text, pos)
        if m is None:
            return None
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    if not tokens:
        return None
    index = 0

    def peek() -> str | None:
        return tokens[index] if index < len(tokens) else None

    def take() -> str:
        nonlocal index
        index += 1
        return tokens[index - 1]

    def expression() -> float:
        value = term()
        while peek() in ("+", "-"):
            value = value + term() if take() == "+" else value - term()
        return value

    def term() -> float:
        value = factor()
        while peek() in ("*", "/"):
            if take() == "*":
                value *= factor()
            else:
                value /= factor()
        return value

    def factor() -> float:
        token = peek()
        if token in ("+", "-"):
            take()
            return factor() if token == "+" else -factor()
        if token == "(":
            take()
            value = expression()
            if take() != ")":
                raise ValueError
            return value
        if token is None or token in ")*/":
            raise ValueError
        return float(take())

    try:
        value = expression()
    except (ValueError, IndexError, ZeroDivisionError, OverflowError):
        return None
    return value if index == len(tokens) else None


def _show(value: float) -> str:
    return f"{value:g}"


def _check_position(ra_sql: str, dec_sql: str, ra_node, dec_node) -> None:
    """Constant coordinates must be finite degrees, Dec within [-90, 90]."""
    ra, dec = _constant(ra_sql), _constant(dec_sql)
    if ra is not None and not math.isfinite(ra):
        raise _error_at(ra_node, f"RA must be a finite number of degrees, not {_show(ra)}")
    if dec is not None and not (math.isfinite(dec) and -90 <= dec <= 90):
        raise _error_at(dec_node, f"Dec must be between -90 and 90 degrees, not {_show(dec)}")


def _tables_read(tree) -> tuple[tuple[str | None, str], ...]:
    """The tables named in FROM clauses, as (schema or None, name); common table expressions excluded."""
    ctes, found = set(), []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, TerminalNode):
            continue
        if isinstance(node, P.Query_nameContext):
            ctes.add(_name(node.getText()))
        elif isinstance(node, P.Table_nameContext) and isinstance(node.parentCtx, P.Table_referenceContext):
            schema = node.schema_name()
            schema_name = _name(schema.getText()) if schema is not None else None
            if schema_name is not None and not schema.getText().startswith('"'):
                schema_name = _SCHEMAS.get(schema_name, schema_name)
            found.append((schema_name, _name(node.identifier().getText())))
        stack.extend(node.getChildren())
    return tuple(dict.fromkeys(t for t in found if not (t[0] is None and t[1] in ctes)))


def _name(text: str) -> str:
    """An identifier as PostgreSQL reads it: quoted ones as written, others in lower case."""
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return text[1:-1].replace('""', '"')
    return text.lower()


def _identifier(name: str) -> str:
    return f'"{name.lower()}"' if name.lower() in _PG_RESERVED else name


def _outer_select(tree):
    """The SELECT whose rows are the result (None for UNION and the like)."""
    node = tree.query_expression()
    while not isinstance(node, P.Select_queryContext):
        if isinstance(node, P.Query_specificationContext):
            node = node.select_query()
            continue
        children = list(node.getChildren())
        if len(children) == 1 and not isinstance(children[0], TerminalNode):
            node = children[0]
        elif len(children) == 3 and isinstance(children[0], TerminalNode) \
                and children[0].symbol.type == L.LPAREN and children[2].symbol.type == L.RPAREN:
            node = children[1]
        else:
            return None
    return node


def _in_set_operation(ctx) -> bool:
    """Whether this SELECT is an operand of UNION, EXCEPT or INTERSECT (so its LIMIT needs brackets)."""
    node = ctx.parentCtx
    while node is not None and not isinstance(node, (P.SubqueryContext, P.QueryContext)):
        if any(isinstance(c, TerminalNode) and c.symbol.type in _SET_OPERATORS for c in node.getChildren()):
            return True
        node = node.parentCtx
    return False
