"""The load generators and probes of the benchmark.

- Transfers use curl, a C client that is never the bottleneck; every command line is built
  here (`curl_upload`, `curl_download`), so any figure can be reproduced by hand.
- Small requests use wrk (Debian's package) with `--latency` for percentiles.
- Memory is the resident set size of each gunicorn worker, sampled from /proc every 20 ms
  while a transfer runs; the figure is the largest growth over its value just before.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MB = 1_000_000


@dataclass
class Transfer:
    status: int
    seconds: float
    body: str

    def mb_per_s(self, size: int) -> float:
        return size / MB / self.seconds


def _curl(args: list[str], body_path: Path | None = None) -> Transfer:
    out = str(body_path) if body_path else "/dev/null"
    # Expect: (empty) stops curl waiting for 100-continue before large bodies.
    command = ["curl", "-sS", "-o", out, "-w", "%{http_code} %{time_total}", "-H", "Expect:", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True)
    status, seconds = done.stdout.split()
    body = body_path.read_text() if body_path and body_path.exists() else ""
    return Transfer(int(status), float(seconds), body)


def curl_upload(url: str, path: Path, *, multipart: bool, headers: tuple[str, ...] = (), reply: Path | None = None):
    """POST the file as multipart (`-F file=@path`) or PUT it as the raw body (`-T path`)."""
    args = [f"-H{h}" for h in headers]
    args += ["-F", f"file=@{path}", url] if multipart else ["-T", str(path), url]
    return _curl(args, reply)


def curl_download(url: str, headers: tuple[str, ...] = ()) -> Transfer:
    return _curl([*(f"-H{h}" for h in headers), url])


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    output: str = ""  # wrk's own report, for a failure's message


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * _UNITS[unit]


def wrk(url: str, connections: int, seconds: float, headers: tuple[str, ...] = (), script: Path | None = None):
    """wrk with `connections` connections (2 threads at most, the machine has 2 cores)."""
    # A request slower than wrk's default 2 s would count as failed: it is slow, and the
    # percentiles say so; failed means refused or broken.
    command = ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    command += ["--timeout", "30s"]
    command += [arg for h in headers for arg in ("-H", h)]
    command += ["-s", str(script)] if script else []
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60, check=True)
    out = done.stdout
    percentiles = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.MULTILINE))
    if set(percentiles) != {"50", "99"}:
        raise RuntimeError(f"unexpected wrk output for {url}:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        errors=(int(errors.group(1)) if errors else 0)
        + (sum(int(n) for n in socket_errors.groups()) if socket_errors else 0),
        output=out,
    )


def multipart_script(path: Path, body: bytes, token: str | None) -> Path:
    """A wrk Lua script that POSTs `body` as the `file` part of a multipart form."""
    boundary = "depotbenchboundary"
    form = path.with_suffix(".body")
    form.write_bytes(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="small.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "multipart/form-data; boundary={boundary}"\n'
        f"{auth}"
        f'local f = io.open("{form}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
    )
    return path


class RssSampler:
    """Peak growth of the resident memory of a gunicorn master's workers while it runs."""

    def __init__(self, master_pid: int) -> None:
        self.master_pid = master_pid
        self.baseline = self._rss()
        self.peak = dict(self.baseline)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> dict[int, int]:
        children = Path(f"/proc/{self.master_pid}/task/{self.master_pid}/children").read_text().split()
        sizes = {}
        for pid in map(int, children):
            status = Path(f"/proc/{pid}/status").read_text()
            sizes[pid] = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024
        return sizes

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for pid, size in self._rss().items():
                self.peak[pid] = max(self.peak.get(pid, 0), size)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return max(self.peak[pid] - self.baseline.get(pid, self.peak[pid]) for pid in self.peak) / 1024**2


def upload_id(transfer: Transfer) -> str:
    return json.loads(transfer.body)["id"]


def settle() -> None:
    """Between measurements: flush every dirty page to disk (the baselines never fsync, so
    their data would otherwise be written back during the next contender's turn), then pause
    so one run's tail does not overlap the next."""
    os.sync()
    time.sleep(0.2)
