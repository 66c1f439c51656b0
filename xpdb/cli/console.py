"""Shared console, progress bars and error exits for the CLI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, Task,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

console = Console(stderr=True)
out = Console()


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
