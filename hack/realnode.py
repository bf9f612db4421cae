"""One real node beside the local control plane: where containers really run (DESIGN.md 9).

A kubelet (built by hack/build-control-plane.sh from the same wrapper module as the control
plane), containerd and runc, a CNI bridge with host-local addresses, and two local registries
(one open, one that wants a password), all as child processes of the caller, next to the
etcd/kube-apiserver/controller-manager/scheduler/kwok of hack/localcluster.py. Nothing is
downloaded: the images are OCI layouts written here from Debian's busybox-static binary (the
pause image too), pushed into the registries with skopeo and imported into containerd with ctr.

Debian packages: containerd runc containernetworking-plugins docker-registry skopeo
busybox-static apache2-utils (`make realnode-packages` installs the missing ones).

The machine this was built on: Debian 12, root, cgroup v1 with the memory controller,
overlayfs, no systemd, no Docker. What it takes there (each is a comment where it is done):
  - kubelet 1.36 refuses cgroup v1 unless `failCgroupV1: false`; `cgroupDriver: cgroupfs` (no
    systemd); `failSwapOn: false`;
  - the node address must not be loopback: the bridge gets NODE_IP and the kubelet
    `--node-ip`; the apiserver reaches the kubelet there with its kubelet client certificate
    (hack/localcluster.py), else logs, exec and proxy answer 401;
  - containerd's CRI plugin: `restrict_oom_score_adj` (else runc fails "can't get final child's
    PID from pipe: EOF"), `netns_mounts_under_state_dir`, `disable_apparmor`, `SystemdCgroup =
    false`, a `sandbox_image` that was imported, one `hosts.toml` per registry for plain HTTP;
  - the kubelet sets vm.overcommit_memory, vm.panic_on_oom, kernel.panic, kernel.panic_on_oops
    and the kernel.keys quotas at start: they are recorded before and restored at teardown;
  - cAdvisor inside the kubelet asks containerd for container names, pods and images at
    /run/containerd/containerd.sock unless `--containerd` says where: without it the
    /metrics/cadvisor series have no container, pod, namespace or image labels;
  - the kubelet writes /var/lib/kubelet/device-plugins/kubelet.sock whatever --root-dir says,
    skopeo /var/lib/containers/cache, util-linux's umount /run/mount/utab: all removed again.

Network: the pod bridge has an address and nothing else. No default route in the pods, no
masquerade, and net.ipv4.ip_forward is left as it is (checked: it must not change), so a pod
reaches only the other pods and the node on that bridge. The registries listen on loopback.

Teardown stops every process by its PID (the daemons it started, the containerd shims, the
processes left in the kubepods cgroups), unmounts what was mounted under its directories,
removes the bridge, the kubepods cgroups and whatever it created under /run, /var/lib, /var/log,
restores the sysctls, then checks that nothing is left (RealNodeError lists what is).

    python hack/realnode.py up [--dir DIR]   # control plane + real node, until Ctrl-C
    python hack/realnode.py check            # can this machine run a real node? (exit 0/1)
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import ipaddress
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from localcluster import (
    REAL_NODE_COMPONENTS,
    Binaries,
    ControlPlaneError,
    LocalCluster,
    free_port,
    tail,
)

NODE_NAME = "realnode"
NODE_LABEL = "kubetriage.io/node"
BRIDGE = "kt-realnode"
POD_SUBNET = ipaddress.ip_network("10.88.77.0/24")
NODE_IP = "10.88.77.1"
CNI_NETWORK = "kubetriage-realnode"
# A ClusterIP of the service range (hack/localcluster.py) that nothing serves: pods get it as
# their nameserver, so a lookup fails there ("lookup db on 10.0.0.10:53") and goes nowhere (no
# route leaves the bridge).
CLUSTER_DNS = "10.0.0.10"
CNI_BIN_DIR = Path("/usr/lib/cni")
BUSYBOX = Path("/bin/busybox")
# Debian package -> a file it installs.
PACKAGES = {
    "containerd": Path("/usr/bin/containerd"),
    "runc": Path("/usr/sbin/runc"),
    "containernetworking-plugins": CNI_BIN_DIR / "bridge",
    "docker-registry": Path("/usr/bin/docker-registry"),
    "skopeo": Path("/usr/bin/skopeo"),
    "busybox-static": BUSYBOX,
    "apache2-utils": Path("/usr/bin/htpasswd"),
}
INSTALL_HINT = (
    "make realnode-packages (apt-get install -y --no-install-recommends " + " ".join(PACKAGES) + ")"
)
CTR = Path("/usr/bin/ctr")
# What the kubelet writes at start (pkg/kubelet/cm: setupKernelTunables), plus ip_forward, which
# nothing here may change.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
)
# Places a kubelet, containerd or CNI plugin writes to by default. Those that did not exist
# before the node started are removed at teardown; in those that did, only what points into
# the node's own directory is.
WATCHED_PATHS = tuple(
    Path(p)
    for p in (
        "/run/containerd",
        "/var/lib/containerd",
        "/var/lib/kubelet",
        "/var/lib/cni",
        "/var/log/containers",
        "/var/log/pods",
        "/etc/cni",
        "/opt/cni",
        "/usr/libexec/kubernetes",
        "/etc/kubernetes",
        "/run/netns",
        # skopeo's blob-info cache, and util-linux's utab (written by umount).
        "/var/lib/containers",
        "/run/mount",
    )
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
PAUSE_IMAGE = "kubetriage.local/pause:3.10"


class RealNodeError(RuntimeError):
    """The real node could not start or did not tear down cleanly. The message says why."""


# -- can this machine run one? -----------------------------------------------------------------


def unavailable_reason(binaries: Binaries | None = None) -> str | None:
    """Why this machine cannot run a real node, or None when it can.

    Not Linux or not root is the machine; a missing package or kubelet can be installed (the
    message says how).
    """
    if platform.system() != "Linux":
        return f"a real node needs Linux (this is {platform.system()})"
    if os.geteuid() != 0:
        return "a real node needs root (kubelet, containerd, mounts, cgroups, a bridge)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "a real node needs overlayfs (containerd's overlayfs snapshotter)"
    if not _has_memory_cgroup():
        return "a real node needs the cgroup memory controller"
    missing = [name for name, path in PACKAGES.items() if not path.exists()]
    if missing:
        return f"missing Debian packages for a real node: {' '.join(missing)}; {INSTALL_HINT}"
    if binaries is None:
        try:
            Binaries.find(components=REAL_NODE_COMPONENTS)
        except ControlPlaneError as error:
            return str(error)
    return None


def _has_memory_cgroup() -> bool:
    if (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists():
        return True
    controllers = CGROUP_ROOT / "cgroup.controllers"
    return controllers.exists() and "memory" in controllers.read_text().split()


# -- images, written without Docker -------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """An image made of busybox-static: its name (repository:tag) and its config."""

    reference: str
    cmd: tuple[str, ...] = ("sh",)
    files: tuple[tuple[str, str], ...] = ()

    @property
    def repository(self) -> str:
        """The name without the tag."""
        return self.reference.rpartition(":")[0]

    @property
    def tag(self) -> str:
        """The tag."""
        return self.reference.rpartition(":")[2]


# An HTTP server that ends on SIGTERM like any well-behaved app (busybox httpd alone, as PID 1,
# would ignore it and be killed only at the end of the grace period).
SERVE = "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"
IMAGES = (
    Image("kubetriage/busybox:1.36", files=(("www/index.html", "ok\n"),)),
    # The revisions of a rollout: 1.0 serves, 2.0 panics at start.
    Image("kubetriage/api:1.0", cmd=("sh", "-c", SERVE), files=(("www/index.html", "ok\n"),)),
    Image(
        "kubetriage/api:2.0",
        cmd=(
            "sh",
            "-c",
            "echo 'panic: runtime error: invalid memory address or nil pointer dereference' >&2;"
            " exit 2",
        ),
    ),
)
# The sandbox ("pause") container: holds the pod's namespaces, ends on SIGTERM.
PAUSE = Image(
    PAUSE_IMAGE,
    cmd=("sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"),
)


def go_arch() -> str:
    """This machine's architecture as an image platform names it."""
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _tar_entry(name: str, *, kind: bytes = tarfile.REGTYPE, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def busybox_layer(files: Sequence[tuple[str, str]] = ()) -> bytes:
    """An uncompressed, reproducible layer: /bin/busybox, one symlink per applet, the usual
    top-level directories, a passwd/group, and `files` (path, text)."""
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for directory, mode in (
            ("bin", 0o755),
            ("dev", 0o755),
            ("etc", 0o755),
            ("proc", 0o555),
            ("root", 0o700),
            ("sys", 0o555),
            ("tmp", 0o1777),
            ("www", 0o755),
        ):
            layer.addfile(_tar_entry(directory, kind=tarfile.DIRTYPE, mode=mode))
        binary = BUSYBOX.read_bytes()
        info = _tar_entry("bin/busybox", mode=0o755)
        info.size = len(binary)
        layer.addfile(info, io.BytesIO(binary))
        for applet in sorted(set(applets) - {"busybox"}):
            link = _tar_entry(f"bin/{applet}", kind=tarfile.SYMTYPE, mode=0o777)
            link.linkname = "busybox"
            layer.addfile(link)
        texts = [
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
            ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
            *files,
        ]
        for path, text in texts:
            data = text.encode()
            info = _tar_entry(path)
            info.size = len(data)
            layer.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _blob(layout: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def write_oci_layout(image: Image, layout: Path, *, layer: bytes | None = None) -> Path:
    """Write `image` as an OCI image layout in `layout` (oci-layout, index.json, blobs): one
    gzip layer, its config, its manifest. The index names it twice: the tag (what skopeo's
    `oci:DIR:TAG` reads) and the full name (what `ctr images import` keeps)."""
    layout.mkdir(parents=True, exist_ok=True)
    uncompressed = layer if layer is not None else busybox_layer(image.files)
    compressed = gzip.compress(uncompressed, mtime=0)
    layer_digest = _blob(layout, compressed)
    config = {
        "created": "1970-01-01T00:00:00Z",
        "architecture": go_arch(),
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": list(image.cmd), "WorkingDir": "/"},
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(uncompressed).hexdigest()],
        },
        "history": [
            {"created": "1970-01-01T00:00:00Z", "created_by": "hack/realnode.py: busybox-static"}
        ],
    }
    config_bytes = _canonical(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _blob(layout, config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": len(compressed),
            }
        ],
    }
    manifest_bytes = _canonical(manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": _blob(layout, manifest_bytes),
                "size": len(manifest_bytes),
                "platform": {"architecture": go_arch(), "os": "linux"},
                "annotations": {
                    "org.opencontainers.image.ref.name": image.tag,
                    "io.containerd.image.name": image.reference,
                },
            }
        ],
    }
    (layout / "index.json").write_bytes(_canonical(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return layout


def oci_archive(layout: Path, archive: Path) -> Path:
    """The layout as a tar (what `ctr images import` reads)."""
    with tarfile.open(archive, "w") as out:
        for path in sorted(layout.rglob("*")):
            if path.is_file():
                out.add(path, arcname=str(path.relative_to(layout)))
    return archive


# -- processes ----------------------------------------------------------------------------------


@dataclass
class _Daemon:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


def _spawn(name: str, argv: Sequence[str | Path], logs: Path, cwd: Path) -> _Daemon:
    log_path = logs / f"{name}.log"
    log_file = log_path.open("ab")
    command = [str(a) for a in argv]
    setpriv = shutil.which("setpriv")
    if setpriv:
        # A killed test run must not leave a kubelet behind (PR_SET_PDEATHSIG, then exec).
        command = [setpriv, "--pdeathsig", "TERM", "--", *command]
    popen = subprocess.Popen(
        command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd
    )
    return _Daemon(name, popen, log_path, log_file)


def _stop(daemon: _Daemon, timeout: float = STOP_TIMEOUT) -> None:
    if daemon.popen.poll() is None:
        daemon.popen.terminate()
        try:
            daemon.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            daemon.popen.kill()
            daemon.popen.wait(timeout=timeout)
    daemon.log_file.close()


def _run(*argv: str | Path, check: bool = True, timeout: float = 60) -> str:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RealNodeError(
            f"{' '.join(str(a) for a in argv)} failed ({result.returncode}): "
            f"{(result.stderr or result.stdout).strip()}"
        )
    return result.stdout


def _wait(what: str, probe: Any, timeout: float, daemon: _Daemon | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if daemon is not None and daemon.popen.poll() is not None:
            raise RealNodeError(
                f"{daemon.name} exited with code {daemon.popen.returncode}; last lines of "
                f"{daemon.log_path}:\n{tail(daemon.log_path)}"
            )
        try:
            last = probe()
        except (OSError, RealNodeError, subprocess.SubprocessError) as error:
            last = error
        else:
            if last is True:
                return
        time.sleep(0.2)
    extra = f"; last lines of {daemon.log_path}:\n{tail(daemon.log_path)}" if daemon else ""
    raise RealNodeError(f"{what} not ready after {timeout:.0f}s (last: {last!r}){extra}")


def _http_status(url: str) -> int:
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# -- the registries -----------------------------------------------------------------------------


@dataclass
class Registry:
    """Debian's docker-registry on a loopback port, optionally behind htpasswd."""

    name: str
    directory: Path
    port: int = field(default_factory=free_port)
    credentials: tuple[str, str] | None = None

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        """The registry's config.yml (and htpasswd file when it has credentials)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.directory / "data")}},
            "http": {"addr": self.host},
        }
        if self.credentials:
            user, password = self.credentials
            htpasswd = self.directory / "htpasswd"
            htpasswd.write_text(_run(PACKAGES["apache2-utils"], "-nbB", user, password))
            config["auth"] = {"htpasswd": {"realm": "kubetriage", "path": str(htpasswd)}}
        path = self.directory / "config.yml"
        path.write_text(json.dumps(config))
        return path


# -- the node -----------------------------------------------------------------------------------


def read_sysctls() -> dict[str, str]:
    return {name: (Path("/proc/sys") / name).read_text().strip() for name in SYSCTLS}


def _cgroup_dirs() -> list[Path]:
    """Every `kubepods*` cgroup directory, deepest first, in every mounted hierarchy."""
    found: list[Path] = []
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        hierarchies = [CGROUP_ROOT]
    else:
        hierarchies = [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()]
    for hierarchy in hierarchies:
        for top in hierarchy.glob("kubepods*"):
            if top.is_dir():
                found.extend(p for p in top.rglob("*") if p.is_dir())
                found.append(top)
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def _mounts_under(prefixes: Sequence[Path]) -> list[Path]:
    points: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = Path(line.split()[4].encode().decode("unicode_escape"))
        if any(point == p or p in point.parents for p in prefixes):
            points.append(point)
    return sorted(set(points), key=lambda p: len(p.parts), reverse=True)


def _pids_with_args(*needles: str) -> list[int]:
    pids: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in args for n in needles):
            pids.append(int(proc.name))
    return pids


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _kill_cgroup_processes() -> None:
    """SIGKILL every process still in a kubepods cgroup (containers whose shim outlived the
    kubelet), by PID."""
    for _ in range(3):
        pids: set[int] = set()
        for cgroup in _cgroup_dirs():
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in (cgroup / "cgroup.procs").read_text().split())
        if not pids:
            return
        for pid in pids:
            _kill(pid)
        time.sleep(0.3)


@dataclass
class RealNode:
    """A real kubelet node joined to `cluster`; use as a context manager, or start()/stop().

    `setup_seconds` is how long start() took (images, registries, containerd, kubelet, until
    the node is Ready); `ready_seconds` the part from the kubelet's start to Ready.
    """

    cluster: LocalCluster
    workdir: Path
    binaries: Binaries
    name: str = NODE_NAME
    registry: Registry = field(init=False)
    private_registry: Registry = field(init=False)
    kubelet_port: int = field(default_factory=free_port)
    healthz_port: int = field(default_factory=free_port)
    setup_seconds: float = 0.0
    ready_seconds: float = 0.0
    footprint: Footprint = field(init=False)
    _daemons: list[_Daemon] = field(default_factory=list)
    _pause_archive: Path | None = None

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.footprint = Footprint(self.workdir)
        self.registry = Registry("registry", self.workdir / "registry")
        self.private_registry = Registry(
            "private-registry",
            self.workdir / "private-registry",
            credentials=("kubetriage", secrets.token_hex(12)),
        )

    # paths
    @property
    def logs_dir(self) -> Path:
        """One log file per daemon."""
        return self.workdir / "logs"

    @property
    def containerd_socket(self) -> Path:
        """containerd's gRPC socket (CRI and ctr)."""
        return self.workdir / "containerd" / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        """The kubelet's --root-dir."""
        return self.workdir / "kubelet"

    @property
    def kubelet_url(self) -> str:
        """The kubelet's HTTPS endpoint (client certificate of the cluster CA required)."""
        return f"https://{NODE_IP}:{self.kubelet_port}"

    def image(self, reference: str, *, private: bool = False) -> str:
        """A full reference in one of the local registries: image("kubetriage/api:1.0")."""
        registry = self.private_registry if private else self.registry
        return f"{registry.host}/{reference}"

    def logs(self, lines: int = 40) -> str:
        """The last lines of every daemon's log, for a failing test's report."""
        return "\n".join(
            f"===== {d.name} ({d.log_path}) =====\n{tail(d.log_path, lines)}" for d in self._daemons
        )

    def __enter__(self) -> RealNode:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- start ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Bring the node up and wait until it is Ready; RealNodeError says what failed."""
        reason = unavailable_reason(self.binaries)
        if reason:
            raise RealNodeError(reason)
        began = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        self.footprint.record()
        leftovers = _cgroup_dirs()
        if leftovers:
            raise RealNodeError(
                f"kubepods cgroups exist already ({leftovers[-1]}): another kubelet runs here, or "
                "a previous run was killed; `python hack/realnode.py clean --dir DIR` removes them"
            )
        try:
            self._create_bridge()
            self._start_registries()
            self._push_images()
            self._start_containerd()
            self._start_kubelet()
        except BaseException:
            self.stop()
            raise
        self.setup_seconds = time.monotonic() - began

    def _create_bridge(self) -> None:
        for line in _run("ip", "-4", "-o", "addr", "show").splitlines():
            address = ipaddress.ip_interface(line.split()[3])
            if address.network.overlaps(POD_SUBNET):
                raise RealNodeError(
                    f"{line.split()[1]} has {address}, inside the pod subnet {POD_SUBNET}: "
                    f"another real node runs here, or `ip link del {BRIDGE}` is needed"
                )
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        self.footprint.bridge = True
        self.footprint.save()
        _run("ip", "addr", "add", f"{NODE_IP}/{POD_SUBNET.prefixlen}", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")

    def _start_registries(self) -> None:
        for registry in (self.registry, self.private_registry):
            config = registry.write_config()
            daemon = _spawn(
                registry.name, [PACKAGES["docker-registry"], "serve", config], self.logs_dir,
                self.workdir,
            )  # fmt: skip
            self._daemons.append(daemon)
            expected = 401 if registry.credentials else 200
            _wait(
                registry.name,
                lambda r=registry, e=expected: _http_status(f"http://{r.host}/v2/") == e,
                30,
                daemon,
            )

    def _push_images(self) -> None:
        layouts = self.workdir / "images"
        layer = busybox_layer((("www/index.html", "ok\n"),))
        for image in IMAGES:
            layout = write_oci_layout(
                image, layouts / image.reference.replace("/", "_").replace(":", "_")
            )
            targets = [(self.registry, image.reference)]
            if image.reference == IMAGES[0].reference:
                targets.append((self.private_registry, image.reference))
            for registry, reference in targets:
                creds = registry.credentials
                auth = ["--dest-creds", ":".join(creds)] if creds else []
                _run(
                    PACKAGES["skopeo"], "--insecure-policy", "copy", "--quiet",
                    "--dest-tls-verify=false", *auth,
                    f"oci:{layout}:{image.tag}", f"docker://{registry.host}/{reference}",
                    timeout=120,
                )  # fmt: skip
        pause = write_oci_layout(PAUSE, layouts / "pause", layer=layer)
        self._pause_archive = oci_archive(pause, layouts / "pause.tar")

    def _containerd_config(self) -> Path:
        base = self.workdir / "containerd"
        certs = base / "certs.d"
        for registry in (self.registry, self.private_registry):
            hosts = certs / registry.host / "hosts.toml"
            hosts.parent.mkdir(parents=True, exist_ok=True)
            # Plain HTTP on loopback: without this containerd speaks HTTPS to the registry.
            hosts.write_text(
                f'server = "http://{registry.host}"\n\n'
                f'[host."http://{registry.host}"]\n'
                '  capabilities = ["pull", "resolve"]\n'
            )
        net_d = self.workdir / "cni" / "net.d"
        net_d.mkdir(parents=True, exist_ok=True)
        (net_d / "10-kubetriage.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "0.4.0",
                    "name": CNI_NETWORK,
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            # The bridge has its address already. isGateway would also turn on
                            # ip_forward; ipMasq would add a masquerade rule: neither is wanted.
                            "isGateway": False,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": str(POD_SUBNET), "gateway": NODE_IP}]],
                                # No routes: pods reach the bridge's subnet and nothing else.
                                "routes": [],
                                "dataDir": str(self.workdir / "cni" / "ipam"),
                            },
                        }
                    ],
                }
            )
        )
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = base / "config.toml"
        config.write_text(
            f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{self.containerd_socket}"

[ttrpc]
  address = "{base / "containerd.sock.ttrpc"}"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # Without it runc fails "can't get final child's PID from pipe: EOF" here: the kubelet asks
  # for oom_score_adj values below containerd's own, which the kernel refuses.
  restrict_oom_score_adj = true
  # Network namespaces are bind-mounted under state, not /run/netns: teardown finds them there.
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{PACKAGES["runc"]}"
  Root = "{base / "runc"}"
  # cgroupfs, as the kubelet: there is no systemd.
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{net_d}"

[{cri}.registry]
  config_path = "{certs}"
"""
        )
        return config

    def _ctr(self, *args: str, check: bool = True) -> str:
        return _run(CTR, "--address", self.containerd_socket, "--namespace", "k8s.io", *args,
                    check=check)  # fmt: skip

    def _start_containerd(self) -> None:
        config = self._containerd_config()
        daemon = _spawn("containerd", [PACKAGES["containerd"], "--config", config],
                        self.logs_dir, self.workdir)  # fmt: skip
        self._daemons.append(daemon)
        _wait("containerd", lambda: bool(self._ctr("version")), 30, daemon)
        if self._pause_archive is None:
            raise RealNodeError("the pause image was not written")
        self._ctr("images", "import", str(self._pause_archive))

    def _kubelet_config(self) -> Path:
        pki = self.cluster.pki
        pki.sign(
            "kubelet-serving",
            subject=f"/CN=system:node:{self.name}",
            extensions=f"extendedKeyUsage=serverAuth\nsubjectAltName=IP:{NODE_IP},DNS:{self.name}\n",
        )
        resolv = self.workdir / "resolv.conf"
        resolv.write_text("")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # kubelet 1.36 refuses cgroup v1 unless told to accept it.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "imageServiceEndpoint": f"unix://{self.containerd_socket}",
            "address": NODE_IP,
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.healthz_port,
            "tlsCertFile": str(pki.path("kubelet-serving.crt")),
            "tlsPrivateKeyFile": str(pki.path("kubelet-serving.key")),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True, "cacheTTL": "10s"},
                "x509": {"clientCAFile": str(pki.path("ca.crt"))},
            },
            "authorization": {
                "mode": "Webhook",
                "webhook": {"cacheAuthorizedTTL": "10s", "cacheUnauthorizedTTL": "5s"},
            },
            "clusterDomain": "cluster.local",
            "clusterDNS": [CLUSTER_DNS],
            # dnsPolicy Default gets an empty resolv.conf, not this machine's.
            "resolvConf": str(resolv),
            "podLogsDir": str(self.workdir / "pod-logs"),
            "volumePluginDir": str(self.workdir / "volume-plugins"),
            "hairpinMode": "none",
            "serializeImagePulls": False,
            "rotateCertificates": False,
            "protectKernelDefaults": False,
            # A busy test machine's disk must not evict the failures under test.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "shutdownGracePeriod": "0s",
        }
        path = self.workdir / "kubelet-config.json"
        path.write_text(json.dumps(config, indent=1))
        return path

    def _start_kubelet(self) -> None:
        config = self._kubelet_config()
        kubeconfig = self.cluster.issue_kubeconfig(
            "kubelet", user=f"system:node:{self.name}", group="system:nodes"
        )
        started = time.monotonic()
        self.footprint.kubelet = True
        self.footprint.save()
        daemon = _spawn(
            "kubelet",
            [
                self.binaries["kubelet"],
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.kubelet_root}",
                f"--cert-dir={self.kubelet_root / 'pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={NODE_IP}",
                f"--node-labels={NODE_LABEL}=real",
                # cAdvisor in the kubelet reads containers' names, pods and images from
                # containerd itself (default /run/containerd/containerd.sock): without this its
                # series carry cgroup ids only, no container, pod, namespace or image labels.
                f"--containerd={self.containerd_socket}",
                "--v=1",
            ],
            self.logs_dir,
            self.workdir,
        )
        self._daemons.append(daemon)
        _wait("the real node", self._node_ready, READY_TIMEOUT, daemon)
        self.ready_seconds = time.monotonic() - started
        if read_sysctls()["net/ipv4/ip_forward"] != self.footprint.sysctls["net/ipv4/ip_forward"]:
            raise RealNodeError("net.ipv4.ip_forward changed while the node started")

    def _node_ready(self) -> bool:
        result = self.cluster.kubectl("get", "node", self.name, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # -- stop -----------------------------------------------------------------------------------

    def _daemon(self, name: str) -> _Daemon | None:
        return next((d for d in self._daemons if d.name == name), None)

    def _drain(self) -> None:
        """Delete the node's pods while the kubelet still runs, so that it stops them and CNI
        releases their addresses; then wait (briefly) for containerd to have no task left."""
        kubelet = self._daemon("kubelet")
        if kubelet is None or kubelet.popen.poll() is not None:
            return
        self.cluster.kubectl("cordon", self.name, check=False)
        self.cluster.kubectl(
            "delete", "pods", "--all-namespaces", "--field-selector", f"spec.nodeName={self.name}",
            "--grace-period=0", "--force", "--wait=false", check=False,
        )  # fmt: skip
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not self._ctr("tasks", "list", "--quiet", check=False).split():
                return
            time.sleep(0.5)

    def stop(self) -> None:
        """Tear everything down and check that nothing is left; RealNodeError if something is."""
        errors: list[str] = []
        try:
            self._drain()
        except (RealNodeError, ControlPlaneError, subprocess.SubprocessError) as error:
            errors.append(f"drain: {error}")
        # The kubelet first, so that it restarts nothing; then the containers it left, then the
        # runtime and the registries; then whatever the processes left behind them.
        for daemon in sorted(self._daemons, key=lambda d: d.name != "kubelet"):
            if daemon.name != "kubelet" and self.footprint.kubelet:
                _kill_cgroup_processes()
            try:
                _stop(daemon)
            except (OSError, subprocess.SubprocessError) as error:
                errors.append(f"stop {daemon.name}: {error}")
        left = [
            f"process {d.popen.pid} ({d.name}) still runs"
            for d in self._daemons
            if d.popen.poll() is None
        ]
        self._daemons.clear()
        errors.extend(self.footprint.clear())
        left.extend(self.footprint.leftovers())
        if errors or left:
            raise RealNodeError(
                "the real node did not tear down cleanly:\n  " + "\n  ".join(errors + left)
            )

    def leftovers(self) -> list[str]:
        """What the node left on this machine; [] after a clean teardown."""
        return self.footprint.leftovers()


@dataclass
class Footprint:
    """Everything a real node changes on the machine, and how to undo it.

    `record()` notes the machine as it was (sysctls, which default paths existed) in
    `workdir/footprint.json`, so that `clean` can undo a run that was killed before its teardown.
    """

    workdir: Path
    sysctls: dict[str, str] = field(default_factory=dict)
    existed: dict[str, bool] = field(default_factory=dict)
    bridge: bool = False
    # Whether this run started a kubelet: only then are the kubepods cgroups (and what runs in
    # them) its own to remove.
    kubelet: bool = False

    @property
    def path(self) -> Path:
        """Where the record is kept."""
        return self.workdir / "footprint.json"

    def record(self) -> None:
        """Note the sysctls and the paths before anything changes them."""
        self.sysctls = read_sysctls()
        self.existed = {str(path): path.exists() for path in WATCHED_PATHS}
        self.save()

    def save(self) -> None:
        """Write the record (after each change to it)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.path.write_text(
            json.dumps(
                {
                    "sysctls": self.sysctls,
                    "existed": self.existed,
                    "bridge": self.bridge,
                    "kubelet": self.kubelet,
                }
            )
        )

    @classmethod
    def load(cls, workdir: Path) -> Footprint:
        """The record a run left in `workdir` (empty when it has none)."""
        footprint = cls(workdir.resolve())
        if footprint.path.exists():
            saved = json.loads(footprint.path.read_text())
            footprint.sysctls = saved["sysctls"]
            footprint.existed = saved["existed"]
            footprint.bridge = saved["bridge"]
            footprint.kubelet = saved["kubelet"]
        return footprint

    @property
    def created(self) -> list[Path]:
        """The watched paths that did not exist before the node started."""
        return [Path(p) for p, existed in self.existed.items() if not existed]

    def clear(self) -> list[str]:
        """Undo everything (processes by PID, mounts, cgroups, bridge, sysctls, files); returns
        what could not be done."""
        errors: list[str] = []
        for what, action in (
            ("kill containers", self._kill_containers),
            ("kill shims", self._kill_shims),
            ("unmount", self._unmount),
            ("remove cgroups", self._remove_cgroups),
            ("remove bridge", self._remove_bridge),
            ("restore sysctls", self._restore_sysctls),
            ("remove files", self._remove_files),
        ):
            try:
                action()
            except (OSError, RealNodeError, subprocess.SubprocessError) as error:
                errors.append(f"{what}: {error}")
        return errors

    def _kill_containers(self) -> None:
        if self.kubelet:
            _kill_cgroup_processes()

    def _remove_cgroups(self) -> None:
        if self.kubelet:
            _remove_cgroups()

    def _kill_shims(self) -> None:
        # containerd-shim-runc-v2 runs detached from containerd; it names its socket.
        for _ in range(10):
            pids = _pids_with_args("containerd-shim", str(self.workdir))
            if not pids:
                return
            for pid in pids:
                _kill(pid)
            time.sleep(0.2)

    def _mount_prefixes(self) -> list[Path]:
        return [self.workdir, *self.created]

    def _unmount(self) -> None:
        for _ in range(3):
            points = _mounts_under(self._mount_prefixes())
            if not points:
                return
            for point in points:
                done = subprocess.run(["umount", str(point)], capture_output=True, check=False)
                if done.returncode != 0:
                    subprocess.run(
                        ["umount", "--lazy", str(point)], capture_output=True, check=False
                    )

    def _remove_bridge(self) -> None:
        if self.bridge and Path("/sys/class/net", BRIDGE).exists():
            _run("ip", "link", "del", BRIDGE)
        self.bridge = False

    def _restore_sysctls(self) -> None:
        for name, value in self.sysctls.items():
            path = Path("/proc/sys") / name
            if path.read_text().strip() != value:
                path.write_text(value + "\n")

    def _remove_files(self) -> None:
        for path in self.created:
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.exists():
                shutil.rmtree(path)
        logs = Path("/var/log/containers")
        if logs.is_dir():
            for link in logs.iterdir():
                if link.is_symlink() and str(self.workdir) in os.readlink(link):
                    link.unlink()
        results = Path("/var/lib/cni/results")
        if results.is_dir():
            for cached in results.glob(f"{CNI_NETWORK}-*"):
                cached.unlink()

    def leftovers(self) -> list[str]:
        """What is still there; [] after `clear()`."""
        left = [
            f"process {pid} still runs with {self.workdir} in its arguments"
            for pid in _pids_with_args(str(self.workdir))
        ]
        left.extend(f"mount {p}" for p in _mounts_under(self._mount_prefixes()))
        if self.kubelet:
            left.extend(f"cgroup {p}" for p in _cgroup_dirs())
        if Path("/sys/class/net", BRIDGE).exists():
            left.append(f"network interface {BRIDGE}")
        if self.sysctls:
            now = read_sysctls()
            left.extend(
                f"sysctl {k.replace('/', '.')} is {now[k]}, was {v}"
                for k, v in self.sysctls.items()
                if now[k] != v
            )
        left.extend(f"{path} was created" for path in self.created if path.exists())
        return left


def _remove_cgroups() -> None:
    for _ in range(20):
        dirs = _cgroup_dirs()
        if not dirs:
            return
        for directory in dirs:
            with contextlib.suppress(OSError):
                directory.rmdir()
        if _cgroup_dirs():
            _kill_cgroup_processes()
            time.sleep(0.25)


def clean(workdir: Path) -> list[str]:
    """Undo what a killed run left in `workdir` (its RealNode directory): processes, mounts,
    cgroups, the bridge, sysctls, files. Returns what is still left ([] when all is clean).

    For a developer's machine after an interrupted run; the tests never need it."""
    footprint = Footprint.load(workdir)
    errors = footprint.clear()
    return errors + footprint.leftovers()


@contextlib.contextmanager
def running_real_node(
    workdir: Path | None = None, *, kwok_nodes: int = 0
) -> Iterator[tuple[LocalCluster, RealNode]]:
    """A local control plane and one real node (and `kwok_nodes` simulated ones)."""
    directory = (workdir or Path(tempfile.mkdtemp(prefix="kubetriage-realnode-"))).resolve()
    binaries = Binaries.find(components=REAL_NODE_COMPONENTS)
    with (
        LocalCluster(directory / "cluster", binaries, nodes=kwok_nodes) as cluster,
        RealNode(cluster, directory / "node", binaries) as node,
    ):
        yield cluster, node


def main(argv: Sequence[str] | None = None) -> int:
    """`up`: control plane and real node until interrupted; `check`; `clean`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["up", "check", "clean"])
    parser.add_argument("--dir", type=Path, help="work directory (default: a new temp dir)")
    parser.add_argument("--kwok-nodes", type=int, default=0, help="simulated nodes beside it")
    args = parser.parse_args(argv)
    if args.command == "check":
        reason = unavailable_reason()
        print(reason or "this machine can run a real node")
        return 1 if reason else 0
    if args.command == "clean":
        if args.dir is None:
            parser.error("clean needs --dir: the directory of the run to clean up")
        left = clean(args.dir / "node" if (args.dir / "node").is_dir() else args.dir)
        print("\n".join(left) if left else "clean")
        return 1 if left else 0
    stop = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with running_real_node(args.dir, kwok_nodes=args.kwok_nodes) as (cluster, node):
        print(
            f"real node {node.name} Ready ({node.setup_seconds:.1f}s set-up, "
            f"{node.ready_seconds:.1f}s kubelet to Ready); image "
            f"{node.image(IMAGES[0].reference)}"
            f"\nexport KUBECONFIG={cluster.kubeconfig}",
            flush=True,
        )
        while not stop:
            time.sleep(0.5)
        print("tearing down", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
