"""Record what a real kubelet shows for each failure of hack/realnode_cases.py, as JSON fixtures.

Starts the local control plane and one real node (hack/realnode.py), creates every failure
Deployment at once, and watches their pods and the events about them for `--seconds` (default
11 minutes: long enough for the kubelet's crash back-off to double from 10 s to its 5 min cap).
Every status the kubelet wrote is kept, in order, with the time since the pod was created, so a
fixture shows the whole cycle (running -> terminated -> waiting: CrashLoopBackOff -> running,
and how long each lasted), not one moment of it; and each event as it was aggregated (count).

    sudo .venv/bin/python hack/record_realnode.py [--seconds 660] [--out tests/fixtures/realnode]

Writes one `<failure>.json` per failure and `index.json` (versions, time of recording). Fields
that differ between runs (uids, container ids, pod IPs, timestamps) are kept as recorded.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from localcluster import LocalCluster
from realnode import NODE_NAME, PACKAGES, RealNode, running_real_node
from realnode_cases import NAMESPACE, Failure, failures, manifests, second_revisions

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "realnode"
DEFAULT_SECONDS = 660
# Fields of a container status that say nothing about the failure and only grow the fixtures.
DROPPED_STATUS_FIELDS = ("allocatedResources", "resources", "user", "volumeMounts")


def parse_time(value: Any) -> float | None:
    """An API timestamp (datetime or RFC 3339 text) as Unix seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def container_status(status: dict[str, Any]) -> dict[str, Any]:
    """A container status as the API returned it, without the fields of DROPPED_STATUS_FIELDS."""
    return {k: v for k, v in status.items() if k not in DROPPED_STATUS_FIELDS}


def pod_status(pod: dict[str, Any]) -> dict[str, Any]:
    """What a fixture keeps of a pod's status."""
    status = pod.get("status") or {}
    kept: dict[str, Any] = {"phase": status.get("phase")}
    for key in ("reason", "message"):
        if status.get(key):
            kept[key] = status[key]
    kept["conditions"] = [
        {k: c[k] for k in ("type", "status", "reason", "message") if c.get(k) is not None}
        for c in status.get("conditions") or []
    ]
    for key in ("initContainerStatuses", "containerStatuses"):
        if status.get(key):
            kept[key] = [container_status(s) for s in status[key]]
    return kept


def event_record(event: dict[str, Any]) -> dict[str, Any]:
    """What a fixture keeps of an Event (core/v1, as the kubelet writes it)."""
    involved = event.get("involvedObject") or {}
    source = event.get("source") or {}
    return {
        "type": event.get("type"),
        "reason": event.get("reason"),
        "message": event.get("message"),
        "count": event.get("count"),
        "fieldPath": involved.get("fieldPath"),
        "source": source.get("component"),
        "firstTimestamp": event.get("firstTimestamp"),
        "lastTimestamp": event.get("lastTimestamp"),
    }


