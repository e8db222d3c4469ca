"""The benchmark suite's smoke mode, so it cannot rot: every scenario runs once with tiny
sizes against real servers, and the report and plots come out. No timing is asserted here;
the figures are judged only by a full `python -m bench` run (bench/results.md)."""

from __future__ import annotations

import subprocess
import sys

from processes import ROOT, find_tool

SECTIONS = [
    "## Targets",
    "## Uploads (MB/s)",
    "## Downloads (MB/s)",
    "## Memory",
    "## Small requests",
    "## Small uploads",
    "## Listing growth",
]


def test_the_benchmark_runs_every_scenario_and_writes_its_report(tmp_path):
    find_tool("wrk", "the benchmark drives small requests with it")
    find_tool("nginx", "the benchmark compares downloads with it")

    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (tmp_path / "results.md").read_text()
    for section in SECTIONS:
        assert section in report
    for contender in ("depot multipart", "naive multipart", "depot raw PUT", "raw-body ceiling", "nginx (sendfile)"):
        assert contender in report
    assert "depot (PostgreSQL)" in report and "page at 90%" in report
    assert "| – |" not in report  # every cell measured
    for plot in ("throughput.png", "latency.png"):
        assert (tmp_path / "plots" / plot).read_bytes().startswith(b"\x89PNG")
