"""DALI request parameters: case-insensitive names, GET query strings and POSTed forms.

Also the shared parameters of TAP and cone search: ``MAXREC`` (capped by the service's
ceiling) and ``RESPONSEFORMAT`` (``FORMAT`` in TAP 1.0) with the formats we write.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.requests import Request


class ParameterError(ValueError):
    """A parameter that is missing or has a value the service cannot use (HTTP 400)."""


class RequestTooLarge(ParameterError):
    """A request body larger than the service accepts (HTTP 413)."""


DEFAULT_MAX_PART = 4 << 20  # bytes of one form field when the service's own limit is not known


class Params:
    """Request parameters by upper-cased name; the first value wins when one is repeated."""

    def __init__(self, items: Iterable[tuple[str, str]] = (), files: dict[str, tuple[str, bytes]] | None = None):
        self.files = files or {}  # uploaded parts by field name: (file name, content)
        self._values: dict[str, list[str]] = {}
        for key, value in items:
            self._values.setdefault(key.upper(), []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._values.get(name.upper())
        return values[0] if values else default

    def getall(self, name: str) -> list[str]:
        return list(self._values.get(name.upper(), []))

    def __contains__(self, name: str) -> bool:
        return name.upper() in self._values

    def items(self) -> list[tuple[str, str]]:
        return [(k, v) for k, values in self._values.items() for v in values]

    def as_dict(self) -> dict[str, str]:
        """First value of every parameter (what UWS stores and shows)."""
        return {k: values[0] for k, values in self._values.items()}


async def read_params(request: Request, *, files: bool = False) -> Params:
    """The query-string parameters and, for POST, the form fields; with ``files``, also the uploaded
    parts (TAP_UPLOAD's ``param:`` tables), refused otherwise.

    A form field may be as long as the whole request body may be (the service's
    ``max_body_bytes``); a NUL character in any name or value is refused.
    """
    items = list(request.query_params.multi_items())
    parts: dict[str, tuple[str, bytes]] = {}
    if request.method == "POST":
        service = getattr(request.app.state, "service", None)
        limit = service.settings.max_body_bytes if service is not None else DEFAULT_MAX_PART
        try:
            async with request.form(max_part_size=limit) as form:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        if not files:
                            raise ParameterError("table uploads (UPLOAD) are accepted by TAP queries (/tap/sync, "
                                                 "and /tap/async when a job is created) only")
                        parts[key] = (value.filename or key, await value.read())
                        continue
                    items.append((key, value))
        except RequestTooLarge:
            raise
        except ParameterError:
            raise
        except Exception as exc:  # python-multipart's and Starlette's parse errors
            status = getattr(exc, "status_code", 400)
            if status == 413:
                raise RequestTooLarge(str(getattr(exc, "detail", exc))) from None
            raise ParameterError(f"the request body cannot be read as a form: {getattr(exc, 'detail', exc)}") from None
    for key, value in items:
        if "\x00" in key or "\x00" in value:
            raise ParameterError(f"parameter {key.replace(chr(0), '?')!r} contains a NUL character")
    return Params(items, parts)


@dataclass(frozen=True)
class Format:
    """An output format: its short name, the media type sent and the VOTable serialization."""

    name: str
    media_type: str
    serialization: str | None = None

    @property
    def encoding(self) -> str:
        """How values are written, for counting a result's bytes: 'binary', 'text' or 'xml'."""
        if self.name in ("csv", "tsv"):
            return "text"
        return "xml" if self.serialization == "tabledata" else "binary"


VOTABLE = Format("votable", "application/x-votable+xml", "binary2")
VOTABLE_TD = Format("votable", "application/x-votable+xml", "tabledata")
VOTABLE_B = Format("votable", "application/x-votable+xml", "binary")
CSV = Format("csv", "text/csv; header=present")
TSV = Format("tsv", "text/tab-separated-values")
FITS = Format("fits", "application/fits")

_FORMATS = {
    "votable": VOTABLE, "application/x-votable+xml": VOTABLE, "text/xml": VOTABLE, "application/xml": VOTABLE,
    "votable/b2": VOTABLE, "votable/binary2": VOTABLE,
    "application/x-votable+xml;serialization=binary2": VOTABLE, "text/xml;serialization=binary2": VOTABLE,
    "votable/td": VOTABLE_TD, "votable/tabledata": VOTABLE_TD,
    "application/x-votable+xml;serialization=tabledata": VOTABLE_TD, "text/xml;serialization=tabledata": VOTABLE_TD,
    "votable/b": VOTABLE_B, "votable/binary": VOTABLE_B,
    "application/x-votable+xml;serialization=binary": VOTABLE_B,
    "csv": CSV, "text/csv": CSV, "text/csv;header=present": CSV,
    "tsv": TSV, "text/tab-separated-values": TSV,
    "fits": FITS, "application/fits": FITS, "image/fits": FITS,
}
FORMAT_NAMES = ("votable (BINARY2)", "votable/td", "csv", "tsv", "fits")


def parse_format(params: Params, default: Format = VOTABLE) -> Format:
    """RESPONSEFORMAT (or TAP 1.0's FORMAT) as a Format; the default when absent."""
    raw = params.get("RESPONSEFORMAT") or params.get("FORMAT")
    if raw is None or not raw.strip():
        return default
    key = "".join(raw.split()).lower()
    if key in _FORMATS:
        return _FORMATS[key]
    raise ParameterError(f"RESPONSEFORMAT {raw!r} is not supported; use one of {', '.join(FORMAT_NAMES)} "
                         "or their media types")


def parse_maxrec(params: Params, default: int, ceiling: int) -> int:
    """MAXREC as a number of rows: the default when absent, never above the ceiling."""
    raw = params.get("MAXREC")
    if raw is None or not raw.strip():
        return min(default, ceiling)
    try:
        value = int(raw.strip())
    except ValueError:
        raise ParameterError(f"MAXREC must be a non-negative integer, not {raw!r}") from None
    if value < 0:
        raise ParameterError(f"MAXREC must be a non-negative integer, not {raw!r}")
    return min(value, ceiling)


_ROOTS: OrderedDict = OrderedDict()


def root_url(request: Request) -> str:
    """The service's root URL as this request's client sees it: ``url_for('index')`` without its trailing
    slash, kept per scheme, Host and root path (Starlette's ``url_for`` walks the routes every time)."""
    scope = request.scope
    key = (scope.get("scheme"), request.headers.get("host"), scope.get("server"), scope.get("root_path", ""))
    root = _ROOTS.get(key)
    if root is None:
        root = str(request.url_for("index")).rstrip("/")
        _ROOTS[key] = root
        while len(_ROOTS) > 64:  # a client may send any Host
            _ROOTS.popitem(last=False)
    return root
