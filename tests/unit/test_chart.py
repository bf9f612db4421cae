"""The Helm chart, rendered by the real helm: each test is one promise the chart makes.

If one fails, its name says which promise broke and its message says where. Every scenario in
deploy/helm/kubetriage/ci/ is linted and rendered; the RBAC rules are checked against the API
calls the operator's code makes (found in the code, so a new call without a rule fails here);
the Deployment is checked for its hardening in every scenario; the CRD is checked against crds/;
every value is checked to be commented, typed in the schema and listed in the chart's README.

helm comes from the control-plane cache (`make controlplane` builds it). Without it these tests
skip locally and fail under CI=true.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client.api
import pytest
import yaml

from helpers import CRD_PATH, REPO_ROOT, unavailable
from localcluster import Binaries, ControlPlaneError, kubernetes_version

CHART = REPO_ROOT / "deploy" / "helm" / "kubetriage"
TEMPLATES = CHART / "templates"
OPERATOR = REPO_ROOT / "operator" / "kubetriage"
RELEASE, NAMESPACE = "kubetriage", "kubetriage-system"
SCENARIOS = {
    path.name.removesuffix("-values.yaml"): path for path in sorted(CHART.glob("ci/*-values.yaml"))
}

Obj = dict[str, Any]


# --- helm ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm() -> Path:
    """The helm binary of the control-plane cache."""
    try:
        return Binaries.find()["helm"]
    except ControlPlaneError as error:
        unavailable(str(error))
        raise  # unreachable: unavailable() skips or fails


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, check=False, timeout=120
    )


def set_args(values: dict[str, str]) -> list[str]:
    """`--set`/`--set-string` arguments: a value in quotes is set as a string."""
    args: list[str] = []
    for key, value in values.items():
        if value.startswith('"') and value.endswith('"'):
            args += ["--set-string", f"{key}={value[1:-1]}"]
        else:
            args += ["--set", f"{key}={value}"]
    return args


def template(
    helm: Path, *, files: tuple[Path, ...] = (), values: dict[str, str] | None = None,
    chart: Path = CHART, extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
    args += ["--kube-version", kubernetes_version()]
    for path in files:
        args += ["-f", str(path)]
    return run_helm(helm, *args, *set_args(values or {}), *extra)


def render(helm: Path, **kwargs: Any) -> list[Obj]:
    """The objects `helm template` renders; the render must succeed."""
    result = template(helm, **kwargs)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(helm: Path) -> dict[str, list[Obj]]:
    """Every ci/ scenario, rendered once."""
    return {name: render(helm, files=(path,)) for name, path in SCENARIOS.items()}


def scenario_values(name: str) -> Obj:
    """The chart's defaults merged with one scenario's values (as helm merges them)."""

    def merge(base: Obj, override: Obj) -> Obj:
        merged = dict(base)
        for key, value in override.items():
            both = isinstance(value, dict) and isinstance(base.get(key), dict)
            merged[key] = merge(base[key], value) if both else value
        return merged

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return merge(defaults, yaml.safe_load(SCENARIOS[name].read_text()) or {})


def only(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container_env(objects: list[Obj]) -> dict[str, Obj]:
    deployment = only(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {variable["name"]: variable for variable in container.get("env", [])}


# --- lint and render ---------------------------------------------------------------------------


def test_the_scenarios_cover_what_the_chart_offers() -> None:
    assert set(SCENARIOS) >= {"default", "linear", "ha", "full", "namespaced"}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_helm_lint_strict_is_clean(helm: Path, scenario: str) -> None:
    result = run_helm(helm, "lint", str(CHART), "--strict", "-f", str(SCENARIOS[scenario]))
    assert result.returncode == 0, f"helm lint --strict:\n{result.stdout}\n{result.stderr}"
    assert "[WARNING]" not in result.stdout, result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout


# The objects each scenario must produce, and nothing else.
BASE = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
        "Deployment", "Role", "RoleBinding"}  # fmt: skip
EXPECTED_KINDS = {
    "default": BASE,
    "linear": BASE,
    "ha": BASE | {"PodDisruptionBudget"},
    "full": BASE | {"Service", "ServiceMonitor", "NetworkPolicy", "ConfigMap"},
    # Leader election off: no Role or RoleBinding for Leases.
    "namespaced": BASE - {"Role", "RoleBinding"},
}


@pytest.mark.parametrize("scenario", list(EXPECTED_KINDS))
def test_each_scenario_renders_exactly_its_objects(
    rendered: dict[str, list[Obj]], scenario: str
) -> None:
    kinds = Counter(o["kind"] for o in rendered[scenario])
    assert set(kinds) == EXPECTED_KINDS[scenario]
    assert all(count == 1 for count in kinds.values()), kinds
    assert not any(o["kind"] == "Secret" for o in rendered[scenario]), "the chart never makes one"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_object_carries_the_release_labels(
    rendered: dict[str, list[Obj]], scenario: str
) -> None:
    for obj in rendered[scenario]:
        labels = obj["metadata"].get("labels") or {}
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert labels.get("app.kubernetes.io/instance") == RELEASE, where
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", where
        assert labels.get("helm.sh/chart") == "kubetriage-0.1.0", where
        if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}:
            assert obj["metadata"].get("namespace") in {NAMESPACE, "monitoring"}, where


def test_chart_app_version_is_the_package_version() -> None:
    from kubetriage import __version__  # noqa: PLC0415

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == ">=1.27.0-0"


def test_the_image_tag_defaults_to_the_app_version(rendered: dict[str, list[Obj]]) -> None:
    (container,) = only(rendered["default"], "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/kubetriage/kubetriage:0.1.0"
    (container,) = only(rendered["full"], "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/platform/kubetriage:0.1.0-rc1"


# --- the schema and the combinations it cannot express -----------------------------------------

# (--set values, what the error must say): the schema names the field that is wrong.
SCHEMA_REJECTS = [
    ({"replicaCount": '"two"'}, "at '/replicaCount': got string, want integer"),
    ({"replicas": "2"}, "additional properties 'replicas' not allowed"),
    ({"linear.apiKey": "lin_api_0123"}, "additional properties 'apiKey' not allowed"),
    ({"logFormat": "xml"}, "at '/logFormat': value must be one of 'json', 'console'"),
    ({"image.pullPolicy": "Sometimes"}, "at '/image/pullPolicy'"),
    ({"dryRun": "true"}, "at '/dryRun': got boolean, want object"),
    ({"leaderElection.enabled": '"yes"'}, "at '/leaderElection/enabled': got string, want boolean"),
    ({"watchNamespaces[0]": "Not_A_Namespace"}, "at '/watchNamespaces/0'"),
    ({"resources.limits.memory": "384"}, "at '/resources/limits/memory': got number, want string"),
    ({"health.port": "70000"}, "at '/health/port'"),
    ({"prometheus.url": "prometheus:9090"}, "at '/prometheus/url'"),
    ({"replicaCount": "0"}, "at '/replicaCount'"),
]


@pytest.mark.parametrize(
    ("values", "message"), SCHEMA_REJECTS, ids=[next(iter(v)) for v, _ in SCHEMA_REJECTS]
)
def test_the_schema_rejects_a_wrong_value_naming_the_field(
    helm: Path, values: dict[str, str], message: str
) -> None:
    result = template(helm, values=values)
    assert result.returncode != 0, f"{values} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


# (--set values, the chart's own message): combinations that are each valid alone.
REFUSED_COMBINATIONS = [
    (
        {"replicaCount": "2", "leaderElection.enabled": "false"},
        "replicaCount is 2 but leaderElection.enabled is false: every replica would diagnose "
        "every workload and write the same reports and Linear issues. Set "
        "leaderElection.enabled=true, or replicaCount=1.",
    ),
    ({"linear.enabled": "true", "linear.teamId": "t"},
     "linear.enabled is true but linear.existingSecret is empty"),
    ({"linear.enabled": "true", "linear.existingSecret": "s"},
     "linear.enabled is true but linear.teamId is empty"),
    ({"podDisruptionBudget.enabled": "true"},
     "podDisruptionBudget.enabled with replicaCount 1 and minAvailable 1 would forbid every "
     "eviction"),
    ({"leaderElection.renewDeadlineSeconds": "15"},
     "leaderElection.renewDeadlineSeconds (15) must be less than leaderElection.leaseSeconds (15)"),
    ({"leaderElection.retrySeconds": "10"},
     "leaderElection.retrySeconds (10) must be less than leaderElection.renewDeadlineSeconds (10)"),
    ({"serviceAccount.create": "false"},
     "serviceAccount.name is required when serviceAccount.create is false"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "message"),
    REFUSED_COMBINATIONS,
    ids=["-".join(v) for v, _ in REFUSED_COMBINATIONS],
)
def test_a_contradictory_combination_fails_with_what_to_change(
    helm: Path, values: dict[str, str], message: str
) -> None:
    result = template(helm, values=values)
    assert result.returncode != 0, f"{values} rendered"
    assert message in " ".join(result.stderr.split()), result.stderr


def test_two_replicas_with_leader_election_render(helm: Path) -> None:
    objects = render(helm, values={"replicaCount": "2"})
    assert only(objects, "Deployment")["spec"]["replicas"] == 2


# --- the CRD -----------------------------------------------------------------------------------

HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/version",
               "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of"}  # fmt: skip


def test_the_charts_crd_is_the_one_in_crds(rendered: dict[str, list[Obj]]) -> None:
    chart_crd = only(rendered["default"], "CustomResourceDefinition")
    source = yaml.safe_load(CRD_PATH.read_text())
    assert chart_crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    labels = chart_crd["metadata"]["labels"]
    assert labels.items() >= source["metadata"]["labels"].items()
    assert set(labels) - set(source["metadata"]["labels"]) <= HELM_LABELS
    del chart_crd["metadata"]["annotations"]
    chart_crd["metadata"]["labels"] = source["metadata"]["labels"]
    assert chart_crd == source, "the chart's CRD differs from crds/: run hack/sync_chart_crd.py"


def test_the_crd_template_is_what_the_sync_script_writes() -> None:
    import sync_chart_crd  # noqa: PLC0415 (hack/ is on the path)

    assert sync_chart_crd.TEMPLATE == TEMPLATES / "crds.yaml"
    assert sync_chart_crd.main(["--check"]) == 0, "run `python hack/sync_chart_crd.py`"


@pytest.mark.parametrize(
    ("values", "installed", "kept"),
    [
        ({}, True, True),
        ({"crds.keep": "false"}, True, False),
        ({"crds.install": "false"}, False, False),
    ],
)
def test_crd_install_and_keep_values(
    helm: Path, values: dict[str, str], installed: bool, kept: bool
) -> None:
    crds = [o for o in render(helm, values=values) if o["kind"] == "CustomResourceDefinition"]
    assert len(crds) == int(installed)
    annotations = crds[0]["metadata"].get("annotations") or {} if crds else {}
    assert (annotations.get("helm.sh/resource-policy") == "keep") is kept


def test_the_crd_is_a_template_so_helm_upgrade_updates_it() -> None:
    assert not (CHART / "crds").exists(), "helm never upgrades what is in a chart's crds/"


# --- RBAC --------------------------------------------------------------------------------------

WORKLOADS = {("", "pods"), ("apps", "deployments"), ("apps", "replicasets"),
             ("apps", "statefulsets"), ("apps", "daemonsets"), ("batch", "jobs"),
             ("batch", "cronjobs")}  # fmt: skip
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
# Resources and verbs no rule may name, whatever the values.
FORBIDDEN_RESOURCES = {"secrets", "pods/exec", "pods/attach", "pods/portforward", "pods/proxy",
                       "nodes/proxy", "serviceaccounts/token", "clusterroles", "roles",
                       "clusterrolebindings", "rolebindings", "users", "groups"}  # fmt: skip
FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}


def rules_of(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    for obj in objects:
        if obj["kind"] in {"ClusterRole", "Role"}:
            for rule in obj["rules"]:
                yield obj, rule


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_rule_grants_secrets_wildcards_or_writes_to_workloads(
    rendered: dict[str, list[Obj]], scenario: str
) -> None:
    dry_run = scenario_values(scenario)["dryRun"]["enabled"]
    for role, rule in rules_of(rendered[scenario]):
        where = f"{role['kind']} {role['metadata']['name']} rule {rule}"
        fields = [*rule.get("apiGroups", []), *rule["resources"], *rule["verbs"]]
        assert not any("*" in field for field in fields), f"wildcard in {where}"
        assert not any("secret" in resource for resource in rule["resources"]), where
        assert not FORBIDDEN_RESOURCES & set(rule["resources"]), where
        assert not FORBIDDEN_VERBS & set(rule["verbs"]), where
        assert "nonResourceURLs" not in rule, where
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                if (group, resource) not in WORKLOADS:
                    continue
                writes = WRITE_VERBS & set(rule["verbs"])
                if writes:
                    assert dry_run, f"writes {writes} without dryRun.enabled: {where}"
                    assert rule["verbs"] == ["patch"], f"writes {writes}: {where}"


def granted(objects: list[Obj], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        for _, rule in rules_of(objects)
    )


@pytest.mark.parametrize("dry_run", [False, True])
def test_patch_on_workloads_exactly_when_dry_runs_are_on(helm: Path, dry_run: bool) -> None:
    objects = render(helm, values={"dryRun.enabled": str(dry_run).lower()})
    for group, resource in sorted(WORKLOADS):
        assert granted(objects, group, resource, "patch") is dry_run, (group, resource)
    env = container_env(objects)
    assert env["KUBETRIAGE_DRY_RUN"]["value"] == str(dry_run).lower()


RBAC_TEMPLATES = ["clusterrole.yaml", "leader-election-rbac.yaml"]


@pytest.mark.parametrize("name", RBAC_TEMPLATES)
def test_every_rbac_rule_says_why_in_a_comment_above_it(name: str) -> None:
    lines = (TEMPLATES / name).read_text().splitlines()
    rules = [i for i, line in enumerate(lines) if line.strip().startswith("- apiGroups:")]
    assert rules, f"no rules found in {name}"
    for index in rules:
        above = index - 1
        while above >= 0 and lines[above].strip().startswith("{{"):
            above -= 1  # a template directive (an `if`) may stand between comment and rule
        assert lines[above].strip().startswith("#"), f"{name}:{index + 1} has no comment above"


# Every API call the operator's code makes, and what it needs: module, client method, API group
# (core: ""), resource, verb, and where the chart grants it. test_every_api_call_in_the_code_...
# finds the calls in the code, so a new call without a line here (and a rule) fails.
# A server-side apply (patch_namespaced_custom_object) that creates a report is authorized as
# create too: see IMPLIED_CALLS.
CLUSTER, DRY_RUN, LEASE = "ClusterRole", "dryRun", "Role"
OPERATOR_CALLS_TABLE = """
clients/kube.py          read_namespace                          core           namespaces              get    ClusterRole
clients/kube.py          list_pod_for_all_namespaces             core           pods                    list   ClusterRole
clients/kube.py          list_namespaced_pod                     core           pods                    list   ClusterRole
clients/kube.py          read_namespaced_pod                     core           pods                    get    ClusterRole
clients/kube.py          read_namespaced_pod_log                 core           pods/log                get    ClusterRole
clients/kube.py          list_namespaced_event                   core           events                  list   ClusterRole
clients/kube.py          list_node                               core           nodes                   list   ClusterRole
clients/kube.py          read_namespaced_persistent_volume_claim core           persistentvolumeclaims  get    ClusterRole
clients/kube.py          read_persistent_volume                  core           persistentvolumes       get    ClusterRole
clients/kube.py          read_namespaced_service                 core           services                get    ClusterRole
clients/kube.py          list_namespaced_service                 core           services                list   ClusterRole
clients/kube.py          list_service_for_all_namespaces         core           services                list   ClusterRole
clients/kube.py          list_namespaced_endpoint_slice          discovery.k8s.io endpointslices        list   ClusterRole
clients/kube.py          read_namespaced_endpoints               core           endpoints               get    ClusterRole
clients/kube.py          list_namespaced_resource_quota          core           resourcequotas          list   ClusterRole
clients/kube.py          read_namespaced_service_account         core           serviceaccounts         get    ClusterRole
clients/kube.py          read_namespaced_config_map              core           configmaps              get    ClusterRole
clients/kube.py          list_namespaced_deployment              apps           deployments             list   ClusterRole
clients/kube.py          list_deployment_for_all_namespaces      apps           deployments             list   ClusterRole
clients/kube.py          read_namespaced_deployment              apps           deployments             get    ClusterRole
clients/kube.py          list_namespaced_replica_set             apps           replicasets             list   ClusterRole
clients/kube.py          list_replica_set_for_all_namespaces     apps           replicasets             list   ClusterRole
clients/kube.py          read_namespaced_replica_set             apps           replicasets             get    ClusterRole
clients/kube.py          list_namespaced_stateful_set            apps           statefulsets            list   ClusterRole
clients/kube.py          list_stateful_set_for_all_namespaces    apps           statefulsets            list   ClusterRole
clients/kube.py          read_namespaced_stateful_set            apps           statefulsets            get    ClusterRole
clients/kube.py          list_namespaced_daemon_set              apps           daemonsets              list   ClusterRole
clients/kube.py          list_daemon_set_for_all_namespaces      apps           daemonsets              list   ClusterRole
clients/kube.py          read_namespaced_daemon_set              apps           daemonsets              get    ClusterRole
clients/kube.py          list_namespaced_job                     batch          jobs                    list   ClusterRole
clients/kube.py          list_job_for_all_namespaces             batch          jobs                    list   ClusterRole
clients/kube.py          read_namespaced_job                     batch          jobs                    get    ClusterRole
clients/kube.py          list_namespaced_cron_job                batch          cronjobs                list   ClusterRole
clients/kube.py          list_cron_job_for_all_namespaces        batch          cronjobs                list   ClusterRole
clients/kube.py          read_namespaced_cron_job                batch          cronjobs                get    ClusterRole
clients/kube.py          read_storage_class                      storage.k8s.io storageclasses          get    ClusterRole
clients/kube.py          list_storage_class                      storage.k8s.io storageclasses          list   ClusterRole
reports/store.py         get_namespaced_custom_object            kubetriage.io  diagnosisreports        get    ClusterRole
reports/store.py         list_cluster_custom_object              kubetriage.io  diagnosisreports        list   ClusterRole
reports/store.py         list_namespaced_custom_object           kubetriage.io  diagnosisreports        list   ClusterRole
reports/store.py         patch_namespaced_custom_object          kubetriage.io  diagnosisreports        patch  ClusterRole
reports/store.py         patch_namespaced_custom_object_status   kubetriage.io  diagnosisreports/status patch  ClusterRole
reports/events.py        create_namespaced_event                 core           events                  create ClusterRole
reports/events.py        read_namespaced_event                   core           events                  get    ClusterRole
reports/events.py        patch_namespaced_event                  core           events                  patch  ClusterRole
reports/dry_run.py       patch_namespaced_deployment             apps           deployments             patch  dryRun
reports/dry_run.py       patch_namespaced_stateful_set           apps           statefulsets            patch  dryRun
reports/dry_run.py       patch_namespaced_daemon_set             apps           daemonsets              patch  dryRun
reports/dry_run.py       patch_namespaced_replica_set            apps           replicasets             patch  dryRun
reports/dry_run.py       patch_namespaced_job                    batch          jobs                    patch  dryRun
reports/dry_run.py       patch_namespaced_cron_job               batch          cronjobs                patch  dryRun
reports/dry_run.py       patch_namespaced_pod                    core           pods                    patch  dryRun
reports/dry_run.py       patch_namespaced_resource_quota         core           resourcequotas          patch  dryRun
runtime/leader.py        get_namespaced_custom_object            coordination.k8s.io leases             get    Role
runtime/leader.py        create_namespaced_custom_object         coordination.k8s.io leases             create Role
runtime/leader.py        replace_namespaced_custom_object        coordination.k8s.io leases             update Role
"""  # noqa: E501
OPERATOR_CALLS: dict[tuple[str, str], tuple[str, str, str, str]] = {
    (module, method): ("" if group == "core" else group, resource, verb, where)
    for module, method, group, resource, verb, where in (
        line.split() for line in OPERATOR_CALLS_TABLE.strip().splitlines()
    )
}
# What kopf itself does (handlers.py, runner.py): list and watch what it handles, and discover
# resources from CustomResourceDefinitions and (with watchNamespaces) Namespaces.
KOPF_CALLS = [(group, resource, verb, CLUSTER) for group, resource in [
    ("", "pods"), ("apps", "deployments"), ("batch", "jobs"),
    ("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces")]
    for verb in ("list", "watch")]  # fmt: skip
# A server-side apply that creates a report is authorized as create as well as patch.
IMPLIED_CALLS = [("kubetriage.io", "diagnosisreports", "create", CLUSTER)]
READ_VERBS = {"get", "list", "watch"}


def api_calls_in_the_code() -> set[tuple[str, str]]:
    """(module, method) for every Kubernetes client method the operator's code names."""
    methods: set[str] = set()
    for _, api_class in inspect.getmembers(kubernetes.client.api, inspect.isclass):
        methods |= {m for m in dir(api_class) if re.match(r"(list|read|get|create|patch|replace|delete|connect)_", m)}  # fmt: skip  # noqa: E501
    found: set[tuple[str, str]] = set()
    for path in sorted(OPERATOR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in methods:
                found.add((path.relative_to(OPERATOR).as_posix(), node.attr))
    return found


def test_every_api_call_in_the_code_is_in_the_rbac_table() -> None:
    found = api_calls_in_the_code()
    assert found, "no Kubernetes API call found in the operator: is the scan broken?"
    missing = sorted(found - set(OPERATOR_CALLS))
    assert not missing, (
        f"the operator calls {missing}: add each to OPERATOR_CALLS with the resource and verb it "
        "needs, and grant it in the chart's RBAC with a comment saying why"
    )


ALL_CALLS = sorted({*OPERATOR_CALLS.values(), *KOPF_CALLS, *IMPLIED_CALLS})


@pytest.mark.parametrize(
    "call", ALL_CALLS, ids=[f"{v}-{r}-{g or 'core'}-{w}" for g, r, v, w in ALL_CALLS]
)
def test_every_call_the_operator_makes_is_granted(
    rendered: dict[str, list[Obj]], call: tuple[str, str, str, str]
) -> None:
    group, resource, verb, where = call
    scenario = "full" if where == DRY_RUN else "default"
    kinds = {"Role"} if where == LEASE else {"ClusterRole"}
    objects = [o for o in rendered[scenario] if o["kind"] in kinds]
    assert granted(objects, group, resource, verb), f"{verb} {resource} ({group!r}) in {where}"


def test_the_cluster_role_grants_nothing_the_operator_does_not_use(
    rendered: dict[str, list[Obj]],
) -> None:
    used = {(g, r, v) for g, r, v, _ in ALL_CALLS}
    read = {(g, r) for g, r, v in used if v in READ_VERBS}
    role = only(rendered["full"], "ClusterRole")
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    # Reads are granted as get/list/watch of what the operator reads; every
                    # write exactly as the code makes it.
                    justified = (group, resource, verb) in used or (
                        verb in READ_VERBS and (group, resource) in read
                    )
                    assert justified, f"{verb} {resource} ({group!r}) is granted but never used"


def test_leases_only_in_the_release_namespace_and_get_update_only_by_name(
    rendered: dict[str, list[Obj]],
) -> None:
    objects = rendered["ha"]
    role = only(objects, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["coordination.k8s.io"]
        assert rule["resources"] == ["leases"]
        if rule["verbs"] != ["create"]:
            assert rule["resourceNames"] == ["kubetriage-leader"], rule
    binding = only(objects, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}  # fmt: skip
    env = container_env(objects)
    assert env["KUBETRIAGE_LEADER_ELECTION_NAMESPACE"]["value"] == NAMESPACE
    assert env["KUBETRIAGE_LEADER_ELECTION_LEASE_NAME"]["value"] == "kubetriage-leader"
    cluster_role = only(rendered["default"], "ClusterRole")
    assert not any("leases" in rule["resources"] for rule in cluster_role["rules"])


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_bindings_name_the_operators_service_account(
    rendered: dict[str, list[Obj]], scenario: str
) -> None:
    objects = rendered[scenario]
    deployment = only(objects, "Deployment")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert only(objects, "ServiceAccount")["metadata"]["name"] == account
    for binding in (o for o in objects if o["kind"] in {"ClusterRoleBinding", "RoleBinding"}):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]


# --- the Deployment ----------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_deployment_is_hardened(rendered: dict[str, list[Obj]], scenario: str) -> None:
    pod = only(rendered[scenario], "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is True
    for risky in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"):
        assert not pod.get(risky), risky
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert not context.get("privileged")
    assert "command" not in container, "the image's entrypoint is `kubetriage run`"
    assert "args" not in container, "the image's entrypoint is `kubetriage run`"
    assert container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"].keys() >= {"cpu", "memory"}
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in volume


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_probes_and_ports_are_the_operators_endpoints(
    rendered: dict[str, list[Obj]], scenario: str
) -> None:
    (container,) = only(rendered[scenario], "Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = container_env(rendered[scenario])
    assert ports["health"] == int(env["KUBETRIAGE_HEALTH_PORT"]["value"])
    assert ports["metrics"] == int(env["KUBETRIAGE_METRICS_PORT"]["value"])
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe


def test_the_default_resources_and_ports() -> None:
    values = scenario_values("default")
    assert values["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "384Mi"},
    }
    assert (values["health"]["port"], values["metrics"]["port"]) == (8080, 9090)
    assert values["podSecurityContext"] == {"runAsUser": 10001, "runAsGroup": 10001,
                                            "fsGroup": 10001}  # fmt: skip


@pytest.mark.parametrize(("scenario", "strategy"), [("default", "RollingUpdate"), ("namespaced", "Recreate")])  # fmt: skip  # noqa: E501
def test_without_leader_election_two_operators_never_overlap(
    rendered: dict[str, list[Obj]], scenario: str, strategy: str
) -> None:
    assert only(rendered[scenario], "Deployment")["spec"]["strategy"]["type"] == strategy


def operator_settings() -> set[str]:
    from kubetriage.config import Settings  # noqa: PLC0415

    return {f"KUBETRIAGE_{name.upper()}" for name in Settings.model_fields}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_variable_the_chart_sets_is_an_operator_setting(
    rendered: dict[str, list[Obj]], scenario: str
) -> None:
    env = container_env(rendered[scenario])
    unknown = {name for name in env if name.startswith("KUBETRIAGE_")} - operator_settings()
    assert not unknown, f"the operator has no setting {sorted(unknown)}"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


# The environment the full scenario's values give the operator.
FULL_ENVIRONMENT = {
    "KUBETRIAGE_NAMESPACES": "",
    "KUBETRIAGE_CLUSTER_NAME": "default",
    "KUBETRIAGE_GRACE_SECONDS": "30",
    "KUBETRIAGE_GRACE_SECONDS_PENDING": "300",
    "KUBETRIAGE_GRACE_SECONDS_OOMKILLED": "0",
    "KUBETRIAGE_RESOLVE_AFTER_SECONDS": "600",
    "KUBETRIAGE_MAX_CONCURRENT_DIAGNOSES": "8",
    "KUBETRIAGE_DRY_RUN": "true",
    "KUBETRIAGE_LEADER_ELECTION": "true",
    "KUBETRIAGE_LEADER_ELECTION_LEASE_NAME": "kubetriage",
    "KUBETRIAGE_LINEAR_TEAM_ID": "9cfb482a-81e3-4154-b5b9-2c805e70a02d",
    "KUBETRIAGE_LINEAR_LABEL_IDS": "",
    "KUBETRIAGE_LINEAR_API_URL": "https://api.linear.app/graphql",
    "KUBETRIAGE_PROMETHEUS_URL": "http://prometheus-operated.monitoring.svc:9090",
    "KUBETRIAGE_PROMETHEUS_TIMEOUT_SECONDS": "3",
    "KUBETRIAGE_PROMETHEUS_WINDOW_SECONDS": "43200",
    "KUBETRIAGE_PROMETHEUS_STEP_SECONDS": "30",
    "KUBETRIAGE_LOG_FORMAT": "console",
}


def test_values_become_the_operators_environment(rendered: dict[str, list[Obj]]) -> None:
    env = container_env(rendered["full"])
    assert {name: env[name].get("value") for name in FULL_ENVIRONMENT} == FULL_ENVIRONMENT
    namespaced = container_env(rendered["namespaced"])
    assert namespaced["KUBETRIAGE_NAMESPACES"]["value"] == "shop,payments,checkout"
    assert namespaced["KUBETRIAGE_PRODUCTION_SELECTOR"]["value"] == "env=prod,tier=critical"
    assert namespaced["KUBETRIAGE_LEADER_ELECTION"]["value"] == "false"
    linear = container_env(rendered["linear"])
    assert linear["KUBETRIAGE_LINEAR_LABEL_IDS"]["value"] == (
        "2f3e0a4c-1d7b-4a8e-9c61-7f0b5d2e8a11,8b1c9d2e-3f4a-4b5c-8d6e-0a1b2c3d4e5f"
    )
    assert "KUBETRIAGE_GRACE_SECONDS" not in container_env(rendered["default"])


def test_the_environment_parses_as_the_operators_settings(
    rendered: dict[str, list[Obj]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubetriage.config import Settings  # noqa: PLC0415

    for scenario in SCENARIOS:
        for name, variable in container_env(rendered[scenario]).items():
            if "value" in variable:
                monkeypatch.setenv(name, variable["value"])
            elif name == "KUBETRIAGE_LINEAR_API_KEY":
                monkeypatch.setenv(name, "from-the-secret")
        Settings()  # raises on any value the operator would refuse at start-up
        for name in container_env(rendered[scenario]):
            monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_linear_key_comes_only_from_the_users_secret(
    rendered: dict[str, list[Obj]], scenario: str
) -> None:
    values = scenario_values(scenario)["linear"]
    env = container_env(rendered[scenario])
    if not values["enabled"]:
        assert not any(name.startswith("KUBETRIAGE_LINEAR_") for name in env)
        return
    key = env["KUBETRIAGE_LINEAR_API_KEY"]
    assert "value" not in key
    assert key["valueFrom"] == {
        "secretKeyRef": {"name": values["existingSecret"], "key": values["existingSecretKey"]}
    }


def test_no_value_could_hold_a_linear_key() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]["linear"]["properties"]) == {
        "enabled", "existingSecret", "existingSecretKey", "teamId", "labelIds", "apiUrl",
        "timeoutSeconds", "reopenWithinSeconds", "resolvedState",
    }  # fmt: skip


# --- optional parts ----------------------------------------------------------------------------


def test_the_service_monitor_scrapes_the_metrics_service(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["full"]
    service = only(objects, "Service")
    monitor = only(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert service["metadata"]["labels"].items() >= monitor["spec"]["selector"]["matchLabels"].items()  # fmt: skip  # noqa: E501
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["targetPort"]) == ("metrics", "metrics")
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels.items() >= service["spec"]["selector"].items()


def test_the_network_policy_allows_only_what_the_operator_needs(
    rendered: dict[str, list[Obj]],
) -> None:
    policy = only(rendered["full"], "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {(443, "TCP"), (53, "UDP"), (53, "TCP"), (9090, "TCP")}
    (api_server, *_) = policy["egress"]
    assert api_server["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    ((ingress),) = policy["ingress"]
    assert {p["port"] for p in ingress["ports"]} == {"metrics", "health"}


def test_the_disruption_budget_covers_the_operators_pods(rendered: dict[str, list[Obj]]) -> None:
    budget = only(rendered["ha"], "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    pod_labels = only(rendered["ha"], "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels.items() >= budget["spec"]["selector"]["matchLabels"].items()


def dashboard_metrics() -> set[str]:
    """The series names the operator exposes, from its own metric objects."""
    from prometheus_client.metrics import MetricWrapperBase  # noqa: PLC0415

    from kubetriage.runtime import metrics  # noqa: PLC0415

    names: set[str] = set()
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            (family,) = metric.describe()
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            names |= {family.name + s for s in suffixes.get(family.type, [""])}
    return names


def test_the_grafana_dashboard_charts_every_operator_metric(rendered: dict[str, list[Obj]]) -> None:
    config_map = only(rendered["full"], "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    dashboard = json.loads(config_map["data"]["kubetriage.json"])
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in expressions for name in re.findall(r"\bkubetriage_[a-z_]+", e)}
    exposed = dashboard_metrics()
    assert used <= exposed, f"the dashboard queries series the operator lacks: {used - exposed}"
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in exposed}
    charted = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert families <= charted, f"no panel for {families - charted}: add one to the dashboard"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


# --- NOTES.txt ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart whose NOTES.txt also renders into a ConfigMap, since `helm template`
    never prints the notes and `helm install --dry-run` needs a cluster."""
    copy = tmp_path_factory.mktemp("notes") / "kubetriage"
    shutil.copytree(CHART, copy)
    notes = (copy / "templates" / "NOTES.txt").read_text()
    define = '{{- define "kubetriage.test.notes" -}}\n' + notes + "{{- end }}\n"
    (copy / "templates" / "_notes_under_test.tpl").write_text(define)
    (copy / "templates" / "notes-under-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\ndata:\n"
        '  notes: {{ include "kubetriage.test.notes" . | toJson }}\n'
    )
    return copy


def notes(helm: Path, chart: Path, scenario: str) -> str:
    objects = render(
        helm, files=(SCENARIOS[scenario],), chart=chart,
        extra=("--show-only", "templates/notes-under-test.yaml"),
    )  # fmt: skip
    text: str = only(objects, "ConfigMap")["data"]["notes"]
    return text


# (scenario, what the notes must say, what they must not)
NOTES = [
    ("default", ["kubectl get diagnosisreports -A", "kubectl describe diagnosisreport",
                 f"kubectl logs -n {NAMESPACE} deployment/kubetriage", "Linear: off",
                 "watches every namespace"], ["WARNING"]),
    ("linear", ["Linear: on", "team 9cfb482a-81e3-4154-b5b9-2c805e70a02d",
                "Secret linear-credentials (key token)"], ["Linear: off", "WARNING"]),
    ("full", ["WARNING: dryRun.enabled is true", "could\nchange those workloads for real",
              "Prometheus: memory history from http://prometheus-operated"], []),
    ("namespaced", ["the namespaces shop, payments, checkout"], ["WARNING"]),
]  # fmt: skip


@pytest.mark.parametrize(("scenario", "says", "never"), NOTES, ids=[n[0] for n in NOTES])
def test_the_notes_say_what_to_run_next(
    helm: Path, notes_chart: Path, scenario: str, says: list[str], never: list[str]
) -> None:
    text = notes(helm, notes_chart, scenario)
    for phrase in says:
        assert phrase in text, f"{phrase!r} missing from the notes:\n{text}"
    for phrase in never:
        assert phrase not in text, f"{phrase!r} in the notes:\n{text}"


# --- values: commented, typed, documented ------------------------------------------------------


def schema() -> Obj:
    loaded: Obj = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def schema_properties(node: Obj, prefix: str = "") -> Iterator[tuple[str, Obj]]:
    """Every property of the schema, parents before their children, as dotted paths."""
    for key, child in node.get("properties", {}).items():
        yield prefix + key, child
        yield from schema_properties(child, f"{prefix}{key}.")


# Objects whose content is a Kubernetes API type passed through verbatim (the API server
# validates it), not chart settings: one value each.
PASSTHROUGH = {"affinity"}


def schema_leaves() -> dict[str, Obj]:
    """The chart's values: properties without properties of their own, and passthroughs."""
    return {
        path: node
        for path, node in schema_properties(schema())
        if ("properties" not in node or path in PASSTHROUGH)
        and not any(path.startswith(parent + ".") for parent in PASSTHROUGH)
    }


def test_every_schema_property_has_a_type_and_a_description() -> None:
    assert schema()["$schema"] == "http://json-schema.org/draft-07/schema#"
    for path, node in schema_properties(schema()):
        assert node.get("type"), f"{path} has no type"
        assert node.get("description"), f"{path} has no description"


def test_every_schema_object_is_closed() -> None:
    def objects(node: Obj, path: str) -> Iterator[tuple[str, Obj]]:
        if "object" in node.get("type", []):
            yield path, node
        for key, child in node.get("properties", {}).items():
            yield from objects(child, f"{path}.{key}".lstrip("."))
        if isinstance(node.get("items"), dict):
            yield from objects(node["items"], f"{path}[]")

    for path, node in objects(schema(), ""):
        extra = node.get("additionalProperties")
        if any(path.startswith(parent + ".") for parent in PASSTHROUGH):
            continue
        if "properties" in node:
            assert extra is False, f"{path or 'the root'} must set additionalProperties: false"
        else:  # a map of labels or annotations
            assert extra == {"type": "string"}, f"{path} must be a map of strings"


def values_leaves(values: Obj, leaves: dict[str, Obj], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = prefix + key
        if isinstance(value, dict) and path not in leaves:
            yield from values_leaves(value, leaves, path + ".")
        else:
            yield path


def test_every_value_is_in_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    leaves = schema_leaves()
    unknown = set(values_leaves(values, leaves)) - set(leaves)
    assert not unknown, f"values without a schema entry: {sorted(unknown)}"


def test_every_value_has_a_comment_above_it() -> None:
    text = (CHART / "values.yaml").read_text()
    lines = text.splitlines()
    assert lines[0] == "# yaml-language-server: $schema=values.schema.json"
    known = {path for path, _ in schema_properties(schema())}
    stack: list[tuple[int, str]] = []
    seen: set[str] = set()
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][A-Za-z0-9]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        path = ".".join(key for _, key in stack)
        if path not in known:
            continue  # a key inside a map value (a label), not a chart value
        seen.add(path)
        above = number - 1
        while lines[above].strip().startswith("#") and not lines[above].strip().startswith("# --"):
            above -= 1
        assert lines[above].strip().startswith("# --"), f"values.yaml:{number + 1} {path}: no `# --`"  # fmt: skip  # noqa: E501
    leaves_in_values = set(values_leaves(yaml.safe_load(text), schema_leaves()))
    assert leaves_in_values <= seen


def readme_table() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in (CHART / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 4 and re.fullmatch(r"`[A-Za-z0-9.]+`", cells[0]):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_the_readme_lists_every_value_with_its_type_and_default() -> None:
    table = readme_table()
    leaves = schema_leaves()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(table) == set(leaves), f"README table vs schema: {set(table) ^ set(leaves)}"
    assert set(values_leaves(values, leaves)) <= set(table)
    for path, (kind, default, description) in table.items():
        node = leaves[path]
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        assert kind == " or ".join(types), f"README type of {path}"
        value: Any = values
        for key in path.split("."):
            value = value.get(key, "unset") if isinstance(value, dict) else "unset"
        shown = "`unset`" if value == "unset" else f"`{json.dumps(value)}`"
        assert default == shown, f"README default of {path}: {default} != {shown}"
        assert description, f"README description of {path}"
