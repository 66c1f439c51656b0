# PostgreSQL 15 with the q3c and pg_sphere extensions (the Debian packages the bootstrap installs).
FROM postgres:15-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15-q3c postgresql-15-pgsphere \
 && rm -rf /var/lib/apt/lists/*
