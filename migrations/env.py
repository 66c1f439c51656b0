"""Alembic environment for xpdb: one schema (``xpdb``), migrations serialised by an advisory lock."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from xpdb.config import SCHEMA
from xpdb.db.engine import database_url, sqlalchemy_url
from xpdb.db.lease import LockSpace  # parallel workers must not migrate at the same time

config = context.config
url = config.attributes.get("xpdb_url") or config.get_main_option("sqlalchemy.url") or database_url()


def run_migrations_online() -> None:
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:s, 0)"), {"s": int(LockSpace.MIGRATION)})
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        connection.commit()
        context.configure(connection=connection, version_table_schema=SCHEMA, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
        connection.execute(text("SELECT pg_advisory_unlock(:s, 0)"), {"s": int(LockSpace.MIGRATION)})
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=sqlalchemy_url(url), version_table_schema=SCHEMA, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
