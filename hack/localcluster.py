"""A real local Kubernetes control plane for kubetriage's tests and demo, without Docker.

It runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which simulates
nodes and their kubelets) as child processes on free loopback ports, with a throw-away CA, client
certificates per component, and a service-account signing key, so that authentication, RBAC,
ServiceAccount tokens, scheduling and the controllers are the real ones.

The binaries come from `hack/build-control-plane.sh` (built from the official Go modules and
cached outside the repository), or from `$KUBEBUILDER_ASSETS` for anyone who has envtest's.

    python hack/localcluster.py up [--dir DIR]   # start, print the kubeconfig path, wait for Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HACK_DIR = Path(__file__).resolve().parent
BUILD_SCRIPT = HACK_DIR / "build-control-plane.sh"
KWOK_STAGES = HACK_DIR / "kwok" / "stages.yaml"
KWOK_LOGS = HACK_DIR / "kwok" / "logs.yaml"
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    # Not a cluster component, but the chart tests install with it and the same script builds it.
    "helm",
)
SERVICE_CIDR = "10.0.0.0/24"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# The label by which hack/kwok/stages.yaml puts a pod into a failure state.
SIMULATE = "kwok.kubetriage.io/simulate"
# `LocalCluster(scale=True)`: client QPS of the controller-manager and the scheduler (defaults 20
# and 50 would take minutes to create and bind 10,000 pods) and kwok's stage workers (default 4).
SCALE_CLIENT_QPS = 1000
SCALE_CLIENT_BURST = 2000
SCALE_CONTROLLER_SYNCS = 20
SCALE_KWOK_PARALLELISM = 16


class ControlPlaneError(RuntimeError):
    """The control plane could not be found, built or started. The message says which part."""


def kubernetes_version() -> str:
    """The Kubernetes release the wrapper module pins, e.g. `v1.36.3`."""
    go_mod = (HACK_DIR / "toolchain" / "kubernetes" / "go.mod").read_text()
    for line in go_mod.splitlines():
        words = line.replace("require ", "").split()
        if len(words) >= 2 and words[0] == "k8s.io/kubernetes":
            return words[1]
    raise ControlPlaneError("hack/toolchain/kubernetes/go.mod does not require k8s.io/kubernetes")


def cache_bin_dir() -> Path:
    """Where build-control-plane.sh keeps the binaries of the pinned Kubernetes version."""
    root = os.environ.get("KUBETRIAGE_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kubetriage"
    )
    return Path(root) / "k8s" / kubernetes_version() / "bin"


@dataclass(frozen=True)
class Binaries:
    """Paths of the control-plane executables."""

    paths: dict[str, Path]

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]

    @classmethod
    def find(cls, *, build: bool = False) -> Binaries:
        """Locate every binary: `$KUBEBUILDER_ASSETS` first, then the build cache.

        With `build=True`, run the build script for whatever is missing (minutes, the first time).
        Raises ControlPlaneError naming each binary that is still missing.
        """
        found = cls._search()
        missing = [name for name in COMPONENTS if name not in found]
        if missing and build:
            result = subprocess.run(["bash", str(BUILD_SCRIPT)], check=False)
            if result.returncode != 0:
                raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")
            found = cls._search()
            missing = [name for name in COMPONENTS if name not in found]
        if missing:
            raise ControlPlaneError(
                f"missing control-plane binaries: {', '.join(missing)}; looked in "
                f"$KUBEBUILDER_ASSETS ({os.environ.get('KUBEBUILDER_ASSETS') or 'unset'}) and "
                f"{cache_bin_dir()}. Build them with `make controlplane` (needs Go)."
            )
        return cls(found)

    @staticmethod
    def _search() -> dict[str, Path]:
        dirs = [Path(p) for p in [os.environ.get("KUBEBUILDER_ASSETS")] if p] + [cache_bin_dir()]
        found: dict[str, Path] = {}
        for name in COMPONENTS:
            for directory in dirs:
                candidate = directory / name
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    found[name] = candidate
                    break
        return found


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _with_parent_death_signal(argv: list[str]) -> list[str]:
    # A test run that is killed must not leave an apiserver behind holding ports and memory:
    # setpriv (util-linux) sets PR_SET_PDEATHSIG and execs, without a fork-unsafe preexec_fn.
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


@dataclass
class Pki:
    """A throw-away CA and the keys and certificates signed by it."""

    directory: Path

    def path(self, name: str) -> Path:
        """Path of a PKI file by its short name, e.g. `ca.crt`."""
        return self.directory / name

    def _openssl(self, *args: str) -> None:
        result = subprocess.run(
            ["openssl", *args], cwd=self.directory, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ControlPlaneError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")

    def create(self) -> None:
        """Make the CA, the apiserver's serving certificate and the service-account key."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
        self._openssl(
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-days",
            "3650",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=kubetriage-local-ca",
        )
        self.sign(
            "apiserver",
            subject="/CN=kube-apiserver",
            extensions=(
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,"
                "IP:127.0.0.1,IP:10.0.0.1\n"
            ),
        )
        self._openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key")
        self._openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub")

    def sign(self, name: str, *, subject: str, extensions: str) -> None:
        """Create `<name>.key` and `<name>.crt`, signed by the CA."""
        ext_file = self.path(f"{name}.ext")
        ext_file.write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n" + extensions
        )
        self._openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key")
        self._openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr")
        self._openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            ext_file.name,
            "-out",
            f"{name}.crt",
        )

    def client(self, name: str, *, user: str, group: str | None = None) -> None:
        """A client certificate: the apiserver reads the user from CN and groups from O."""
        subject = f"/CN={user}" + (f"/O={group}" if group else "")
        self.sign(name, subject=subject, extensions="extendedKeyUsage=clientAuth\n")


