"""Similarity search: the stars nearest to one star in a scatter VAE's latent space.

The latent means are stored as a ``cube`` with a GiST index (``xpdb.svae_output.latent``),
so PostgreSQL answers the k nearest neighbours with ``ORDER BY latent <-> q LIMIT k`` from
the index (``xpdb.svae_similar``), without reading the other rows. It runs read-only as the
query role, like every user query. ADQL users reach the same through the view
``xpdb.svae_neighbours``.
"""

from __future__ import annotations

import psycopg

from xpdb.errors import ModelNotFound, QueryError

SIMILAR_SQL = """
SELECT n.rank, n.source_id, n.latent_distance, o.anomaly_score, o.chi2_red_scatter,
       s.ra, s.dec, s.phot_g_mean_mag, s.bp_rp
FROM xpdb.svae_similar(%(model)s, %(source)s, %(k)s, %(self)s) AS n
JOIN xpdb.svae_output AS o ON o.model_id = %(model)s AND o.source_id = n.source_id
LEFT JOIN xpdb.gaia_source AS s ON s.source_id = n.source_id
ORDER BY n.rank"""


def latent_model(conn: psycopg.Connection, ref: str | None = None):
    """The record of ``ref``, else the newest sVAE with outputs (the model of ``xpdb.xp_outliers``)."""
    from xpdb.models import registry

    if ref:
        record = registry.find(conn, ref)
        if record.kind not in ("svae", "xp_pca"):
            raise ModelNotFound(f"model {record.ref} is a {record.kind} model; similarity needs an svae or xp_pca model")
        return record
    row = conn.execute("""SELECT m.name || ':' || m.version FROM xpdb.model AS m
                          WHERE m.kind = 'svae' AND EXISTS (SELECT 1 FROM xpdb.svae_output AS o
                                                            WHERE o.model_id = m.model_id)
                          ORDER BY m.created_at DESC, m.model_id DESC LIMIT 1""").fetchone()
    if row is None:
        raise ModelNotFound("no scatter VAE with outputs: train one (xpdb train svae) and run it "
                            "(xpdb infer --model svae --all)")
    return registry.find(conn, row[0])


def similar(url: str, source_id: int, k: int = 20, *, model: str | None = None, include_self: bool = False,
            timeout_s: float = 60.0, reader_url: str | None = None):
    """(QueryResult, model record): the ``k`` nearest stars to ``source_id`` in the model's latent space.

    The model is looked up on ``url``; the search itself runs as the read-only role
    (``reader_url``, default ``XPDB_READER_URL`` or the main server's xpdb_reader).

    Examples
    --------
    >>> result, record = similar(url, 4295806720, k=5)                    # doctest: +SKIP
    >>> [row[1] for row in result.rows]                                   # doctest: +SKIP
    [...five source_ids, nearest first...]
    """
    from xpdb.query.run import reader_connect, run_readonly

    if k < 1:
        raise QueryError("k must be at least 1")
    with psycopg.connect(url) as conn:
        record = latent_model(conn, model)
        found = conn.execute("SELECT flags, latent IS NOT NULL FROM xpdb.svae_output WHERE model_id = %s "
                             "AND source_id = %s", (record.model_id, int(source_id))).fetchone()
    if not found:
        raise QueryError(f"source {source_id} has no output of model {record.ref}: run it over that star first "
                         f"(xpdb infer --model {record.ref} --all, or --where 'x.source_id = {source_id}')")
    if not found[1]:
        raise QueryError(f"source {source_id} has no latent in model {record.ref} (flags {found[0]}: no usable "
                         f"{record.hyperparameters.get('representation', '')} spectrum or G flux)")
    with reader_connect(reader_url, timeout_s=timeout_s) as conn:
        result = run_readonly(SIMILAR_SQL, {"model": record.model_id, "source": int(source_id), "k": int(k),
                                            "self": bool(include_self)}, max_rows=int(k), timeout_s=timeout_s,
                              conn=conn)
    return result, record
