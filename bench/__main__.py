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
from bench.servers import baselines, depot, static_nginx, temporary_database

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


STEPS = ("uploads", "downloads", "memory", "small-requests", "small-uploads", "listing")


def run(plan: dict, runs: int, out: Path, command: str, only: set[str]) -> tuple[Path, list[str]]:
    """Every step in `only`; a step that fails is reported in the notes, the others still run."""
    results = scenarios.Results()
    failures: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="depot-bench-"))
    started = time.monotonic()

    def attempt(name: str, measure) -> None:
        if name not in only:
            return
        print(f"==> {name}", flush=True)
        try:
            measure()
        except Exception as error:  # noqa: BLE001 (reported, and the other steps go on)
            failures.append(f"- `{name}` failed: {type(error).__name__}: {error}".splitlines()[0])
            print(failures[-1], flush=True)

    try:
        files = {size: scenarios.make_file(work, size) for size in sorted(set(plan["sizes"]) | {plan["download"]})}
        download_file = files[plan["download"]]
        with depot(work, "depot") as app, baselines(work) as base:
            attempt(
                "uploads",
                lambda: scenarios.upload_throughput(results, app, base, {s: files[s] for s in plan["sizes"]}, runs),
            )
            identifier, on_disk = scenarios.store_for_download(app, download_file)

            def downloads():
                with static_nginx(on_disk.parent, work) as nginx:
                    scenarios.download_throughput(results, app, nginx, identifier, on_disk, runs)

            attempt("downloads", downloads)
            attempt("memory", lambda: scenarios.memory(results, app, identifier, download_file, runs))
            attempt(
                "small-requests",
                lambda: scenarios.small_requests(results, app, base, plan["concurrency"], plan["seconds"], runs),
            )

            def small_uploads():
                with temporary_database("depot_bench") as database_url, depot(work, "depot-pg", database_url) as app_pg:
                    contenders = {
                        "depot (SQLite)": (f"{app.url}/api/v1/uploads", app.token),
                        "depot (PostgreSQL)": (f"{app_pg.url}/api/v1/uploads", app_pg.token),
                        "naive (no hash, fsync or database)": (f"{base.url}/naive", None),
                    }
                    scenarios.small_uploads(results, contenders, work, plan["seconds"], runs)
                scenarios._clear(base.files)

            attempt("small-uploads", small_uploads)

        def listing():
            with depot(work, "depot-few") as few, depot(work, "depot-many") as many:
                small, large = plan["rows"]
                filled = {
                    small: (few, scenarios.fill_uploads(few, small)),
                    large: (many, scenarios.fill_uploads(many, large)),
                }
                scenarios.listing_growth(results, filled, plan["seconds"], runs)

        attempt("listing", listing)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    notes = [f"Wall time of the run: {time.monotonic() - started:.0f} s.", *failures]
    return report.write(results, out, command, runs, plan["large"], notes), failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and one short run of every scenario")
    parser.add_argument("--runs", type=int, help="repetitions of each measurement (default 3, smoke 1)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="folder for results.md")
    parser.add_argument("--only", help=f"comma-separated steps to run, of: {', '.join(STEPS)} (default: all)")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    runs = args.runs or plan["runs"]
    only = set(args.only.split(",")) if args.only else set(STEPS)
    if unknown := only - set(STEPS):
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    path, failures = run(plan, runs, args.out, command, only)
    print(path.read_text())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
