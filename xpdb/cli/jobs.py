"""``xpdb infer`` and ``xpdb jobs``: batch inference jobs that write FEH and FEH_err back."""

from __future__ import annotations

import tomllib
from pathlib import Path

import typer
from rich.table import Table

from xpdb.cli.console import console, fail, out, progress_bar, session

jobs_app = typer.Typer(help="Batch jobs: list, show, retry, cancel, and the worker process.", no_args_is_help=True)


def _connect():
    db = session()
    return db.url, db._connect()


def infer(
    model: str = typer.Option(None, "--model", help="NAME or NAME:VERSION (default: the newest model)."),
    batch: int = typer.Option(None, "--batch", help="Sources per batch (default 20000)."),
    workers: int = typer.Option(None, "--workers", help="Worker processes on this machine (default 2)."),
    where: str = typer.Option(None, "--where", help="Extra SQL condition on gaia_source/source_photometry columns."),
    job_file: Path = typer.Option(None, "--job", help="A job spec (TOML), e.g. jobs/infer-giants.toml."),
    all_sources: bool = typer.Option(False, "--all", help="Every source with XP spectra, not only the model's domain."),
    selection_name: str = typer.Option(None, "--selection", help="giant_sample (default; all for the scatter VAE), "
                                       "final_sample (the paper's first three cuts), model_domain or all."),
    resume: int = typer.Option(None, "--resume", help="Continue job ID (its pending and abandoned batches)."),
    max_attempts: int = typer.Option(None, "--max-attempts", help="Attempts per batch before it fails (default 3)."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Only create the job; run workers elsewhere."),
) -> None:
    """Predict [Fe/H] and its error for a selection of sources, in leased batches, with K workers."""
    from xpdb.jobs.batches import JobError, create_job, get_job
    from xpdb.jobs.batches import resume as resume_job
    from xpdb.jobs.runner import follow, spawn_workers
    from xpdb.models.registry import ModelNotFound, default, find

    spec: dict = {}
    if job_file:
        if where or all_sources:
            fail("give either --job FILE or --where/--all, not both")
        try:
            spec = tomllib.loads(job_file.read_text()).get("job", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            fail(f"{job_file}: {exc}")
    model = model or spec.get("model")
    batch = batch or spec.get("batch", 20000)
    workers = workers or spec.get("workers", 2)
    max_attempts = max_attempts or spec.get("max_attempts", 3)
    selection = "all" if all_sources else (selection_name or spec.get("selection"))  # None: the kind's default
    where = where or spec.get("where")
    url, conn = _connect()
    with conn:
        try:
            if resume is not None:
                job = resume_job(conn, resume)
            else:
                record = find(conn, model) if model else default(conn)
                if selection is None:
                    from xpdb.models import kinds

                    selection = getattr(kinds.get(record.kind), "default_selection", "giant_sample")
                job_id = create_job(conn, model_id=record.model_id, selection=selection, where=where, batch_size=batch,
                                    max_attempts=max_attempts, lease_seconds=spec.get("lease_seconds", 600),
                                    spec={"source": str(job_file) if job_file else "cli"})
                job = get_job(conn, job_id)
        except (JobError, ModelNotFound, ValueError) as exc:
            fail(str(exc))
    console.print(f"job {job.job_id}: model {job.model_ref}, selection {job.selection}"
                  + (f" where {job.spec.get('where')}" if job.spec.get("where") else "")
                  + f", {job.n_sources:,} sources in {job.n_batches} batches")
    if no_wait or job.n_batches == 0:
        if no_wait:
            console.print(f"run workers with: xpdb jobs work --job {job.job_id}")
        return
    procs = spawn_workers(url, job.job_id, workers)
    with progress_bar(f"infer job {job.job_id}", total=job.n_sources, unit="stars") as update:
        result = follow(url, job.job_id, procs, progress=lambda done, total: update(done, total))
    counts = result["counts"]
    out.print("batches: " + ", ".join(f"{k} {v['batches']} ({v['sources']:,} sources)" for k, v in counts.items()))
    for err in result["worker_errors"]:
        console.print(f"[red]worker error:[/] {err.strip()[-800:]}")
    if counts.get("failed") or counts.get("pending") or counts.get("running"):
        console.print(f"[yellow]job {job.job_id} not complete[/]: `xpdb jobs show {job.job_id}`, "
                      f"`xpdb jobs retry {job.job_id}`, `xpdb infer --resume {job.job_id}`")
        raise typer.Exit(2)


@jobs_app.command("work")
def work(job: list[int] = typer.Option(None, "--job", help="Only these jobs (default: any)."),
         wait: bool = typer.Option(False, "--wait", help="Keep waiting for new batches (a service worker)."),
         quiet: bool = typer.Option(False, "--quiet", help="No per-batch lines."),
         device: str = typer.Option("auto", "--device", help="auto (a GPU when the Keras backend sees one), "
                                    "cpu, or gpu (an error when none is visible)."),
         pause_before_commit: float = typer.Option(0.0, "--pause-before-commit", hidden=True,
                                                   help="Fault injection: sleep before each batch's final commit.")
         ) -> None:
    """A worker process: lease batches, predict, write back; runs here or on any machine."""
    import time

    from xpdb.jobs.worker import Worker
    from xpdb.models.backend import DeviceError, choose_device

    try:
        chosen = choose_device(device)
    except DeviceError as exc:
        fail(str(exc))
    worker = Worker(session().url, device=chosen)
    if not quiet:
        console.print(f"{worker.name}: device {chosen}" + (f" ({', '.join(_accelerators())})" if chosen == "gpu" else ""))
    if pause_before_commit:
        worker.before_commit = lambda: time.sleep(pause_before_commit)
    try:
        n = worker.run(job or None, wait=wait, on_batch=None if quiet else lambda o: console.print(
            f"batch {o.batch_id}: {o.n:,} stars in {o.seconds:.1f} s ({o.computed_features:,} features computed)"))
    finally:
        worker.close()
    if not quiet:
        console.print(f"{worker.name}: {n} batches done")


def _accelerators() -> list[str]:
    from xpdb.models.backend import accelerators, backend_name

    return [f"{backend_name()} {a}" for a in accelerators()]


@jobs_app.command("list")
def list_jobs() -> None:
    """Recent jobs and their progress."""
    from xpdb.jobs.batches import batch_counts, list_jobs as jobs

    _, conn = _connect()
    with conn:
        rows = [(j, batch_counts(conn, j.job_id)) for j in jobs(conn)]
    table = Table(title="jobs")
    for col in ("job", "model", "selection", "state", "sources", "batches done/total", "failed", "created"):
        table.add_column(col)
    for j, counts in rows:
        table.add_row(str(j.job_id), j.model_ref, j.selection, j.state, f"{j.n_sources:,}",
                      f"{counts.get('done', {}).get('batches', 0)}/{j.n_batches}",
                      str(counts.get("failed", {}).get("batches", 0)), str(j.created_at)[:19])
    out.print(table)


@jobs_app.command("show")
def show(job_id: int = typer.Argument(...)) -> None:
    """One job: its batches, their states, attempts, errors and speed."""
    from xpdb.jobs.batches import JobError, get_job

    _, conn = _connect()
    with conn:
        try:
            j = get_job(conn, job_id)
        except JobError as exc:
            fail(str(exc))
        batches = conn.execute("SELECT batch_id, first_source_id, last_source_id, n_sources, state, attempts, "
                               "lease_owner, seconds, error FROM xpdb.job_batch WHERE job_id = %s ORDER BY batch_id",
                               (job_id,)).fetchall()
        flags = conn.execute("SELECT flags, count(*) FROM xpdb.prediction WHERE job_id = %s GROUP BY 1 ORDER BY 1",
                             (job_id,)).fetchall()
    out.print(f"job {j.job_id}: {j.state}, model {j.model_ref}, selection {j.selection}, spec {j.spec}, "
              f"{j.n_sources:,} sources, batch size {j.batch_size}, max attempts {j.max_attempts}")
    table = Table(title="batches")
    for col in ("batch", "source_id range", "n", "state", "attempts", "worker", "stars/s", "error"):
        table.add_column(col)
    for b in batches:
        rate = f"{b[3] / b[7]:,.0f}" if b[7] else ""
        table.add_row(str(b[0]), f"{b[1]}..{b[2]}", str(b[3]), b[4], str(b[5]), b[6] or "", rate,
                      (b[8] or "").strip().splitlines()[-1][:60] if b[8] else "")
    out.print(table)
    if flags:
        out.print("prediction flags: " + ", ".join(f"{f}: {n:,}" for f, n in flags))


@jobs_app.command("retry")
def retry(job_id: int = typer.Argument(...)) -> None:
    """Reset failed batches to pending (then `xpdb infer --resume JOB`)."""
    from xpdb.jobs.batches import JobError
    from xpdb.jobs.batches import retry as do_retry

    _, conn = _connect()
    with conn:
        try:
            n = do_retry(conn, job_id)
        except JobError as exc:
            fail(str(exc))
    console.print(f"job {job_id}: {n} batches back to pending; run `xpdb infer --resume {job_id}`")


@jobs_app.command("cancel")
def cancel(job_id: int = typer.Argument(...)) -> None:
    """Cancel the batches of a job that have not started."""
    from xpdb.jobs.batches import JobError
    from xpdb.jobs.batches import cancel as do_cancel

    _, conn = _connect()
    with conn:
        try:
            n = do_cancel(conn, job_id)
        except JobError as exc:
            fail(str(exc))
    console.print(f"job {job_id}: {n} pending batches cancelled")
