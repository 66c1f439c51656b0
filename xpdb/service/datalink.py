"""DataLink 1.1 for each source: ``/datalink?ID=...`` (links documents) and ``/datalink/spectrum`` (the data).

``ID`` is a Gaia DR3 ``source_id`` (also written ``Gaia DR3 <id>`` or ``ivo://...?<id>``);
repeat it (or separate with commas) for many sources in one request, up to the service's
MAXREC ceiling. Each source gets:

- ``#this``: its calibrated sampled spectrum with errors, computed on the fly from the stored
  coefficients (:mod:`xpdb.xp.spectrum`), as VOTable, FITS and ECSV;
- ``#coefficients``: its XP_CONTINUOUS coefficients (a TAP query of ``xpdb.xp_continuous``);
- ``#auxiliary``: the [Fe/H] predictions of every model (a TAP query of ``xpdb.prediction``).

A source without a stored spectrum gets one row with ``error_message`` (``NotFoundFault``).
TAP results with a ``source_id`` column carry a service descriptor for this endpoint
(see :func:`service_descriptor`), so that TOPCAT and pyvo's ``iter_datalinks`` find it.
"""

from __future__ import annotations

import io
import re
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from xpdb.service.documents import error_document
from xpdb.service.execute import ServiceError, describe_failure
from xpdb.service.params import ParameterError, read_params

LINKS_STANDARD = "ivo://ivoa.net/std/DataLink#links-1.1"
VOTABLE = "application/x-votable+xml"
_ID = re.compile(r"^\s*(?:gaia\s*dr3\s*|ivo://\S*\?)?(\d{1,19})\s*$", re.IGNORECASE)
# ID is the source_id as a long (DataLink shows char): pyvo's iter_datalinks matches the links' IDs to the
# values of the result's source_id column by equality, which a text ID never meets
_FIELDS = [("ID", "long", "meta.id;meta.main"), ("access_url", "char", "meta.ref.url"),
           ("service_def", "char", "meta.ref"), ("error_message", "char", "meta.code.error"),
           ("semantics", "char", "meta.code"), ("description", "char", "meta.note"),
           ("content_type", "char", "meta.code.mime"), ("content_length", "long", "phys.size;meta.file"),
           ("content_qualifier", "char", "meta.code.class"), ("local_semantics", "char", "meta.code")]


def parse_ids(values: list[str], limit: int) -> list[int]:
    """The source_ids of the ID parameters (repeated or comma-separated); ParameterError naming a bad one."""
    ids: list[int] = []
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            match = _ID.match(item)
            if not match or int(match.group(1)) >= 2 ** 63:
                raise ParameterError(f"ID {item.strip()!r} is not a Gaia DR3 source_id")
            ids.append(int(match.group(1)))
    if not ids:
        raise ParameterError("ID is missing: give one or more Gaia DR3 source_ids (ID=...&ID=...)")
    if len(ids) > limit:
        raise ParameterError(f"{len(ids):,} IDs in one request; this service accepts at most {limit:,}")
    return list(dict.fromkeys(ids))


def _present(service, ids: list[int]) -> set[int]:
    """The ids with a stored spectrum (continuous or sampled), through the read-only role."""
    with service.readers.connection() as conn:
        conn.rollback()
        conn.autocommit = True
        rows = conn.execute("SELECT source_id FROM xpdb.xp_band WHERE source_id = ANY(%s) UNION "
                            "SELECT source_id FROM xpdb.xp_sampled WHERE source_id = ANY(%s)", (ids, ids)).fetchall()
    return {int(r[0]) for r in rows}


def _escape(value) -> str:
    from xml.sax.saxutils import escape

    return "" if value is None else escape(str(value))