@dataclass
class LocalCluster:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback.

    Use as a context manager, or call `start()` and `stop()`. `kubeconfig` is an admin
    kubeconfig; component logs are under `workdir/logs`.

    `scale=True` is for benchmarks with thousands of pods: it raises the client QPS of the
    controller-manager and the scheduler, their ReplicaSet and Deployment workers and kwok's
    stage parallelism, so that the control plane, not a client-side rate limit, sets the pace.
    """

    workdir: Path
    binaries: Binaries
    nodes: int = 3
    node_cpu: str = "4"
    node_memory: str = "16Gi"
    node_pods: str = "110"
    scale: bool = False
    startup_timeout: float = 120.0
    extra_apiserver_args: Sequence[str] = ()
    ports: dict[str, int] = field(default_factory=dict)
    _processes: list[_Process] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user in group system:masters)."""
        return self.workdir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        """The apiserver's URL."""
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def pki(self) -> Pki:
        """The cluster's CA and keys."""
        return Pki(self.workdir / "pki")

    @property
    def logs_dir(self) -> Path:
        """Where each component writes its log, one file per component."""
        return self.workdir / "logs"

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start every component in dependency order and wait until each is healthy."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        for name in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok"):
            self.ports[name] = free_port()
        try:
            self._write_pki()
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
            self._start_scheduler()
            self._start_kwok()
            self.wait_for_default_service_account("default")
            if self.nodes:
                self.apply(
                    [
                        kwok_node(
                            f"kwok-node-{index}",
                            cpu=self.node_cpu,
                            memory=self.node_memory,
                            pods=self.node_pods,
                        )
                        for index in range(self.nodes)
                    ]
                )
                self.wait_for_nodes_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the components in reverse order: SIGTERM, then SIGKILL after 10 seconds."""
        for proc in reversed(self._processes):
            if proc.popen.poll() is None:
                proc.popen.terminate()
        deadline = time.monotonic() + 10
        for proc in reversed(self._processes):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
            proc.log_file.close()
        self._processes.clear()

    # -- components -----------------------------------------------------------------------------

    def _write_pki(self) -> None:
        pki = self.pki
        pki.create()
        pki.client("admin", user="kubetriage-admin", group="system:masters")
        pki.client("controller-manager", user="system:kube-controller-manager")
        pki.client("scheduler", user="system:kube-scheduler")
        # kwok acts for every simulated kubelet; nodes' own identities would need one cert each.
        pki.client("kwok", user="kwok", group="system:masters")
        for name in ("admin", "controller-manager", "scheduler", "kwok"):
            self.write_kubeconfig(
                self.workdir / f"{name}.kubeconfig",
                user=name,
                credentials={
                    "client-certificate": str(pki.path(f"{name}.crt")),
                    "client-key": str(pki.path(f"{name}.key")),
                },
            )

    def issue_kubeconfig(self, name: str, *, user: str, group: str | None = None) -> Path:
        """A kubeconfig with a new client certificate, so that a process has its own identity
        in the audit log (e.g. the operator under test)."""
        self.pki.client(name, user=user, group=group)
        return self.write_kubeconfig(
            self.workdir / f"{name}.kubeconfig",
            user=name,
            credentials={
                "client-certificate": str(self.pki.path(f"{name}.crt")),
                "client-key": str(self.pki.path(f"{name}.key")),
            },
        )

    def audit_events(self) -> list[dict[str, Any]]:
        """Every request the apiserver audited so far (metadata level)."""
        path = self.logs_dir / "audit.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def iter_audit_events(self, users: Collection[str] | None = None) -> Iterator[dict[str, Any]]:
        """The audited requests one at a time, oldest first, rotated files included (the
        apiserver starts a new file every 100 MB), optionally only those of some users.

        For logs too large to hold in memory: a line is decoded only when it names one of
        `users`, which makes a pass over a few hundred megabytes take seconds.
        """
        rotated = sorted(self.logs_dir.glob("audit-*.log"), key=lambda p: p.stat().st_mtime)
        needles = [f'"username":{json.dumps(user)}'.encode() for user in users or ()]
        for path in [*rotated, self.logs_dir / "audit.log"]:
            if not path.exists():
                continue
            with path.open("rb") as handle:
                for line in handle:
                    if needles and not any(needle in line for needle in needles):
                        continue
                    if line.strip():
                        event: dict[str, Any] = json.loads(line)
                        if users is None or event.get("user", {}).get("username") in users:
                            yield event

    def write_kubeconfig(self, path: Path, *, user: str, credentials: dict[str, str]) -> Path:
        """Write a kubeconfig for this cluster with the given user credentials (cert or token)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kubetriage-local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.pki.path("ca.crt")),
                    },
                }
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [
                {
                    "name": "kubetriage-local",
                    "context": {"cluster": "kubetriage-local", "user": user},
                }
            ],
            "current-context": "kubetriage-local",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def _spawn(
        self, name: str, args: Sequence[str | Path], env: dict[str, str] | None = None
    ) -> _Process:
        log_path = self.logs_dir / f"{name}.log"
        log_file = log_path.open("ab")
        popen = subprocess.Popen(
            _with_parent_death_signal([str(arg) for arg in args]),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            env={**os.environ, **(env or {})},
        )
        proc = _Process(name, popen, log_path, log_file)
        self._processes.append(proc)
        return proc

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        proc = self._spawn(
            "etcd",
            [
                self.binaries["etcd"],
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=local={peer}",
                # Test data is thrown away: skipping fsync keeps etcd from dominating test time.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait_http(proc, f"{client}/health", tls=False)

    def _start_apiserver(self) -> None:
        pki = self.pki
        proc = self._spawn(
            "kube-apiserver",
            [
                self.binaries["kube-apiserver"],
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--tls-cert-file={pki.path('apiserver.crt')}",
                f"--tls-private-key-file={pki.path('apiserver.key')}",
                f"--client-ca-file={pki.path('ca.crt')}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.path('sa.pub')}",
                f"--service-account-signing-key-file={pki.path('sa.key')}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                f"--audit-log-path={self.logs_dir / 'audit.log'}",
                f"--audit-policy-file={self._audit_policy()}",
                "--v=1",
                *self.extra_apiserver_args,
            ],
        )
        self._wait_http(proc, f"{self.server}/readyz", tls=True)

    def _audit_policy(self) -> Path:
        # Request metadata only: enough to count who asked for what (benchmarks, RBAC tests)
        # without writing request bodies.
        path = self.workdir / "audit-policy.yaml"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "audit.k8s.io/v1",
                    "kind": "Policy",
                    "omitStages": ["RequestReceived"],
                    "rules": [{"level": "Metadata"}],
                }
            )
        )
        return path

    def _start_controller_manager(self) -> None:
        kubeconfig = self.workdir / "controller-manager.kubeconfig"
        pki = self.pki
        proc = self._spawn(
            "kube-controller-manager",
            [
                self.binaries["kube-controller-manager"],
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['controller-manager']}",
                "--leader-elect=false",
                f"--service-account-private-key-file={pki.path('sa.key')}",
                f"--root-ca-file={pki.path('ca.crt')}",
                f"--cluster-signing-cert-file={pki.path('ca.crt')}",
                f"--cluster-signing-key-file={pki.path('ca.key')}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--v=1",
                *self._client_rate_args(),
                *(
                    [
                        f"--concurrent-replicaset-syncs={SCALE_CONTROLLER_SYNCS}",
                        f"--concurrent-deployment-syncs={SCALE_CONTROLLER_SYNCS}",
                    ]
                    if self.scale
                    else []
                ),
            ],
        )
        self._wait_http(proc, f"https://127.0.0.1:{self.ports['controller-manager']}/healthz")

    def _start_scheduler(self) -> None:
        kubeconfig = self.workdir / "scheduler.kubeconfig"
        proc = self._spawn(
            "kube-scheduler",
            [
                self.binaries["kube-scheduler"],
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['scheduler']}",
                "--leader-elect=false",
                "--v=1",
                *self._client_rate_args(),
            ],
        )
        self._wait_http(proc, f"https://127.0.0.1:{self.ports['scheduler']}/healthz")

    def _client_rate_args(self) -> list[str]:
        if not self.scale:
            return []
        return [f"--kube-api-qps={SCALE_CLIENT_QPS}", f"--kube-api-burst={SCALE_CLIENT_BURST}"]

    def _kwok_options(self) -> list[str]:
        # kwok's own client is not rate-limited; what bounds it is how many stages it plays at
        # once. A KwokConfiguration is read from the same --config list as the Stages. One read
        # from a file gets none of kwok's defaults (without them `kubectl logs` answers 405), so
        # every option that has a default is spelled out with it.
        if not self.scale:
            return []
        path = self.workdir / "kwok-options.yaml"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
                    "kind": "KwokConfiguration",
                    "options": {
                        "cidr": "10.0.0.0/24",
                        "manageAllNodes": False,
                        "enableDebuggingHandlers": True,
                        "enableContentionProfiling": False,
                        "enableProfilingHandler": True,
                        "podPlayStageParallelism": SCALE_KWOK_PARALLELISM,
                        "nodePlayStageParallelism": SCALE_KWOK_PARALLELISM,
                        "nodeLeaseParallelism": SCALE_KWOK_PARALLELISM,
                        "podsOnNodeSyncParallelism": 1,
                        "enablePodsOnNodeSyncListPager": True,
                        "enablePodsOnNodeSyncStreamWatch": False,
                    },
                }
            )
        )
        return [f"--config={path}"]

    def _start_kwok(self) -> None:
        # kwok resolves log file paths against its working directory: point them at hack/.
        logs_config = self.workdir / "kwok-logs.yaml"
        logs_config.write_text(
            KWOK_LOGS.read_text().replace("hack/kwok/logs/", f"{HACK_DIR / 'kwok' / 'logs'}/")
        )
        kwok_home = self.workdir / "kwok-home"
        kwok_home.mkdir(exist_ok=True)
        proc = self._spawn(
            "kwok",
            [
                self.binaries["kwok"],
                f"--kubeconfig={self.workdir / 'kwok.kubeconfig'}",
                f"--config={KWOK_STAGES}",
                f"--config={logs_config}",
                *self._kwok_options(),
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                "--node-ip=127.0.0.1",
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
                f"--node-port={self.ports['kwok']}",
                "--v=INFO",
            ],
            # kwok also reads ~/.kwok/kwok.yaml when present: keep runs hermetic.
            env={"KWOK_WORKDIR": str(kwok_home)},
        )
        self._wait_http(proc, f"http://127.0.0.1:{self.ports['kwok']}/healthz", tls=False)

    def _wait_http(self, proc: _Process, url: str, *, tls: bool | None = None) -> None:
        use_tls = url.startswith("https") if tls is None else tls
        context: ssl.SSLContext | None = None
        if use_tls:
            context = ssl.create_default_context(cafile=str(self.pki.path("ca.crt")))
            context.load_cert_chain(self.pki.path("admin.crt"), self.pki.path("admin.key"))
            if "127.0.0.1:" + str(self.ports["apiserver"]) not in url:
                # kube-controller-manager and kube-scheduler serve a self-signed certificate.
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{proc.name} exited with code {proc.popen.returncode} before becoming "
                    f"healthy; last lines of {proc.log_path}:\n{tail(proc.log_path)}"
                )
            try:
                with urllib.request.urlopen(url, context=context, timeout=5) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError) as error:
                last_error = str(error)
            time.sleep(0.25)
        raise ControlPlaneError(
            f"{proc.name} did not become healthy at {url} within {self.startup_timeout:.0f}s "
            f"({last_error}); last lines of {proc.log_path}:\n{tail(proc.log_path)}"
        )

    # -- cluster objects ------------------------------------------------------------------------

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster as admin."""
        result = subprocess.run(
            [str(self.binaries["kubectl"]), f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def apply(self, manifest: dict[str, Any] | list[dict[str, Any]]) -> None:
        """`kubectl apply` one object or a list of them."""
        items = manifest if isinstance(manifest, list) else [manifest]
        document = {"apiVersion": "v1", "kind": "List", "items": items}
        self.kubectl("apply", "-f", "-", input_text=json.dumps(document))

    def create_node(
        self,
        name: str,
        *,
        cpu: str | None = None,
        memory: str | None = None,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
    ) -> None:
        """Register a node that kwok manages (its kubelet is simulated)."""
        self.apply(
            kwok_node(
                name,
                cpu=cpu or self.node_cpu,
                memory=memory or self.node_memory,
                labels=labels,
                taints=taints,
            )
        )

    def wait_for_nodes_ready(self, timeout: float = 60.0) -> None:
        """Wait until every node reports Ready (kwok has taken them over)."""
        self.kubectl(
            "wait", "--for=condition=Ready", "nodes", "--all", f"--timeout={int(timeout)}s"
        )

    def wait_for_default_service_account(self, namespace: str, timeout: float = 60.0) -> None:
        """Wait for a namespace's `default` ServiceAccount: pods are refused until it exists."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                self.kubectl(
                    "get", "serviceaccount", "default", "-n", namespace, check=False
                ).returncode
                == 0
            ):
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"no default ServiceAccount in {namespace} after {timeout:.0f}s")

    def logs(self, lines: int = 40) -> str:
        """The last lines of every component's log, for a failing test's report."""
        return "\n".join(
            f"===== {proc.name} ({proc.log_path}) =====\n{tail(proc.log_path, lines)}"
            for proc in self._processes
        )

    def versions(self) -> dict[str, str]:
        """What each component says its version is."""
        result: dict[str, str] = {}
        server = json.loads(self.kubectl("version", "-o", "json").stdout)
        result["kube-apiserver"] = server["serverVersion"]["gitVersion"]
        result["kubectl"] = server["clientVersion"]["gitVersion"]
        for name, flag in (
            ("etcd", "--version"),
            ("kube-controller-manager", "--version"),
            ("kube-scheduler", "--version"),
            ("kwok", "--version"),
        ):
            out = subprocess.run(
                [str(self.binaries[name]), flag], capture_output=True, text=True, check=False
            )
            result[name] = (out.stdout or out.stderr).strip().splitlines()[0]
        return result


