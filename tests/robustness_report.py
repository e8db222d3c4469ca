"""The robustness report, docs/robustness.md, written by pytest from one run of the tests
marked `robustness(kind)`:

    ./run_tests.sh --robustness-report docs/robustness.md

With the option, only those tests run, and the report says what was tried and with what
result. Every parametrized case counts as one input or attack. A test that measures more
than its own outcome records it with `record_property("figures", {...})`: the fuzzing run's
generated cases, the tallies of the faults under load. Nothing in the report is typed in by
hand; a failed case shows as failed. The one section not from this run, the full-size slow
clients, is read from docs/slow-clients.json, which bench/slow_clients.py writes (--record).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

# The report's rows, in order: kind (the marker's argument) -> what it covers.
KINDS = {
    "fuzzing": "Fuzzing from the OpenAPI spec: schemathesis over HTTP, as a user, an uploader and an admin",
    "hostile inputs": "Hostile inputs: names, contents, multipart and JSON bodies, lying lengths, oversized bodies",
    "auth attacks": "Auth attacks: forged, expired, revoked tokens; roles; others' objects; brute force; timing",
    "faults under load": "Faults under load: a worker SIGKILLed mid-upload, PostgreSQL crashed, S3 cut",
    "slow clients": "Slow clients: uploads trickling 1 KiB/s, downloads read slowly, headers never finished",
}
# The full-size slow-client runs (1,000 of each kind), kept by `bench.slow_clients --record`:
# too long for every report run, so the report shows the last recorded figures with their date.
SLOW_CLIENTS_RECORD = Path(__file__).resolve().parent.parent / "docs" / "slow-clients.json"


@dataclass
class Case:
    kind: str
    name: str
    outcome: str = "not run"
    seconds: float = 0.0
    figures: list[dict] = field(default_factory=list)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--robustness-report",
        metavar="PATH",
        help="run only the robustness tests and write their report (docs/robustness.md) to PATH",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("robustness_report")
    if path:
        command = " ".join(["./run_tests.sh", *config.invocation_params.args])
        config.pluginmanager.register(RobustnessReport(Path(path), command), "robustness-report")


class RobustnessReport:
    """Collects the robustness cases' outcomes and figures, then writes the report."""

    def __init__(self, path: Path, command: str) -> None:
        self.path, self.command = path, command
        self.cases: dict[str, Case] = {}

    # Last, so the cases are what is left after -k and -m have deselected theirs.
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        kept = [item for item in items if item.get_closest_marker("robustness")]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
        for item in kept:
            kind = item.get_closest_marker("robustness").args[0]
            if kind not in KINDS:
                raise pytest.UsageError(f"{item.nodeid}: unknown robustness kind {kind!r} (see KINDS)")
            self.cases[item.nodeid] = Case(kind, item.nodeid.split("::", 1)[1])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        case = self.cases.get(report.nodeid)
        if case is None:
            return
        if report.when == "call":
            case.outcome, case.seconds = report.outcome, report.duration
            case.figures = [value for name, value in report.user_properties if name == "figures"]
        elif report.failed or report.skipped:  # in setup or teardown: the case did not hold
            case.outcome = "failed" if report.failed else "skipped"

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # A run that never ran the cases must not replace the last report with an empty one.
        if session.config.option.collectonly or exitstatus in (
            pytest.ExitCode.INTERRUPTED,
            pytest.ExitCode.INTERNAL_ERROR,
            pytest.ExitCode.USAGE_ERROR,
            pytest.ExitCode.NO_TESTS_COLLECTED,
        ):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(render(list(self.cases.values()), self.command))
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(f"robustness report: {self.path}")


def render(
    cases: list[Case],
    command: str = "./run_tests.sh --robustness-report docs/robustness.md",
    recorded_slow_clients: list[dict] | None = None,
) -> str:
    """The report; the full-size slow-client runs are read from SLOW_CLIENTS_RECORD unless given."""
    if recorded_slow_clients is None:
        recorded_slow_clients = _recorded_slow_clients()
    by_kind = {kind: [c for c in cases if c.kind == kind] for kind in KINDS}
    lines = [
        "# Robustness report",
        "",
        f"Written by `{command}` on {datetime.now(UTC):%Y-%m-%d} "
        f"at commit {_commit()}. Every figure comes from that run; README (Robustness) says what "
        "each suite checks and how to run it longer.",
        "",
        "| What was tried | Tried | Result |",
        "|---|---:|---|",
    ]
    for kind, described in KINDS.items():
        lines.append(f"| {described} | {_tried(kind, by_kind[kind])} | {_result(kind, by_kind[kind])} |")
    lines += _fuzzing(by_kind["fuzzing"]) + _faults(by_kind["faults under load"])
    lines += _slow_clients(by_kind["slow clients"], recorded_slow_clients)
    lines += ["", "## Every case", ""]
    for kind, kind_cases in by_kind.items():
        lines += [f"### {kind.capitalize()}", "", "| Case | Outcome | Seconds |", "|---|---|---:|"]
        lines += [f"| `{_cell(c.name)}` | {c.outcome} | {c.seconds:.2f} |" for c in kind_cases]
        lines.append("")
    return "\n".join(lines)


