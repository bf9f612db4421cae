#!/usr/bin/env bash
# Builds k8sgpt from its Go module for the side-by-side benchmark (hack/bench/versus_k8sgpt.py).
# Not part of `make test`: only the benchmark needs it. Cached beside the control-plane binaries,
# keyed by the wrapper module's go.sum. Prints the binary's path on stdout.
#
# k8sgpt depends on buf.build's generated Go modules, which the checksum database does not
# list; their hashes are pinned in hack/toolchain/k8sgpt/go.sum (identical to k8sgpt's own
# go.sum), so the sumdb is skipped for that one prefix and go.sum is what verifies them.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
module_dir="$here/toolchain/k8sgpt"
version="$(awk '$1 == "github.com/k8sgpt-ai/k8sgpt" {print $2}' "$module_dir/go.mod" | head -n1)"
[ -n "$version" ] || { echo "cannot read k8sgpt's version from $module_dir/go.mod" >&2; exit 1; }
cache_root="${KUBETRIAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubetriage}"
bin_dir="$cache_root/k8sgpt/$version/bin"
stamp="$(sha256sum "$module_dir/go.sum" | cut -d' ' -f1)"
mkdir -p "$bin_dir"

if [ -x "$bin_dir/k8sgpt" ] && [ "$(cat "$bin_dir/.k8sgpt.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$bin_dir/k8sgpt"
  exit 0
fi

command -v go >/dev/null || { echo "Go is required to build k8sgpt; none found on PATH" >&2; exit 1; }
echo "[build-k8sgpt] building k8sgpt $version (first time only; it links every AI SDK k8sgpt supports, expect 10+ minutes on 2 cores)" >&2
scratch="$(mktemp -d "$bin_dir/.build.XXXXXX")"
(cd "$module_dir" && GONOSUMDB=buf.build/gen/go CGO_ENABLED=0 GOFLAGS=-mod=mod \
  go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$scratch/k8sgpt" github.com/k8sgpt-ai/k8sgpt)
mv -f "$scratch/k8sgpt" "$bin_dir/k8sgpt"
echo "$stamp" >"$bin_dir/.k8sgpt.stamp"
rmdir "$scratch"
echo "$bin_dir/k8sgpt"