def links_document(rows: list[dict]) -> bytes:
    """A DataLink links VOTable (TABLEDATA) of ``rows`` (dicts by field name)."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
           'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
           '  <RESOURCE type="results">', '    <INFO name="standardID" value="%s"/>' % LINKS_STANDARD,
           '    <INFO name="QUERY_STATUS" value="OK"/>', "    <TABLE>"]
    for name, datatype, ucd in _FIELDS:
        size = ' arraysize="*"' if datatype == "char" else ""
        out.append(f'      <FIELD name="{name}" datatype="{datatype}"{size} ucd="{ucd}"/>')
    out += ["      <DATA>", "        <TABLEDATA>"]
    for row in rows:
        out.append("          <TR>" + "".join(f"<TD>{_escape(row.get(name))}</TD>" for name, _, _ in _FIELDS)
                   + "</TR>")
    out += ["        </TABLEDATA>", "      </DATA>", "    </TABLE>", "  </RESOURCE>", "</VOTABLE>", ""]
    return "\n".join(out).encode()


def link_rows(base: str, ids: list[int], present: set[int]) -> list[dict]:
    """The links of each source (``base``: the service's root URL)."""
    rows: list[dict] = []
    for source_id in ids:
        if source_id not in present:
            rows.append({"ID": source_id, "error_message": f"NotFoundFault: no XP spectrum is stored for "
                                                           f"source_id {source_id}"})
            continue
        for fmt, mime in (("votable", VOTABLE), ("fits", "application/fits"), ("ecsv", "text/x-ecsv")):
            rows.append({"ID": source_id, "semantics": "#this", "content_type": mime,
                         "access_url": f"{base}/datalink/spectrum?" + urlencode({"ID": source_id, "FORMAT": fmt}),
                         "description": f"Calibrated sampled XP spectrum with errors, 336-1020 nm ({fmt}), "
                                        "computed on the fly from the stored coefficients"})
        tap = f"{base}/tap/sync?"
        rows.append({"ID": source_id, "semantics": "#coefficients", "content_type": VOTABLE,
                     "access_url": tap + urlencode({"LANG": "ADQL", "QUERY": f"SELECT * FROM xpdb.xp_continuous "
                                                                             f"WHERE source_id = {source_id}"}),
                     "description": "XP_CONTINUOUS: BP and RP coefficients, errors and correlations"})
        rows.append({"ID": source_id, "semantics": "#auxiliary", "content_type": VOTABLE,
                     "access_url": tap + urlencode({"LANG": "ADQL", "QUERY": f"SELECT * FROM xpdb.prediction "
                                                                             f"WHERE source_id = {source_id}"}),
                     "description": "[Fe/H] predictions of the stored models for this source"})
    return rows


def _root(request: Request) -> str:
    return str(request.url_for("index")).rstrip("/")


async def links(request: Request) -> Response:
    """GET or POST ``/datalink?ID=...``: the links document."""
    service = request.app.state.service
    try:
        params = await read_params(request)
        ids = parse_ids(params.getall("ID"), service.settings.maxrec_limit)
        present = await run_in_threadpool(_present, service, ids)
    except Exception as exc:
        failure = describe_failure(exc)
        return Response(error_document(failure.message), status_code=failure.status, media_type=VOTABLE)
    body = links_document(link_rows(_root(request), ids, present))
    return Response(body, media_type=VOTABLE + ';content=datalink')


def _spectrum(service, ids: list[int], fmt: str) -> bytes:
    from xpdb.xp.spectrum import NoSpectrum, spectra_table, write_spectra

    with service.readers.connection() as conn:
        conn.rollback()
        conn.autocommit = True
        try:
            table = spectra_table(conn, ids)
        except NoSpectrum as exc:
            raise ServiceError(str(exc), 404) from None
    out = io.BytesIO()
    write_spectra(table, fmt, out)
    return out.getvalue()


async def spectrum(request: Request) -> Response:
    """``/datalink/spectrum?ID=...&FORMAT=votable|fits|ecsv``: calibrated sampled spectra, computed now."""
    from xpdb.xp.spectrum import SPECTRUM_FORMATS

    service = request.app.state.service
    try:
        params = await read_params(request)
        ids = parse_ids(params.getall("ID"), service.settings.maxrec_limit)
        fmt = (params.get("FORMAT") or params.get("RESPONSEFORMAT") or "votable").strip().lower()
        if fmt not in SPECTRUM_FORMATS:
            raise ParameterError(f"FORMAT={fmt!r} is not offered; use one of {', '.join(SPECTRUM_FORMATS)}")
        body = await run_in_threadpool(_spectrum, service, ids, fmt)
    except Exception as exc:
        failure = describe_failure(exc)
        return Response(error_document(failure.message), status_code=failure.status, media_type=VOTABLE)
    return Response(body, media_type=SPECTRUM_FORMATS[fmt])


def service_descriptor(base: str, field_id: str) -> str:
    """The ``adhoc:service`` RESOURCE that points a result's ``source_id`` FIELD (``field_id``) at DataLink."""
    return (f'<RESOURCE type="meta" utype="adhoc:service" ID="datalink_service">\n'
            f'<PARAM name="standardID" datatype="char" arraysize="*" value="{LINKS_STANDARD}"/>\n'
            f'<PARAM name="accessURL" datatype="char" arraysize="*" value="{_escape(base)}/datalink"/>\n'
            f'<GROUP name="inputParams">\n'
            f'<PARAM name="ID" datatype="char" arraysize="*" value="" ref="{field_id}" ucd="meta.id;meta.main"/>\n'
            f"</GROUP>\n</RESOURCE>\n")
