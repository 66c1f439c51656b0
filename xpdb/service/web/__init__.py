"""Web pages of ``xpdb serve`` for a person with a browser, beside TAP and cone search.

    /                    what is in the database, service status, links
    /query               ADQL form with examples; results as a paged HTML table with units and downloads
    /schema[/TABLE]      the TAP_SCHEMA tables and their columns (units, UCDs, descriptions)
    /cone                cone search by cluster name ("NGC 5904"), decimal or sexagesimal position, radius unit
    /star/{source_id}    spectrum with error band, features, predictions, labels, clusters, CMD, sVAE
    /models              the model registry, validation numbers and the report's figures
    /jobs, /jobs.json    inference jobs and their progress (the page polls the JSON; meta refresh without JS)

Pages are Jinja2 templates with autoescaping on; forms are plain GET forms that need no
JavaScript; plots are matplotlib SVG drawn on the server (:mod:`.plots`) and put inline, so
the browser fetches nothing but the page, one stylesheet and, on the jobs page, one small
script, all served from ``/static``. Visitor input reaches the database only as bound
parameters or through the ADQL translator and the read-only role, as TAP queries do
(:mod:`.data`). Every page is sent with a Content-Security-Policy that allows only this
origin's scripts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from xpdb.service.web import data

log = logging.getLogger("xpdb.service")
HERE = Path(__file__).resolve().parent
PAGE_SIZE = 100
MAX_PAGES_ROWS = 10_000  # the ADQL page shows at most this many rows in pages (downloads have the TAP limits)
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "X-Frame-Options": "DENY"}
DOWNLOADS = (("VOTable", "votable"), ("VOTable (TABLEDATA)", "votable/td"), ("CSV", "csv"), ("TSV", "tsv"),
             ("FITS", "fits"))
EXAMPLES = (
    ("The ten most metal-poor stars of the catalogue",
     "SELECT TOP 10 source_id, ra, dec, phot_g_mean_mag, feh, feh_err, flags FROM xpdb.catalog ORDER BY feh"),
    ("Stars within 0.2 deg of M5 (NGC 5904)",
     "SELECT source_id, ra, dec, phot_g_mean_mag, bp_rp FROM xpdb.gaia_source\n"
     "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 229.6384, 2.0810, 0.2))"),
    ("Model [Fe/H] against reference labels", "SELECT TOP 100 * FROM xpdb.xm_reference"),
    ("Validation summary of every model", "SELECT * FROM xpdb.validation_summary WHERE scope = 'g<15'"),
    ("Cluster means", "SELECT * FROM xpdb.cluster_summary"),
    ("The most anomalous spectra (scatter VAE)", "SELECT TOP 20 * FROM xpdb.xp_outliers"),
    ("Tables of this service", "SELECT table_name, description FROM tap_schema.tables"),
)

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _number(value, digits: int = 4) -> str:
    """A value for a table cell: numbers with ``digits`` significant digits, None as empty."""
    import math

    import numpy as np

    if value is None or value is np.ma.masked:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        return f"{v:.{digits}g}"
    if hasattr(value, "isoformat"):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return str(value)


def _duration(seconds) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m {seconds % 60:02d}s"


_env.filters["num"] = _number
_env.filters["duration"] = _duration
_env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, sort_keys=True, default=str)


def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    """A page from ``template`` with the common context (root links, active section), security headers."""
    root = str(request.url_for("index")).rstrip("/")
    body = _env.get_template(template).render(root=root, path=request.url.path, tap=root + "/tap",
                                               scs=root + "/scs", **context)
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def error_page(request: Request, status: int, message: str, title: str = "Error") -> HTMLResponse:
    return render(request, "error.html", status=status, title=title, message=message)


def _service(request: Request):
    return request.app.state.service


def _timeout(service) -> float:
    return service.settings.sync_timeout_s


def _failure(request: Request, exc: BaseException) -> HTMLResponse:
    from xpdb.service.execute import describe_failure

    failure = describe_failure(exc)
    return error_page(request, failure.status, failure.message)


# ---------------------------------------------------------------- landing page
def _overview(service, anonymous_hidden: bool) -> dict:
    out: dict = {"counts": [], "models": [], "ingests": [], "database": None, "problem": None}
    try:
        with service.readers.connection() as conn, data.readonly(conn, _timeout(service)):
            out["database"] = conn.execute("SHOW server_version").fetchone()[0]
            if not anonymous_hidden:
                out["counts"] = data.table_counts(conn)
                out["models"] = data.models(conn)
        if not anonymous_hidden:
            with service.writers.connection() as conn, data.readonly(conn, _timeout(service)):
                out["ingests"] = data.last_ingests(conn)
    except Exception as exc:  # the page still answers, saying what is wrong
        from xpdb.service.execute import describe_failure

        out["problem"] = describe_failure(exc).message
    return out


async def index(request: Request) -> Response:
    """The landing page (also what ``/`` was before: the service's endpoints)."""
    from xpdb.service.auth import current_user

    service = _service(request)
    hidden = service.settings.require_token and current_user(request) is None
    overview = await run_in_threadpool(_overview, service, hidden)
    return render(request, "index.html", title="xpdb", hidden=hidden, started=service.started,
                  uptime_s=time.time() - service.started.timestamp(), **overview)


# ---------------------------------------------------------------- ADQL
def _adql(service, query: str, page: int) -> dict:
    from xpdb.service.execute import TapRequest, query_table
    from xpdb.service.params import VOTABLE

    maxrec = min(page * PAGE_SIZE, MAX_PAGES_ROWS, service.settings.maxrec_limit)
    request = TapRequest(query=query, maxrec=maxrec, fmt=VOTABLE)
    with service.readers.connection() as conn:
        table, overflow, message = query_table(request, conn=conn, timeout_s=_timeout(service),
                                               max_result_bytes=service.settings.max_result_bytes,
                                               translate=service.parser.translate, published=service.published)
    first = (page - 1) * PAGE_SIZE
    columns = []
    for name in table.colnames:
        col = table[name]
        columns.append({"name": name, "unit": str(col.unit) if col.unit is not None else "",
                        "description": col.description or "",
                        "star": name.lower() in ("source_id", "neighbour_id") and col.dtype.kind in "iu"})
    rows = []
    for row in table[first:first + PAGE_SIZE]:
        rows.append([_number(row[name], 7) for name in table.colnames])
    return {"columns": columns, "rows": rows, "total": len(table), "first": first, "overflow": overflow,
            "overflow_message": message, "more": overflow or len(table) > first + PAGE_SIZE,
            "capped": overflow and maxrec >= MAX_PAGES_ROWS}


async def query_page(request: Request) -> Response:
    """GET ``/query`` (the form; with QUERY, its results, PAGE by PAGE)."""
    from xpdb.service.params import read_params

    service = _service(request)
    try:
        params = await read_params(request)
    except Exception as exc:
        return _failure(request, exc)
    query = params.get("QUERY") or ""
    try:
        page = min(max(1, int(params.get("PAGE") or 1)), MAX_PAGES_ROWS // PAGE_SIZE)
    except ValueError:
        return error_page(request, 400, f"PAGE must be a page number, not {params.get('PAGE')!r}")
    context = {"title": "ADQL query", "query": query, "examples": EXAMPLES, "result": None, "error": None,
               "page": page, "page_size": PAGE_SIZE, "downloads": [], "page_links": {}}
    status = 200
    if query.strip():
        if len(query) > service.settings.adql_max_length:
            context["error"] = f"the query is longer than {service.settings.adql_max_length:,} characters"
            status = 400
        else:
            try:
                context["result"] = await run_in_threadpool(_adql, service, query, page)
            except Exception as exc:
                from xpdb.service.execute import describe_failure

                failure = describe_failure(exc)
                context["error"], status = failure.message, failure.status
        root = str(request.url_for("index")).rstrip("/")
        context["downloads"] = [(label, f"{root}/tap/sync?" + urlencode({"LANG": "ADQL", "QUERY": query,
                                                                         "RESPONSEFORMAT": fmt}))
                                for label, fmt in DOWNLOADS]
        context["page_links"] = {k: "?" + urlencode({"QUERY": query, "PAGE": p})
                                 for k, p in (("previous", page - 1), ("next", page + 1)) if p >= 1}
    return render(request, "query.html", status=status, **context)


async def schema_page(request: Request) -> Response:
    """``/schema``: the published tables; ``/schema/{table}``: its columns."""
    service = _service(request)
    table = request.path_params.get("table")

    def read():
        with service.readers.connection() as conn, data.readonly(conn, _timeout(service)):
            tables = data.schema_tables(conn)
            columns = data.schema_columns(conn, table) if table else None
        return tables, columns

    try:
        tables, columns = await run_in_threadpool(read)
    except data.NotFound as exc:
        return error_page(request, 404, str(exc), "Not found")
    except Exception as exc:
        return _failure(request, exc)
    description = next((t["description"] for t in tables if t["table_name"] == table), None)
    return render(request, "schema.html", title=f"Table {table}" if table else "Tables", tables=tables,
                  table=table, columns=columns, description=description,
                  sample="?" + urlencode({"QUERY": f"SELECT TOP 10 * FROM {table}"}) if table else "")


# ---------------------------------------------------------------- cone search
def _cone(service, text: str, radius: float, maxrec: int) -> dict:
    from xpdb.query.cone import DEFAULT_COLUMNS, cone_query
    from xpdb.query.run import run_readonly
    from xpdb.service.scs import newest_model

    with service.readers.connection() as conn:
        with data.readonly(conn, _timeout(service)):
            target = data.find_cluster(conn, text)
        if target is None:
            target = data.parse_target(text)
        model_id, model_ref = newest_model(conn)
        sql, params = cone_query(target.ra, target.dec, radius, columns=DEFAULT_COLUMNS, model_id=model_id,
                                 limit=maxrec + 1)
        result = run_readonly(sql, params, max_rows=maxrec, timeout_s=_timeout(service), conn=conn,
                              max_bytes=service.settings.max_result_bytes, prepared=True)
    table = result.to_table()
    columns = [{"name": n, "unit": str(table[n].unit) if table[n].unit is not None else "",
                "description": table[n].description or "", "star": n == "source_id"} for n in table.colnames]
    rows = [[_number(row[n], 7) for n in table.colnames] for row in table]
    return {"target": target, "model": model_ref, "columns": columns, "rows": rows, "overflow": result.overflow}


async def cone_page(request: Request) -> Response:
    """GET ``/cone?target=...&radius=...&unit=arcmin``: the form, and with a target its rows."""
    from xpdb.service.params import read_params

    service = _service(request)
    try:
        params = await read_params(request)
    except Exception as exc:
        return _failure(request, exc)
    text = (params.get("target") or "").strip()
    radius_text = (params.get("radius") or "5").strip()
    unit = (params.get("unit") or "arcmin").strip()
    try:
        maxrec = max(1, min(int(params.get("maxrec") or 1000), service.settings.maxrec_limit))
    except ValueError:
        return error_page(request, 400, f"maxrec must be a number of rows, not {params.get('maxrec')!r}")

    def names():
        with service.readers.connection() as conn, data.readonly(conn, _timeout(service)):
            return data.cluster_names(conn)

    try:
        clusters = await run_in_threadpool(names)
    except Exception as exc:
        return _failure(request, exc)
    context = {"title": "Cone search", "target": text, "radius": radius_text, "unit": unit, "maxrec": maxrec,
               "units": list(data.RADIUS_UNITS), "clusters": clusters, "result": None, "error": None,
               "downloads": []}
    status = 200
    if text:
        star_id = data.gaia_id(text)
        if star_id is not None:
            return RedirectResponse(str(request.url_for("web_star", source_id=str(star_id))), status_code=303)
        try:
            radius = data.radius_degrees(radius_text, unit)
            result = await run_in_threadpool(_cone, service, text, radius, maxrec)
            context["result"] = result
            root = str(request.url_for("index")).rstrip("/")
            t = result["target"]
            context["downloads"] = [
                (label, f"{root}/scs?" + urlencode({"RA": f"{t.ra:.7f}", "DEC": f"{t.dec:.7f}", "SR": f"{radius:.7g}",
                                                    "MAXREC": maxrec, "RESPONSEFORMAT": fmt}))
                for label, fmt in (("VOTable", "votable"), ("CSV", "csv"), ("FITS", "fits"))]
        except ValueError as exc:
            context["error"], status = str(exc), 400
        except Exception as exc:
            from xpdb.service.execute import describe_failure

            failure = describe_failure(exc)
            context["error"], status = failure.message, failure.status
    return render(request, "cone.html", status=status, **context)


# ---------------------------------------------------------------- star page
def _star(service, source_id: int) -> dict:
    from xpdb.service.web import plots

    with service.readers.connection() as conn, data.readonly(conn, _timeout(service)):
        star = data.star(conn, source_id)
    figures = {}
    usable = [f for f in star.features[:1] if f["flux"] is not None]
    if star.spectrum is not None:
        wl, flux, err, origin = star.spectrum
        features = (usable[0]["wavelength"], usable[0]["flux"], usable[0]["flux_error"]) if usable else None
        figures["spectrum"] = plots.spectrum_svg(
            wl, flux, err, features=features,
            label=f"XP spectrum of Gaia DR3 {source_id} with its error band"
                  + (" and the 60 features the model sees" if features else ""))
        figures["with_features"] = features is not None
    if star.source is not None and star.cmd_field[0]:
        figures["cmd"] = plots.cmd_svg(star.cmd_field, star.cmd_members,
                                       (star.source.get("bp_rp"), star.source.get("phot_g_mean_mag")),
                                       label=f"colour-magnitude diagram of the stars within {data.CMD_RADIUS_DEG:g} deg")
    return {"star": star, "figures": figures, "cmd_radius": data.CMD_RADIUS_DEG}


async def star_page(request: Request) -> Response:
    """``/star/{source_id}``."""
    service = _service(request)
    raw = request.path_params["source_id"]
    try:
        source_id = int(raw)
        if not 0 <= source_id < 2 ** 63:
            raise ValueError
    except ValueError:
        return error_page(request, 404, f"{raw!r} is not a Gaia DR3 source_id", "Not found")
    try:
        context = await run_in_threadpool(_star, service, source_id)
    except data.NotFound as exc:
        return error_page(request, 404, str(exc), "Star not found")
    except Exception as exc:
        return _failure(request, exc)
    root = str(request.url_for("index")).rstrip("/")
    star = context["star"]
    links = [(f"spectrum ({fmt})", f"{root}/datalink/spectrum?" + urlencode({"ID": source_id, "FORMAT": fmt}))
             for fmt in ("votable", "fits", "ecsv", "csv")] if star.spectrum is not None else []
    links.append(("DataLink links", f"{root}/datalink?" + urlencode({"ID": source_id})))
    links.append(("catalogue row (ADQL)", f"{root}/query?" + urlencode({
        "QUERY": f"SELECT * FROM xpdb.catalog_all WHERE source_id = {source_id}"})))
    return render(request, "star.html", title=f"Gaia DR3 {source_id}", links=links, **context)


# ---------------------------------------------------------------- models
class FigureCache:
    """The last few validation figures, by model, figure and what they depend on (they take seconds to draw)."""

    def __init__(self, size: int = 32):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)


FIGURE_CACHE = FigureCache()


def _models(service) -> dict:
    with service.readers.connection() as conn, data.readonly(conn, _timeout(service)):
        models = data.models(conn)
        validated = data.validated_models(conn)
    return {"models": models, "validated": validated, "figures": data.FIGURES}


async def models_page(request: Request) -> Response:
    service = _service(request)
    try:
        context = await run_in_threadpool(_models, service)
    except Exception as exc:
        return _failure(request, exc)
    return render(request, "models.html", title="Models", **context)


async def model_figure(request: Request) -> Response:
    """``/models/{model_id}/figures/{name}.png``: one figure of the report, drawn now (cached)."""
    service = _service(request)
    model_id, name = request.path_params["model_id"], request.path_params["name"]

    def draw() -> bytes:
        with service.readers.connection() as conn, data.readonly(conn, max(_timeout(service), 60.0)):
            key = (model_id, name, data.figure_fingerprint(conn, model_id))
            png = FIGURE_CACHE.get(key)
            if png is None:
                png = data.figure_png(conn, model_id, name)
                FIGURE_CACHE.put(key, png)
        return png

    try:
        png = await run_in_threadpool(draw)
    except data.NotFound as exc:
        return error_page(request, 404, str(exc), "Not found")
    except Exception as exc:
        return _failure(request, exc)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache", **HEADERS})


# ---------------------------------------------------------------- jobs
def _jobs(service) -> list[dict]:
    with service.writers.connection() as conn, data.readonly(conn, _timeout(service)):
        return data.jobs(conn)


async def jobs_page(request: Request) -> Response:
    service = _service(request)
    try:
        rows = await run_in_threadpool(_jobs, service)
    except Exception as exc:
        return _failure(request, exc)
    running = any(r["state"] in ("pending", "running") for r in rows)
    return render(request, "jobs.html", title="Inference jobs", jobs=rows, running=running)


async def jobs_json(request: Request) -> Response:
    service = _service(request)
    try:
        rows = await run_in_threadpool(_jobs, service)
    except Exception as exc:
        from xpdb.service.execute import describe_failure

        failure = describe_failure(exc)
        return JSONResponse({"error": failure.message}, status_code=failure.status)
    return JSONResponse({"jobs": data.jobs_json(rows)}, headers={"Cache-Control": "no-store"})


ROUTES = [
    Route("/query", query_page, methods=["GET", "POST"], name="web_query"),
    Route("/schema", schema_page, methods=["GET"], name="web_schema"),
    Route("/schema/{table}", schema_page, methods=["GET"], name="web_schema_table"),
    Route("/cone", cone_page, methods=["GET", "POST"], name="web_cone"),
    Route("/star/{source_id}", star_page, methods=["GET"], name="web_star"),
    Route("/models", models_page, methods=["GET"], name="web_models"),
    Route("/models/{model_id:int}/figures/{name}.png", model_figure, methods=["GET"], name="web_model_figure"),
    Route("/jobs", jobs_page, methods=["GET"], name="web_jobs"),
    Route("/jobs.json", jobs_json, methods=["GET"], name="web_jobs_json"),
    Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
]
