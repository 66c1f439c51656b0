"""``xpdb users``: the users of ``xpdb serve`` and their tokens."""

from __future__ import annotations

import typer
from rich.table import Table

from xpdb.cli.console import console, fail, out, session

app = typer.Typer(help="Users of `xpdb serve`: one secret token each (anonymous reading needs none).",
                  no_args_is_help=True)


def _connect():
    return session()._connect(autocommit=True)


def _show_token(name: str, token: str) -> None:
    console.print(f"token of [bold]{name}[/] (shown only now; the database keeps its hash):", highlight=False)
    out.print(token, highlight=False, soft_wrap=True)
    console.print("send it as 'Authorization: Bearer TOKEN' (or HTTP Basic: user name and the token as password)",
                  highlight=False)


@app.command("add")
def add(name: str = typer.Argument(..., help="User name (letters, digits, _ . @ -).")) -> None:
    """Create a user and print its token once."""
    from xpdb.service.users import UserError, add_user

    with _connect() as conn:
        try:
            token = add_user(conn, name)
        except UserError as exc:
            fail(str(exc))
    _show_token(name, token)


@app.command("reset")
def reset(name: str = typer.Argument(..., help="User name.")) -> None:
    """Give a user a new token (the old one stops working within seconds)."""
    from xpdb.service.users import UserError, reset_token

    with _connect() as conn:
        try:
            token = reset_token(conn, name)
        except UserError as exc:
            fail(str(exc))
    _show_token(name, token)


@app.command("remove")
def remove(name: str = typer.Argument(..., help="User name.")) -> None:
    """Remove a user (its token stops working within seconds)."""
    from xpdb.service.users import UserError, remove_user

    with _connect() as conn:
        try:
            remove_user(conn, name)
        except UserError as exc:
            fail(str(exc))
    console.print(f"user {name} removed", highlight=False)


@app.command("list")
def list_(
) -> None:
    """List the users (never their tokens)."""
    from xpdb.service.users import list_users

    with _connect() as conn:
        rows = list_users(conn)
    table = Table(title="users of xpdb serve")
    for column in ("name", "created", "token created"):
        table.add_column(column)
    for name, created, token_created in rows:
        table.add_row(name, f"{created:%Y-%m-%d %H:%M}", f"{token_created:%Y-%m-%d %H:%M}")
    out.print(table)
