"""Model kinds: one interface for the registry, the leased inference jobs and the write-back.

A kind says how to turn a stored artifact into something that predicts (``load``), how
to build its inputs from what the database stores for a batch of sources (``inputs``),
how to predict (``predict``, returning output columns), and where the outputs go
(``output``: a table keyed by ``(model_id, source_id)``). Training lives in each kind's
module too. Adding a kind is one new module here (registered in ``KINDS``) and a
migration for its output table.

Kinds: ``uacsnet`` (the paper's network), ``ridge`` and ``xgboost`` (baselines on the same
inputs); all three write [Fe/H] and its error to ``xpdb.prediction``. ``svae`` (the scatter
VAE) and ``xp_pca`` (its PCA baseline) write latents, fit statistics and anomaly scores to
``xpdb.svae_output``. ``transformer`` (the
foundation model of Leung & Bovy) and ``label_xgboost`` (its tree baseline) write Teff,
logg, [M/H] and [alpha/M] with errors to ``xpdb.label_prediction``; a kind that trains
its own way (not on the 60-pixel features) defines ``train_from_database``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import psycopg

from xpdb.db.copy import Column, copy_binary
from xpdb.errors import ModelNotFound


@dataclass(frozen=True)
class OutputSpec:
    """Where a kind's predictions go: a table keyed by (model_id, source_id), with job_id and created_at."""

    table: str
    columns: tuple[tuple[str, str], ...]  # (column, binary COPY kind), besides model_id and source_id

    @property
    def stage(self) -> str:
        return "stage_" + self.table.split(".")[-1]


class ModelKind:
    """The interface every kind implements (see the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str]
    output: ClassVar[OutputSpec]
    predict_batch: int = 32768  # rows per model call; the worker sets it for its device

    def load(self, record, artifact: bytes) -> Any:
        raise NotImplementedError

    def inputs(self, conn: psycopg.Connection, record, source_ids: np.ndarray, *,
               between: tuple[int, int] | None = None) -> Any:
        raise NotImplementedError

    def predict(self, loaded: Any, inputs: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError


KINDS: dict[str, str] = {  # kind -> module defining ``KIND``
    "uacsnet": "xpdb.models.kinds.uacsnet",
    "ridge": "xpdb.models.kinds.baselines",
    "xgboost": "xpdb.models.kinds.baselines",
    "svae": "xpdb.models.kinds.svae",
    "xp_pca": "xpdb.models.kinds.svae",
    "transformer": "xpdb.models.kinds.transformer",
    "label_xgboost": "xpdb.models.kinds.transformer",
}


def get(name: str) -> ModelKind:
    """The kind called ``name``."""
    import importlib

    if name not in KINDS:
        raise ModelNotFound(f"unknown model kind {name!r}; known: {', '.join(KINDS)}")
    module = importlib.import_module(KINDS[name])
    return module.KINDS[name] if hasattr(module, "KINDS") else module.KIND


def write_back(conn: psycopg.Connection, spec: OutputSpec, *, model_id: int, job_id: int | None,
               source_ids: np.ndarray, outputs: dict[str, np.ndarray], nulls: dict[str, np.ndarray] | None = None) -> int:
    """COPY the outputs into a staging table and upsert them into ``spec.table`` (caller's transaction)."""
    types = {"int2": "smallint", "int4": "integer", "int8": "bigint", "float4": "real", "float8": "double precision",
             "bytea_f4": "bytea", "bytea_f8": "bytea", "text": "text", "bool": "boolean"}
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {spec.stage} (source_id bigint, "
                 + ", ".join(f"{name} {types[kind]}" for name, kind in spec.columns) + ") ON COMMIT DELETE ROWS")
    names = [name for name, _ in spec.columns]
    cols = [Column("source_id", "int8", np.asarray(source_ids, np.int64))]
    for name, kind in spec.columns:
        cols.append(Column(name, kind, outputs[name], None if nulls is None else nulls.get(name)))
    copy_binary(conn, spec.stage, cols)
    update = ", ".join(f"{n} = EXCLUDED.{n}" for n in names)
    return conn.execute(
        f"INSERT INTO {spec.table} (model_id, source_id, {', '.join(names)}, job_id) "
        f"SELECT %s, source_id, {', '.join(names)}, %s FROM {spec.stage} "
        f"ON CONFLICT (model_id, source_id) DO UPDATE SET {update}, job_id = EXCLUDED.job_id, created_at = now()",
        (model_id, job_id)).rowcount


def names() -> Sequence[str]:
    return tuple(KINDS)
