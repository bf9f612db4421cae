# kubetriage — the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need is installed by the targets below on a fresh machine (Python deps into
# .venv, the control plane built from Go modules into ~/.cache/kubetriage); each fails loudly.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help demo demo-real test test-unit test-integration test-realnode check format docs bench controlplane prometheus realnode-packages venv clean
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kubetriage needs Python >= 3.11; found " + sys.version)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP) ## Create .venv with kubetriage and its dev dependencies

controlplane: ## Build (once, then cached) etcd, kube-apiserver, controller-manager, scheduler, kubectl, kubelet, kwok
	bash hack/build-control-plane.sh >/dev/null

prometheus: ## Prometheus and promtool (Debian's package) for the memory-history tests, when missing
	@[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus && \
	  { $(SUDO) systemctl disable --now prometheus 2>/dev/null || true; }; }
	@[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || { echo "prometheus/promtool could not be installed" >&2; exit 1; }

# The real node's Debian packages (hack/realnode.py PACKAGES), installed when missing. Debian starts
# containerd and docker-registry on install under systemd: only those installed here are stopped
# and disabled again (the tests run their own), never one that was already there.
REALNODE_PACKAGES := containerd runc containernetworking-plugins docker-registry skopeo busybox-static apache2-utils
realnode-packages: ## containerd, runc, CNI plugins, docker-registry, skopeo, busybox-static (Debian's) for the real-node tier, when missing
	@missing=$$(for p in $(REALNODE_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || printf '%s ' $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing $$missing" && \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing && \
	  for service in containerd docker-registry; do \
	    case " $$missing " in *" $$service "*) $(SUDO) systemctl disable --now $$service 2>/dev/null || true;; esac; \
	  done; \
	fi
	@for p in $(REALNODE_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || { echo "$$p could not be installed" >&2; exit 1; }; done

check: $(STAMP) ## ruff, mypy --strict, hadolint (Dockerfile), shellcheck (hack/kind-e2e.sh)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	@[ -x $(VENV)/bin/hadolint ] && [ -x $(VENV)/bin/shellcheck ] || { echo "hadolint/shellcheck missing from $(VENV): rm $(STAMP) && make venv" >&2; exit 1; }
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/shellcheck hack/kind-e2e.sh

format: $(STAMP) ## Apply ruff's formatting and autofixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

docs: $(STAMP) ## Regenerate docs/playbooks.md from the playbooks
	$(VENV)/bin/kubetriage playbooks > docs/playbooks.md

bench: $(STAMP) ## Offline diagnosis benchmark (5,000 pods); results go in docs/benchmarks.md
	$(PY) hack/bench/offline.py

test-unit: $(STAMP) ## Unit tests only (seconds; no cluster)
	$(PY) -m pytest tests/unit

test-integration: $(STAMP) controlplane prometheus ## Tests on the real local control plane
	$(PY) -m pytest tests/integration

test-realnode: $(STAMP) controlplane prometheus realnode-packages ## The real-node tier only (Linux, root; minutes)
	$(PY) -m pytest tests/realnode

test: $(STAMP) controlplane prometheus realnode-packages check ## Everything: lint, types, unit, integration and real-node tests
	$(PY) -m pytest

demo: $(STAMP) controlplane ## Start a local control plane on kwok and show kubetriage's reports as they land (Ctrl-C stops it; KEEP=1 keeps its folder)
	$(PY) hack/demo.py $(if $(KEEP),--keep)

demo-real: $(STAMP) controlplane realnode-packages ## The same on a real node: kubelet, containerd, real crashes (Linux, root)
	$(PY) hack/demo.py --real $(if $(KEEP),--keep)

clean: ## Remove the venv and caches in the repo (the control-plane build cache stays)
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
