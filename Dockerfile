# ForexRisk API image: locked dependencies via uv, non-root, one uvicorn worker per container
# (scale with replicas; the calculation path is CPU-bound and single-threaded per worker).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    FOREXRISK_ENVIRONMENT=production \
    FOREXRISK_LOG_JSON=true

WORKDIR /srv
RUN pip install --no-cache-dir uv==0.13.8

# Dependencies first (cached layer), then the project.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY app ./app
COPY migrations ./migrations
# The widget's loader, iframe app, styles and strings: served as committed (no build step).
COPY widget ./widget
COPY alembic.ini ./
RUN uv sync --locked --no-dev

RUN useradd --system --uid 10001 --no-create-home forexrisk
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s --retries=3 \
    CMD ["/srv/.venv/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# Production reads DATABASE_URL (owner role, runs migrations), DATABASE_APP_URL / DATABASE_PLATFORM_URL
# and the FOREXRISK_* secrets from the environment (k8s: the forexrisk-secrets Secret).
CMD ["/srv/.venv/bin/forexrisk", "run", "--host", "0.0.0.0", "--port", "8000"]
