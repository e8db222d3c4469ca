"""Redocly CLI (the pinned @redocly/cli of integration-tests/js) lints the OpenAPI document a
running Depot serves, with the recommended rules as redocly.yaml adjusts them: 0 errors and
0 warnings, every exception justified in that file. Teams lint a service's document with it
before they generate a client from it; a warning here is one of theirs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import requests
from js_clients import npm_tool
from processes import ROOT

CONFIG = ROOT / "redocly.yaml"
# Offline and quiet: no usage data, no update or Node.js notices among the results.
QUIET = {"REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_NOTIFICATIONS": "true", "NO_COLOR": "1"}


def served_document(server: str) -> dict:
    response = requests.get(f"{server}/api/v1/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def redocly_lint(document: dict, tmp_path: Path) -> dict:
    """Redocly's JSON report on `document` (written to tmp_path) under redocly.yaml; a config
    redocly finds wrong is an error too."""
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(document, indent=2))
    done = subprocess.run(
        [npm_tool("redocly"), "lint", str(path), f"--config={CONFIG}", "--lint-config=error", "--format=json"],
        cwd=tmp_path,
        env={**os.environ, **QUIET},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"redocly lint exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def describe(report: dict) -> str:
    return "\n".join(
        f"{p['severity']} {p['ruleId']} at {p['location'][0]['pointer']}: {p['message']}" for p in report["problems"]
    )


def test_redocly_finds_no_error_and_no_warning_in_the_served_document(server, tmp_path):
    report = redocly_lint(served_document(server), tmp_path)

    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, describe(report)


def test_the_4xx_rule_still_holds_every_operation_but_the_three_it_exempts(server, tmp_path):
    # redocly.yaml replaces the built-in rule with one that exempts the probes and the tus
    # OPTIONS: an ordinary operation that lost its 4XX responses is still reported.
    document = served_document(server)
    responses = document["paths"]["/api/v1/users/me"]["get"]["responses"]
    for status in [s for s in responses if s.startswith("4")]:
        del responses[status]

    report = redocly_lint(document, tmp_path)

    found = [(p["ruleId"], p["location"][0]["pointer"]) for p in report["problems"]]
    assert found == [("rule/operation-4xx-response", "#/paths/~1api~1v1~1users~1me/get/responses")], describe(report)
