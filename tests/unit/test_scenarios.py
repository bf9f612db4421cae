"""Every labeled scenario gives exactly the reports its folder's expected.json lists.

The folders: ../shared/scenarios (the product's labeled snapshots), ../shared/scenarios-beyond
(DESIGN.md section 12's symptoms) and each folder under
tests/scenarios/ (the project's own, one per playbook, each with its expected.json). One test per
snapshot file, found by walking the folders: a new scenario is covered without new code, and a
snapshot missing from expected.json fails rather than passing unnoticed.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO_ROOT, SCENARIOS_DIR, SHARED_DIR
from kubetriage.cli import main

OWN_SCENARIOS = REPO_ROOT / "tests" / "scenarios"
BEYOND = SHARED_DIR / "scenarios-beyond"
FOLDERS = [
    SCENARIOS_DIR,
    BEYOND,
    *sorted(p.parent for p in OWN_SCENARIOS.glob("*/expected.json")),
]
SNAPSHOTS = sorted(
    p for folder in FOLDERS for p in folder.glob("*.json") if p.name != "expected.json"
)
KEYS = ("namespace", "targetKind", "targetName", "symptom", "category")


def summarize(report: dict[str, Any]) -> dict[str, str]:
    return {
        "namespace": report["metadata"]["namespace"],
        "targetKind": report["spec"]["target"]["kind"],
        "targetName": report["spec"]["target"]["name"],
        "symptom": report["spec"]["symptom"],
        "category": report["status"]["rootCause"]["category"],
    }


def diagnose_json(snapshot: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["diagnose", "--snapshot", str(snapshot), "-o", "json"]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def test_the_scenarios_are_there() -> None:
    shared = [p for p in SNAPSHOTS if p.parent == SCENARIOS_DIR]
    assert len(shared) >= 29, f"expected the shared scenarios in {SCENARIOS_DIR}"
    beyond = {p.name.split("-")[0] for p in SNAPSHOTS if p.parent == BEYOND}
    assert beyond == {"admission", "config", "evicted", "job", "notready"}, BEYOND


@pytest.mark.parametrize(
    "snapshot", SNAPSHOTS, ids=[f"{p.parent.name}/{p.stem}" for p in SNAPSHOTS]
)
def test_scenario_gives_exactly_the_expected_reports(
    snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected_all = json.loads((snapshot.parent / "expected.json").read_text())
    assert snapshot.name in expected_all, f"{snapshot.name} has no entry in expected.json"
    expected = [{k: e[k] for k in KEYS} for e in expected_all[snapshot.name] or []]
    document = diagnose_json(snapshot, capsys)
    assert document["apiVersion"] == "v1"
    assert document["kind"] == "List"
    produced = [summarize(item) for item in document["items"]]
    key = lambda r: tuple(r[k] for k in KEYS)  # noqa: E731
    assert sorted(produced, key=key) == sorted(expected, key=key)
    for item in document["items"]:
        status = item["status"]
        assert status["evidence"], "a root cause without evidence"
        assert status["steps"], "a diagnosis without its playbook trace"
        assert status["recommendation"]["summary"]
        assert 0 < status["rootCause"]["confidence"] <= 1


def _secret_values(snapshot: Path) -> list[str]:
    """Every value only a snapshot's Secrets hold, encoded as stored and decoded. A value that
    another object shows too (an app that logs the user it connects as) is that object's to
    quote: what must never leak is what only the Secret says."""
    items = json.loads(snapshot.read_text())["items"]
    elsewhere = json.dumps([item for item in items if item.get("kind") != "Secret"])
    values: list[str] = []
    for item in items:
        if item.get("kind") != "Secret":
            continue
        for value in [*(item.get("data") or {}).values()]:
            values.append(value)
            values.append(base64.b64decode(value).decode(errors="replace"))
        values.extend((item.get("stringData") or {}).values())
    return [v for v in values if len(v) >= 4 and v not in elsewhere]


WITH_SECRETS = [p for p in SNAPSHOTS if _secret_values(p)]


@pytest.mark.parametrize(
    "snapshot", WITH_SECRETS, ids=[f"{p.parent.name}/{p.stem}" for p in WITH_SECRETS]
)
def test_no_secret_value_of_a_scenario_reaches_its_reports(
    snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = json.dumps(diagnose_json(snapshot, capsys))
    leaked = [v for v in _secret_values(snapshot) if v in output]
    assert not leaked, f"Secret data in the reports of {snapshot.name}"


def test_the_config_scenarios_hold_secret_data_to_guard() -> None:
    assert BEYOND / "config-missing-key.json" in WITH_SECRETS
