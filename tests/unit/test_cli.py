"""The console script answers --version and --help without a cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
