#!/usr/bin/env bash
# Builds the local Kubernetes control plane used by the tests and `make demo`, from the official
# Go modules, with the machine's Go: no Docker, no downloads other than the Go module proxy.
#
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, kwokctl, helm,
#   and kubelet (for the real-node tier only: hack/realnode.py)
#
# Binaries are cached outside the repository, in $KUBETRIAGE_CACHE_DIR (default
# ~/.cache/kubetriage)/k8s/v<version>/bin, keyed by the wrapper modules' go.sum so that a version
# bump rebuilds. A binary already present in $KUBEBUILDER_ASSETS (the envtest convention) is used
# as it is and not built. Prints the bin directory on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
toolchain="$here/toolchain"
# The pinned versions are read from the wrapper modules, the one place they are written.
module_version() { awk -v m="$1" '($1 == m || ($1 == "require" && $2 == m)) {print ($1 == m ? $2 : $3)}' "$2" | sed 's/^v//' | head -n1; }
kube_version="$(module_version k8s.io/kubernetes "$toolchain/kubernetes/go.mod")"
[ -n "$kube_version" ] || { echo "cannot read the Kubernetes version from $toolchain/kubernetes/go.mod" >&2; exit 1; }
kwok_version="$(module_version sigs.k8s.io/kwok "$toolchain/kwok/go.mod")"
helm_version="$(module_version helm.sh/helm/v3 "$toolchain/helm/go.mod")"

cache_root="${KUBETRIAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubetriage}"
bin_dir="$cache_root/k8s/v$kube_version/bin"
mkdir -p "$bin_dir"

command -v go >/dev/null || { echo "Go is required to build the control plane (https://go.dev/dl); none found on PATH" >&2; exit 1; }

log() { echo "[build-control-plane] $*" >&2; }

# A binary is satisfied when KUBEBUILDER_ASSETS has it, or when the cache has it from the same
# go.sum (the stamp), so that editing the pinned versions invalidates the cache.
have() {
  local name="$1" module_dir="$2"
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$name" ]; then
    return 0
  fi
  [ -x "$bin_dir/$name" ] && [ -f "$bin_dir/.$name.stamp" ] \
    && [ "$(cat "$bin_dir/.$name.stamp")" = "$(sha256sum "$module_dir/go.sum" | cut -d' ' -f1)" ]
}

# go build into a scratch directory, then move into place, so an interrupted build never leaves a
# half-written binary that the next run would trust.
build() {
  local module_dir="$1" ldflags="$2"; shift 2
  local scratch; scratch="$(mktemp -d "$bin_dir/.build.XXXXXX")"
  log "building $* (first time only; several minutes on 2 cores)"
  (cd "$module_dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$scratch/" "$@")
  local stamp; stamp="$(sha256sum "$module_dir/go.sum" | cut -d' ' -f1)"
  for built in "$scratch"/*; do
    local name; name="$(basename "$built")"
    mv -f "$built" "$bin_dir/$name"
    echo "$stamp" >"$bin_dir/.$name.stamp"
  done
  rmdir "$scratch"
}

# Version ldflags as Kubernetes' own hack/lib/version.sh sets them, so that `kubectl version`
# and /version report the real release rather than v0.0.0-master.
kube_ldflags() {
  local minor; minor="$(echo "$kube_version" | cut -d. -f2)"
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=v$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date -X $pkg.gitCommit=v$kube_version"
  done
  echo "$flags"
}

kube_missing=()
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet; do
  have "$cmd" "$toolchain/kubernetes" || kube_missing+=("k8s.io/kubernetes/cmd/$cmd")
done
if [ ${#kube_missing[@]} -gt 0 ]; then
  build "$toolchain/kubernetes" "$(kube_ldflags)" "${kube_missing[@]}"
fi

if ! have etcd "$toolchain/etcd"; then
  build "$toolchain/etcd" "-s -w" go.etcd.io/etcd/server/v3
  # go build names the binary after the module path's last element that is not a major
  # version: "server".
  mv -f "$bin_dir/server" "$bin_dir/etcd"
  mv -f "$bin_dir/.server.stamp" "$bin_dir/.etcd.stamp"
fi

kwok_missing=()
for cmd in kwok kwokctl; do
  have "$cmd" "$toolchain/kwok" || kwok_missing+=("sigs.k8s.io/kwok/cmd/$cmd")
done
if [ ${#kwok_missing[@]} -gt 0 ]; then
  build "$toolchain/kwok" "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version" "${kwok_missing[@]}"
fi

if ! have helm "$toolchain/helm"; then
  # helm's own Makefile stamps these: its version (else `helm version` says v3.x), and the
  # Kubernetes version of its client-go as the default of `helm template` and `helm lint`
  # (else v1.20, older than any cluster the chart supports).
  client_go="$(module_version k8s.io/client-go "$toolchain/helm/go.mod")"
  helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$helm_version"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$(echo "$client_go" | cut -d. -f2)"
  done
  build "$toolchain/helm" "$helm_ldflags" helm.sh/helm/v3/cmd/helm
fi

log "control plane binaries ready in $bin_dir${KUBEBUILDER_ASSETS:+ (and $KUBEBUILDER_ASSETS)}"
echo "$bin_dir"