def kwok_node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "16Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A Node object that kwok takes over (by its annotation) and keeps Ready."""
    resources = {"cpu": cpu, "memory": memory, "pods": pods}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                **(labels or {}),
            },
        },
        "spec": {"taints": taints or []},
        "status": {"allocatable": resources, "capacity": resources},
    }


def kwok_deployment(
    name: str,
    namespace: str,
    *,
    replicas: int = 1,
    image: str = "registry.example/shop/app:1.0.0",
    simulate: str | None = None,
    exit_code: int | None = None,
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    progress_deadline: int | None = None,
) -> dict[str, Any]:
    """A Deployment whose pods kwok runs, optionally into a failure state by label."""
    labels = {"app": name, **({SIMULATE: simulate} if simulate else {})}
    annotations = {"kwok.kubetriage.io/exit-code": str(exit_code)} if exit_code is not None else {}
    container: dict[str, Any] = {"name": "app", "image": image}
    if requests or limits:
        container["resources"] = {
            k: v for k, v in (("requests", requests), ("limits", limits)) if v
        }
    if volumes:
        container["volumeMounts"] = [
            {"name": v["name"], "mountPath": f"/mnt/{v['name']}"} for v in volumes
        ]
    pod_spec: dict[str, Any] = {"containers": [container]}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if volumes:
        pod_spec["volumes"] = volumes
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
    }
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = progress_deadline
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a text file, decoded leniently."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except OSError as error:
        return f"(cannot read {path}: {error})"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_cluster(workdir: Path | None = None, **options: Any) -> Iterator[LocalCluster]:
    """Start a cluster in `workdir` (a new temp dir by default) and stop it on exit."""
    directory = workdir or Path(tempfile.mkdtemp(prefix="kubetriage-cluster-"))
    with LocalCluster(directory, Binaries.find(), **options) as cluster:
        yield cluster


def main(argv: Sequence[str] | None = None) -> int:
    """`up`: start a cluster, print how to reach it, and run until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--dir", type=Path, help="work directory (default: a new temp dir)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument(
        "--scale", action="store_true", help="tune the components for thousands of pods"
    )
    args = parser.parse_args(argv)
    stop = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with running_cluster(args.dir, nodes=args.nodes, scale=args.scale) as cluster:
        (cluster.workdir / "ready").write_text(str(cluster.kubeconfig))
        print(f"control plane up: export KUBECONFIG={cluster.kubeconfig}", flush=True)
        while not stop:
            time.sleep(0.5)
        print("stopping the control plane", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
