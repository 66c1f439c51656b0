"""VOSI resources: ``/tap/capabilities``, ``/tap/availability``, ``/tap/tables`` (and ``/capabilities``).

The table listing is read from TAP_SCHEMA (views over pg_catalog, created by the migrations)
through the read-only role, so it shows exactly what queries can read, including
``xm_<catalogue>`` views created after the server started. ``/tap/tables?detail=min``
lists names only; ``/tap/tables/{name}`` describes one table.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from xpdb.service.documents import error_document
from xpdb.service.execute import describe_failure
from xpdb.service.jobs import utc_iso

XML = "text/xml; charset=utf-8"
_CAPS_NS = ('xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0" '
            'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
            'xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0"')
# esatapplus: astroquery's TapPlus (the Gaia archive client) requires its flags attribute on columns,
# which the VODataService schema does not allow: it is written for TapPlus only (see wants_tapplus_flags)
_TAPPLUS_NS = 'xmlns:esatapplus="http://esa.int/xml/EsaTapPlus" '
_TABLES_NS = ('xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
              'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
              'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"')
_GEOMETRY = ("POINT", "CIRCLE", "POLYGON", "BOX", "CONTAINS", "INTERSECTS", "DISTANCE", "COORD1", "COORD2")
_OUTPUTS = (
    ("application/x-votable+xml", "votable", "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2"),
    ("application/x-votable+xml;serialization=TABLEDATA", "votable/td",
     "ivo://ivoa.net/std/TAPRegExt#output-votable-td"),
    ("application/x-votable+xml;serialization=BINARY", "votable/b",
     "ivo://ivoa.net/std/TAPRegExt#output-votable-binary"),
    ("text/csv;header=present", "csv", None),
    ("text/tab-separated-values", "tsv", None),
    ("application/fits", "fits", None),
)


def _text(tag: str, value, indent: str) -> str:
    return f"{indent}<{tag}>{escape(str(value))}</{tag}>" if value not in (None, "") else ""


def _vosi_capability(standard: str, url: str) -> str:
    return (f'  <capability standardID="{standard}">\n'
            f'    <interface xsi:type="vs:ParamHTTP">\n'
            f'      <accessURL use="full">{escape(url)}</accessURL>\n'
            f"    </interface>\n  </capability>")


def tap_capability(base: str, settings) -> str:
    """The tr:TableAccess capability of the TAP service at ``base``."""
    lines = ['  <capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">',
             '    <interface role="std" xsi:type="vs:ParamHTTP" version="1.1">',
             f'      <accessURL use="base">{escape(base)}</accessURL>', "    </interface>",
             "    <language>", "      <name>ADQL</name>",
             '      <version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>',
             '      <version ivo-id="ivo://ivoa.net/std/ADQL#v2.1">2.1</version>',
             "      <description>ADQL translated to PostgreSQL; geometry on q3c (ICRS degrees); "
             "gaiadr3.* is this service's xpdb.*</description>",
             '      <languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo">']
    lines += [f"        <feature><form>{g}</form></feature>" for g in _GEOMETRY]
    lines += ["      </languageFeatures>",
              '      <languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-udf">',
              "        <feature><form>GAIA_HEALPIX_INDEX(norder INTEGER, source_id BIGINT) -&gt; BIGINT</form>"
              "<description>HEALPix index of a Gaia source at order norder (nested)</description></feature>",
              "      </languageFeatures>",
              '      <languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-string">',
              "        <feature><form>LOWER</form></feature>", "        <feature><form>UPPER</form></feature>",
              "      </languageFeatures>",
              '      <languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-type">',
              "        <feature><form>CAST</form></feature>", "      </languageFeatures>",
              '      <languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-common-table">',
              "        <feature><form>WITH</form></feature>", "      </languageFeatures>",
              "    </language>"]
    for mime, alias, ivo_id in _OUTPUTS:
        attr = f" ivo-id={quoteattr(ivo_id)}" if ivo_id else ""
        lines.append(f"    <outputFormat{attr}><mime>{escape(mime)}</mime><alias>{alias}</alias></outputFormat>")
    lines += ['    <uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-inline"/>']
    if settings.upload_urls:
        lines += ['    <uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-http"/>',
                  '    <uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-https"/>']
    lines += [f"    <retentionPeriod><default>{settings.retention_s}</default>"
              f"<hard>{settings.retention_s}</hard></retentionPeriod>",
              f"    <executionDuration><default>{settings.async_duration_s}</default>"
              f"<hard>{settings.async_duration_limit_s}</hard></executionDuration>",
              f'    <outputLimit><default unit="row">{settings.maxrec}</default>'
              f'<hard unit="row">{settings.maxrec_limit}</hard></outputLimit>',
              f'    <uploadLimit><default unit="byte">{settings.upload_max_bytes}</default>'
              f'<hard unit="byte">{settings.upload_max_bytes}</hard></uploadLimit>',
              "  </capability>"]
    return "\n".join(lines)


def scs_capability(url: str) -> str:
    """The cone search capability of ``/scs`` (no cs:ConeSearch type: pyvo would warn about it)."""
    return "\n".join([
        '  <capability standardID="ivo://ivoa.net/std/ConeSearch">',
        '    <interface role="std" xsi:type="vs:ParamHTTP">',
        f'      <accessURL use="base">{escape(url)}</accessURL>', "    </interface>",
        "  </capability>"])


def _capabilities_document(parts: list[str]) -> Response:
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<vosi:capabilities {_CAPS_NS}>\n" + "\n".join(parts) + "\n</vosi:capabilities>\n")
    return Response(body, media_type=XML)


def _base(request: Request, name: str) -> str:
    return str(request.url_for(name)).rstrip("/")


async def capabilities(request: Request) -> Response:
    """``/tap/capabilities``: TAP and the VOSI resources."""
    settings = request.app.state.service.settings
    tap = _base(request, "tap_root")
    return _capabilities_document([
        tap_capability(tap, settings),
        _vosi_capability("ivo://ivoa.net/std/VOSI#capabilities", tap + "/capabilities"),
        _vosi_capability("ivo://ivoa.net/std/VOSI#availability", tap + "/availability"),
        _vosi_capability("ivo://ivoa.net/std/VOSI#tables-1.1", tap + "/tables"),
    ])


async def all_capabilities(request: Request) -> Response:
    """``/capabilities``: TAP and cone search together."""
    settings = request.app.state.service.settings
    tap = _base(request, "tap_root")
    return _capabilities_document([
        tap_capability(tap, settings),
        scs_capability(_base(request, "scs") + "?"),
        _vosi_capability("ivo://ivoa.net/std/VOSI#availability", tap + "/availability"),
        _vosi_capability("ivo://ivoa.net/std/VOSI#tables-1.1", tap + "/tables"),
    ])


async def availability(request: Request) -> Response:
    """``/tap/availability``: whether the database answers the read-only role."""
    service = request.app.state.service
    try:
        await run_in_threadpool(_ping, service)
        available, note = True, "the service is accepting queries"
    except Exception as exc:
        available, note = False, describe_failure(exc).message
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">\n'
            f"  <vosi:available>{'true' if available else 'false'}</vosi:available>\n"
            f"  <vosi:upSince>{utc_iso(service.started)}</vosi:upSince>\n"
            f"  <vosi:note>{escape(note)}</vosi:note>\n"
            "</vosi:availability>\n")
    return Response(body, media_type=XML)


def _ping(service) -> None:
    with service.readers.connection() as conn:
        with conn.transaction():
            conn.execute("SELECT 1").fetchone()


# -- tables --------------------------------------------------------------------------------------
def read_tableset(service, *, table: str | None = None, columns: bool = True) -> dict:
    """Schemas, tables, columns and foreign keys from TAP_SCHEMA (one table when ``table``)."""
    where, args = ("WHERE table_name = %s", (table,)) if table else ("", ())
    with service.readers.connection() as conn:
        with conn.transaction():
            schemas = conn.execute("SELECT schema_name, description FROM tap_schema.schemas "
                                   "ORDER BY schema_index, schema_name").fetchall()
            tables = conn.execute(f"SELECT schema_name, table_name, table_type, description FROM tap_schema.tables "
                                  f"{where} ORDER BY table_index, table_name", args).fetchall()
            cols, keys = [], []
            if columns:
                cols = conn.execute(f"SELECT table_name, column_name, datatype, arraysize, description, unit, ucd, "
                                    f"indexed, principal FROM tap_schema.columns {where} "
                                    f"ORDER BY table_name, column_index", args).fetchall()
                keys = conn.execute(
                    "SELECT k.from_table, k.key_id, k.target_table, k.description, c.from_column, c.target_column "
                    "FROM tap_schema.keys AS k JOIN tap_schema.key_columns AS c USING (key_id) "
                    + ("WHERE k.from_table = %s " if table else "") + "ORDER BY k.key_id", args).fetchall()
    return {"schemas": schemas, "tables": tables, "columns": cols, "keys": keys}


def wants_tapplus_flags(request: Request) -> bool:
    """Whether the client is astroquery's TapPlus, which reads ``esatapplus:flags`` on every column (and fails
    without it): its User-Agent, or the parameters only TapPlus sends (``tables=``, ``only_tables=``)."""
    agent = request.headers.get("user-agent", "")
    query = {k.lower() for k in request.query_params}
    return agent.startswith("astroquery/") or bool(query & {"tables", "only_tables", "share_accessible"})


def _table_xml(row, columns: list, keys: list, indent: str, tag: str = "table", tapplus: bool = False) -> list[str]:
    schema, name, kind, description = row
    kind = "view" if kind == "view" else "base_table"
    out = [f'{indent}<{tag} type="{kind}">', _text("name", name, indent + "  ")]
    if description:
        out.append(_text("description", description, indent + "  "))
    for _, column, datatype, arraysize, cdesc, unit, ucd, indexed, principal in columns:
        size = f" arraysize={quoteattr(arraysize)}" if arraysize else ""
        flags = f' esatapplus:flags="{_tapplus_flags(column, indexed)}"' if tapplus else ""
        out += [f'{indent}  <column{flags}>',
                _text("name", column, indent + "    ")]
        out += [x for x in (_text("description", cdesc, indent + "    "), _text("unit", unit, indent + "    "),
                            _text("ucd", ucd, indent + "    ")) if x]
        out.append(f'{indent}    <dataType xsi:type="vs:VOTableType"{size}>{datatype}</dataType>')
        if indexed:
            out.append(f"{indent}    <flag>indexed</flag>")
        if principal:
            out.append(f"{indent}    <flag>principal</flag>")
        out.append(f"{indent}  </column>")
    by_key: dict[str, list] = {}
    for key in keys:
        by_key.setdefault(key[1], []).append(key)
    for key_rows in by_key.values():
        out += [f"{indent}  <foreignKey>", _text("targetTable", key_rows[0][2], indent + "    ")]
        out += [f"{indent}    <fkColumn><fromColumn>{escape(k[4])}</fromColumn>"
                f"<targetColumn>{escape(k[5])}</targetColumn></fkColumn>" for k in key_rows]
        if key_rows[0][3]:
            out.append(_text("description", key_rows[0][3], indent + "    "))
        out.append(f"{indent}  </foreignKey>")
    out.append(f"{indent}</{tag}>")
    return out


def _tapplus_flags(column: str, indexed: int) -> int:
    """ESA TAP+ column flags: 1 ra, 2 dec, 16 primary key, 32 indexed (astroquery only reads them)."""
    return {"ra": 1, "dec": 2}.get(column, 0) + (16 if column == "source_id" else 0) + (32 if indexed else 0)


def tableset_xml(data: dict, tapplus: bool = False) -> str:
    """The VOSI tableset document (``tapplus``: with TapPlus's column flags)."""
    namespaces = (_TAPPLUS_NS if tapplus else "") + _TABLES_NS
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f"<vosi:tableset {namespaces}>"]
    for schema, description in data["schemas"]:
        lines += ["  <schema>", _text("name", schema, "    ")]
        if description:
            lines.append(_text("description", description, "    "))
        for row in (t for t in data["tables"] if t[0] == schema):
            lines += _table_xml(row, [c for c in data["columns"] if c[0] == row[1]],
                                [k for k in data["keys"] if k[0] == row[1]], "    ", tapplus=tapplus)
        lines.append("  </schema>")
    lines.append("</vosi:tableset>")
    return "\n".join(lines) + "\n"


