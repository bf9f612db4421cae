"""A crash-looping workload whose env, previous log and events are full of secrets of every
common kind: the input of every test that proves secrets never leave the cluster."""

from __future__ import annotations

from typing import Any

# Each: (kind of secret, the text planted, the secret part that must never appear).
SECRETS: list[tuple[str, str, str]] = [
    ("password key=value", "password=hunter2Sup3rS3cret", "hunter2Sup3rS3cret"),
    ("aws access key id", "using key AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    (
        "aws secret key",
        "aws_secret_access_key=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
    ),
    (
        "bearer header",
        "Authorization: Bearer abcDEF123456ghiJKL789mnoPQR",
        "abcDEF123456ghiJKL789mnoPQR",
    ),
    (
        "jwt",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    (
        "basic auth header",
        "Authorization: Basic dXNlcjpTdXBlclNlY3JldDE=",
        "dXNlcjpTdXBlclNlY3JldDE=",
    ),
    ("postgres url", "dsn postgres://app:PgS3cretPass@db:5432/shop", "PgS3cretPass"),
    ("mongodb url", "mongodb+srv://admin:M0ngoS3cret@cluster0.example.net/db", "M0ngoS3cret"),
    ("redis url", "redis://:R3disS3cret@redis:6379/0", "R3disS3cret"),
    ("amqp url", "amqp://guest:RabbitS3cret@rabbit:5672/", "RabbitS3cret"),
    (
        "github token",
        "GITHUB_TOKEN ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    ),
    (
        "slack token",
        "slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ),
    ("stripe key", "stripe sk_live_51HxYzAbCdEfGhIjKlMnOpQr", "sk_live_51HxYzAbCdEfGhIjKlMnOpQr"),
    (
        "linear key",
        "linear lin_api_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd",
        "lin_api_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd",
    ),
    (
        "gcp private key id",
        '"private_key_id": "3f4c2a1b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"',
        "3f4c2a1b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b",
    ),
    ("api key", "api_key=9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d", "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"),
    ("client secret", "client_secret: Zx9Yw8Vu7Ts6Rq5Po4", "Zx9Yw8Vu7Ts6Rq5Po4"),
    (
        "high entropy value",
        "SESSION_SIGNING=8fJ2kQ9zLm4XvB7nRt1YwP3sD6gH0cE5",
        "8fJ2kQ9zLm4XvB7nRt1YwP3sD6gH0cE5",
    ),
    (
        "x-api-key header",
        "X-Api-Key: 5d41402abc4b2a76b9719d911017c592aa",
        "5d41402abc4b2a76b9719d911017c592aa",
    ),
    (
        "google api key",
        "maps key AIzaSyA-1234567890abcdefghijklmnopqrstu",
        "AIzaSyA-1234567890abcdefghijklmnopqrstu",
    ),
    ("token key=value", "token=tkn_live_77aa88bb99cc00dd", "tkn_live_77aa88bb99cc00dd"),
]
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAz7PrivateKeyMaterialThatMustNeverLeave0123456789\n"
    "-----END RSA PRIVATE KEY-----"
)
ENV_SECRETS = {"DB_PASSWORD": "EnvOnlyPassw0rd!", "API_TOKEN": "EnvOnlyT0ken-abc123"}
NAMESPACE, APP = "shop", "api"


def snapshot() -> dict[str, Any]:
    """A crash-looping Deployment with secrets in its env, its previous log and its events."""
    pod_name = f"{APP}-5d4f8b7c9-x2x2x"
    log = "\n".join(
        [
            "starting api version=2.3.1",
            *[f"ERROR visible-marker-{i} {text}" for i, (_, text, _) in enumerate(SECRETS)],
            PRIVATE_KEY,
            "FATAL cannot continue: exit 1",
        ]
    )
    container = {
        "name": "app",
        "image": "registry.example/shop/api:2.3.1",
        "env": [{"name": k, "value": v} for k, v in ENV_SECRETS.items()],
    }
    status = {
        "name": "app",
        "ready": False,
        "restartCount": 7,
        "image": container["image"],
        "state": {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off 5m0s restarting failed container=app pod={pod_name}_shop(u)",
            }
        },
        "lastState": {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": "2026-01-01T00:00:00Z",
                "finishedAt": "2026-01-01T00:00:05Z",
            }
        },
    }
    rs_name = f"{APP}-5d4f8b7c9"
    items: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": APP, "namespace": NAMESPACE, "uid": "dep-uid"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [container]}}},
            "status": {"replicas": 1, "readyReplicas": 0},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": NAMESPACE,
                "uid": "rs-uid",
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": APP,
                        "uid": "dep-uid",
                        "controller": True,
                    }
                ],
            },
            "spec": {"template": {"spec": {"containers": [container]}}},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": NAMESPACE,
                "uid": "pod-uid",
                "labels": {"pod-template-hash": "5d4f8b7c9"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": rs_name,
                        "uid": "rs-uid",
                        "controller": True,
                    }
                ],
            },
            "spec": {"containers": [container]},
            "status": {"phase": "Running", "containerStatuses": [status]},
        },
        {
            "apiVersion": "kubetriage.io/v1alpha1",
            "kind": "ContainerLog",
            "metadata": {"namespace": NAMESPACE, "name": pod_name},
            "container": "app",
            "previous": True,
            "text": log,
        },
    ]
    for index, (_, text, _) in enumerate(SECRETS[:5]):
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{pod_name}.{index}", "namespace": NAMESPACE},
                "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": NAMESPACE},
                "reason": "BackOff",
                "type": "Warning",
                "count": 3,
                "lastTimestamp": "2026-01-01T00:00:06Z",
                "message": f"Back-off restarting failed container app: {text}",
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}
