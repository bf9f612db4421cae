"""Whatever a snapshot holds, `diagnose` answers or says clearly why it cannot; it never crashes.

Property tests feed arbitrary and malformed pods, events, workloads and logs; example tests pin
the user-facing behaviour for files that are not snapshots at all (exit code 2, one clear line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import SCENARIOS_DIR
from kubetriage.cli import main
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import diagnose
from kubetriage.reports.build import build_report

KINDS = [
    "Pod",
    "Event",
    "Deployment",
    "ReplicaSet",
    "Node",
    "Namespace",
    "Job",
    "Service",
    "Endpoints",
    "PersistentVolumeClaim",
    "ResourceQuota",
    "ContainerLog",
    "MetricSeries",
    "SnapshotInfo",
    "ConfigMap",
    "ServiceAccount",
    "StorageClass",
]
REASONS = [
    "CrashLoopBackOff",
    "OOMKilled",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "Unschedulable",
    "ContainerCreating",
    "ProgressDeadlineExceeded",
    "Error",
    "Completed",
]

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(REASONS),
)
json_value = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "reason",
                    "message",
                    "exitCode",
                    "state",
                    "lastState",
                    "waiting",
                    "terminated",
                    "status",
                    "type",
                    "conditions",
                    "containerStatuses",
                    "ownerReferences",
                    "kind",
                    "namespace",
                    "labels",
                    "spec",
                    "containers",
                    "resources",
                    "limits",
                    "requests",
                    "memory",
                    "cpu",
                ]
            ),
            children,
            max_size=6,
        ),
    ),
    max_leaves=30,
)


@st.composite
def malformed_item(draw: st.DrawFn) -> Any:
    """An item shaped roughly like a Kubernetes object, with any field possibly wrong."""
    item = {
        "apiVersion": draw(st.sampled_from(["v1", "apps/v1", "kubetriage.io/v1alpha1", None])),
        "kind": draw(st.sampled_from(KINDS)),
        "metadata": draw(
            st.one_of(
                json_value,
                st.fixed_dictionaries(
                    {
                        "name": st.sampled_from(["api", "api-1", "", "x" * 300]),
                        "namespace": st.sampled_from(["shop", "default", ""]),
                    },
                    optional={"ownerReferences": json_value, "labels": json_value},
                ),
            )
        ),
    }
    for field in ("spec", "status", "involvedObject", "message", "text", "samples", "container"):
        if draw(st.booleans()):
            item[field] = draw(json_value)
    return draw(st.one_of(st.just(item), json_value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(malformed_item(), max_size=12))
def test_malformed_items_never_crash_diagnose(items: list[Any]) -> None:
    reader = SnapshotReader.from_document({"apiVersion": "v1", "kind": "List", "items": items})
    for finding in diagnose(reader):
        assert build_report(finding).to_api()["spec"]["symptom"]


def load_items(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((SCENARIOS_DIR / name).read_text())["items"]
    return items


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_real_scenario_with_fields_replaced_by_junk_never_crashes(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(p.name for p in SCENARIOS_DIR.glob("*-*.json"))))
    items = load_items(name)
    for _ in range(data.draw(st.integers(1, 6))):
        item = items[data.draw(st.integers(0, len(items) - 1))]
        section = data.draw(st.sampled_from(["status", "spec", "metadata", "message", "text"]))
        target = item.get(section)
        if isinstance(target, dict) and target:
            key = data.draw(st.sampled_from(sorted(target)))
            target[key] = data.draw(json_value)
        else:
            item[section] = data.draw(json_value)
    reader = SnapshotReader.from_document({"apiVersion": "v1", "kind": "List", "items": items})
    for finding in diagnose(reader):
        assert build_report(finding).to_api()["status"]["rootCause"]["category"]


def test_a_huge_binary_log_gives_a_bounded_excerpt(tmp_path: Path) -> None:
    items = load_items("crashloop-application-error.json")
    log = next(i for i in items if i["kind"] == "ContainerLog")
    log["text"] = ("\x00\xff garbage \x1b[31m" * 200_000) + "\nERROR final words before the crash\n"
    path = tmp_path / "huge.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    reader = SnapshotReader.from_file(path)
    (finding,) = diagnose(reader)
    report = json.dumps(build_report(finding).to_api())
    assert len(report) < 200_000
    assert "\x00" not in report


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read snapshot"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not a JSON snapshot"),
        (b'{"items": [', "is not a JSON snapshot"),
        (b'{"kind": 3}', "is not a Kubernetes List"),
        (b"[1, 2, 3]", "is not a Kubernetes List"),
    ],
    ids=["missing", "binary", "truncated-json", "not-a-list", "json-array"],
)
def test_an_unreadable_snapshot_exits_2_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    path = tmp_path / "snapshot.json"
    if content is not None:
        path.write_bytes(content)
    assert main(["diagnose", "--snapshot", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert captured.err.startswith("kubetriage diagnose: ")
    assert len(captured.err.strip().splitlines()) == 1


def test_a_plain_kubectl_list_without_kubetriage_items_is_a_snapshot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    items = [
        i for i in load_items("imagepull-not-found.json") if not i["kind"].startswith("Snapshot")
    ]
    path = tmp_path / "kubectl.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert main(["diagnose", "--snapshot", str(path), "-o", "json"]) == 0
    reports = json.loads(capsys.readouterr().out)["items"]
    assert [r["status"]["rootCause"]["category"] for r in reports] == ["ImagePull.NotFound"]
