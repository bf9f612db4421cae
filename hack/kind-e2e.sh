#!/usr/bin/env bash
# The Helm chart end to end on kind, for anyone with Docker (CI here has none, and runs the same
# flow on its own control plane: tests/integration/test_helm_install.py).
#
#   hack/kind-e2e.sh                 # create a cluster, build and load the image, install, check
#   KEEP_CLUSTER=1 hack/kind-e2e.sh  # leave the cluster up afterwards to look around
#
# It creates a kind cluster, builds the image from the Dockerfile, loads it into the cluster,
# installs the chart with it, breaks a Deployment in a namespace labelled production, and waits
# until kubetriage has written its DiagnosisReport, which it prints. The cluster is deleted on
# exit, success or not (unless KEEP_CLUSTER=1); on failure the operator's logs are printed first.
#
# Needs: docker (running), kind, kubectl, helm (v3). Settings, from the environment:
#   KIND_CLUSTER_NAME (kubetriage-e2e), IMAGE (kubetriage:e2e), TIMEOUT_SECONDS (300)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="${REPO_ROOT}/deploy/helm/kubetriage"
CLUSTER="${KIND_CLUSTER_NAME:-kubetriage-e2e}"
IMAGE="${IMAGE:-kubetriage:e2e}"
TIMEOUT_SECONDS="${TIMEOUT_SECONDS:-300}"
RELEASE=kubetriage
SYSTEM_NAMESPACE=kubetriage-system
WORKLOAD_NAMESPACE=shop
WORKLOAD=api
CONTEXT="kind-${CLUSTER}"

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'kind-e2e: %s\n' "$*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed or not on PATH: $2"
}
need docker "https://docs.docker.com/get-docker/"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need helm "https://helm.sh/docs/intro/install/ (or the one 'make controlplane' builds: ~/.cache/kubetriage/k8s/<version>/bin/helm)"
docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer (is it running, may you use it?)"
helm version --short | grep -q '^v3\.' || die "helm v3 is needed; found $(helm version --short)"
kind get clusters 2>/dev/null | grep -qx "${CLUSTER}" \
  && die "a kind cluster named ${CLUSTER} exists already; delete it or set KIND_CLUSTER_NAME"

k() { kubectl --context "${CONTEXT}" "$@"; }

created=0
cleanup() {
  local status=$?
  if [[ ${status} -ne 0 && ${created} -eq 1 ]]; then
    say "failed (exit ${status}); what the operator said"
    k get pods -A -o wide || true
    k logs -n "${SYSTEM_NAMESPACE}" "deployment/${RELEASE}" --tail=200 || true
    k get events -n "${WORKLOAD_NAMESPACE}" --sort-by=.lastTimestamp || true
  fi
  if [[ ${created} -eq 1 && "${KEEP_CLUSTER:-0}" != 1 ]]; then
    say "deleting kind cluster ${CLUSTER}"
    kind delete cluster --name "${CLUSTER}" || true
  elif [[ ${created} -eq 1 ]]; then
    say "KEEP_CLUSTER=1: the cluster stays; kubectl --context ${CONTEXT} ...; kind delete cluster --name ${CLUSTER}"
  fi
  exit "${status}"
}
trap cleanup EXIT

say "creating kind cluster ${CLUSTER}"
created=1
kind create cluster --name "${CLUSTER}" --wait 180s

say "building ${IMAGE} from ${REPO_ROOT}/Dockerfile"
docker build --tag "${IMAGE}" "${REPO_ROOT}"

say "loading ${IMAGE} into the cluster"
kind load docker-image "${IMAGE}" --name "${CLUSTER}"

say "installing the chart"
helm install "${RELEASE}" "${CHART}" \
  --kube-context "${CONTEXT}" \
  --namespace "${SYSTEM_NAMESPACE}" --create-namespace \
  --set image.repository="${IMAGE%:*}" \
  --set image.tag="${IMAGE##*:}" \
  --set image.pullPolicy=Never \
  --set clusterName="${CLUSTER}" \
  --set graceSeconds=0 \
  --wait --timeout 5m

say "the chart's ServiceAccount may not read Secrets"
account="system:serviceaccount:${SYSTEM_NAMESPACE}:${RELEASE}"
[[ "$(k auth can-i list secrets --all-namespaces --as="${account}" || true)" == no ]] \
  || die "${account} may list Secrets"
[[ "$(k auth can-i patch deployments --all-namespaces --as="${account}" || true)" == no ]] \
  || die "${account} may patch Deployments"

say "breaking deployment/${WORKLOAD} in production namespace ${WORKLOAD_NAMESPACE}"
k create namespace "${WORKLOAD_NAMESPACE}"
k label namespace "${WORKLOAD_NAMESPACE}" kubetriage.io/environment=production
# The operator's own image, already in the cluster, so nothing is pulled from a registry. It
# exits at once saying which setting is missing, as a misconfigured service does.
k apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${WORKLOAD}
  namespace: ${WORKLOAD_NAMESPACE}
spec:
  replicas: 1
  selector:
    matchLabels: {app: ${WORKLOAD}}
  template:
    metadata:
      labels: {app: ${WORKLOAD}}
    spec:
      containers:
        - name: app
          image: ${IMAGE}
          imagePullPolicy: Never
          command: ["/bin/sh", "-c"]
          args: ["echo 'starting api' && echo 'FATAL: environment variable DATABASE_URL is not set' >&2 && exit 1"]
EOF

say "waiting up to ${TIMEOUT_SECONDS}s for its DiagnosisReport"
deadline=$((SECONDS + TIMEOUT_SECONDS))
# The name and root cause of the report whose target is the workload (none until diagnosed).
query="{range .items[?(@.spec.target.name=='${WORKLOAD}')]}{.metadata.name} {.status.rootCause.category}{'\n'}{end}"
report="" category=""
while [[ -z "${category}" ]]; do
  (( SECONDS < deadline )) || die "no diagnosed report for deployment/${WORKLOAD} after ${TIMEOUT_SECONDS}s"
  sleep 5
  read -r report category < <(k get diagnosisreports -n "${WORKLOAD_NAMESPACE}" -o jsonpath="${query}" 2>/dev/null || true) || true
done

say "kubectl get diagnosisreports -A"
k get diagnosisreports -A
say "kubectl describe diagnosisreport -n ${WORKLOAD_NAMESPACE} ${report}"
k describe diagnosisreport -n "${WORKLOAD_NAMESPACE}" "${report}"

[[ "${category}" == CrashLoop.* ]] || die "expected a CrashLoop.* root cause, got '${category}'"
say "passed: ${report} names ${category}"
