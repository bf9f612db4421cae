"""The CrashLoopBackOff runbook's deeper causes (issue 16), read off the project's own scenarios
in tests/scenarios/crashloop/: for each snapshot, what the report's summary, evidence, steps and
recommendation must say, and what they must not.

The scenarios quote the kubelet, the runtimes and the applications as they really write: a
startup probe that runs out before Flyway finishes, an arm64 node given an amd64-only image, a
database that answers and refuses the password, a ClusterIP whose Service selects no pod, a
.NET inner exception and a Rust error chain, an oauth2-proxy that reads a config file, a liveness
kill two minutes into a run with event-loop lag, a pod that just crashed for the first time, a
previous log that is empty, and a ConfigMap a snapshot did not capture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kubeobjects
from helpers import REPO_ROOT
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import Finding, diagnose, find_problems
from kubetriage.k8s.access import name_of
from kubetriage.k8s.owners import WorkloadRef
from kubetriage.models import Category, Severity, Symptom
from kubetriage.playbooks.base import Conclusion, Context, Investigation
from kubetriage.playbooks.crashloop import CrashLoopPlaybook
from kubetriage.policy import ready_and_desired, severity
from kubetriage.reports.build import build_report

FOLDER = REPO_ROOT / "tests" / "scenarios" / "crashloop"
EXPECTED: dict[str, list[dict[str, str]]] = json.loads((FOLDER / "expected.json").read_text())
N1 = "ip-10-0-1-17.eu-west-1.compute.internal"
N2 = "ip-10-0-2-41.eu-west-1.compute.internal"
N3 = "ip-10-0-3-88.eu-west-1.compute.internal"


def finding_of(name: str) -> Finding:
    found = [
        f
        for f in diagnose(SnapshotReader.from_file(FOLDER / name))
        if f.symptom == Symptom.CRASH_LOOP_BACK_OFF
    ]
    assert len(found) == 1, [f.target for f in found]
    return found[0]


@dataclass
class Facts:
    """What the report on one scenario says (each a substring) and must not say."""

    category: Category
    summary: list[str] = field(default_factory=list)
    not_in_summary: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    not_in_evidence: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    not_in_steps: list[str] = field(default_factory=list)
    recommendation: list[str] = field(default_factory=list)
    not_in_recommendation: list[str] = field(default_factory=list)
    patch: dict[str, Any] | None = None  # keys the pod spec of the patch must carry
    container_patch: dict[str, Any] | None = None  # the patched container, without its name
    severity: Severity | None = None
    confidence: tuple[float, float] = (0.0, 1.0)


FACTS: dict[str, Facts] = {
    "startup-probe-failure.json": Facts(
        Category.CRASHLOOP_STARTUP_PROBE_FAILURE,
        summary=[
            "(2 of 2 pod(s))",
            "failed startup probes",
            "connect: connection refused",
            "after 32s",
            "the startupProbe allows 30s",
            "failureThreshold 6 \u00d7 periodSeconds 5",
        ],
        not_in_summary=["liveness probe allows", "periodSeconds 10"],
        evidence=["events: Killing in 2 pod(s): Container ledger-api failed startup probe"],
        recommendation=[
            "raise the startupProbe's failureThreshold from 6 to 60",
            "300s",
            '"failed startup probe"',
        ],
        not_in_recommendation=["livenessProbe", "initialDelaySeconds"],
        container_patch={"startupProbe": {"failureThreshold": 60}},
        confidence=(0.85, 1.0),
    ),
    "negative-startup-passed-liveness-kill.json": Facts(
        Category.CRASHLOOP_LIVENESS_PROBE_FAILURE,
        summary=["failed liveness probes", "HTTP probe failed with statuscode: 500", "604s"],
        not_in_summary=["failed startup probes", "startupProbe allows"],
        recommendation=["500", "had started"],
        not_in_recommendation=["raise the startupProbe", "add a startupProbe"],
    ),
    "wrong-architecture.json": Facts(
        Category.CRASHLOOP_WRONG_ARCHITECTURE,
        summary=["(2 of 3 pod(s))", "exec format error", "arm64", "amd64", N2, N3, N1],
        evidence=[
            f"node: {N2}: kubernetes.io/arch=arm64",
            f"node: {N1}: kubernetes.io/arch=amd64",
        ],
        recommendation=["kubernetes.io/arch", "amd64", "--platform linux/amd64,linux/arm64"],
        patch={"nodeSelector": {"kubernetes.io/arch": "amd64"}},
        confidence=(0.85, 1.0),
    ),
    "invalid-credentials-postgres.json": Facts(
        Category.CRASHLOOP_INVALID_CREDENTIALS,
        summary=[
            "(2 of 2 pod(s))",
            "postgres.data.svc.cluster.local:5432 refused its credentials",
            "password authentication failed",
            "Secret orders-db-credentials key password (env DB_PASSWORD)",
            "Service postgres in namespace data",
            "1 ready endpoint(s)",
        ],
        not_in_summary=["stripe", "STRIPE_API_KEY"],
        evidence=["failed SASL auth: FATAL: password authentication failed for user"],
        not_in_evidence=["[REDACTED] password authentication"],
        steps=["answered and refused the credentials"],
        not_in_steps=["no log shows a failed connection"],
        recommendation=["Secret orders-db-credentials", "/data/password", "next restart"],
        not_in_recommendation=["roll out a new image"],
        confidence=(0.85, 1.0),
    ),
    "invalid-credentials-mysql-php.json": Facts(
        Category.CRASHLOOP_INVALID_CREDENTIALS,
        summary=[
            "refused its credentials",
            "Access denied for user 'catalog'@'10.0.1.131' (using password: YES)",
            "Secret catalog-admin-db (envFrom",
        ],
        not_in_summary=["Illuminate\\Database\\QueryException", "[REDACTED]"],
        recommendation=["kubectl describe secret catalog-admin-db -n storefront"],
        not_in_recommendation=["roll out a new image"],
    ),
    "dependency-clusterip-selector-matches-no-pod.json": Facts(
        Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE,
        summary=[
            "cannot reach 10.100.45.12:6379",
            "the ClusterIP of Service redis in namespace checkout",
            "no ready endpoints",
            "its selector app.kubernetes.io/component=master,app.kubernetes.io/instance="
            "cart-cache,app.kubernetes.io/name=redis matches no pod",
            "StatefulSet cart-redis-master",
        ],
        not_in_summary=["IP address", "unnamed host", "cart-9d75gq9qsj-2xkqp:6379"],
        evidence=["endpoints: 10.100.45.12:6379 (connection refused)"],
        recommendation=[
            "kubectl patch service redis -n checkout",
            '"app.kubernetes.io/instance":"cart-redis"',
        ],
        confidence=(0.85, 1.0),
    ),
    "dependency-clusterip-pods-not-ready.json": Facts(
        Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE,
        summary=[
            "cannot reach 10.100.12.7:6379",
            "the ClusterIP of Service session-redis in namespace search",
            "no ready endpoints",
            "1 pod(s) match its selector and none is ready",
            "session-redis-0",
            "LOADING Redis is loading the dataset in memory",
        ],
        not_in_summary=["IP address"],
        recommendation=["kubectl describe pod session-redis-0 -n search"],
    ),
    "dependency-pod-ip.json": Facts(
        Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE,
        summary=[
            "it is the IP of pod pg-main-0 (StatefulSet pg-main) in namespace billing",
            "which is ready",
            "its containers listen on port 5432, not 5433",
            "Service pg-main",
        ],
        not_in_summary=["IP address, and"],
        recommendation=["Service pg-main", "5432", "DATABASE_URL"],
    ),
    "dependency-named-host.json": Facts(
        Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE,
        summary=[
            "cannot reach db:5432",
            "Service db in namespace inventory exists but has no ready endpoints",
            "StatefulSet postgres is scaled to 0 replicas",
        ],
        not_in_summary=["IP address", "unnamed host"],
        not_in_evidence=["IP address", "unnamed host"],
        recommendation=["kubectl scale statefulset/postgres -n inventory"],
    ),
    "last-error-dotnet-inner-exception.json": Facts(
        Category.CRASHLOOP_APPLICATION_ERROR,
        summary=[
            "exit code 134",
            "System.InvalidOperationException: Unable to resolve service for type "
            "'Contacts.Api.Options.GeocoderOptions'",
        ],
        not_in_summary=["End of inner exception stack trace", "   at "],
        evidence=["logs: previous log of 1 pod(s) (contacts-api-"],
        not_in_evidence=["End of inner exception stack trace ---"],
    ),
    "last-error-rust-anyhow-chain.json": Facts(
        Category.CRASHLOOP_MISSING_CONFIGURATION,
        summary=["/etc/tiles/config.toml"],
        not_in_summary=["Caused by:"],
        evidence=[
            "failed to load configuration: failed to read /etc/tiles/config.toml: No such file or "
            "directory (os error 2)"
        ],
        recommendation=["/etc/tiles"],
    ),
    "missing-settings-config-file.json": Facts(
        Category.CRASHLOOP_MISSING_CONFIGURATION,
        summary=[
            "client-id and client-secret are missing",
            "/etc/oauth2_proxy/oauth2_proxy.cfg",
            "ConfigMap oauth2-proxy",
        ],
        not_in_summary=["client is missing", "set neither by env"],
        recommendation=[
            "kubectl edit configmap oauth2-proxy -n auth",
            "client-id",
            "client-secret",
            "Secret",
        ],
        not_in_recommendation=["set env", "client=<value>"],
    ),
    "liveness-runtime-stall.json": Facts(
        Category.CRASHLOOP_LIVENESS_PROBE_FAILURE,
        summary=[
            "(2 of 2 pod(s))",
            "after 128s",
            "the liveness probe allows 40s",
            "it had passed its liveness probe",
            "event loop lag above threshold",
        ],
        not_in_summary=["there is no startupProbe"],
        recommendation=["timeoutSeconds from 1 to 5", "event loop"],
        not_in_recommendation=["startupProbe", "allows 520s", "to start"],
        container_patch={"livenessProbe": {"timeoutSeconds": 5}},
    ),
    "affected-pods-counted.json": Facts(
        Category.CRASHLOOP_APPLICATION_ERROR,
        summary=["(2 of 3 pod(s))", "ModelLoadError: model s3://acme-ml-models"],
        not_in_summary=["1 of 1"],
        evidence=["pod.status: 2 pod(s) (recommender-"],
    ),
    "empty-previous-log.json": Facts(
        Category.CRASHLOOP_APPLICATION_ERROR,
        summary=["exit code 2", "its previous log is empty"],
        not_in_summary=["no previous log was available"],
        steps=["empty"],
        not_in_steps=["No previous log was available"],
    ),
    "configmap-not-captured.json": Facts(
        Category.CRASHLOOP_MISSING_CONFIGURATION,
        summary=["SMTP_HOST is missing", "not captured"],
        not_in_summary=["does not exist"],
        evidence=["ConfigMap notifier-smtp is not in this snapshot"],
        not_in_evidence=["ConfigMap notifier-smtp does not exist"],
        recommendation=["kubectl get configmap notifier-smtp -n comms"],
        not_in_recommendation=["kubectl create configmap"],
    ),
    "configmap-does-not-exist.json": Facts(
        Category.CRASHLOOP_MISSING_CONFIGURATION,
        summary=["SMTP_HOST is missing", "ConfigMap notifier-smtp does not exist"],
        evidence=["ConfigMap notifier-smtp does not exist"],
        not_in_evidence=["not in this snapshot"],
        recommendation=["kubectl create configmap notifier-smtp -n comms"],
    ),
    "job-crashloop-production.json": Facts(
        Category.CRASHLOOP_APPLICATION_ERROR,
        summary=["Job ledger-close-2025-06", "is not a valid month"],
        severity=Severity.CRITICAL,
    ),
    "negative-app-serves-401.json": Facts(
        Category.CRASHLOOP_APPLICATION_ERROR,
        summary=["panic: runtime error: index out of range"],
        not_in_summary=["credentials", "401"],
    ),
}


def test_every_scenario_of_the_folder_has_its_facts() -> None:
    on_disk = {p.name for p in FOLDER.glob("*.json") if p.name != "expected.json"}
    assert on_disk == set(FACTS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(FACTS))
def test_the_report_on_the_scenario_says_what_the_objects_show(name: str) -> None:
    facts = FACTS[name]
    finding = finding_of(name)
    report = build_report(finding).to_api()
    status = report["status"]
    root = status["rootCause"]
    assert root["category"] == facts.category.value, root["summary"]
    for fact in facts.summary:
        assert fact in root["summary"], (fact, root["summary"])
    for fact in facts.not_in_summary:
        assert fact not in root["summary"], (fact, root["summary"])
    evidence = [f"{e['source']}: {e['summary']}" for e in status["evidence"]]
    for fact in facts.evidence:
        assert any(fact in line for line in evidence), (fact, evidence)
    for fact in facts.not_in_evidence:
        assert not any(fact in line for line in evidence), (fact, evidence)
    steps = [s["outcome"] for s in status["steps"]]
    for fact in facts.steps:
        assert any(fact in line for line in steps), (fact, steps)
    for fact in facts.not_in_steps:
        assert not any(fact in line for line in steps), (fact, steps)
    recommendation = status["recommendation"]
    text = json.dumps(recommendation, ensure_ascii=False).replace('\\"', '"')
    for fact in facts.recommendation:
        assert fact in text, (fact, text)
    for fact in facts.not_in_recommendation:
        assert fact not in text, (fact, text)
    if facts.patch is not None or facts.container_patch is not None:
        assert recommendation.get("patch"), recommendation
        pod_spec = json.loads(recommendation["patch"]["content"])["spec"]["template"]["spec"]
        for key, value in (facts.patch or {}).items():
            assert pod_spec[key] == value, pod_spec
        if facts.container_patch is not None:
            (patched,) = pod_spec["containers"]
            assert {k: v for k, v in patched.items() if k != "name"} == facts.container_patch
    if facts.severity is not None:
        assert status["severity"] == facts.severity.value
    low, high = facts.confidence
    assert low <= root["confidence"] <= high, root["confidence"]
    assert status["recommendation"]["rollback"]
    assert status["recommendation"]["validation"]


def test_the_new_categories_are_named_and_documented_by_the_playbook() -> None:
    new = {
        Category.CRASHLOOP_STARTUP_PROBE_FAILURE,
        Category.CRASHLOOP_WRONG_ARCHITECTURE,
        Category.CRASHLOOP_INVALID_CREDENTIALS,
    }
    assert new <= set(CrashLoopPlaybook.categories)
    markdown = CrashLoopPlaybook().to_markdown()
    assert all(f"`{c.value}`" in markdown for c in new)
    documented = (REPO_ROOT / "docs" / "playbooks.md").read_text()
    assert all(f"`{c.value}`" in documented for c in new)
    crd = (REPO_ROOT / "crds" / "diagnosisreports.kubetriage.io.yaml").read_text()
    assert all(f"- {c.value}\n" in crd for c in new)


# --- a crash-looping Job is down when its only pod is ----------------------------------------


def _job(status: dict[str, Any], spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "close", "namespace": "finance"},
        "spec": {"parallelism": 1, "completions": 1, **(spec or {})},
        "status": status,
    }


JOBS = {
    "active-pod-crash-looping": (_job({"active": 1, "ready": 0}), (0, 1)),
    "active-pod-ready": (_job({"active": 1, "ready": 1}), (1, 1)),
    "ready-not-reported-yet": (_job({"active": 1}), (0, 1)),
    "two-of-three-left-to-complete": (
        _job({"active": 2, "ready": 1, "succeeded": 3}, {"parallelism": 4, "completions": 5}),
        (1, 2),
    ),
}


@pytest.mark.parametrize(("job", "counts"), JOBS.values(), ids=JOBS)
def test_a_jobs_active_pods_are_not_counted_as_ready(
    job: dict[str, Any], counts: tuple[int, int]
) -> None:
    assert ready_and_desired(job) == counts


def test_a_crash_looping_job_in_production_is_critical_like_any_workload_whose_pod_is_down() -> (
    None
):
    job = _job({"active": 1, "ready": 0})
    assert severity(job, production=True) == Severity.CRITICAL
    assert severity(job, production=False) == Severity.WARNING
    finding = finding_of("job-crashloop-production.json")
    assert finding.target == WorkloadRef(
        "finance", "Job", "ledger-close-2025-06", "batch/v1", finding.target.uid
    )
    assert finding.severity_level == Severity.CRITICAL.value


# --- which Secret feeds the credential a dependency refused ----------------------------------


def _refused(log: str, env: list[dict[str, Any]]) -> Finding:
    ns, pod_name = "shop", "api-7d9f8b6c5-p0"
    spec = {
        "containers": [kubeobjects.container("api", "registry.example/shop/api:2.0.0", env=env)]
    }
    status = kubeobjects.container_status(
        "api",
        kubeobjects.crash_loop_back_off("api"),
        last_state=kubeobjects.terminated(
            1, "Error", started="2025-03-14T11:58:00Z", finished="2025-03-14T11:58:01Z"
        ),
        restart_count=7,
    )
    document = kubeobjects.snapshot(
        kubeobjects.pod(
            pod_name,
            namespace=ns,
            spec=spec,
            status={"phase": "Running", "containerStatuses": [status]},
        ),
        kubeobjects.container_log(pod_name, "api", log, namespace=ns),
        namespace=ns,
        captured_at="2025-03-14T12:00:00Z",
    )
    (finding,) = diagnose(SnapshotReader.from_document(document))
    return finding


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


REFUSED = {
    "redis-wrongpass": (
        "[ioredis] Unhandled error event: ReplyError: WRONGPASS invalid username-password pair or "
        "user is disabled.",
        "Secret redis-auth key password (env REDIS_PASSWORD)",
    ),
    "stripe-401": (
        "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: "
        "https://api.stripe.com/v1/balance",
        "Secret stripe key api-key (env STRIPE_API_KEY)",
    ),
    "postgres": (
        'psycopg2.OperationalError: connection to server at "postgres" (10.96.0.5), port 5432 '
        'failed: FATAL:  password authentication failed for user "api"',
        "Secret pg key password (env DB_PASSWORD)",
    ),
}


@pytest.mark.parametrize(("log", "source"), REFUSED.values(), ids=REFUSED)
def test_the_secret_named_is_the_one_that_feeds_the_refused_credential(
    log: str, source: str
) -> None:
    env = [
        _secret_env("DB_PASSWORD", "pg", "password"),
        _secret_env("REDIS_PASSWORD", "redis-auth", "password"),
        _secret_env("STRIPE_API_KEY", "stripe", "api-key"),
        {"name": "LOG_LEVEL", "value": "info"},
    ]
    finding = _refused(log, env)
    root = finding.conclusion.root_cause
    assert root.category == Category.CRASHLOOP_INVALID_CREDENTIALS, root.summary
    assert f"the credential comes from {source}" in root.summary
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert finding.classification is not None
    assert "access" in [c.value for c in finding.classification.classes]


# --- junk where the new reads look --------------------------------------------------------------

JUNK: st.SearchStrategy[Any] = st.sampled_from(
    [None, 0, -1, 1.5, True, "", "10.100.45.12", [], [None], {}, {"name": None}, [1, "2"]]
)
# Fields the new reads follow, each set on every object of its kind: (kind, path, junk).
NEW_FRAGILE = {
    "slice-endpoints-hold-junk": ("EndpointSlice", ("endpoints",), [None, {"conditions": 3}]),
    "slice-labels-are-a-list": ("EndpointSlice", ("metadata", "labels"), ["x"]),
    "service-cluster-ips-is-a-string": ("Service", ("spec", "clusterIPs"), "10.100.45.12"),
    "service-selector-is-a-string": ("Service", ("spec", "selector"), "app=redis"),
    "pod-ips-hold-junk": ("Pod", ("status", "podIPs"), [None, "10.0.3.119", {"ip": 5}]),
    "node-labels-are-a-list": ("Node", ("metadata", "labels"), ["kubernetes.io/arch"]),
    "absent-is-a-dict": ("SnapshotInfo", ("absent",), {"kind": "ConfigMap"}),
    "absent-holds-junk": ("SnapshotInfo", ("absent",), [None, {"kind": 3, "name": []}]),
    "volume-config-map-is-a-string": (
        "Pod",
        ("spec", "volumes"),
        [{"name": "c", "configMap": "x"}],
    ),
    "args-hold-junk": ("Deployment", ("spec", "template", "spec", "containers"), [{"args": 5}]),
}


def _problem(document: dict[str, Any]) -> Any:
    problems = find_problems(SnapshotReader.from_document(document))
    return next(p for p in problems if p.symptom == Symptom.CRASH_LOOP_BACK_OFF)


def _run(document: dict[str, Any], problem: Any) -> Conclusion:
    reader = SnapshotReader.from_document(document)
    wanted = {name_of(p) for p in problem.pods}
    context = Context(
        reader=reader,
        target=problem.target,
        symptom=Symptom.CRASH_LOOP_BACK_OFF,
        sightings=problem.sightings,
        pods=[p for p in reader.pods(problem.target.namespace) if name_of(p) in wanted],
        workload=reader.workload(
            problem.target.kind, problem.target.namespace, problem.target.name
        ),
        now=reader.now(),
    )
    return CrashLoopPlaybook().run(context, Investigation())


@pytest.mark.parametrize(("kind", "path", "junk"), NEW_FRAGILE.values(), ids=NEW_FRAGILE)
@pytest.mark.parametrize("name", sorted(FACTS))
def test_junk_where_the_new_reads_look_is_tolerated(
    name: str, kind: str, path: tuple[str, ...], junk: Any
) -> None:
    document = json.loads((FOLDER / name).read_text())
    problem = _problem(document)
    for item in document["items"]:
        if item.get("kind") == kind:
            node = item
            for key in path[:-1]:
                node = node.setdefault(key, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict):
                node[path[-1]] = junk
    conclusion = _run(document, problem)
    assert conclusion.root_cause.category in CrashLoopPlaybook.categories
    assert conclusion.recommendation is not None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_junk_in_any_field_of_the_new_scenarios_never_breaks_the_runbook(
    data: st.DataObject,
) -> None:
    name = data.draw(st.sampled_from(sorted(FACTS)))
    document = json.loads((FOLDER / name).read_text())
    problem = _problem(document)
    kubeobjects.plant_junk(document, data, JUNK)
    conclusion = _run(document, problem)
    assert conclusion.root_cause.category in CrashLoopPlaybook.categories
    assert conclusion.recommendation is not None
