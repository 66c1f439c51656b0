"""Load test of `xpdb serve`: concurrent clients of mixed cone search and TAP queries, loopback only.

Builds N synthetic sources (default 200,000) in a 20 x 20 degree patch with one model's
predictions in a scratch database, starts `xpdb serve` on a free loopback port as a
separate process, then runs CLIENTS clients (default 16; asyncio tasks in this process, each with
one keep-alive HTTP/1.1 connection) for SECONDS (default 30), each sending, one after another:

- 45% cone searches   /scs?RA&DEC&SR=0.1 (VERB=2, with the model's FEH; ~20 rows)
- 45% TAP sync         ADQL CONTAINS/CIRCLE r=0.1 deg on xpdb.catalog, BINARY2 VOTable
- 10% TAP async        create with PHASE=RUN, WAIT for the end, fetch the result, DELETE

at random centres inside the patch. A request counts as an error unless it answers 200 (303
for async steps) with QUERY_STATUS OK. Prints requests/s and p50/p99 latency overall and
per kind, and the CPU each request cost the load generator, the server and PostgreSQL (psutil); exits 1
if any request failed. The load generator is a minimal HTTP client on purpose: it shares the cores with
the server and PostgreSQL, and ``requests`` (used before) cost about 1.4 ms of CPU a request.

    python bench/serve.py [--clients 16] [--seconds 30] [--n 200000] [--processes 1] [--compare]
                          [--baseline-src ../main]

``--compare`` runs the load twice on the same database, first with astropy writing the
VOTables (``XPDB_SERVE_VOTABLE_WRITER=astropy``, the baseline) then with xpdb's writer, and
prints requests/s and p50 of both with their ratio.

``--baseline-src DIR`` runs the load twice on the same database, first with the xpdb of
another checkout (e.g. the main branch: its server process imports ``DIR/xpdb``, and the
database is first taken down to that checkout's migration head) then with this one (the
database migrated back up), and prints both with their ratio. Every run prints the load
average before and after it (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import scratch_database  # noqa: E402

from xpdb.db.engine import with_user  # noqa: E402
from xpdb.ingest.runs import ingest_file  # noqa: E402

PATCH = (140.0, 160.0, 10.0, 30.0)  # ra min, ra max, dec min, dec max
RADIUS = 0.1
MIX = (("scs", 45), ("tap", 45), ("async", 10))
ISSUE_FIGURE = (73.0, 165.0)  # requests/s and p50 ms of this load test when issue 19 was filed
SERVE = "import typer; from xpdb.cli.serve import serve; typer.run(serve)"


def build(n: int) -> str:
    """A scratch database with n sources and one model's predictions (reused when already built)."""
    name = "xpdb_bench_serve"
    from urllib.parse import urlsplit, urlunsplit

    from xpdb.db.engine import database_url

    parts = urlsplit(database_url())
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    try:
        with psycopg.connect(url) as conn:
            have = conn.execute("SELECT (SELECT count(*) FROM xpdb.gaia_source), "
                                "(SELECT count(*) FROM xpdb.prediction), "
                                "(SELECT to_regclass('xpdb.uws_job') IS NOT NULL)").fetchone()
        if have[0] == n and have[1] == n and have[2]:
            print(f"reusing {name}: {n:,} sources with predictions")
            return url
    except psycopg.Error:
        pass
    url = scratch_database(name)
    rng = np.random.default_rng(1)
    ra_min, ra_max, dec_min, dec_max = PATCH
    ra = rng.uniform(ra_min, ra_max, n)
    dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(dec_min)), np.sin(np.radians(dec_max)), n)))
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = Path(tmp) / "sources.parquet"
        pq.write_table(pa.table({
            "source_id": np.arange(1, n + 1, dtype=np.int64) * 1024, "ra": ra, "dec": dec,
            "phot_g_mean_mag": rng.uniform(8, 18, n).astype(np.float32),
            "bp_rp": rng.uniform(0.5, 2.0, n).astype(np.float32),
            "ebv": rng.uniform(0.01, 0.1, n).astype(np.float32),
            "parallax": rng.uniform(0.05, 3, n), "r_med_geo": rng.uniform(300, 8000, n).astype(np.float32),
            "phot_bp_rp_excess_factor": rng.uniform(1.1, 1.4, n).astype(np.float32)}), path)
        t0 = time.perf_counter()
        ingest_file(url, "sources", path)
        print(f"loaded {n:,} sources in {time.perf_counter() - t0:.1f} s")
    with psycopg.connect(url) as conn:
        model_id = conn.execute("INSERT INTO xpdb.model (kind, name, version, hyperparameters, artifact) "
                                "VALUES ('uacsnet', 'bench', 1, '{}', '\\x00') RETURNING model_id").fetchone()[0]
        conn.execute("INSERT INTO xpdb.prediction (model_id, source_id, feh, feh_err, flags) "
                     "SELECT %s, source_id, -1 + random(), 0.1 + random() / 10, 0 FROM xpdb.gaia_source",
                     (model_id,))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE xpdb.prediction")
    return url


