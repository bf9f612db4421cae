"""The operator's Events: one per workload and reason, bumped on repeat, never fatal."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kubetriage.k8s.owners import WorkloadRef
from kubetriage.reports.events import EventRecorder

TARGET = WorkloadRef("apps/v1", "Deployment", "shop", "api")


class FakeCore:
    """CoreV1Api's three Event calls, answering with `refusal` (an HTTP status) when set."""

    def __init__(self, refusal: int | None = None) -> None:
        self.refusal = refusal
        self.events: dict[str, dict[str, Any]] = {}

    def create_namespaced_event(self, namespace: str, event: dict[str, Any], **_: Any) -> None:
        if self.refusal is not None:
            raise ApiException(status=self.refusal, reason="Forbidden")
        name = event["metadata"]["name"]
        if name in self.events:
            raise ApiException(status=409, reason="AlreadyExists")
        self.events[name] = dict(event)

    def read_namespaced_event(self, name: str, namespace: str, **_: Any) -> Any:
        stored = self.events[name]
        return type("Event", (), {"to_dict": lambda _self: dict(stored)})()

    def patch_namespaced_event(
        self, name: str, namespace: str, patch: dict[str, Any], **_: Any
    ) -> None:
        self.events[name].update(patch)


def recorder(core: FakeCore) -> EventRecorder:
    events = EventRecorder(ApiClient())
    events._core = core  # type: ignore[assignment]
    return events


def test_a_repeat_bumps_the_one_event_of_its_workload_and_reason() -> None:
    core = FakeCore()
    events = recorder(core)
    events.emit(TARGET, reason="Diagnosed", message="first")
    events.emit(TARGET, reason="Diagnosed", message="second")

    (event,) = core.events.values()
    assert event["count"] == 2
    assert event["message"] == "second"


@pytest.mark.parametrize("refusal", [403, 500])
def test_an_event_the_apiserver_refuses_is_logged_not_raised(
    refusal: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A namespace being deleted refuses new Events (403 Forbidden): the resolution that emits
    one must not die of it (seen live: 'Task exception was never retrieved')."""
    events = recorder(FakeCore(refusal=refusal))
    events.emit(TARGET, reason="Resolved", message="fixed", warning=False)

    output = capsys.readouterr()
    assert "event not emitted" in output.out + output.err
