"""Depot's benchmark suite: `python -m bench` (or `bench/run.sh`, which installs wrk and nginx).

    python -m bench                 # the full run: writes bench/results.md and bench/plots/*.png
    python -m bench --smoke --out D # a quick pass over every scenario with tiny sizes, into D

It starts Depot under gunicorn (production config), the baselines of bench/baselines.py under
the same gunicorn settings, and nginx, each on a free loopback port, and measures uploads,
downloads, memory, small requests, small uploads (SQLite and PostgreSQL) and listing growth.
Needs PostgreSQL on 127.0.0.1:5432 (DEPOT_TEST_PG), curl, wrk and nginx.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import report, scenarios
from bench.servers import baselines, depot, postgres_database, static_nginx

FULL = {
    "sizes": [1 * scenarios.MIB, 16 * scenarios.MIB, 256 * scenarios.MIB, 1024 * scenarios.MIB],
    "large": [256 * scenarios.MIB, 1024 * scenarios.MIB],
    "download": 1024 * scenarios.MIB,
    "concurrency": [1, 2, 4, 8, 16],
    "seconds": 5,
    "rows": [100, 100_000],
    "runs": 3,
}
SMOKE = {
    "sizes": [1 * scenarios.MIB, 6 * scenarios.MIB],
    "large": [6 * scenarios.MIB],
    "download": 6 * scenarios.MIB,
    "concurrency": [8],
    "seconds": 1,
    "rows": [100, 2_000],
    "runs": 1,
}


def run(plan: dict, runs: int, out: Path, command: str) -> Path:
    results = scenarios.Results()
    work = Path(tempfile.mkdtemp(prefix="depot-bench-"))
    started = time.monotonic()
    try:
        files = {size: scenarios.make_file(work, size) for size in sorted(set(plan["sizes"]) | {plan["download"]})}
        with depot(work, "depot") as app, baselines(work) as base:
            step("uploads")
            scenarios.upload_throughput(results, app, base, {s: files[s] for s in plan["sizes"]}, runs)
            identifier, on_disk = scenarios.store_for_download(app, files[plan["download"]])
            with static_nginx(on_disk.parent, work) as nginx:
                step("downloads")
                scenarios.download_throughput(results, app, nginx, identifier, on_disk, runs)
            step("memory")
            scenarios.memory(results, app, identifier, files[plan["download"]], runs)
            step("small requests")
            scenarios.small_requests(results, app, base, plan["concurrency"], plan["seconds"], runs)
            with postgres_database() as database_url, depot(work, "depot-pg", database_url) as app_pg:
                step("small uploads")
                scenarios.small_uploads(
                    results,
                    {
                        "depot (SQLite)": (f"{app.url}/api/v1/uploads", app.token),
                        "depot (PostgreSQL)": (f"{app_pg.url}/api/v1/uploads", app_pg.token),
                        "naive (no hash, fsync or database)": (f"{base.url}/naive", None),
                    },
                    work,
                    plan["seconds"],
                    runs,
                )
                scenarios._clear(base.files)
        step("listing growth")
        with depot(work, "depot-few") as few, depot(work, "depot-many") as many:
            small, large = plan["rows"]
            filled = {
                small: (few, scenarios.fill_uploads(few, small)),
                large: (many, scenarios.fill_uploads(many, large)),
            }
            scenarios.listing_growth(results, filled, plan["seconds"], runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    notes = [f"Wall time of the run: {time.monotonic() - started:.0f} s."]
    return report.write(results, out, command, runs, plan["large"], notes)


def step(name: str) -> None:
    print(f"==> {name}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and one short run of every scenario")
    parser.add_argument("--runs", type=int, help="repetitions of each measurement (default 3, smoke 1)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="folder for results.md")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    runs = args.runs or plan["runs"]
    command = "python -m bench" + (" --smoke" if args.smoke else "") + (f" --runs {args.runs}" if args.runs else "")
    path = run(plan, runs, args.out, command)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
