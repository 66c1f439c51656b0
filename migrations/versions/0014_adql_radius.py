"""ADQL geometry guard for computed radii (found by bench/security_probe.py).

Revision ID: 0014_adql_radius
Revises: 0013_ivoa
Create Date: 2026-11-27

The translator refuses a constant CIRCLE radius (or the ``r`` of ``DISTANCE(...) < r``)
outside [0, 180] degrees, but a radius ADQL computes (``SQRT(40000)``, ``ABS(-200)``, a
column) passed unchecked. ``xpdb.adql_radius(r, what)`` returns ``r`` or raises an error
naming it; IMMUTABLE, so PostgreSQL folds it for constants at plan time and q3c keeps its
index. Functions are executable by PUBLIC, so the reader may call it.
"""

from xpdb.db.migrate import frozen_steps

revision = "0014_adql_radius"
down_revision = "0013_ivoa"
branch_labels = None
depends_on = None

upgrade, downgrade = frozen_steps(revision)
