"""Optional authentication of ``xpdb serve``: who sends a request (``request.state.user``).

A client identifies itself with its token (``xpdb users add NAME``) as
``Authorization: Bearer TOKEN``, or with HTTP Basic authentication (user NAME, password
TOKEN: what TOPCAT and most clients can send). A request without credentials is
anonymous (``user`` None) - allowed unless the service requires tokens
(``require_token``), in which case only the VOSI capabilities and availability and the
index page answer it. Wrong credentials are never treated as anonymous: 401.

Users matter for asynchronous jobs: a job created with a token belongs to that user, and
no one else may list, read, change, abort or delete it (see ``uws.py``).
"""

from __future__ import annotations

import base64
import binascii

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from xpdb.service.documents import error_document

OPEN_PATHS = ("/", "/capabilities", "/tap/capabilities", "/tap/availability")
CHALLENGE = 'Bearer realm="xpdb", Basic realm="xpdb"'


class AuthenticationError(PermissionError):
    """Missing or wrong credentials (HTTP 401)."""


class Forbidden(PermissionError):
    """The user may not touch this resource (HTTP 403)."""


def parse_credentials(header: str) -> tuple[str, str | None]:
    """(token, user name given with it or None) from an Authorization header; AuthenticationError if malformed."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value, None
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationError("the Basic credentials are not valid base64 of user:token") from None
        user, sep, token = decoded.partition(":")
        if sep and token:
            return token, user or None
    raise AuthenticationError("send the token as 'Authorization: Bearer TOKEN' (or Basic with the user name and "
                              "the token as password)")


class Authentication:
    """ASGI middleware: sets ``scope['state']['user']``; answers 401 itself."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = getattr(scope["app"].state, "service", None) if "app" in scope else None
        user = None
        header = Headers(scope=scope).get("authorization")
        try:
            if header is not None and service is not None:
                token, named = parse_credentials(header)
                user = await run_in_threadpool(service.users.lookup, token)
                if user is None or (named is not None and named != user):
                    raise AuthenticationError("unknown or withdrawn token")
            elif service is not None and service.settings.require_token and scope["path"] not in OPEN_PATHS:
                raise AuthenticationError("this service needs a token (ask its operator: xpdb users add NAME)")
        except AuthenticationError as exc:
            await _unauthorized(str(exc))(scope, receive, send)
            return
        except Exception as exc:  # the database did not answer the token lookup
            from starlette.responses import Response

            from xpdb.service.execute import describe_failure

            failure = describe_failure(exc)
            await Response(error_document(failure.message), status_code=failure.status,
                           media_type="application/x-votable+xml")(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)


def _unauthorized(message: str):
    from starlette.responses import Response

    return Response(error_document(f"authentication failed: {message}"), status_code=401,
                    media_type="application/x-votable+xml", headers={"WWW-Authenticate": CHALLENGE})


def current_user(request) -> str | None:
    """The authenticated user of ``request``, None when anonymous."""
    return getattr(request.state, "user", None)
