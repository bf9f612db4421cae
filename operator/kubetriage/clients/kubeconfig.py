"""Which cluster to talk to: in a pod, its ServiceAccount; elsewhere, the kubeconfig.

The order is kopf's own (`kopf._core.intents.piggybacking.login_via_client`), so that the
operator's API client and kopf's watches always reach the same cluster. The kubernetes client
raises whatever a malformed kubeconfig makes its loader trip on (a YAML error, a TypeError for a
file that is YAML but not a mapping, a binascii.Error for bad certificate data...), so every
failure of loading is turned here into one `NoClusterError` whose message says, in one line,
what is wrong with which file.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from kubernetes import config as kube_config
from kubernetes.client import ApiClient

# The kubernetes client reads $KUBECONFIG the same way: a list of files, else the default.
_DEFAULT_KUBECONFIG = "~/.kube/config"


class NoClusterError(Exception):
    """There is no cluster to talk to; the message says why, in one line."""


def kubeconfig_client() -> ApiClient:
    """An API client of the current context of $KUBECONFIG (else ~/.kube/config); raises
    NoClusterError when there is no kubeconfig or it cannot be used."""
    spelled = os.environ.get("KUBECONFIG", "")
    paths = [Path(p).expanduser() for p in spelled.split(os.pathsep) if p]
    if not paths:
        default = Path(_DEFAULT_KUBECONFIG).expanduser()
        if not default.exists():
            raise NoClusterError(
                f"no kubeconfig ($KUBECONFIG is not set and {default} does not exist)"
            )
        paths = [default]
    if not any(path.exists() for path in paths):
        raise NoClusterError(f"no kubeconfig (the $KUBECONFIG {spelled} does not exist)")
    where = f"the kubeconfig {os.pathsep.join(str(p) for p in paths)}"
    for path in (p for p in paths if p.is_file()):
        _check_mapping(path)
    try:
        api: ApiClient = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=os.pathsep.join(str(p) for p in paths)
        )
    except yaml.YAMLError as error:
        raise NoClusterError(f"{where} is not YAML: {_one_line(error)}") from error
    except kube_config.ConfigException as error:
        raise NoClusterError(f"{where} cannot be used: {_one_line(error)}") from error
    except Exception as error:  # whatever the loader trips on: see the docstring
        raise NoClusterError(
            f"{where} is not a kubeconfig: {type(error).__name__}: {_one_line(error)}"
        ) from error
    return api


def cluster_client() -> ApiClient:
    """In a pod, an API client with its ServiceAccount; elsewhere `kubeconfig_client()`.
    Raises NoClusterError saying why neither is there."""
    try:
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException as in_cluster:
        why = (
            "KUBERNETES_SERVICE_HOST is not set"
            if not os.environ.get("KUBERNETES_SERVICE_HOST")
            else _one_line(in_cluster)
        )
        try:
            return kubeconfig_client()
        except NoClusterError as error:
            raise NoClusterError(f"found no cluster: not in a pod ({why}) and {error}") from error
    return ApiClient()


def _check_mapping(path: Path) -> None:
    """NoClusterError unless the file is YAML whose top level is a mapping (or empty): the
    client's loader meets anything else with a TypeError about its own internals."""
    try:
        with path.open("rb") as handle:
            document = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        problem = "cannot be read" if isinstance(error, OSError) else "is not YAML"
        raise NoClusterError(f"the kubeconfig {path} {problem}: {_one_line(error)}") from error
    if document is not None and not isinstance(document, dict):
        raise NoClusterError(
            f"the kubeconfig {path} is not a kubeconfig: YAML whose top level is "
            f"{type(document).__name__}, not a mapping of clusters, users and contexts"
        )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
