"""Whatever a snapshot holds, `diagnose` answers or says clearly why it cannot; it never crashes.

Property tests feed arbitrary and malformed pods, events, workloads and logs; example tests pin
the user-facing behaviour for files that are not snapshots at all (exit code 2, one clear line).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import SCENARIOS_DIR
from kubetriage.cli import main
from kubetriage.clients.snapshot import MAX_SNAPSHOT_BYTES, SnapshotError, SnapshotReader
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


# --- issue 15: input that crashed it, each with a Python traceback --------------------------


def write_snapshot(tmp_path: Path, items: list[dict[str, Any]], name: str = "s.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


def diagnose_file(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`kubetriage diagnose --snapshot path -o json`: exit code, stdout, stderr."""
    code = main(["diagnose", "--snapshot", str(path), "-o", "json"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(code: int, out: str, err: str, message: str) -> None:
    """Exit 2, nothing on stdout, one line on stderr that says `message`."""
    assert (code, out) == (2, ""), err
    (line,) = err.strip().splitlines()
    assert line.startswith("kubetriage diagnose: ")
    assert message in line


def test_a_replica_set_owner_without_a_name_still_finds_the_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = load_items("crashloop-application-error.json")
    for item in items:
        if item["kind"] == "ReplicaSet":
            for owner in item["metadata"]["ownerReferences"]:
                del owner["name"]
    code, out, err = diagnose_file(write_snapshot(tmp_path, items), capsys)
    assert code == 0, err
    (report,) = json.loads(out)["items"]
    # The ReplicaSet's own name and the pods' pod-template-hash still say whose it is.
    assert report["spec"]["target"]["kind"] == "Deployment"
    assert report["spec"]["target"]["name"] == "orders"
    assert report["status"]["rootCause"]["category"] == "CrashLoop.ApplicationError"


def test_json_nested_deeper_than_the_reader_follows_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"kind": "List", "items": [' + "[" * 6000 + "]" * 6000 + "]}")
    assert_refused(*diagnose_file(path, capsys), "nested")


def test_an_item_nested_deeper_than_any_api_object_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = load_items("crashloop-application-error.json")
    deep: Any = "bottom"
    for _ in range(500):  # deep enough to break a recursive copy or dump, shallow for json
        deep = {"nested": deep}
    next(i for i in items if i["kind"] == "Node")["metadata"]["annotations"] = {"x": deep}
    code, out, err = diagnose_file(write_snapshot(tmp_path, items), capsys)
    assert code == 0
    assert len(json.loads(out)["items"]) == 1
    assert "skipped 1 malformed item(s)" in err


def test_an_integer_of_100000_digits_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bigint.json"
    path.write_text('{"kind": "List", "items": [{"kind": "Pod", "x": ' + "9" * 100_000 + "}]}")
    assert_refused(*diagnose_file(path, capsys), "is not a JSON snapshot")


@pytest.mark.parametrize(
    "number",
    [str(2**64), "-" + "9" * 300, "1e999", "NaN", "-Infinity"],
    ids=["uint64-overflow", "300-digits", "float-overflow", "nan", "-inf"],
)
def test_a_number_no_apiserver_writes_makes_its_item_malformed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], number: str
) -> None:
    items = load_items("oom-memory-leak.json")
    series = next(i for i in items if i["kind"] == "MetricSeries")
    series["samples"][0][1] = "NUMBER"
    path = write_snapshot(tmp_path, items)
    path.write_text(path.read_text().replace('"NUMBER"', number))
    code, out, err = diagnose_file(path, capsys)
    assert code == 0, err
    assert [r["status"]["rootCause"]["category"] for r in json.loads(out)["items"]]
    assert "skipped 1 malformed item(s)" in err


@pytest.mark.parametrize("where", ["image", "log", "event", "pod-name", "label-key"])
def test_a_lone_surrogate_from_the_cluster_becomes_a_replacement_character(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    scenario = (
        "imagepull-not-found.json" if where == "image" else "crashloop-application-error.json"
    )
    items = load_items(scenario)
    pod = next(i for i in items if i["kind"] == "Pod")
    if where == "image":
        for container in (c for i in items if i["kind"] == "Pod" for c in i["spec"]["containers"]):
            container["image"] += "\ud800"
    elif where == "log":
        log = next(i for i in items if i["kind"] == "ContainerLog")
        log["text"] = log["text"].replace("\n", "\n\udfff ERROR \ud800 ", 5)
    elif where == "event":
        for event in (i for i in items if i["kind"] == "Event"):
            event["message"] += " \udc80"
    elif where == "pod-name":
        pod["metadata"]["name"] += "\ud800"
    else:
        pod["metadata"]["labels"]["\udbff"] = "x"
    # json.dumps writes a lone surrogate as the escape \ud800, which json.loads reads back.
    code, out, err = diagnose_file(write_snapshot(tmp_path, items), capsys)
    assert code == 0, err
    reports = json.loads(out)["items"]
    assert reports
    assert out.encode("utf-8")  # the report is valid UTF-8: no surrogate made it through
    if where in {"image", "pod-name"}:
        assert "\ufffd" in out


@pytest.mark.parametrize("items", [{}, {"a": 1}, "pods", 3, None, True])
def test_a_list_whose_items_is_not_a_list_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], items: Any
) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert_refused(*diagnose_file(path, capsys), "'items' is not a list")


