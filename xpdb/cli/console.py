"""Shared console, progress bars, the API session and error exits for the CLI.

Commands call the Python API (``session()`` is ``xpdb.connect()``); an ``XpdbError`` raised
anywhere below a command ends it with a one-line message and exit code 1 (``XpdbGroup``),
never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
import typer.core
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, Task,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

console = Console(stderr=True)
out = Console() if sys.stdout.isatty() else Console(width=160)  # a pipe or file: do not wrap at 80 columns


class RateColumn(ProgressColumn):
    """Items per second, with the unit of the task (rows, stars, spectra)."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "rows")
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {unit}/s" if speed else f"- {unit}/s", style="cyan")


@contextmanager
def progress_bar(description: str, total: int | None = None, unit: str = "rows") -> Iterator:
    """A rich progress bar; yields ``update(done, total)``. Silent when stderr is not a terminal."""
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               RateColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=total, unit=unit)

        def update(done: int, new_total: int | None = None) -> None:
            progress.update(task, completed=done, total=new_total if new_total is not None else total)

        yield update


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error (no traceback) and exit."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def session():
    """The API session every command works through (``xpdb.connect()``); errors end the command cleanly."""
    from xpdb.api import connect

    return connect()


def parse_mapping(items: list[str] | None) -> dict[str, str]:
    """``--map feh=FE_H --map teff=TEFF`` -> {'feh': 'FE_H', 'teff': 'TEFF'}."""
    mapping: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            fail(f"--map expects schema_column=file_column, got {item!r}")
        key, value = item.split("=", 1)
        mapping[key.strip().lower()] = value.strip()
    return mapping


def is_interactive() -> bool:
    return sys.stdin.isatty()


class XpdbGroup(typer.core.TyperGroup):
    """A command group that turns xpdb's own errors into one-line messages (exit code 1)."""

    def invoke(self, ctx):
        from xpdb.errors import XpdbError

        try:
            return super().invoke(ctx)
        except XpdbError as exc:
            fail(str(exc))


def print_table(table, title: str | None = None, digits: int = 3) -> None:
    """An astropy Table as a terminal table (floats to ``digits`` decimals, NaN and None as '-')."""
    import math

    from rich.table import Table as RichTable

    rich = RichTable(title=title)
    for name in table.colnames:
        rich.add_column(name, justify="right" if table[name].dtype.kind in "iuf" else "left", no_wrap=True)

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        if hasattr(value, "dtype") and value.dtype.kind == "f":
            return "-" if math.isnan(float(value)) else f"{float(value):.{digits}f}"
        return str(value)

    for row in table:
        rich.add_row(*[cell(row[name]) for name in table.colnames])
    target = out if out.is_terminal else Console(width=100 + 24 * len(table.colnames))  # a pipe: never cut values
    target.print(rich)
