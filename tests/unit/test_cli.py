"""The console script answers --version and --help without a cluster."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
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


# --- issue 15: what `diagnose --target` says, and the cluster commands' one-line failures -----

KUBETRIAGE = Path(sys.executable).parent / "kubetriage"


def diagnose(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["diagnose", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    (line,) = err.strip().splitlines()
    return line


@pytest.mark.parametrize(
    ("target", "namespace"),
    [
        ("deployment/does-not-exist", None),
        ("deployment/orders", "elsewhere"),  # there, but not in that namespace
        ("statefulset/orders", None),  # the name, but not of that kind
    ],
    ids=["absent", "other-namespace", "other-kind"],
)
def test_a_target_not_in_the_snapshot_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], target: str, namespace: str | None
) -> None:
    snapshot = str(SCENARIOS_DIR / "crashloop-application-error.json")
    argv = ["--snapshot", snapshot, "--target", target] + (["-n", namespace] if namespace else [])
    code, out, err = diagnose(argv, capsys)
    assert (code, out) == (2, "")
    where = f" in namespace {namespace}" if namespace else ""
    assert one_line(err) == f"kubetriage diagnose: {target} is not in {snapshot}{where}"


@pytest.mark.parametrize(
    "target", ["deployment/", "/api", "deployment", "a/b/c", "", " ", "deployment/Orders"]
)
def test_a_malformed_target_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], target: str
) -> None:
    snapshot = str(SCENARIOS_DIR / "crashloop-application-error.json")
    code, out, err = diagnose(["--snapshot", snapshot, "--target", target], capsys)
    assert (code, out) == (2, "")
    assert one_line(err) == (
        f"kubetriage diagnose: --target {target!r} is not KIND/NAME (e.g. deployment/api; "
        "NAME as Kubernetes names objects: lowercase letters, digits, '-' and '.')"
    )


@pytest.mark.parametrize(
    ("target", "namespace", "checked"),
    [
        ("deployment/landing-web", None, "the Deployment and its 3 pods"),
        ("deploy/landing-web", "marketing", "the Deployment and its 3 pods"),
        ("Deployment/landing-web", None, "the Deployment and its 3 pods"),
        ("replicaset/landing-web-jhhdrdmm9", None, None),
    ],
    ids=["kind", "short-name", "capitalised", "owned-replicaset"],
)
def test_a_healthy_target_says_precisely_what_was_checked(
    capsys: pytest.CaptureFixture[str], target: str, namespace: str | None, checked: str | None
) -> None:
    snapshot = str(SCENARIOS_DIR / "healthy-deployment.json")
    argv = ["--snapshot", snapshot, "--target", target] + (["-n", namespace] if namespace else [])
    code, out, err = diagnose(argv, capsys)
    if checked is None:  # reports are per workload: its owner is what can be diagnosed
        assert (code, out) == (2, "")
        assert one_line(err) == (
            f"kubetriage diagnose: {target} belongs to deployment/landing-web in marketing; "
            "reports are per workload: use --target deployment/landing-web"
        )
        return
    assert (code, err) == (0, "")
    assert out == (
        f"No problems found for deployment/landing-web in marketing: checked {checked} "
        f"in {snapshot}.\n"
    )


def test_a_pod_of_a_failing_deployment_as_target_names_its_deployment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    snapshot = str(SCENARIOS_DIR / "crashloop-application-error.json")
    code, out, err = diagnose(
        ["--snapshot", snapshot, "--target", "pod/orders-6qwjd7f6p2-zpqsc"], capsys
    )
    assert (code, out) == (2, "")
    assert one_line(err) == (
        "kubetriage diagnose: pod/orders-6qwjd7f6p2-zpqsc belongs to deployment/orders in shop; "
        "reports are per workload: use --target deployment/orders"
    )


def test_a_failing_target_is_reported_and_a_healthy_one_beside_it_is_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    snapshot = str(SCENARIOS_DIR / "crashloop-application-error.json")
    code, out, err = diagnose(
        ["--snapshot", snapshot, "--target", "deployment/orders", "-o", "json"], capsys
    )
    assert (code, err) == (0, "")
    (report,) = json.loads(out)["items"]
    assert report["spec"]["target"]["name"] == "orders"


def cluster_command(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBETRIAGE), *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
        env={k: v for k, v in os.environ.items() if not k.startswith("KUBE")} | env,
    )


CLUSTER_COMMANDS = [["scan"], ["capture", "deployment/api", "-n", "shop", "-o", "-"]]


# Each case with one of the two commands: both load the kubeconfig the same way, and every
# run of the console script costs seconds of imports.
@pytest.mark.parametrize(
    ("command", "content", "problem"),
    [
        (CLUSTER_COMMANDS[0], b"\x00\x01\x02 binary", "is not YAML: unacceptable character"),
        (CLUSTER_COMMANDS[1], b"clusters:\n\t- tab: indented\n", "is not YAML: while scanning"),
        (CLUSTER_COMMANDS[1], b"just one string\n", "is not a kubeconfig: YAML whose top level"),
        (CLUSTER_COMMANDS[0], b"[1, 2]\n", "is not a kubeconfig: YAML whose top level is list"),
        (
            CLUSTER_COMMANDS[0],
            b"contexts: [{name: x, context: 5}]\ncurrent-context: x\n",
            "is not a kubeconfig: AttributeError",
        ),
    ],
    ids=["binary-scan", "tab-capture", "string-capture", "list-scan", "context-not-a-mapping-scan"],
)
def test_a_kubeconfig_that_is_not_one_stops_scan_and_capture_with_one_line(
    tmp_path: Path, command: list[str], content: bytes, problem: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(content)
    result = cluster_command(command, {"KUBECONFIG": str(kubeconfig)})
    assert (result.returncode, result.stdout) == (1, ""), result.stderr[-3000:]
    line = one_line(result.stderr)
    assert line.startswith(f"kubetriage {command[0]}: the kubeconfig {kubeconfig} {problem}")


def kubeconfig_for(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: u, user: {token: not-a-real-token}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    return path


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("command", CLUSTER_COMMANDS, ids=["scan", "capture"])
def test_a_cluster_that_does_not_answer_stops_scan_and_capture_with_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    server = f"https://127.0.0.1:{closed_port()}"
    result = cluster_command(command, {"KUBECONFIG": str(kubeconfig_for(tmp_path, server))})
    assert (result.returncode, result.stdout) == (1, ""), result.stderr[-3000:]
    line = one_line(result.stderr)
    assert line.startswith(f"kubetriage {command[0]}: the cluster at {server} does not answer: ")
    assert "Connection refused" in line


@pytest.mark.parametrize("command", CLUSTER_COMMANDS, ids=["scan", "capture"])
def test_a_server_that_hangs_up_stops_scan_and_capture_with_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        server = f"http://127.0.0.1:{listener.getsockname()[1]}"
        stop = threading.Event()

        def hang_up() -> None:  # accept every connection and close it without a word
            listener.settimeout(0.1)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    listener.accept()[0].close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        try:
            result = cluster_command(command, {"KUBECONFIG": str(kubeconfig_for(tmp_path, server))})
        finally:
            stop.set()
            thread.join(timeout=5)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr[-3000:]
    line = one_line(result.stderr)
    assert line.startswith(f"kubetriage {command[0]}: the cluster at {server} does not answer: ")


@pytest.mark.parametrize("leader_election", ["false", "true"], ids=["alone", "elected"])
def test_run_without_a_cluster_exits_at_once_with_one_line(
    tmp_path: Path, leader_election: str
) -> None:
    started = time.monotonic()
    result = cluster_command(
        ["run"],
        {
            "HOME": str(tmp_path),  # no ~/.kube/config
            "KUBETRIAGE_LEADER_ELECTION": leader_election,
            "KUBETRIAGE_METRICS_PORT": "0",
            "KUBETRIAGE_HEALTH_PORT": "0",
        },
    )
    assert time.monotonic() - started < 30
    assert (result.returncode, result.stdout) == (1, ""), result.stderr[-3000:]
    assert one_line(result.stderr) == (
        "kubetriage run: found no cluster: not in a pod (KUBERNETES_SERVICE_HOST is not set) "
        f"and no kubeconfig ($KUBECONFIG is not set and {tmp_path}/.kube/config does not exist)"
    )


def test_run_with_a_kubeconfig_that_is_not_yaml_exits_at_once_with_one_line(
    tmp_path: Path,
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(b"\x00 not yaml")
    result = cluster_command(
        ["run"],
        {
            "KUBECONFIG": str(kubeconfig),
            "KUBETRIAGE_METRICS_PORT": "0",
            "KUBETRIAGE_HEALTH_PORT": "0",
        },
    )
    assert (result.returncode, result.stdout) == (1, ""), result.stderr[-3000:]
    assert one_line(result.stderr).startswith(
        "kubetriage run: found no cluster: not in a pod (KUBERNETES_SERVICE_HOST is not set) "
        f"and the kubeconfig {kubeconfig} is not YAML"
    )
