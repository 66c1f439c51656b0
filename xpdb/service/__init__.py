"""``xpdb serve``: IVOA Simple Cone Search and TAP 1.1 over the xpdb database.

Modules: ``app`` (the Starlette application and its routes), ``scs`` (cone search),
``tap`` (synchronous TAP queries), ``uws``/``jobs``/``executor`` (asynchronous TAP jobs
kept in PostgreSQL), ``vosi`` (capabilities, availability, tables), ``execute`` (one
ADQL query, read-only), ``documents`` (VOTable/CSV/FITS results and error documents),
``params`` (DALI parameters), ``pool`` (connections) and ``settings`` (limits).
"""