def _error(message: str, status: int) -> Response:
    return Response(error_document(message), status_code=status, media_type="application/x-votable+xml")


def _table_name_ok(name: str) -> bool:
    """A name that could be a table's: printable, at most 200 characters, storable as UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return 0 < len(name) <= 200 and name.isprintable()


async def tables(request: Request) -> Response:
    """``/tap/tables`` (``detail=min`` for names only)."""
    service = request.app.state.service
    query = {k.lower(): v for k, v in request.query_params.items()}
    names_only = query.get("detail", "").lower() == "min" or query.get("only_tables", "").lower() == "true"
    wanted = query.get("tables") or None  # TapPlus: tables?tables=schema.table
    if wanted is not None and not _table_name_ok(wanted):
        return _error(f"no table {wanted!r}; /tap/tables lists them", 404)
    try:
        data = await run_in_threadpool(read_tableset, service, table=wanted, columns=not names_only)
    except Exception as exc:
        failure = describe_failure(exc)
        return _error(failure.message, failure.status)
    if wanted is not None and not data["tables"]:
        return _error(f"no table {wanted!r}; /tap/tables lists them", 404)
    return Response(tableset_xml(data, wants_tapplus_flags(request)), media_type=XML)


async def table(request: Request) -> Response:
    """``/tap/tables/{name}``: one table with its columns and foreign keys."""
    service = request.app.state.service
    name = request.path_params["name"]
    if not _table_name_ok(name):
        return _error(f"no table {name!r}; /tap/tables lists them", 404)
    try:
        data = await run_in_threadpool(read_tableset, service, table=name)
    except Exception as exc:
        failure = describe_failure(exc)
        return _error(failure.message, failure.status)
    if not data["tables"]:
        return _error(f"no table {name!r}; /tap/tables lists them", 404)
    row = data["tables"][0]
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    tapplus = wants_tapplus_flags(request)
    lines += _table_xml(row, data["columns"], data["keys"], "", tag="vosi:table", tapplus=tapplus)
    namespaces = (_TAPPLUS_NS if tapplus else "") + _TABLES_NS
    lines[1] = lines[1].replace("<vosi:table ", f"<vosi:table {namespaces} ", 1)
    return Response("\n".join(lines) + "\n", media_type=XML)
