"""The baselines Depot is measured against, served by gunicorn with Depot's own settings.

- `POST /naive`: what a plain Flask upload endpoint does, `request.files["file"].save(path)`,
  and nothing else (no hashing, fsync, database or checks).
- `PUT /raw`: copies `request.stream` to a file in 1 MiB chunks: the practical ceiling for
  a request body on a Python WSGI path.
- `GET /hello`: a small JSON answer: the framework's ceiling for small requests.

Files land in BENCH_BASELINE_DIR and are removed by the benchmark between runs.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from flask import Flask, jsonify, request

CHUNK = 1024 * 1024

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = None
TARGET = Path(os.environ.get("BENCH_BASELINE_DIR", "/tmp/depot-bench-baselines"))
TARGET.mkdir(parents=True, exist_ok=True)


@app.post("/naive")
def naive():
    request.files["file"].save(TARGET / uuid.uuid4().hex)
    return jsonify({"status": "stored"}), 201


@app.put("/raw")
def raw():
    with open(TARGET / uuid.uuid4().hex, "wb") as out:
        while chunk := request.stream.read(CHUNK):
            out.write(chunk)
    return jsonify({"status": "stored"}), 201


@app.get("/hello")
def hello():
    return jsonify({"hello": "world"})