def _tried(kind: str, cases: list[Case]) -> str:
    figures = [f for c in cases for f in c.figures]
    if kind == "fuzzing" and figures:
        return f"{sum(f['generated'] for f in figures):,} generated requests"
    if kind == "faults under load" and figures:
        f = figures[0]
        return (
            f"{len(f['faults'])} faults; {f['uploads_sent']:,} uploads, {f['downloads_verified']:,} verified downloads"
        )
    if kind == "slow clients" and figures:
        phases = [p for f in figures for p in f["phases"]]
        held = sum(a["open_at_end"] for p in phases for a in p["attack"].values())
        probes = sum(p["probes"]["sent"] for p in phases)
        return f"{len(figures)} setups; {held:,} slow connections held, {probes:,} probes"
    return f"{len(cases)} cases"


def _result(kind: str, cases: list[Case]) -> str:
    if not cases:
        return "not run"
    failed = [c.name for c in cases if c.outcome == "failed"]
    if failed:
        return f"**{len(failed)} of {len(cases)} failed**: " + ", ".join(f"`{_cell(n)}`" for n in failed[:5])
    unfinished = sum(1 for c in cases if c.outcome != "passed")
    if unfinished:
        return f"**{unfinished} of {len(cases)} skipped or not run**; no failure"
    figures = [f for c in cases for f in c.figures]
    if kind == "fuzzing":
        return f"all passed: {sum(f['failed'] for f in figures)} failures (no 5xx, no response outside the spec)"
    if kind == "faults under load" and figures:
        f = figures[0]
        return (
            f"passed: {f['lost']} of {f['acknowledged']:,} acknowledged uploads lost, "
            f"{f['kept_though_refused']} of {f['refused_503']:,} refused kept, store consistent after repair"
        )
    if kind == "slow clients" and figures:
        phases = [p for f in figures for p in f["phases"]]
        failed = sum(p["probes"]["failed"] for p in phases)
        worst = max(p["probes"]["p99_ms"] or 0 for p in phases)
        return f"passed: {failed} failed probes, p99 at most {worst:g} ms, the fast 16 MiB upload stored each time"
    return f"all {len(cases)} passed"


def _fuzzing(cases: list[Case]) -> list[str]:
    rows = [f for c in cases for f in c.figures]
    if not rows:
        return []
    lines = [
        "",
        "## Fuzzing",
        "",
        f"`--max-examples {rows[0]['max_examples']}`, seed {rows[0]['seed'] or 'random'}, every schemathesis check "
        "(`integration-tests/test_fuzz_api.py`). Its warnings are about coverage: a user or an uploader is "
        "refused (401/403) on the operations of roles it lacks, as designed; generated ids of things that do "
        "not exist get 404; and a request can fit the schema yet be refused for what it means (a taken email, "
        "a file whose bytes are not its type).",
        "",
        "| Role | Operations | Generated | Passed | Failed | schemathesis' warnings (coverage, not failures) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {f['role']} | {f['operations']} | {f['generated']:,} | {f['passed']:,} | {f['failed']:,} "
        f"| {_cell('; '.join(f['warnings'])) or 'none'} |"
        for f in rows
    ]
    return lines


FAULT_FIGURES = {
    "clients": "clients uploading and downloading throughout",
    "uploads_sent": "uploads sent",
    "acknowledged": "answered 201",
    "lost": "answered 201 but missing or damaged afterwards",
    "refused_503": "refused with 503 during an outage",
    "kept_though_refused": "refused, yet a row was left",
    "outcome_unknown": "no answer (connection died) or 503 outcome_unknown",
    "outcome_unknown_but_stored": "of those, stored (whole) after all",
    "downloads_verified": "downloads whose SHA-256 matched (during the run and afterwards)",
    "downloads_refused_503": "downloads refused with 503 during an outage",
    "downloads_cut": "downloads cut off by a fault (never taken as the file)",
    "leftovers_removed_by_repair": "crash leftovers removed by `storage check --repair`",
}