class Recorder:
    """Watches pods, events and Deployments of one namespace; keeps every change with its time."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.pods: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.deployments: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        """One watching thread per kind."""
        core = client.CoreV1Api(self.api)
        apps = client.AppsV1Api(self.api)
        for target, handler in (
            (core.list_namespaced_pod, self._on_pod),
            (core.list_namespaced_event, self._on_event),
            (apps.list_namespaced_deployment, self._on_deployment),
        ):
            thread = threading.Thread(target=self._watch, args=(target, handler), daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        """Stop watching (the threads end at their next timeout)."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def _watch(
        self, target: Callable[..., Any], handler: Callable[[dict[str, Any], float], None]
    ) -> None:
        while not self.stopping.is_set():
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                events = stream.stream(  # type: ignore[no-untyped-call]
                    target, self.namespace, timeout_seconds=5
                )
                for item in events:
                    # The object as the API server wrote it (timestamps as it formats them).
                    handler(item["raw_object"], time.time())
                    if self.stopping.is_set():
                        break
            except Exception as error:  # a watch that breaks is restarted; say so
                print(f"watch restarted: {error}", file=sys.stderr)
                time.sleep(0.5)

    def _on_pod(self, pod: dict[str, Any], now: float) -> None:
        name = pod["metadata"]["name"]
        with self.lock:
            record = self.pods.setdefault(
                name,
                {
                    "name": name,
                    "app": (pod["metadata"].get("labels") or {}).get("app"),
                    "image": pod["spec"]["containers"][0]["image"],
                    "node": pod["spec"].get("nodeName"),
                    "created": parse_time(pod["metadata"].get("creationTimestamp")) or now,
                    "statuses": [],
                },
            )
            record["node"] = pod["spec"].get("nodeName") or record["node"]
            status = pod_status(pod)
            statuses: list[dict[str, Any]] = record["statuses"]
            if not statuses or {k: v for k, v in statuses[-1].items() if k != "t"} != status:
                statuses.append({"t": round(now - record["created"], 2), **status})

    def _on_event(self, event: dict[str, Any], now: float) -> None:
        involved = event.get("involvedObject") or {}
        key = f"{involved.get('kind')}/{involved.get('name')}"
        record = {"name": event["metadata"]["name"], **event_record(event)}
        with self.lock:
            updates = self.events.setdefault(key, [])
            # A watch that restarts lists everything again: keep only what changed.
            if all({k: v for k, v in u.items() if k != "seen"} != record for u in updates):
                updates.append({"seen": now, **record})

    def _on_deployment(self, deployment: dict[str, Any], now: float) -> None:
        name = deployment["metadata"]["name"]
        status = deployment.get("status") or {}
        kept = {
            "generation": deployment["metadata"].get("generation"),
            "conditions": [
                {k: c[k] for k in ("type", "status", "reason", "message") if c.get(k) is not None}
                for c in status.get("conditions") or []
            ],
            **{
                k: status[k]
                for k in ("replicas", "readyReplicas", "updatedReplicas", "unavailableReplicas")
                if k in status
            },
        }
        with self.lock:
            history = self.deployments.setdefault(name, [])
            if not history or {k: v for k, v in history[-1].items() if k != "seen"} != kept:
                history.append({"seen": now, **kept})


def timeline(statuses: list[dict[str, Any]], until: float) -> dict[str, Any]:
    """How long the first container spent in each state, and when it restarted."""
    spent: dict[str, float] = {}
    restarts: list[dict[str, Any]] = []
    last_count = 0
    for current, following in zip(statuses, [*statuses[1:], None], strict=True):
        containers = current.get("containerStatuses") or []
        if not containers:
            label = f"no container status ({current['phase']})"
        else:
            state = containers[0].get("state") or {}
            kind = next(iter(state), "none")
            reason = (state.get(kind) or {}).get("reason")
            label = f"{kind}: {reason}" if reason else kind
            count = containers[0].get("restartCount", 0)
            if count > last_count:
                restarts.append({"restartCount": count, "t": current["t"]})
                last_count = count
        end = following["t"] if following else until
        spent[label] = round(spent.get(label, 0.0) + max(0.0, end - current["t"]), 2)
    gaps = [round(b["t"] - a["t"], 1) for a, b in itertools.pairwise(restarts)]
    return {"secondsIn": spent, "restarts": restarts, "secondsBetweenRestarts": gaps}


