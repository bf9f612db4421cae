"""Secrets never leave the cluster (DESIGN.md section 8).

Given a crash-looping Deployment whose env values, previous log and events are full of secrets
of every common kind, no output format of `kubetriage diagnose` contains any of them, while the
ordinary text around them (the proof that the log and events were read) does appear.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubetriage.cli import main
from planted_secrets import ENV_SECRETS, SECRETS, snapshot


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path: Path = tmp_path_factory.mktemp("redaction") / "snapshot.json"
    path.write_text(json.dumps(snapshot()))
    rendered: dict[str, str] = {}
    for fmt in ("json", "yaml", "table"):
        with pytest.MonkeyPatch.context() as patch:
            import io  # noqa: PLC0415
            import sys  # noqa: PLC0415

            buffer = io.StringIO()
            patch.setattr(sys, "stdout", buffer)
            assert main(["diagnose", "--snapshot", str(path), "-o", fmt]) == 0
        rendered[fmt] = buffer.getvalue()
    return rendered


def test_the_log_was_read_and_reported(outputs: dict[str, str]) -> None:
    assert "CrashLoop." in outputs["json"]
    assert "visible-marker-" in outputs["json"], "the log excerpt should reach the evidence"


@pytest.mark.parametrize("fmt", ["json", "yaml", "table"])
@pytest.mark.parametrize(
    ("kind", "secret"), [(k, s) for k, _, s in SECRETS], ids=[k for k, _, _ in SECRETS]
)
def test_no_secret_reaches_any_output(
    outputs: dict[str, str], fmt: str, kind: str, secret: str
) -> None:
    assert secret not in outputs[fmt], f"{kind} leaked into -o {fmt}"


@pytest.mark.parametrize("fmt", ["json", "yaml", "table"])
def test_no_private_key_or_env_value_reaches_any_output(outputs: dict[str, str], fmt: str) -> None:
    assert "PrivateKeyMaterial" not in outputs[fmt]
    for value in ENV_SECRETS.values():
        assert value not in outputs[fmt]
