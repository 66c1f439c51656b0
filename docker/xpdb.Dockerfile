# The xpdb package (CLI, workers, TAP service) on Python 3.11; the database runs elsewhere.
FROM python:3.11-slim-bookworm
WORKDIR /opt/xpdb
COPY pyproject.toml README.md alembic.ini ./
COPY xpdb ./xpdb
COPY migrations ./migrations
COPY sql ./sql
COPY jobs ./jobs
RUN pip install --no-cache-dir .
ENV XPDB_HOME=/data
ENTRYPOINT ["xpdb"]
CMD ["--help"]