def start_server(url: str, pool: int, processes: int, writer: str | None = None,
                 source: str | None = None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "XPDB_DATABASE_URL": url,
           "XPDB_READER_URL": os.environ.get("XPDB_READER_URL") or with_user(url, "xpdb_reader")}
    if source:  # another checkout's xpdb (the baseline of --baseline-src)
        env["PYTHONPATH"] = os.pathsep.join([str(Path(source).resolve()), env.get("PYTHONPATH", "")])
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave the other checkout as it is
    if writer:
        env["XPDB_SERVE_VOTABLE_WRITER"] = writer
    # ``python -c`` imports from its working directory first: the baseline runs in its own checkout
    process = subprocess.Popen([sys.executable, "-c", SERVE, "--host", "127.0.0.1", "--port", str(port),
                                "--pool", str(pool), "--processes", str(processes), "--log-level", "warning"],
                               env=env, cwd=str(Path(source).resolve()) if source else None)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/tap/availability", timeout=5) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("xpdb serve did not start")
        time.sleep(0.2)


class CpuMeter:
    """CPU seconds used by this process (the load generator), the server's process tree and PostgreSQL's
    (every process of the cluster), from psutil; PostgreSQL is left out when it is not on this machine."""

    def __init__(self, url: str, server_pid: int):
        import psutil

        self.psutil = psutil
        self.server = psutil.Process(server_pid)
        self.postmaster = None
        try:
            with psycopg.connect(url) as conn:
                folder = conn.execute("SHOW data_directory").fetchone()[0]
            pid = int(Path(folder, "postmaster.pid").read_text().split()[0])
            self.postmaster = psutil.Process(pid)
        except (psycopg.Error, OSError, ValueError, psutil.Error):
            pass

    def _tree(self, root) -> float:
        total = 0.0
        if root is None:
            return float("nan")
        for proc in [root] + root.children(recursive=True):
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except self.psutil.Error:
                pass
        return total

    def read(self) -> tuple[float, float, float]:
        """(load generator, server, PostgreSQL) CPU seconds so far."""
        return time.process_time(), self._tree(self.server), self._tree(self.postmaster)


def centre(rng: random.Random) -> tuple[float, float]:
    ra_min, ra_max, dec_min, dec_max = PATCH
    return rng.uniform(ra_min + 1, ra_max - 1), rng.uniform(dec_min + 1, dec_max - 1)


