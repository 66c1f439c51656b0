"""Many clients at once: mixed cone searches, sync and async TAP queries, all answered correctly.

A short version of ``bench/serve.py`` (16 clients, loopback only): every response must be
the one the same request gets alone. Each client sends a fixed number of requests (not
as many as fit in some seconds), so the outcome never depends on the machine's speed.
"""

from __future__ import annotations

import io
import random
import threading
import time

from astropy.io.votable import parse as parse_votable

from tests.service.conftest import ClosingSession

CLIENTS = 16
REQUESTS_PER_CLIENT = 12  # the first of each client's is an async job
CENTRES = [(100.1 + 0.1 * i, 10.1 + 0.08 * i) for i in range(8)]


def scs(session, server, centre):
    response = session.get(server + "/scs", params={"RA": centre[0], "DEC": centre[1], "SR": 0.15})
    response.raise_for_status()
    table = parse_votable(io.BytesIO(response.content)).get_first_table()
    return [int(s) for s in table.array["source_id"]]


def tap(session, server, centre):
    query = ("SELECT source_id, feh FROM xpdb.catalog WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
             f"CIRCLE('ICRS', {centre[0]}, {centre[1]}, 0.15)) ORDER BY source_id")
    response = session.post(server + "/tap/sync", data={"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": "csv"})
    response.raise_for_status()
    return response.text


def tap_async(session, server, centre):
    query = f"SELECT TOP 5 source_id FROM xpdb.gaia_source WHERE ra > {centre[0]} ORDER BY source_id"
    created = session.post(server + "/tap/async", data={"LANG": "ADQL", "QUERY": query, "PHASE": "RUN",
                                                        "RESPONSEFORMAT": "csv"}, allow_redirects=False)
    assert created.status_code == 303
    url = created.headers["location"]
    deadline = time.monotonic() + 30
    while session.get(url + "/phase").text not in ("COMPLETED", "ERROR") and time.monotonic() < deadline:
        session.get(url, params={"WAIT": 5})
    body = session.get(url + "/results/result")
    body.raise_for_status()
    assert session.delete(url, allow_redirects=False).status_code == 303
    return body.text


def test_sixteen_clients_get_correct_answers(server):
    with ClosingSession() as session:
        expected = {(kind, c): fn(session, server, c) for c in CENTRES
                    for kind, fn in (("scs", scs), ("tap", tap), ("async", tap_async))}
    assert any(len(v) > 3 for (kind, _), v in expected.items() if kind == "scs")
    errors: list[str] = []
    counts = {"scs": 0, "tap": 0, "async": 0}
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with ClosingSession() as session:
            for i in range(REQUESTS_PER_CLIENT):
                centre = rng.choice(CENTRES)
                kind = "async" if i == 0 else rng.choice(["scs", "tap"])
                fn = {"scs": scs, "tap": tap, "async": tap_async}[kind]
                try:
                    got = fn(session, server, centre)
                    ok = got == expected[(kind, centre)]
                except Exception as exc:  # counted, reported below
                    ok, got = False, repr(exc)
                with lock:
                    counts[kind] += 1
                    if not ok:
                        errors.append(f"{kind} {centre}: {str(got)[:200]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:5]
    assert sum(counts.values()) == CLIENTS * REQUESTS_PER_CLIENT and counts["async"] == CLIENTS, counts