ONE_GIB = 1 << 30


def diagnose_in_a_gibibyte(snapshot: str) -> subprocess.CompletedProcess[str]:
    """`kubetriage diagnose --snapshot <snapshot>` in a process that may map at most 1 GiB, so
    that reading a huge input whole fails the test instead of exhausting the machine."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ONE_GIB, ONE_GIB))

    return subprocess.run(
        [str(Path(sys.executable).parent / "kubetriage"), "diagnose", "--snapshot", snapshot],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        preexec_fn=limit_memory,
    )


def test_the_snapshot_size_limit_is_512_mib() -> None:
    assert MAX_SNAPSHOT_BYTES == 512 * 1024 * 1024


@pytest.mark.parametrize("size", [MAX_SNAPSHOT_BYTES + 1, 2 * ONE_GIB], ids=["limit+1", "2GiB"])
def test_a_file_over_the_size_limit_is_refused_without_reading_it(
    tmp_path: Path, size: int
) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(size)  # sparse: no disk used, as a 1 GB sparse file is
    result = diagnose_in_a_gibibyte(str(path))
    assert (result.returncode, result.stdout) == (2, ""), result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"kubetriage diagnose: {path} is larger than the 512 MiB a snapshot may have ({size} bytes)"
    )


def test_dev_zero_is_refused_at_once() -> None:
    started = time.monotonic()
    result = diagnose_in_a_gibibyte("/dev/zero")
    assert (result.returncode, result.stdout) == (2, ""), result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("kubetriage diagnose: /dev/zero is not a JSON snapshot")
    assert time.monotonic() - started < 30


def test_an_endless_stream_is_read_up_to_the_limit_and_no_further(tmp_path: Path) -> None:
    fifo = tmp_path / "endless.json"
    os.mkfifo(fifo)
    written = 0

    def write_forever() -> None:
        nonlocal written
        with contextlib.suppress(BrokenPipeError), fifo.open("wb") as pipe:
            pipe.write(b'{"kind": "List", "items": [')
            while True:  # a JSON document that never ends, until the reader hangs up
                written += pipe.write(b" " * 65536)

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    with pytest.raises(SnapshotError, match=r"is larger than the 1 MiB a snapshot may have"):
        SnapshotReader.from_file(fifo, max_bytes=1 << 20)
    writer.join(timeout=10)
    assert not writer.is_alive()
    # What was read, plus what the pipe's buffer (64 KiB on Linux) and one write held.
    assert written <= (1 << 20) + 4 * 65536


# Found by tests/unit/test_snapshot_mutations.py, each a playbook failure (exit 1) before.


def mutated(name: str, change: Any) -> list[dict[str, Any]]:
    items = load_items(name)
    change(items)
    return items


def set_node_memory(items: list[dict[str, Any]], value: str) -> None:
    for node in (i for i in items if i["kind"] == "Node"):
        node["status"]["allocatable"]["memory"] = value


def set_owner_name(items: list[dict[str, Any]], value: str) -> None:
    for item in (i for i in items if i["kind"] == "ReplicaSet"):
        for owner in item["metadata"]["ownerReferences"]:
            owner["name"] = value


def set_event_times(items: list[dict[str, Any]], value: str) -> None:
    for event in (i for i in items if i["kind"] == "Event"):
        event["firstTimestamp"] = event["lastTimestamp"] = value


def set_creation_time(items: list[dict[str, Any]], value: str) -> None:
    for item in items:
        if isinstance(item.get("metadata"), dict):
            item["metadata"]["creationTimestamp"] = value


@pytest.mark.parametrize(
    ("scenario", "change"),
    [
        ("pending-node-selector-mismatch.json", lambda i: set_node_memory(i, "1e309")),
        ("pending-insufficient-resources.json", lambda i: set_node_memory(i, "9" * 30 + "Ei")),
        ("oom-limit-too-low.json", lambda i: set_creation_time(i, "0001-01-01T00:00:00+14:00")),
        ("oom-limit-too-low.json", lambda i: set_creation_time(i, "9999-12-31T23:59:59-14:00")),
        ("oom-node-pressure.json", lambda i: set_event_times(i, "0001-01-01T00:00:00Z")),
        ("oom-node-pressure.json", lambda i: set_event_times(i, "9999-12-31T23:59:59Z")),
        ("crashloop-application-error.json", lambda i: set_owner_name(i, "x" * 1000)),
    ],
    ids=[
        "quantity-1e309",
        "quantity-beyond-int64",
        "time-before-year-1",
        "time-after-9999",
        "go-zero-time",
        "last-day-of-9999",
        "owner-name-1000",
    ],
)
def test_values_no_apiserver_holds_degrade_the_diagnosis_and_never_fail_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scenario: str, change: Any
) -> None:
    code, out, err = diagnose_file(write_snapshot(tmp_path, mutated(scenario, change)), capsys)
    assert code == 0, err
    for report in json.loads(out)["items"]:
        assert report["status"]["rootCause"]["category"]