def versions(cluster: LocalCluster, node: RealNode) -> dict[str, str]:
    """What produced the recording."""
    found = {"kubelet": subprocess.run(
        [str(node.binaries["kubelet"]), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()}  # fmt: skip
    for package in ("containerd", "runc", "containernetworking-plugins", "docker-registry"):
        found[package] = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
    found["kernel"] = subprocess.run(
        ["uname", "-r"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return found


def fixture(
    failure: Failure, recorder: Recorder, now: float, logs: dict[tuple[str, bool], str]
) -> dict[str, Any]:
    """One failure's recording: its pods (every status, their events) and its Deployment."""
    pods = [p for p in recorder.pods.values() if p["app"] == failure.name]
    document: dict[str, Any] = {
        "failure": failure.name,
        "what": failure.what,
        "expected": {"symptom": failure.symptom, "category": failure.category},
        "container": failure.container,
        "pods": [],
        "deployment": recorder.deployments.get(failure.name, []),
    }
    for pod in sorted(pods, key=lambda p: p["created"]):
        updates = recorder.events.get(f"Pod/{pod['name']}", [])
        latest: dict[str, dict[str, Any]] = {}
        for update in updates:
            latest[update["name"]] = update
        events = [
            {k: v for k, v in e.items() if k not in ("seen", "name")}
            for e in sorted(latest.values(), key=lambda e: str(e["firstTimestamp"]))
        ]
        document["pods"].append(
            {
                "name": pod["name"],
                "image": pod["image"],
                "node": pod["node"],
                "statuses": pod["statuses"],
                "timeline": timeline(pod["statuses"], now - pod["created"]),
                "events": events,
                "logs": {
                    "current": logs.get((pod["name"], False), ""),
                    "previous": logs.get((pod["name"], True), ""),
                },
                "eventUpdates": [
                    {
                        "t": round(u["seen"] - pod["created"], 2),
                        "reason": u["reason"],
                        "count": u["count"],
                    }
                    for u in updates
                ],
            }
        )
    for update in document["deployment"]:
        update["seen"] = round(update["seen"] - (pods[0]["created"] if pods else now), 2)
    return document


def record(seconds: float, out: Path, workdir: Path | None) -> int:
    """Record every failure for `seconds` and write the fixtures into `out`."""
    if not all(path.exists() for path in PACKAGES.values()):
        print("missing packages: make realnode-packages", file=sys.stderr)
        return 2
    directory = workdir or Path(tempfile.mkdtemp(prefix="kubetriage-record-"))
    with running_real_node(directory) as (cluster, node):
        print(f"real node Ready after {node.setup_seconds:.1f}s; recording {seconds:.0f}s")
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(cluster.kubeconfig)
        )
        recorder = Recorder(api, NAMESPACE)
        cluster.apply(manifests(node.image)[0])
        cluster.wait_for_default_service_account(NAMESPACE)
        recorder.start()
        began = time.time()
        cluster.apply(manifests(node.image)[1:])
        cluster.kubectl(
            "rollout", "status", "deployment/bad-rollout", "-n", NAMESPACE, "--timeout=120s"
        )
        cluster.apply(second_revisions(node.image))
        while time.time() - began < seconds:
            time.sleep(5)
            print(f"  {time.time() - began:5.0f}s: {len(recorder.pods)} pods", flush=True)
        recorder.stop()
        now = time.time()
        logs = {
            (pod, previous): cluster.kubectl(
                "logs", pod, "-n", NAMESPACE, *(["--previous"] if previous else []), check=False
            ).stdout
            for pod in recorder.pods
            for previous in (False, True)
        }
        out.mkdir(parents=True, exist_ok=True)
        for failure in failures(node.image):
            path = out / f"{failure.name}.json"
            path.write_text(json.dumps(fixture(failure, recorder, now, logs), indent=1) + "\n")
            print(f"wrote {path}")
        index = {
            "recordedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": seconds,
            "node": NODE_NAME,
            "setupSeconds": round(node.setup_seconds, 2),
            "kubeletToReadySeconds": round(node.ready_seconds, 2),
            "versions": versions(cluster, node),
            "failures": [f.name for f in failures(node.image)],
        }
        (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
        api.close()  # type: ignore[no-untyped-call]
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--out", type=Path, default=FIXTURES)
    parser.add_argument("--dir", type=Path, help="work directory (default: a new temp dir)")
    args = parser.parse_args(argv)
    # A SIGTERM ends the recording through the teardown, like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    return record(args.seconds, args.out, args.dir)


if __name__ == "__main__":
    sys.exit(main())
