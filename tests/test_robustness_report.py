"""The robustness report says what ran and how it went, failures included; with the option,
only the robustness tests run."""

from __future__ import annotations

import pytest

from tests.robustness_report import Case, render

pytest_plugins = ["pytester"]

FUZZ = {
    "role": "user",
    "max_examples": 15,
    "seed": "1",
    "operations": 25,
    "generated": 1200,
    "passed": 1200,
    "failed": 0,
    "warnings": ["Missing test data: 8 operations repeatedly returned 404 responses"],
}


def test_counts_and_figures_come_from_the_cases():
    report = render(
        [
            Case("fuzzing", "test_fuzz[user]", "passed", 1.0, [FUZZ]),
            Case("hostile inputs", "test_names[a]", "passed"),
            Case("hostile inputs", "test_names[b]", "passed"),
        ],
        recorded_slow_clients=[],
    )

    assert "| 1,200 generated requests | all passed: 0 failures" in report
    assert "| 2 cases | all 2 passed |" in report
    assert "| user | 25 | 1,200 | 1,200 | 0 | Missing test data: 8 operations" in report
    assert "| Auth attacks" in report and "| 0 cases | not run |" in report


def _slow_run(label: str, p99: float, date: str | None = None) -> dict:
    phase = {
        "phase": "all",
        "seconds": 10,
        "attack": {
            "uploads": {"wanted": 200, "open_at_end": 200},
            "headers": {"wanted": 200, "open_at_end": 190},
        },
        "probes": {"sent": 400, "answered": 400, "failed": 0, "p50_ms": 5.0, "p99_ms": p99, "max_ms": 90.0},
        "fast_upload": {"status": 201, "stored": True, "seconds": 0.4},
        "pg_connections": {"attack": {"samples": 20, "max": 9, "median_idle_in_transaction": 0}},
        "targets_met": p99 <= 250,
    }
    return {"label": label, "phases": [phase], **({"date": date} if date else {})}


def test_slow_clients_show_this_runs_figures_and_the_recorded_full_size_runs():
    bounded = _slow_run("gunicorn, direct", 40.0)
    recorded = [_slow_run("topology, gthread", 4000.0, date="2026-12-02")]

    report = render([Case("slow clients", "test_slow[gunicorn]", "passed", 12.0, [bounded])], "x", recorded)

    assert "| 1 setups; 390 slow connections held, 400 probes | passed: 0 failed probes, p99 at most 40 ms" in report
    assert "## Slow clients" in report
    assert (
        "| gunicorn, direct | all (10 s) | 200/200 uploads, 190/200 headers | 400 of 400 | 5.0 / 40.0 / 90.0" in report
    )
    assert "| 201 in 0.4 s | 9 (0) | met |" in report
    assert "| topology, gthread, 2026-12-02 | all (10 s) |" in report and "| **missed** |" in report


def test_a_failed_case_is_reported_as_failed():
    report = render([Case("auth attacks", "test_timing", "failed"), Case("auth attacks", "test_tokens[x|y]", "passed")])

    assert "**1 of 2 failed**: `test_timing`" in report
    assert "| `test_tokens[x\\|y]` | passed |" in report  # a pipe in an id keeps the table whole


def test_the_option_runs_only_robustness_tests_and_writes_the_report(pytester):
    pytester.makeini("[pytest]\nmarkers = robustness(kind): counted in the report\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.robustness("hostile inputs")
        @pytest.mark.parametrize("name", ["../x", "C:\\\\x"])
        def test_hostile(name):
            assert name

        def test_ordinary():
            pass
        """
    )

    result = pytester.runpytest("-p", "tests.robustness_report", "--robustness-report", "report.md")

    result.assert_outcomes(passed=2, deselected=1)
    report = (pytester.path / "report.md").read_text()
    assert "| 2 cases | all 2 passed |" in report
    assert "test_hostile[../x]" in report


def test_an_unknown_kind_is_refused(pytester):
    pytester.makeini("[pytest]\nmarkers = robustness(kind): counted in the report\n")
    pytester.makepyfile("import pytest\n\n@pytest.mark.robustness('no such kind')\ndef test_x():\n    pass\n")

    result = pytester.runpytest("-p", "tests.robustness_report", "--robustness-report", "report.md")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown robustness kind 'no such kind'*"])


HOSTILE_CASES = """
import pytest

@pytest.mark.robustness("hostile inputs")
@pytest.mark.parametrize("name", ["alpha", "beta", "gamma"])
def test_hostile(name):
    if name == "gamma":
        pytest.skip("not today")
"""


def run_with_report(pytester, *args):
    pytester.makeini("[pytest]\nmarkers = robustness(kind): counted in the report\n")
    pytester.makepyfile(HOSTILE_CASES)
    return pytester.runpytest("-p", "tests.robustness_report", "--robustness-report", "report.md", *args)


def test_cases_deselected_by_k_are_not_counted(pytester):
    run_with_report(pytester, "-k", "not beta").assert_outcomes(passed=1, skipped=1, deselected=1)

    report = (pytester.path / "report.md").read_text()
    assert "| 2 cases | **1 of 2 skipped or not run**; no failure |" in report
    assert "-k not beta" in report  # the command as it was run


def test_a_skipped_case_is_not_counted_as_passed_or_failed(pytester):
    run_with_report(pytester).assert_outcomes(passed=2, skipped=1)

    assert "**1 of 3 skipped or not run**; no failure" in (pytester.path / "report.md").read_text()


def test_a_run_that_ran_nothing_keeps_the_last_report(pytester):
    (pytester.path / "report.md").write_text("the last report")

    run_with_report(pytester, "--collect-only")

    assert (pytester.path / "report.md").read_text() == "the last report"