class Client:
    """One keep-alive HTTP/1.1 connection over asyncio streams: what a VO client sends, at little CPU.

    The load generator shares the machine's cores with the server and PostgreSQL, so it is kept lean: no
    session objects or header classes, one ``readuntil`` for the head and one ``readexactly`` for the body
    (``requests`` cost 1.3-1.6 ms of CPU a request here, about as much as PostgreSQL's share).
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, form: dict | None = None) -> tuple[int, dict, bytes]:
        """(status, headers with lower-case names, body); reconnects once when the server closed the connection."""
        body = urlencode(form).encode() if form is not None else b""
        head = (f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                + ("Content-Type: application/x-www-form-urlencoded\r\n" if form is not None else "")
                + f"Content-Length: {len(body)}\r\n\r\n").encode()
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(head + body)
                raw = await self.reader.readuntil(b"\r\n\r\n")
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            content = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                content += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                del content[-2:]
            content = bytes(content[:-2]) if content.endswith(b"\r\n") else bytes(content)
        else:
            content = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def ok_votable(status: int, content: bytes) -> bool:
    return status == 200 and b'name="QUERY_STATUS" value="OK"' in content


async def one_scs(client: Client, rng) -> bool:
    ra, dec = centre(rng)
    status, _, content = await client.request("GET", "/scs?" + urlencode({"RA": ra, "DEC": dec, "SR": RADIUS}))
    return ok_votable(status, content)


def adql(rng) -> str:
    ra, dec = centre(rng)
    return ("SELECT source_id, ra, dec, phot_g_mean_mag, bp_rp0, feh, feh_err FROM xpdb.catalog "
            f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra:.6f}, {dec:.6f}, {RADIUS}))")


async def one_tap(client: Client, rng) -> bool:
    status, _, content = await client.request("POST", "/tap/sync", {"REQUEST": "doQuery", "LANG": "ADQL",
                                                                     "QUERY": adql(rng)})
    return ok_votable(status, content)


async def one_async(client: Client, rng) -> bool:
    status, headers, _ = await client.request("POST", "/tap/async", {"LANG": "ADQL", "QUERY": adql(rng),
                                                                      "PHASE": "RUN"})
    if status != 303:
        return False
    path = urlsplit(headers["location"]).path
    deadline = time.monotonic() + 60
    phase = ""
    while time.monotonic() < deadline:
        status, _, content = await client.request("GET", path + "?WAIT=10")
        if status != 200:
            return False
        phase = content.decode().split("<uws:phase>", 1)[1].split("<", 1)[0]
        if phase not in ("PENDING", "QUEUED", "EXECUTING"):
            break
    good = phase == "COMPLETED" and ok_votable(*(await client.request("GET", path + "/results/result"))[::2])
    status, _, _ = await client.request("DELETE", path)
    return status == 303 and good


def run(base: str, clients: int, seconds: float, seed: int = 0) -> list[tuple[str, float, bool]]:
    """``clients`` concurrent clients (one asyncio task and one keep-alive connection each) for ``seconds``:
    (kind, seconds, good) of every request."""
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    calls = {"scs": one_scs, "tap": one_tap, "async": one_async}
    parts = urlsplit(base)
    records: list[tuple[str, float, bool]] = []

    async def client(i: int, stop: float) -> None:
        rng = random.Random(seed * 1000 + i)
        connection = Client(parts.hostname, parts.port)
        try:
            while time.monotonic() < stop:
                kind = rng.choices(kinds, weights)[0]
                t0 = time.perf_counter()
                try:
                    good = await calls[kind](connection, rng)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
                    good = False
                    connection.close()
                records.append((kind, time.perf_counter() - t0, good))
        finally:
            connection.close()

    async def main() -> None:
        stop = time.monotonic() + seconds
        await asyncio.gather(*(client(i, stop) for i in range(clients)))

    asyncio.run(main())
    return records


def report(records, seconds: float) -> int:
    print(f"\n{'kind':<8s} {'requests':>9s} {'errors':>7s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for kind in ["all"] + [k for k, _ in MIX]:
        rows = [r for r in records if kind == "all" or r[0] == kind]
        if not rows:
            continue
        latency = np.array([r[1] for r in rows]) * 1000
        errors = sum(not r[2] for r in rows)
        print(f"{kind:<8s} {len(rows):>9,d} {errors:>7,d} {len(rows) / seconds:>8.1f} "
              f"{np.percentile(latency, 50):>8.1f} {np.percentile(latency, 99):>8.1f}")
    return sum(not r[2] for r in records)


def stats(records, seconds: float) -> dict[str, tuple[float, float]]:
    """(requests/s, p50 ms) per kind and overall."""
    out = {}
    for kind in ["all"] + [k for k, _ in MIX]:
        rows = [r for r in records if kind == "all" or r[0] == kind]
        if rows:
            out[kind] = (len(rows) / seconds, float(np.percentile(np.array([r[1] for r in rows]) * 1000, 50)))
    return out


def load(url: str, args, writer: str | None, source: str | None = None):
    """Start a server (with ``writer``, or another checkout's xpdb), warm it up, run the load test; its records."""
    process, base = start_server(url, args.pool, args.processes, writer, source)
    try:
        run(base, args.clients, 2.0, seed=99)  # warm-up, not counted
        print(f"{args.clients} clients for {args.seconds:g} s against {base} ({args.processes} server process(es), "
              f"{'xpdb of ' + source if source else 'this xpdb'}, VOTable writer {writer or 'default'}) "
              f"(mix {', '.join(f'{k} {w}%' for k, w in MIX)}; {os.cpu_count()} CPUs shared with PostgreSQL)",
              flush=True)
        try:
            meter = CpuMeter(url, process.pid)
        except ImportError:
            meter = None
        before = os.getloadavg()
        cpu0 = meter.read() if meter else None
        records = run(base, args.clients, args.seconds)
        cpu1 = meter.read() if meter else None
        after = os.getloadavg()
        print(f"load average (1, 5, 15 min) before {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}, "
              f"after {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}", flush=True)
        if cpu0 and records:
            used = [(b - a) / len(records) * 1000 for a, b in zip(cpu0, cpu1)]
            print(f"CPU per request: load generator {used[0]:.2f} ms, server {used[1]:.2f} ms, PostgreSQL "
                  f"{used[2]:.2f} ms ({sum(b - a for a, b in zip(cpu0, cpu1)) / args.seconds:.2f} of "
                  f"{os.cpu_count()} cores busy with this test)", flush=True)
        return records
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def at_revision_of(url: str, source: str) -> str:
    """Take the database to the migration head of checkout ``source`` (what its server expects); ``source``."""
    from xpdb.db.migrate import current_revision, downgrade

    head = subprocess.run([sys.executable, "-c", "from xpdb.db.migrate import head_revision; print(head_revision())"],
                          env={**os.environ, "PYTHONPATH": str(Path(source).resolve()), "PYTHONDONTWRITEBYTECODE": "1"},
                          cwd=str(Path(source).resolve()), capture_output=True, text=True, check=True).stdout.strip()
    if current_revision(url) != head:
        from alembic.util.exc import CommandError

        try:
            downgrade(url, head)
        except CommandError:
            raise SystemExit(f"{source}'s migration head {head} is not in this checkout's chain (the branches have "
                             "diverged): merge or rebase first, or compare with a checkout this one descends from")
    print(f"baseline: xpdb of {source} (schema at its head {head})")
    return source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--pool", type=int, default=8, help="read-only connections per server process")
    parser.add_argument("--processes", type=int, default=1, help="server processes (xpdb serve --processes)")
    parser.add_argument("--baseline-src", metavar="DIR",
                        help="run first with the xpdb of checkout DIR (its schema), then with this one; print both")
    parser.add_argument("--compare", action="store_true",
                        help="run twice: astropy's VOTable writer (the baseline, as before issue 19), then xpdb's; "
                             "print both with their ratio")
    args = parser.parse_args()
    if not 0 < args.seconds <= 600 or not 0 < args.clients <= 256:
        raise SystemExit("keep the run bounded: 0 < --seconds <= 600, 0 < --clients <= 256")
    url = build(args.n)
    if args.compare or args.baseline_src:
        if args.baseline_src:
            base_records = load(url, args, None, source=at_revision_of(url, args.baseline_src))
            from xpdb.db.migrate import upgrade

            upgrade(url)
            new_records = load(url, args, None)
        else:
            base_records = load(url, args, "astropy")
            new_records = load(url, args, "numpy")
        errors = report(new_records, args.seconds) + sum(not r[2] for r in base_records)
        before, after = stats(base_records, args.seconds), stats(new_records, args.seconds)
        print(f"\n{'kind':<8s} {'req/s':>8s} {'baseline':>9s} {'ratio':>6s}   {'p50 ms':>7s} {'baseline':>9s} {'ratio':>6s}")
        for kind in after:
            (rate, p50), (rate0, p500) = after[kind], before.get(kind, (float("nan"), float("nan")))
            print(f"{kind:<8s} {rate:>8.1f} {rate0:>9.1f} {rate / rate0:>6.2f}   {p50:>7.1f} {p500:>9.1f} "
                  f"{p50 / p500:>6.2f}")
        rate, p50 = after["all"]
        print(f"\nissue 19's figure when it was filed (16 clients, another moment on a shared machine): "
              f"{ISSUE_FIGURE[0]:g} requests/s, p50 {ISSUE_FIGURE[1]:g} ms; this run: {rate / ISSUE_FIGURE[0]:.2f}x "
              f"the requests/s, p50 {p50:.0f} ms")
        sys.exit(1 if errors else 0)
    records = load(url, args, None)
    errors = report(records, args.seconds)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
