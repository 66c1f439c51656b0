"""Bad path segments, parameters and bodies: 4xx VOTable error documents, never a 500 or a traceback."""

from __future__ import annotations

import io

import pytest
import requests
from astropy.io.votable import parse as parse_votable

JOB_PATHS = ["", "/phase", "/parameters", "/results", "/results/result", "/error", "/owner", "/quote",
             "/executionduration", "/destruction"]
# (%2F is a path separator once decoded: /tap/async/%2F is redirected like /tap/async/)
BAD_SEGMENTS = ["%00", "%00abc", "abc%00", "%ff", "%ed%a0%80", "%c0%80", "a" * 5000, "%2e%2e",
                "%E2%98%83", "%0a", "%20", "'", "%27%3B%20DROP%20TABLE%20x", "%7B%7D"]


def assert_votable_error(response, low: int = 400, high: int = 499) -> str:
    assert low <= response.status_code <= high, (response.request.method, response.url, response.status_code,
                                                 response.text[:300])
    assert response.headers["content-type"].startswith("application/x-votable+xml"), response.headers
    assert "Traceback" not in response.text
    infos = parse_votable(io.BytesIO(response.content)).resources[0].infos
    status = [i for i in infos if i.name == "QUERY_STATUS"]
    assert status and status[0].value == "ERROR"
    return status[0].content or ""


@pytest.mark.parametrize("segment", BAD_SEGMENTS)
def test_bad_job_ids(server, segment):
    for path in JOB_PATHS:
        url = f"{server}/tap/async/{segment}{path}"
        for method in ("GET", "POST", "DELETE") if path in ("", "/phase") else ("GET", "POST"):
            response = requests.request(method, url, data={"PHASE": "ABORT"} if method == "POST" else None,
                                        allow_redirects=False)
            if response.status_code == 405:  # e.g. POST /quote: no such method there
                assert_votable_error(response)
                continue
            assert_votable_error(response)


@pytest.mark.parametrize("segment", BAD_SEGMENTS)
def test_bad_table_names(server, segment):
    assert_votable_error(requests.get(f"{server}/tap/tables/{segment}"))
    assert_votable_error(requests.get(f"{server}/tap/tables?tables={segment}"))


@pytest.mark.parametrize("path, method", [("/nothing", "GET"), ("/tap/nothing", "GET"), ("/tap/sync", "PUT"),
                                          ("/tap/async", "DELETE"), ("/tap/tables", "POST"), ("/%00", "GET")])
def test_unknown_paths_and_methods(server, path, method):
    assert_votable_error(requests.request(method, server + path))


SYNC = {"LANG": "ADQL", "QUERY": "SELECT TOP 1 source_id FROM xpdb.gaia_source"}
BAD_VALUES = ["\x00", "a\x00b", "\udcff"[:0] + "\ufffd", "nan", "inf", "-inf", "1e308", "-1", "9" * 400, "",
              " ", "0x10", "1_000", "\u2603", "'; SELECT 1; --"]


@pytest.mark.parametrize("name", ["LANG", "QUERY", "MAXREC", "RESPONSEFORMAT", "FORMAT", "REQUEST", "VERSION",
                                  "\x00", "UPLOAD"])
def test_bad_sync_parameters(server, name):
    for value in BAD_VALUES:
        for send in ("params", "data"):
            response = requests.post(server + "/tap/sync", **{send: {**SYNC, name: value}})
            if response.status_code == 200:  # a harmless value (e.g. VERSION, an unused parameter)
                assert "\x00" not in value
                continue
            assert_votable_error(response)


@pytest.mark.parametrize("name", ["PHASE", "RUNID", "EXECUTIONDURATION", "DESTRUCTION", "QUERY", "MAXREC",
                                  "LANG", "ACTION"])
def test_bad_async_parameters(server, name):
    for value in BAD_VALUES:
        created = requests.post(server + "/tap/async", data={**SYNC, name: value}, allow_redirects=False)
        if created.status_code == 303:
            url = created.headers["location"]
            for path, method in (("", "POST"), ("/parameters", "POST"), ("/phase", "POST"),
                                 ("/executionduration", "POST"), ("/destruction", "POST")):
                response = requests.request(method, url + path, data={name: value}, allow_redirects=False)
                if response.status_code not in (200, 303):
                    assert_votable_error(response)
            waited = requests.get(url, params={"WAIT": value, "PHASE": value})
            if waited.status_code != 200:
                assert_votable_error(waited)
            requests.delete(url)
        else:
            assert_votable_error(created)


@pytest.mark.parametrize("params", [{"PHASE": "\x00"}, {"PHASE": "NOPE"}, {"AFTER": "\x00"}, {"AFTER": "yesterday"},
                                    {"LAST": "\x00"}, {"LAST": "1e30"}, {"LAST": "-1"},
                                    {"LAST": "99999999999999999999999"}, {"AFTER": "9999-12-31T23:59:59+25:00"}])
def test_bad_job_list_filters(server, params):
    response = requests.get(server + "/tap/async", params=params)
    if response.status_code != 200:
        assert_votable_error(response)


@pytest.mark.parametrize("params", [{"RA": "\x00"}, {"DEC": "\x00"}, {"SR": "\x00"}, {"VERB": "\x00"},
                                    {"MAXREC": "\x00"}, {"RESPONSEFORMAT": "\x00"}, {"RA": "1e400"},
                                    {"SR": "-0.5"}, {"VERB": "9" * 50}, {"MAXREC": "-5"}])
def test_bad_cone_search_parameters(server, params):
    response = requests.get(server + "/scs", params={"RA": 100.5, "DEC": 10.5, "SR": 0.1, **params})
    assert response.status_code == 200 and "Traceback" not in response.text  # SCS 1.03: errors with HTTP 200
    votable = parse_votable(io.BytesIO(response.content))
    assert any(i.name == "Error" for i in votable.infos)


@pytest.mark.parametrize("body, content_type", [
    (b"LANG=ADQL&QUERY=%zz%", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00\x01", "application/x-www-form-urlencoded"),
    (b"--x\r\nContent-Disposition: form-data; name=\"UPLOAD\"; filename=\"t.vot\"\r\n\r\n<VOTABLE/>\r\n--x--\r\n",
     "multipart/form-data; boundary=x"),
    (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
    (b"{\"QUERY\": 1}", "application/json"),
    (b"LANG=ADQL&" + b"&".join(b"P%d=1" % i for i in range(5000)), "application/x-www-form-urlencoded"),
])
def test_bad_bodies(server, body, content_type):
    for path in ("/tap/sync", "/tap/async"):
        response = requests.post(server + path, data=body, headers={"Content-Type": content_type},
                                 allow_redirects=False)
        if response.status_code == 303:  # a job whose parameters were read as well as they could be
            assert path == "/tap/async"
            requests.delete(response.headers["location"])
            continue
        assert_votable_error(response)


def test_a_body_larger_than_allowed(server):
    response = requests.post(server + "/tap/sync", data=b"QUERY=" + b"x" * 20_000_000,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413 and "too large" in assert_votable_error(response)

    def chunks():  # no Content-Length: counted while it arrives
        for _ in range(40):
            yield b"x" * 500_000

    streamed = requests.post(server + "/tap/sync", data=chunks(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413