def _faults(cases: list[Case]) -> list[str]:
    figures = [f for c in cases for f in c.figures]
    if not figures:
        return []
    f = figures[0]
    held = all(c.outcome == "passed" for c in cases)
    lines = [
        "",
        "## Faults under load",
        "",
        f"{f['load_seconds']:g} s of load between faults (`integration-tests/test_faults_under_load.py`). "
        + (
            "While a dependency was down, /readyz answered 503 naming it; then 200 again, uploads went "
            "through again, and the gunicorn master was the same throughout."
            if held
            else "**The test failed**: the figures below are what it saw; the case list says where."
        ),
        "",
        "| Fault | Down for | Recovered after |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {what} | {f'{down:.1f} s' if down >= 0.05 else 'an instant'} | {back:.1f} s |"
        for what, down, back in f["faults"]
    ]
    lines += [
        "",
        "Recovered after: for the worker, until gunicorn's replacement had started (the other worker "
        "served throughout); for a dependency, from its return until /readyz answered 200.",
        "",
        "| Figure | Count |",
        "|---|---:|",
    ]
    lines += [f"| {label} | {f[key]:,} |" for key, label in FAULT_FIGURES.items()]
    return lines


def _recorded_slow_clients() -> list[dict]:
    try:
        return json.loads(SLOW_CLIENTS_RECORD.read_text())
    except FileNotFoundError:
        return []


def _slow_clients(cases: list[Case], recorded: list[dict]) -> list[str]:
    """This run's bounded slow-client figures, then the recorded full-size runs."""
    runs = [f for c in cases for f in c.figures]
    if not runs and not recorded:
        return []
    lines = [
        "",
        "## Slow clients",
        "",
        "`bench/slow_clients.py` holds slow connections open against a running Depot while other "
        "clients probe `GET /healthz` and `GET /api/v1/users/me` (a new connection each, 5 s deadline) "
        "and a 16 MiB upload goes through. Uploads trickle 1 KiB/s into a multipart body declared "
        "large; downloads read about 1 KiB/s through a 4 KiB receive buffer, half through a share link; "
        "headers get one more byte every 2 s and never end (a connection the server closes is opened "
        "again). Held: still open when the attack ended (downloads: receiving the file). PostgreSQL: "
        "Depot's connections in pg_stat_activity while the attack was held, most at once, and the "
        "median of those idle inside a transaction (what a connection held by a streaming body would be). "
        "The issue's targets: no failed probe, p99 <= 250 ms, the fast upload stored. Setups labelled "
        "gthread ran gunicorn's threaded worker (`GUNICORN_WORKER_CLASS=gthread`, 2 workers x 4 threads, "
        "Depot's model before), the measurement that made gevent the default.",
    ]
    if runs:
        lines += ["", "This run (`integration-tests/test_slow_clients.py`, bounded):", ""]
        lines += _slow_client_table(runs)
    if recorded:
        lines += [
            "",
            "Full size, recorded with `--record docs/slow-clients.json` (README, Robustness, has the "
            "command); each row says when:",
            "",
        ]
        lines += _slow_client_table(recorded)
    return lines


def _slow_client_table(runs: list[dict]) -> list[str]:
    lines = [
        "| Setup | Attack | Held at the end | Probes answered | p50 / p99 / max ms | Fast 16 MiB upload "
        "| PostgreSQL connections (idle in a transaction) | Targets |",
        "|---|---|---|---:|---|---|---|---|",
    ]
    for run in runs:
        setup = _cell(run["label"]) + (f", {run['date']}" if run.get("date") else "")
        for p in run["phases"]:
            held = ", ".join(f"{a['open_at_end']:,}/{a['wanted']:,} {kind}" for kind, a in p["attack"].items())
            probes = p["probes"]
            fast = p["fast_upload"]
            fast_text = f"{fast.get('status')} in {fast.get('seconds')} s" if fast.get("stored") else f"**{fast}**"
            pg = p.get("pg_connections", {}).get("attack", {})
            pg_text = f"{pg['max']} ({pg['median_idle_in_transaction']})" if pg.get("samples") else "-"
            lines.append(
                f"| {setup} | {p['phase']} ({p['seconds']:g} s) | {held} "
                f"| {probes['answered']:,} of {probes['sent']:,} "
                f"| {probes['p50_ms']} / {probes['p99_ms']} / {probes['max_ms']} | {fast_text} | {pg_text} "
                f"| {'met' if p['targets_met'] else '**missed**'} |"
            )
    return lines


def _cell(text: str) -> str:
    # Parametrized ids can hold anything; keep the table a table.
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")


def _commit() -> str:
    git = shutil.which("git")
    if git is None:
        return "unknown"
    done = subprocess.run([git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
    return done.stdout.strip() or "unknown"
