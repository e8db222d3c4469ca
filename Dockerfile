# Depot container image: wheels are built in one stage, the slim runtime holds only the app
# and its pinned production requirements, running gunicorn as an unprivileged user.

FROM python:3.11-slim AS build
WORKDIR /build
COPY requirements/production.txt requirements/production.txt
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements/production.txt

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DEPOT_ENV=production \
    DATA_DIR=/data \
    FLASK_APP=autoapp.py
RUN groupadd --system depot && useradd --system --gid depot --home-dir /app --shell /usr/sbin/nologin depot
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/* && rm -rf /wheels
WORKDIR /app
COPY --chown=depot:depot app ./app
COPY --chown=depot:depot migrations ./migrations
COPY --chown=depot:depot autoapp.py ./
RUN mkdir -p /data && chown depot:depot /data
USER depot
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--access-logfile", "-", "autoapp:app"]
