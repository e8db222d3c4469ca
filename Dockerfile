# Depot container images. The default target (the last stage, `runtime`) is the app: wheels
# are built in one stage; the slim runtime holds only the app, its migrations, the built web
# console and its pinned production requirements (no test tools, no secrets), and runs
# gunicorn with gunicorn.conf.py as an unprivileged user. Migrations are not run here: docker
# compose runs them once in its `migrate` service (`flask db upgrade`).
# The `proxy` target is the compose nginx with the web console's files in it, built in the
# `console` stage from app/console's npm lockfile (no CDN at run time).
# Every base is pinned to a release (the Python stages to the same Python and Debian release),
# so a rebuild gets the same interpreter; update them on purpose.

# The web console (app/console): npm ci from its lockfile, then esbuild into dist/.
FROM node:22.23.4-trixie-slim AS console
WORKDIR /console
COPY app/console/package.json app/console/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY app/console/build.mjs ./
COPY app/console/src ./src
RUN npm run build

# The compose proxy: nginx serving the console under /console/ itself (the server template and
# nginx.conf are mounted by docker-compose.yml).
FROM nginx:1.30.5-alpine AS proxy
COPY --from=console /console/dist /usr/share/nginx/depot-console

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
COPY --from=console /console/dist ./app/console/dist
COPY migrations ./migrations
COPY autoapp.py gunicorn.conf.py ./
RUN mkdir -p /data && chown depot:depot /data
USER depot:depot
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=2).status != 200)"]
ENTRYPOINT ["gunicorn", "--config", "gunicorn.conf.py", "autoapp:app"]
