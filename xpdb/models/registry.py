"""The model registry table: save, find, load, list and delete trained models.

A model is addressed as ``NAME`` (its newest version) or ``NAME:VERSION``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg

from xpdb import __version__
from xpdb.db.lease import LockSpace, lock_for_transaction
from xpdb.errors import ModelNotFound

COLUMNS = ("model_id", "kind", "name", "version", "hyperparameters", "preprocessing_id", "training_catalog",
           "test_catalog", "training_set_hash", "n_train", "metrics", "package_version", "device", "created_at")


@dataclass
class ModelRecord:
    model_id: int
    kind: str
    name: str
    version: int
    hyperparameters: dict
    preprocessing_id: int | None
    training_catalog: str | None
    test_catalog: str | None
    training_set_hash: str | None
    n_train: int | None
    metrics: dict | None
    package_version: str | None
    device: str | None
    created_at: object

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


def parse_ref(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.partition(":")
    if version and not version.isdigit():
        raise ValueError(f"model reference {ref!r}: the version after ':' must be a number")
    return name, int(version) if version else None


def save(conn: psycopg.Connection, *, kind: str, name: str, hyperparameters: dict, artifact: bytes,
         preprocessing_id: int | None, metrics: dict, training_catalog: str | None = None,
         test_catalog: str | None = None, training_set_hash: str | None = None, n_train: int | None = None,
         device: str | None = None) -> ModelRecord:
    """Insert a new version of ``name``; the version is one more than the newest."""
    lock_for_transaction(conn, LockSpace.MODEL_NAME, name)
    version = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM xpdb.model WHERE name = %s", (name,)).fetchone()[0]
    conn.execute(
        "INSERT INTO xpdb.model (kind, name, version, hyperparameters, preprocessing_id, training_catalog, "
        "test_catalog, training_set_hash, n_train, metrics, artifact, package_version, device) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (kind, name, version, json.dumps(hyperparameters), preprocessing_id, training_catalog, test_catalog,
         training_set_hash, n_train, json.dumps(metrics), artifact, __version__, device))
    return find(conn, f"{name}:{version}")


def find(conn: psycopg.Connection, ref: str) -> ModelRecord:
    """The record of ``NAME`` (newest version) or ``NAME:VERSION``."""
    name, version = parse_ref(ref)
    sql = f"SELECT {', '.join(COLUMNS)} FROM xpdb.model WHERE name = %s"
    args: tuple = (name,)
    if version is not None:
        sql += " AND version = %s"
        args += (version,)
    row = conn.execute(sql + " ORDER BY version DESC LIMIT 1", args).fetchone()
    if row is None:
        known = [f"{r[0]}:{r[1]}" for r in conn.execute("SELECT name, version FROM xpdb.model ORDER BY 1, 2")]
        raise ModelNotFound(f"no model {ref!r}" + (f"; known: {', '.join(known)}" if known else "; none trained yet"))
    return ModelRecord(*row)


def by_id(conn: psycopg.Connection, model_id: int) -> ModelRecord:
    """The record of a model by its id."""
    row = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM xpdb.model WHERE model_id = %s", (model_id,)).fetchone()
    if row is None:
        raise ModelNotFound(f"no model with id {model_id}")
    return ModelRecord(*row)


def newest(conn: psycopg.Connection, kind: str | None = None) -> ModelRecord:
    """The most recently created model (of ``kind``)."""
    row = conn.execute("SELECT name, version FROM xpdb.model WHERE (%s::text IS NULL OR kind = %s) "
                       "ORDER BY created_at DESC, model_id DESC LIMIT 1", (kind, kind)).fetchone()
    if row is None:
        raise ModelNotFound("no model trained yet: train one first (xpdb.connect().train(...), "
                            "CLI: xpdb train uacsnet --labels CATALOG)")
    return find(conn, f"{row[0]}:{row[1]}")


def default(conn: psycopg.Connection) -> ModelRecord:
    """The model the catalogue shows: the newest UA-CSNet with predictions, else the newest UA-CSNet,
    else the newest model of any kind (the rule of the ``xpdb.catalog`` view)."""
    row = conn.execute("""
        SELECT m.name || ':' || m.version FROM xpdb.model m
        ORDER BY (m.kind = 'uacsnet' AND EXISTS (SELECT 1 FROM xpdb.prediction p WHERE p.model_id = m.model_id)) DESC,
                 (m.kind = 'uacsnet') DESC, m.created_at DESC, m.model_id DESC LIMIT 1""").fetchone()
    if row is None:
        return newest(conn)  # raises ModelNotFound with the hint
    return find(conn, row[0])


def artifact(conn: psycopg.Connection, model_id: int) -> bytes:
    return bytes(conn.execute("SELECT artifact FROM xpdb.model WHERE model_id = %s", (model_id,)).fetchone()[0])


def load(conn: psycopg.Connection, ref: str):
    """(record, the loaded predictor of its kind) for a reference."""
    from xpdb.models import kinds

    record = find(conn, ref)
    return record, kinds.get(record.kind).load(record, artifact(conn, record.model_id))


def list_models(conn: psycopg.Connection) -> list[ModelRecord]:
    rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM xpdb.model ORDER BY name, version").fetchall()
    return [ModelRecord(*r) for r in rows]


def delete(conn: psycopg.Connection, ref: str) -> ModelRecord:
    record = find(conn, ref)
    conn.execute("DELETE FROM xpdb.model WHERE model_id = %s", (record.model_id,))
    return record
