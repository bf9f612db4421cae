"""Settings come from KUBETRIAGE_* environment variables (DESIGN.md section 11)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kubetriage.config import DEFAULT_GRACE_SECONDS, Settings
from kubetriage.models import Symptom


def test_defaults_match_the_design(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.namespaces == []
    assert settings.cluster_name == "default"
    assert str(settings.production()) == "kubetriage.io/environment=production"
    assert settings.resolve_after_seconds == 300
    assert settings.log_format == "json"
    assert {s: settings.grace_for(s) for s in Symptom} == DEFAULT_GRACE_SECONDS


def test_comma_separated_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETRIAGE_NAMESPACES", "shop, billing,,")
    assert Settings().namespaces == ["shop", "billing"]


@pytest.mark.parametrize(
    ("env", "symptom", "grace"),
    [
        ({"KUBETRIAGE_GRACE_SECONDS": "0"}, Symptom.PENDING, 0.0),
        (
            {"KUBETRIAGE_GRACE_SECONDS": "0", "KUBETRIAGE_GRACE_SECONDS_PENDING": "30"},
            Symptom.PENDING,
            30.0,
        ),
        ({"KUBETRIAGE_GRACE_SECONDS_PENDING": "30"}, Symptom.CRASH_LOOP_BACK_OFF, 60.0),
    ],
    ids=["global", "per-symptom-wins", "others-keep-defaults"],
)
def test_grace_periods(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], symptom: Symptom, grace: float
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings().grace_for(symptom) == grace


def test_production_selector_with_several_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETRIAGE_PRODUCTION_SELECTOR", "tier=prod, region==eu")
    production = Settings().production()
    assert production.matches({"tier": "prod", "region": "eu"})
    assert not production.matches({"tier": "prod"})
    assert not production.matches({"tier": "prod", "region": "us"})


@pytest.mark.parametrize(
    ("selector", "production", "not_production"),
    [
        ("env!=dev", {"env": "prod"}, {"env": "dev"}),
        ("env in (prod,production)", {"env": "production"}, {"env": "staging"}),
        ("env notin (dev,test)", {"env": "prod"}, {"env": "test"}),
        ("kubetriage.io/production", {"kubetriage.io/production": ""}, {}),
    ],
    ids=["inequality", "in", "notin", "exists"],
)
def test_production_selector_takes_every_form_kubectl_takes(
    monkeypatch: pytest.MonkeyPatch,
    selector: str,
    production: dict[str, str],
    not_production: dict[str, str],
) -> None:
    monkeypatch.setenv("KUBETRIAGE_PRODUCTION_SELECTOR", selector)
    chosen = Settings().production()
    assert chosen.matches(production)
    assert not chosen.matches(not_production)


@pytest.mark.parametrize("selector", ["env in prod", "env=(prod", "=prod"])
def test_an_invalid_production_selector_stops_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, selector: str
) -> None:
    monkeypatch.setenv("KUBETRIAGE_PRODUCTION_SELECTOR", selector)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert "production_selector" in str(error.value)
    assert repr(selector) in str(error.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("KUBETRIAGE_LOG_FORMAT", "xml"), ("KUBETRIAGE_GRACE_SECONDS", "-1"),
     ("KUBETRIAGE_MAX_CONCURRENT_DIAGNOSES", "0")],
    ids=["log-format", "negative-grace", "zero-concurrency"],
)  # fmt: skip
def test_a_bad_value_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert key.removeprefix("KUBETRIAGE_").lower() in str(error.value)
