"""The console script answers --version and --help without a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SCENARIOS_DIR
from kubetriage import __version__
from kubetriage.cli import main


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"kubetriage {__version__}"


def test_help_describes_the_product(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kubetriage")
    assert "DiagnosisReport" in out


def test_no_command_prints_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: kubetriage" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    executable = Path(sys.executable).parent / "kubetriage"
    assert executable.is_file(), "pip install -e . should have installed the kubetriage script"
    result = subprocess.run(
        [str(executable), "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"kubetriage {__version__}"


def snapshot_with_namespace_labels(tmp_path: Path, labels: dict[str, str]) -> Path:
    """The crash-looping `api` scenario, its namespace labelled as given."""
    document = json.loads((SCENARIOS_DIR / "crashloop-dependency-unavailable.json").read_text())
    for item in document["items"]:
        if item.get("kind") == "Namespace":
            item["metadata"]["labels"] = labels
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("selector", "labels", "production"),
    [
        ("env in (prod,production)", {"env": "production"}, True),
        ("env in (prod,production)", {"env": "staging"}, False),
        ("env!=dev", {"env": "prod"}, True),
        ("env!=dev", {"env": "dev"}, False),
    ],
    ids=["in-selected", "in-not-selected", "not-equal-selected", "not-equal-not-selected"],
)
def test_diagnose_honours_the_production_selector(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    selector: str,
    labels: dict[str, str],
    production: bool,
) -> None:
    monkeypatch.setenv("KUBETRIAGE_PRODUCTION_SELECTOR", selector)
    snapshot = snapshot_with_namespace_labels(tmp_path, labels)
    assert main(["diagnose", "--snapshot", str(snapshot), "-o", "json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)["items"]
    classes = report["status"]["recommendation"]["classes"]
    assert ("production" in classes) is production


@pytest.mark.parametrize("command", [["run"], ["scan"], ["diagnose", "--snapshot", "x.json"]])
def test_an_invalid_setting_stops_every_command_with_one_line(command: list[str]) -> None:
    executable = Path(sys.executable).parent / "kubetriage"
    result = subprocess.run(
        [str(executable), *command],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "KUBETRIAGE_PRODUCTION_SELECTOR": "env in prod"},
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("kubetriage: invalid setting KUBETRIAGE_PRODUCTION_SELECTOR: ")
    assert "'env in prod'" in line
