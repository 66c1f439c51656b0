"""The security tests share the service tests' fixtures: a database with sources and a model, the server."""

from tests.service.conftest import http, server, service_db  # noqa: F401  (fixtures)
