"""results.md (medians with min-max, and every target with its verdict) and the PNG plots."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402

from bench.scenarios import MIB, Results  # noqa: E402
from bench.servers import describe_workers  # noqa: E402

LARGE = "large"  # the sizes the upload targets are judged at (256 MiB and 1 GiB in a full run)


def _cell(results: Results, scenario: str, contender: str, param) -> str:
    values = results.samples.get((scenario, contender, str(param)))
    if not values:
        return "–"
    mid = results.median(scenario, contender, param)
    return f"{mid:,.1f} ({min(values):,.1f}–{max(values):,.1f})"


def _params(results: Results, scenario: str) -> list[str]:
    return sorted({p for (s, _c, p) in results.samples if s == scenario}, key=float)


def _contenders(results: Results, scenario: str) -> list[str]:
    return list(dict.fromkeys(c for (s, c, _p) in results.samples if s == scenario))


def _table(results: Results, scenario: str, param_label, param_format=str) -> list[str]:
    contenders = _contenders(results, scenario)
    if not contenders:
        return ["(not measured in this run)"]
    lines = [f"| {param_label} | " + " | ".join(contenders) + " |", "|---" * (len(contenders) + 1) + "|"]
    for param in _params(results, scenario):
        cells = [_cell(results, scenario, c, param) for c in contenders]
        lines.append(f"| {param_format(param)} | " + " | ".join(cells) + " |")
    return lines


def _rate_and_latency(results: Results, rate_label: str, rate_scenario: str, latency_prefix: str) -> list[str]:
    """Three tables by connections: the rate, then p50 and p99 latency."""
    lines = []
    for label, scenario in (
        (rate_label, rate_scenario),
        ("p50 latency (ms)", f"{latency_prefix} p50"),
        ("p99 latency (ms)", f"{latency_prefix} p99"),
    ):
        lines += [f"{label}:", "", *_table(results, scenario, "connections"), ""]
    return lines


def _size(param: str) -> str:
    size = int(param)
    return f"{size // 1024**3} GiB" if size >= 1024**3 else f"{size // MIB} MiB"


def targets(results: Results, large_sizes: list[int]) -> list[tuple[str, str, str, bool]]:
    """(target, measured, needed, met) for every target of the issue that this run measured."""
    rows = []
    m = results.median
    for size in large_sizes if ("upload", "depot multipart", str(large_sizes[0])) in results.samples else []:
        depot, naive = m("upload", "depot multipart", size), m("upload", "naive multipart", size)
        raw_put, ceiling = m("upload", "depot raw PUT", size), m("upload", "raw-body ceiling", size)
        label = _size(str(size))
        rows.append((f"multipart {label}: Depot / naive", f"{depot / naive:.2f}×", "≥ 2×", depot / naive >= 2))
        rows.append(
            (f"multipart {label}: Depot / raw-body ceiling", f"{depot / ceiling:.0%}", "≥ 80%", depot >= 0.8 * ceiling)
        )
        rows.append(
            (
                f"raw PUT {label}: Depot / raw-body ceiling",
                f"{raw_put / ceiling:.0%}",
                "≥ 90%",
                raw_put >= 0.9 * ceiling,
            )
        )
    for contender in _contenders(results, "memory"):
        for param in _params(results, "memory"):
            growth = max(results.samples[("memory", contender, param)])
            rows.append(
                (
                    f"worker RSS growth, {contender} of {_size(param)} (worst run)",
                    f"{growth:.1f} MiB",
                    "≤ 64 MiB",
                    growth <= 64,
                )
            )
    for param in _params(results, "download"):
        depot, nginx = m("download", "depot", param), m("download", "nginx (sendfile)", param)
        ranged = next(c for c in _contenders(results, "download") if "Range" in c)
        rng = m("download", ranged, param)
        rows.append((f"download {_size(param)}: Depot / nginx", f"{depot / nginx:.0%}", "≥ 70%", depot >= 0.7 * nginx))
        rows.append((f"download {_size(param)}: Range / nginx", f"{rng / nginx:.0%}", "≥ 70%", rng >= 0.7 * nginx))
    if ("small rps", "depot GET /api/v1/users/me", "8") in results.samples:
        depot, bare = m("small rps", "depot GET /api/v1/users/me", 8), m("small rps", "bare Flask GET /hello", 8)
        rows.append(
            ("GET /users/me req/s / bare Flask, 8 connections", f"{depot / bare:.0%}", "≥ 50%", depot >= 0.5 * bare)
        )
    params = _params(results, "listing p50")
    if len(params) >= 2:
        small, large = params[0], params[-1]
        for page in _contenders(results, "listing p50"):
            ratio = m("listing p50", page, large) / m("listing p50", page, small)
            rows.append(
                (f"listing p50, {page}: {int(large):,} rows / {int(small):,} rows", f"{ratio:.2f}×", "≤ 2×", ratio <= 2)
            )
    return rows


def _machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} × {model}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def plot_throughput(results: Results, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    for contender in _contenders(results, "upload"):
        params = _params(results, "upload")
        ax.plot(
            [int(p) / MIB for p in params],
            [results.median("upload", contender, p) for p in params],
            marker="o",
            label=contender,
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("file size (MiB)")
    ax.set_ylabel("upload throughput (MB/s, median)")
    ax.set_title("Upload throughput against file size")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(results: Results, path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for contender in _contenders(results, "small p50"):
        params = _params(results, "small p50")
        x = [int(p) for p in params]
        left.plot(x, [results.median("small p50", contender, p) for p in params], marker="o", label=f"{contender} p50")
        left.plot(
            x,
            [results.median("small p99", contender, p) for p in params],
            marker="x",
            ls="--",
            label=f"{contender} p99",
        )
        right.plot(x, [results.median("small rps", contender, p) for p in params], marker="o", label=contender)
    left.set_xlabel("concurrent connections")
    left.set_ylabel("latency (ms, median of runs)")
    left.set_title("Latency percentiles against concurrency")
    right.set_xlabel("concurrent connections")
    right.set_ylabel("requests/s")
    right.set_title("Throughput of small requests")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: Results, out: Path, command: str, runs: int, large_sizes: list[int], notes: list[str]) -> Path:
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    plot_throughput(results, plots / "throughput.png")
    plot_latency(results, plots / "latency.png")
    verdicts = targets(results, large_sizes)
    lines = [
        "# Depot benchmark results",
        "",
        f"Produced by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {runs} run(s), contenders alternating in",
        f"each run. Machine: {_machine()}. Every server: gunicorn with `gunicorn.conf.py`, {describe_workers()},",
        "on loopback. Cells are the median of the runs, with the minimum and maximum in brackets.",
        "",
        "## Targets",
        "",
        "| Target | Measured (medians) | Needed | Met |",
        "|---|---|---|---|",
        *[
            f"| {name} | {measured} | {needed} | {'yes' if met else '**no**'} |"
            for name, measured, needed, met in verdicts
        ],
        "",
        "## Uploads (MB/s)",
        "",
        "Depot hashes (SHA-256), checks, fsyncs and commits to SQLite; the naive endpoint only saves",
        '`request.files["file"]`; the raw-body ceiling only copies the request stream to a file.',
        "",
        *_table(results, "upload", "size", _size),
        "",
        "![Upload throughput](plots/throughput.png)",
        "",
        "## Downloads (MB/s)",
        "",
        *_table(results, "download", "file", _size),
        "",
        "## Memory: peak RSS growth of a gunicorn worker during one transfer (MiB)",
        "",
        *_table(results, "memory", "file", _size),
        "",
        "## Small requests (8 connections unless stated)",
        "",
        *_rate_and_latency(results, "Requests/s", "small rps", "small"),
        "![Latency and throughput of small requests](plots/latency.png)",
        "",
        "## Small uploads: 4 KiB multipart, 8 connections",
        "",
        *_rate_and_latency(results, "Uploads/s", "small uploads/s", "small uploads"),
        "## Listing growth: p50 of `GET /api/v1/uploads?per_page=20` (ms), by rows in the table",
        "",
        *_table(results, "listing p50", "rows", lambda p: f"{int(p):,}"),
        "",
    ]
    if notes:
        lines += ["## Notes", "", *notes, ""]
    analysis = Path(__file__).resolve().parent / "analysis.md"
    if analysis.exists():  # hand-written: the profiles behind any target not met
        lines += [analysis.read_text()]
    path = out / "results.md"
    path.write_text("\n".join(lines))
    return path
