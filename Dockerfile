# syntax=docker/dockerfile:1
# The CDS risk service: one `cds-service serve` process per container (docs/deployment.md).
#
#   docker build -t cds-risk-service:0.1.0 .
#   docker run --rm -p 8000:8000 cds-risk-service:0.1.0            # development, SQLite in the image
#
# Configuration comes only from CDS_* environment variables and mounted secret files (the
# trusted-callers file); nothing in the image is secret. tests/deploy/test_image.py runs this
# file's ENTRYPOINT + CMD as a plain process (same layout, user-writable paths, environment).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: the project wheel and every dependency as a wheel -------------------------------
FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
# All dependencies ship manylinux wheels for amd64 and arm64, so no compiler is installed here
# either; a dependency without one would need build-essential in this stage only.
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
COPY fhir_mappers ./fhir_mappers
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels/app . \
 && python -m pip wheel --no-cache-dir --wheel-dir /wheels/deps . \
 && rm /wheels/deps/cds_risk_service-*.whl

# ---- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# libgomp1: OpenMP runtime that LightGBM's wheel links against (a shared library, not a compiler).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 cds \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin cds \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/cds /var/spool/cds

# Dependencies in a virtualenv; the project itself in /opt/cds beside models/, hooks/ and sql/,
# the layout of a checkout (cds_service.paths finds sql/migrations next to the package).
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --no-deps /wheels/deps/*.whl \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --no-deps --target /opt/cds \
    /wheels/app/*.whl \
 && /opt/venv/bin/pip check

# Baked-in definitions; mount a volume over /opt/cds/models or /opt/cds/hooks (or point
# CDS_MODELS_DIR / CDS_HOOKS_DIR elsewhere) to serve a hospital's own models and hook files.
COPY sql /opt/cds/sql
COPY models /opt/cds/models
COPY hooks /opt/cds/hooks

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/cds \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/nonexistent \
    CDS_MODELS_DIR=/opt/cds/models \
    CDS_HOOKS_DIR=/opt/cds/hooks \
    CDS_DATA_DIR=/var/lib/cds \
    CDS_SPOOL_DIR=/var/spool/cds \
    CDS_LOG_FORMAT=json

# The only writable paths: /var/spool/cds (the audit spool: mount a volume), /var/lib/cds (the
# SQLite quick start only) and /tmp. The root filesystem can be read-only.
VOLUME ["/var/spool/cds"]
WORKDIR /opt/cds
USER 10001:10001
EXPOSE 8000

# Liveness only (never touches the database); readiness is /readyz, for the orchestrator.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["/opt/venv/bin/python", "-m", "cds_service.cli"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
