# Depot container image. Wheels are built in one stage; the slim runtime holds only the app,
# its migrations and its pinned production requirements (no test tools, no secrets), and
# runs gunicorn with gunicorn.conf.py as an unprivileged user. Migrations are not run here:
# docker compose runs them once in its `migrate` service (`flask db upgrade`).
# The base is pinned to a Python release and a Debian release (both stages the same), so a
# rebuild gets the same interpreter; update it on purpose.

FROM python:3.11.16-slim-trixie AS build
WORKDIR /build
COPY requirements/production.txt requirements/production.txt
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements/production.txt

FROM python:3.11.16-slim-trixie AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DEPOT_ENV=production \
    DATA_DIR=/data \
    FLASK_APP=autoapp.py \
    PORT=8000
RUN groupadd --system depot && useradd --system --gid depot --home-dir /app --shell /usr/sbin/nologin depot
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/* && rm -rf /wheels
WORKDIR /app
COPY app ./app
COPY migrations ./migrations
COPY autoapp.py gunicorn.conf.py ./
RUN mkdir -p /data && chown depot:depot /data
USER depot:depot
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=2).status != 200)"]
ENTRYPOINT ["gunicorn", "--config", "gunicorn.conf.py", "autoapp:app"]
