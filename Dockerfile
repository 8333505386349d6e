# Conveyor's images: one per service, built once, configured only at run time.
#
#   docker build --target api    -t conveyor-api .
#   docker build --target worker -t conveyor-worker .
#   docker build --target loadgen -t conveyor-loadgen .
#
# Build args: PYTHON_IMAGE (the base; CI passes a local stand-in), VERSION and
# GIT_REVISION (reported by GET /version and stamped into the OCI labels),
# SOURCE_URL (the org.opencontainers.image.source label; empty by default).
# Needs BuildKit (the default builder since Docker 23; DOCKER_BUILDKIT=1 before).
#
# Layers, from slowest-changing to fastest: base -> uv -> locked deps (cache
# mounts, re-run only when requirements/<svc>.txt changes) -> code. A code-only
# change re-runs only the last COPY steps and a sub-second compileall.

ARG PYTHON_IMAGE=python:3.12-slim

# ---------------------------------------------------------------------------
# The runtime base both images share: no compiler, no caches, a numeric user.
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONFAULTHANDLER=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 conveyor \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin conveyor
WORKDIR /app

# ---------------------------------------------------------------------------
# Build-only: uv itself, hash-pinned. Never shipped.
FROM base AS uv
# Build-stage caches live outside any home directory (BuildKit cache mounts).
ENV PIP_CACHE_DIR=/var/cache/pip \
    UV_CACHE_DIR=/var/cache/uv
COPY requirements/uv.txt /tmp/requirements/uv.txt
# pip's cache is a BuildKit cache mount, never part of a layer (hence no --no-cache-dir).
# hadolint ignore=DL3042
RUN --mount=type=cache,target=/var/cache/pip \
    python -m pip install --quiet --root-user-action=ignore --require-hashes --no-deps \
      -r /tmp/requirements/uv.txt

# One venv per service, from its hash-locked requirements only (no dev tools).
# Byte-compiled here, because the root file system is read-only at run time.
FROM uv AS api-deps
COPY requirements/api.txt /tmp/requirements/api.txt
RUN --mount=type=cache,target=/var/cache/uv \
    python -m venv --without-pip /opt/venv \
 && UV_LINK_MODE=copy uv pip sync --quiet --require-hashes --compile-bytecode \
      --python /opt/venv/bin/python /tmp/requirements/api.txt

FROM uv AS loadgen-deps
COPY requirements/loadgen.txt /tmp/requirements/loadgen.txt
RUN --mount=type=cache,target=/var/cache/uv \
    python -m venv --without-pip /opt/venv \
 && UV_LINK_MODE=copy uv pip sync --quiet --require-hashes --compile-bytecode \
      --python /opt/venv/bin/python /tmp/requirements/loadgen.txt

FROM uv AS worker-deps
COPY requirements/worker.txt /tmp/requirements/worker.txt
RUN --mount=type=cache,target=/var/cache/uv \
    python -m venv --without-pip /opt/venv \
 && UV_LINK_MODE=copy uv pip sync --quiet --require-hashes --compile-bytecode \
      --python /opt/venv/bin/python /tmp/requirements/worker.txt

# ---------------------------------------------------------------------------
# The API image.
FROM base AS api
COPY --from=api-deps /opt/venv /opt/venv
COPY scripts/migrate.py scripts/create_api_key.py scripts/revoke_api_key.py /app/scripts/
COPY libs/common/src /app/libs/common/src
COPY services/api/src /app/services/api/src
ENV PYTHONPATH=/app/libs/common/src:/app/services/api/src
RUN python -m compileall -q /app/libs /app/services
# Build metadata last, so a new revision re-uses every layer above.
ARG VERSION=0.0.0-dev
ARG GIT_REVISION=unknown
ARG SOURCE_URL=""
ENV APP_VERSION=${VERSION} \
    GIT_REVISION=${GIT_REVISION}
LABEL org.opencontainers.image.title="conveyor-api" \
      org.opencontainers.image.description="Conveyor HTTP API (FastAPI, one uvicorn process on \$PORT)" \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${GIT_REVISION} \
      org.opencontainers.image.source=${SOURCE_URL}
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('PORT', '8000'), timeout=4)"]
# Exec form: python is PID 1 and receives SIGTERM itself.
CMD ["python", "-m", "conveyor.api"]

# ---------------------------------------------------------------------------
# The worker image: `worker` by default; also runs the scheduler
# (`python -m conveyor.worker.scheduler`) and the one-off admin scripts.
FROM base AS worker
COPY --from=worker-deps /opt/venv /opt/venv
COPY scripts/migrate.py scripts/create_api_key.py scripts/revoke_api_key.py /app/scripts/
COPY libs/common/src /app/libs/common/src
COPY services/worker/src /app/services/worker/src
ENV PYTHONPATH=/app/libs/common/src:/app/services/worker/src
RUN python -m compileall -q /app/libs /app/services
ARG VERSION=0.0.0-dev
ARG GIT_REVISION=unknown
ARG SOURCE_URL=""
ENV APP_VERSION=${VERSION} \
    GIT_REVISION=${GIT_REVISION}
LABEL org.opencontainers.image.title="conveyor-worker" \
      org.opencontainers.image.description="Conveyor Celery worker, scheduler and admin scripts" \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${GIT_REVISION} \
      org.opencontainers.image.source=${SOURCE_URL}
USER 10001:10001
EXPOSE 9808
# The worker touches $HEARTBEAT_FILE from its event loop; stale means stuck.
# (The scheduler writes no heartbeat: run it with --no-healthcheck.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "conveyor.worker.healthcheck"]
# Exec form: Celery's main process is PID 1 and gets SIGTERM; it alone
# stops its prefork children.
CMD ["python", "-m", "conveyor.worker"]

# ---------------------------------------------------------------------------
# The load generator: Locust and the locustfile, nothing of Conveyor's code.
# Configure with CONVEYOR_URL, CONVEYOR_API_KEY, LOADTEST_MIX and LOCUST_* env.
FROM base AS loadgen
COPY --from=loadgen-deps /opt/venv /opt/venv
COPY scripts/loadtest/locustfile.py /app/scripts/loadtest/locustfile.py
ARG VERSION=0.0.0-dev
ARG GIT_REVISION=unknown
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="conveyor-loadgen" \
      org.opencontainers.image.description="Locust load generator for Conveyor (web UI on 8089)" \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${GIT_REVISION} \
      org.opencontainers.image.source=${SOURCE_URL}
USER 10001:10001
EXPOSE 8089
CMD ["locust", "-f", "scripts/loadtest/locustfile.py"]
