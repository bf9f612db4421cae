"""Runbook for what may leave the cluster: which secrets are removed, and what stays readable.

Every fake credential below is assembled at run time (`fake`, `pem_block`), so that this file
holds nothing a secret scanner would flag, and each one is long enough to match the real format.
"""

from __future__ import annotations

import dataclasses
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubetriage.redact import REDACTED, LogExcerpt, env_names, excerpt, redact

_ALNUM = string.ascii_letters + string.digits


def fake(prefix: str, length: int, alphabet: str = _ALNUM) -> str:
    """`prefix` followed by `length` characters that look random (mixed case and digits)."""
    return prefix + "".join(alphabet[(7 * i + 3) % len(alphabet)] for i in range(length))


def pem_block(kind: str = "RSA ", newline: str = "\n") -> str:
    """A PEM private key block with a plausible base64 body."""
    body = newline.join(fake("MII", 61, _ALNUM + "+/") for _ in range(4))
    return (
        f"-----BEGIN {kind}PRIVATE KEY-----{newline}{body}{newline}AbCd=={newline}"
        f"-----END {kind}PRIVATE KEY-----"
    )


JWT = fake("eyJ", 20, _ALNUM + "_-") + "." + fake("eyJ", 40) + "." + fake("", 43, _ALNUM + "_-")
AWS_KEY_ID = fake("AKIA", 16, string.ascii_uppercase + string.digits)
AWS_STS_KEY_ID = fake("ASIA", 16, string.ascii_uppercase + string.digits)
AWS_SECRET = fake("", 40, _ALNUM + "/+")
DIGEST = "sha256:" + fake("", 64, "0123456789abcdef")
POD_UID = "3f1c2b9e-8a7d-4c6b-9e5f-1a2b3c4d5e6f"


# --- each kind of secret, as it shows up in logs and messages, and what is left of it ---

SECRETS = [
    pytest.param(
        "login failed password=hunter2 user=bob",
        f"login failed password={REDACTED} user=bob",
        id="logfmt password",
    ),
    pytest.param("  password: hunter2", f"  password: {REDACTED}", id="yaml password"),
    pytest.param(
        "password: changeme user: bob",
        f"password: {REDACTED} user: bob",
        id="dictionary-word password before another key",
    ),
    pytest.param(
        '{"db_password": "hunter2", "user": "bob"}',
        f'{{"db_password": "{REDACTED}", "user": "bob"}}',
        id="json password",
    ),
    pytest.param(
        'msg="{\\"apiKey\\":\\"abc123def\\"}"',
        f'msg="{{\\"apiKey\\":\\"{REDACTED}\\"}}"',
        id="api key in escaped json inside a log line",
    ),
    pytest.param(
        'password="correct horse battery"',
        f'password="{REDACTED}"',
        id="quoted password with spaces",
    ),
    pytest.param(
        "Server=db;User Id=app;Password=hunter2;",
        f"Server=db;User Id=app;Password={REDACTED};",
        id="ado.net connection string",
    ),
    pytest.param(
        "map[password:hunter2 user:bob]", f"map[password:{REDACTED} user:bob]", id="go map"
    ),
    pytest.param(
        "{'password': 'x1', 'user': 'y'}",
        f"{{'password': '{REDACTED}', 'user': 'y'}}",
        id="python dict repr",
    ),
    pytest.param(
        "exec: mysql --password hunter2 -h db",
        f"exec: mysql --password {REDACTED} -h db",
        id="command-line flag",
    ),
    pytest.param("X-Api-Key: 0123abcd", f"X-Api-Key: {REDACTED}", id="api key header"),
    pytest.param(
        f"Authorization: Bearer {JWT}", f"Authorization: Bearer {REDACTED}", id="bearer header"
    ),
    pytest.param(
        "authorization: Basic dXNlcjpwYXNz",
        f"authorization: Basic {REDACTED}",
        id="basic auth header",
    ),
    pytest.param(
        '{"Authorization": "token abc123"}',
        f'{{"Authorization": "token {REDACTED}"}}',
        id="authorization header in json",
    ),
    pytest.param(
        "curl -H 'Authorization: Bearer abc.def-123' http://api",
        f"curl -H 'Authorization: Bearer {REDACTED}' http://api",
        id="bearer header in a curl command",
    ),
    pytest.param(
        "retrying with bearer tok_9f8e7d6c5b4a",
        f"retrying with bearer {REDACTED}",
        id="bearer token without a header",
    ),
    pytest.param("Cookie: session=abc; csrftoken=def", f"Cookie: {REDACTED}", id="cookie header"),
    pytest.param(
        "connection refused postgres://app:s3cr3tPw@db.internal:5432/orders",
        f"connection refused postgres://app:{REDACTED}@db.internal:5432/orders",
        id="postgres url keeps scheme user host",
    ),
    pytest.param(
        "redis://:pw123@cache:6379/0", f"redis://:{REDACTED}@cache:6379/0", id="redis url"
    ),
    pytest.param(
        "mongodb+srv://u:p@ss@cluster0.mongodb.net/db",
        f"mongodb+srv://u:{REDACTED}@cluster0.mongodb.net/db",
        id="url password with an unescaped @",
    ),
    pytest.param(
        f"git clone https://{fake('', 40, '0123456789abcdef')}@github.com/acme/api",
        f"git clone https://{REDACTED}@github.com/acme/api",
        id="token as url user",
    ),
    pytest.param(
        f"loaded key\n{pem_block()}\nstarting", f"loaded key\n{REDACTED}\nstarting", id="pem"
    ),
    pytest.param(
        f"key={pem_block('', ' ')} next=1", f"key={REDACTED} next=1", id="pem pasted in env var"
    ),
    pytest.param(
        f"{fake('', 64)}\n{fake('', 20)}==\n-----END PRIVATE KEY-----\nserver started",
        f"{REDACTED}\nserver started",
        id="pem whose BEGIN is above the excerpt",
    ),
    pytest.param(
        f"key:\n-----BEGIN OPENSSH PRIVATE KEY-----\n{fake('', 70)}\n{fake('', 30)}\n",
        f"key:\n{REDACTED}\n",
        id="pem cut before its END",
    ),
    pytest.param(
        f"using key {AWS_KEY_ID} for s3", f"using key {REDACTED} for s3", id="aws access key id"
    ),
    pytest.param(
        f"AWS_ACCESS_KEY_ID={AWS_STS_KEY_ID}",
        f"AWS_ACCESS_KEY_ID={REDACTED}",
        id="aws temporary key id",
    ),
    pytest.param(
        f"aws_secret_access_key = {AWS_SECRET}",
        f"aws_secret_access_key = {REDACTED}",
        id="aws secret access key",
    ),
    pytest.param(
        f"GET https://b.s3.amazonaws.com/o?X-Amz-Credential={AWS_KEY_ID}%2F20250312"
        "&X-Amz-Signature=9f8e7d6c5b&x=1",
        f"GET https://b.s3.amazonaws.com/o?X-Amz-Credential={REDACTED}"
        f"&X-Amz-Signature={REDACTED}&x=1",
        id="presigned s3 url",
    ),
    pytest.param(
        '{"type": "service_account", "private_key_id": "1a2b3c4d5e6f7a8b", '
        f'"private_key": "{pem_block("", chr(92) + "n")}\\n", "client_email": "a@p.iam.x.com"}}',
        f'{{"type": "service_account", "private_key_id": "{REDACTED}", '
        f'"private_key": "{REDACTED}", "client_email": "a@p.iam.x.com"}}',
        id="gcp service account json",
    ),
    pytest.param(f"token rejected {JWT} exp", f"token rejected {REDACTED} exp", id="jwt"),
    pytest.param(
        f"push failed for {fake('ghp_', 36)}", f"push failed for {REDACTED}", id="github pat"
    ),
    pytest.param(f"oauth {fake('gho_', 36)}", f"oauth {REDACTED}", id="github oauth token"),
    pytest.param(f"bot {fake('xoxb-', 40)}", f"bot {REDACTED}", id="slack bot token"),
    pytest.param(f"charge with {fake('sk_live_', 24)}", f"charge with {REDACTED}", id="stripe"),
    pytest.param(f"linear {fake('lin_api_', 40)}", f"linear {REDACTED}", id="linear api key"),
    pytest.param(f"model key {fake('sk-proj-', 40)}", f"model key {REDACTED}", id="openai key"),
    pytest.param(
        f"posting to https://hooks.slack.com/services/{fake('T', 8)}/{fake('B', 8)}/{fake('', 24)}",
        f"posting to https://hooks.slack.com/services/{REDACTED}",
        id="slack webhook url",
    ),
    pytest.param(
        "SESSION_SECRET=8fJ2kQ9xLm3Pz7Rt1VbN4cWd",
        f"SESSION_SECRET={REDACTED}",
        id="secret named key",
    ),
    pytest.param("auth: Zx9Yw8Vu7Ts6Rq5Po4", f"auth: {REDACTED}", id="a value after auth"),
    pytest.param(
        "cache_seed: 8fJ2kQ9xLm3Pz7Rt1VbN4cWd",
        f"cache_seed: {REDACTED}",
        id="high-entropy value of any key",
    ),
    pytest.param(
        '{"nonce": "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA=="}',
        f'{{"nonce": "{REDACTED}"}}',
        id="high-entropy base64 json value",
    ),
]


@pytest.mark.parametrize(("text", "expected"), SECRETS)
def test_secret_is_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


# --- ordinary text the diagnosis needs, which must come through unchanged ---

ORDINARY = [
    pytest.param(
        "dial tcp 10.0.0.7:5432: connect: connection refused to postgres:5432", id="host:port"
    ),
    pytest.param("container exited with exit code 137 (OOMKilled)", id="exit code"),
    pytest.param(f'Pulling image "ghcr.io/acme/api@{DIGEST}"', id="image digest"),
    pytest.param(f"imageID: docker-pullable://ghcr.io/acme/api@{DIGEST}", id="image id"),
    pytest.param(f"image: registry.example.com/app:v1.2.3@{DIGEST}", id="tag and digest"),
    pytest.param(f"containerID: containerd://{DIGEST[7:]}", id="container id"),
    pytest.param(
        f"Back-off restarting failed container app in pod api-7d9f8b6c5-x2k4z_shop({POD_UID})",
        id="pod name and uid",
    ),
    pytest.param(f"uid={POD_UID}", id="uid as key value"),
    pytest.param("2025-03-12T15:41:54.102Z INFO resizer: listening on :8080", id="timestamp"),
    pytest.param(
        f"open /var/lib/kubelet/pods/{POD_UID}/volumes/kubernetes.io~secret/db/password: "
        "no such file or directory",
        id="path of a mounted secret",
    ),
    pytest.param(
        'MountVolume.SetUp failed for volume "kube-api-access-8x2lq" : object '
        '"default"/"kube-root-ca.crt" not registered',
        id="kubelet volume message",
    ),
    pytest.param('Error: secret "db-creds" not found', id="missing secret"),
    pytest.param(
        "reflector.go:147] failed to list *v1.Secret: secrets is forbidden: User "
        '"system:serviceaccount:shop:api" cannot list resource "secrets"',
        id="rbac denial",
    ),
    pytest.param('couldn\'t find key "password" in Secret shop/db', id="missing secret key"),
    pytest.param("secretName: db-creds", id="name of a secret"),
    pytest.param("secretKeyRef: {name: db, key: password}", id="secret key reference"),
    pytest.param("passwordFile: /etc/app/pw", id="path of a password file"),
    pytest.param("token_type: Bearer", id="token type"),
    pytest.param("password=${DB_PASSWORD} token=$(API_TOKEN)", id="env var references"),
    pytest.param(f"password={REDACTED}", id="already redacted"),
    pytest.param(
        "failed to authorize: failed to fetch anonymous token: unexpected status from GET "
        "request to https://acme.azurecr.io/oauth2/token?scope=repository%3Aapi%3Apull: "
        "401 Unauthorized",
        id="registry auth error message",
    ),
    pytest.param(
        "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7", id="trace ids"
    ),
    pytest.param("commit=9fceb02d0ae598e95dc970b74767f19372d61af8", id="git sha"),
    pytest.param("version=MyService-1.22.3-SNAPSHOT", id="version string"),
    pytest.param("PWD=/app HOME=/root author=alice", id="working directory and author"),
    pytest.param("max_tokens=4096", id="token count"),
    pytest.param(
        "using bearer authentication; Basic authentication failed", id="auth words in prose"
    ),
    pytest.param("at com.acme.OrderService.place(OrderService.java:42)", id="java frame"),
    pytest.param(
        'Liveness probe failed: Get "http://10.1.2.3:8080/healthz": context deadline exceeded',
        id="probe failure",
    ),
    pytest.param(
        "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available",
        id="scheduler message",
    ),
    pytest.param("disk-pressure on sk-worker-7d9f8b6c5-x2k4z", id="pod named sk-"),
    pytest.param(fake("pk_live_", 24), id="stripe publishable key is public"),
    pytest.param(
        "failed to connect to `user=orders database=orders`: 10.100.88.14:5432 (postgres): failed "
        'SASL auth: FATAL: password authentication failed for user "orders" (SQLSTATE 28P01)',
        id="the error keywords after a word that names a credential",
    ),
    pytest.param(
        "SQLSTATE[HY000] [1045] Access denied for user 'catalog'@'10.0.1.131' (using password: "
        "YES)",
        id="mysql says whether a password was sent",
    ),
    pytest.param(
        '{"topologySpreadConstraints":[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone"}]}',
        id="a spread constraint's topologyKey names a label",
    ),
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text) == text


def test_redact_of_empty_text_is_empty() -> None:
    assert redact("") == ""


# --- properties ---

# Text built from fragments that the patterns react to, so that generated inputs reach them.
FRAGMENTS = st.sampled_from(
    [
        "password", "token", "apiKey", "secret", "key", "Authorization", "Bearer", "Cookie",
        "://", "@", ":", "=", " ", "\n", '"', "'", "\\", "\\n", "[", "]", "{", "}", "$(", "-",
        "--", "sk-", "eyJ", ".", "hunter2", REDACTED, AWS_KEY_ID, JWT, DIGEST, "8fJ2kQ9xLm3Pz7Rt",
        "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", fake("", 64), "==",
    ]
)  # fmt: skip
REDACTABLE_TEXT = st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=30).map("".join)


@settings(max_examples=500, deadline=None)
@given(REDACTABLE_TEXT)
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_ALNUM + "!#%*+-./?@^_~", min_size=1, max_size=40))
def test_any_password_value_is_redacted(value: str) -> None:
    if value.lower() in {"true", "false", "null", "nil", "none"} or set(value) == {"*"}:
        expected = f"password={value}"  # placeholders, not secrets
    else:
        expected = f"password={REDACTED}"
    assert redact(f"password={value}") == expected


@settings(max_examples=300, deadline=None)
@given(
    raw=st.one_of(st.binary(max_size=3000), st.text(max_size=1500), REDACTABLE_TEXT),
    max_lines=st.integers(min_value=1, max_value=60),
    max_bytes=st.integers(min_value=1, max_value=2000),
)
def test_excerpt_is_valid_utf8_within_bounds(
    raw: bytes | str, max_lines: int, max_bytes: int
) -> None:
    result = excerpt(raw, max_lines=max_lines, max_bytes=max_bytes)
    data = result.text.encode("utf-8")  # strict: raises on a lone surrogate
    assert len(data) <= max_bytes
    assert result.text.count("\n") < max_lines
    assert "\r" not in result.text
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    assert result.original_bytes == size


# --- excerpts ---


def test_excerpt_keeps_the_last_lines_where_the_crash_is() -> None:
    log = "".join(f"line {i}\n" for i in range(200))
    result = excerpt(log, max_lines=50)
    assert result == LogExcerpt(
        text="\n".join(f"line {i}" for i in range(150, 200)),
        truncated=True,
        binary=False,
        original_bytes=len(log),
    )


def test_excerpt_of_a_short_log_is_all_of_it() -> None:
    assert excerpt(b"starting\ncrashed\n") == LogExcerpt(
        text="starting\ncrashed", truncated=False, binary=False, original_bytes=17
    )


def test_excerpt_of_an_empty_log_is_empty() -> None:
    assert excerpt(b"") == LogExcerpt(text="", truncated=False, binary=False, original_bytes=0)


def test_excerpt_stays_within_the_byte_budget() -> None:
    log = "".join(f"{i:04d} " + "x" * 95 + "\n" for i in range(100))
    result = excerpt(log, max_lines=50, max_bytes=1000)
    assert len(result.text.encode()) <= 1000
    assert result.text.endswith("0099 " + "x" * 95)
    assert result.truncated


@pytest.mark.parametrize(
    ("char", "expected"),
    [
        pytest.param("é", "é" * 5, id="2-byte"),
        pytest.param("€", "€" * 3, id="3-byte"),
        pytest.param("🙂", "🙂" * 2, id="4-byte"),
    ],
)
def test_excerpt_never_cuts_a_multibyte_character(char: str, expected: str) -> None:
    for raw in (char * 100, (char * 100).encode()):
        result = excerpt(raw, max_bytes=10)
        assert result.text == expected
        assert result.truncated


def test_excerpt_of_one_huge_line_keeps_whole_characters() -> None:
    # 200 KB without a newline: the excerpt is the end of that line, not nothing.
    raw = b"x" + "ж".encode() * 100_000
    result = excerpt(raw, max_bytes=11)
    assert result.text == "ж" * 5
    assert not result.binary


def test_excerpt_replaces_undecodable_bytes_in_text() -> None:
    result = excerpt(b"caf\xe9 closed\n")
    assert result.text == "caf\ufffd closed"
    assert not result.binary


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"\x1b[31mERROR\x1b[0m boom\r\n", "ERROR boom", id="colour codes and CRLF"),
        pytest.param(b"10%\r50%\r100%\ndone\n", "100%\ndone", id="progress bar redraws"),
        pytest.param(b"\x1b]0;title\x07ready\n", "ready", id="terminal title"),
        pytest.param(b"bell\x07 and back\x08space\n", "bell and backspace", id="control chars"),
        pytest.param("file \u202egpj.exe\n".encode(), "file gpj.exe", id="bidi override"),
    ],
)
def test_excerpt_strips_terminal_control(raw: bytes, expected: str) -> None:
    assert excerpt(raw).text == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40, id="executable"),
        pytest.param(bytes(range(128, 256)) * 80, id="undecodable without NUL"),
        pytest.param(b"text\x00with NUL" * 10, id="NUL bytes"),
    ],
)
def test_binary_output_is_replaced_by_a_note(raw: bytes) -> None:
    result = excerpt(raw, max_bytes=300)
    assert result.binary
    assert result.truncated
    assert result.text.startswith(f"[binary output: {len(raw)} bytes omitted")
    assert len(result.text.encode()) <= 300
    assert all(c.isprintable() or c == "\n" for c in result.text)


def test_binary_output_without_printable_text_is_only_the_note() -> None:
    result = excerpt(bytes(range(128, 256)) * 8)
    assert result.text == "[binary output: 1024 bytes omitted]"


def test_printable_fragments_of_binary_output_are_redacted() -> None:
    result = excerpt(b"\x00\x01\x02ELF\x00\x00DB_PASSWORD=hunter2\x00\xff\xfe")
    assert result.binary
    assert "hunter2" not in result.text
    assert f"DB_PASSWORD={REDACTED}" in result.text


def test_excerpt_is_redacted() -> None:
    log = f"starting\nusing {pem_block()}\npanic: dial postgres://app:pw9@db:5432: refused\n"
    result = excerpt(log)
    assert (
        result.text
        == f"starting\nusing {REDACTED}\npanic: dial postgres://app:{REDACTED}@db:5432: refused"
    )


def test_excerpt_starting_inside_a_private_key_shows_none_of_it() -> None:
    # A key bigger than the window the excerpt reads, just before the crash.
    body = [fake("", 64, _ALNUM + "+/") for _ in range(2000)]
    log = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END PRIVATE KEY-----\nboom\n"
    result = excerpt(log, max_lines=50)
    assert result.text == f"{REDACTED}\nboom"
    assert result.truncated


def test_excerpt_sees_a_private_key_that_starts_above_the_shown_lines() -> None:
    # The process died while printing the key: there is no END line to recognise it by.
    body = "\n".join(fake("", 64, _ALNUM + "+/") for _ in range(60))
    result = excerpt(f"loading key\n-----BEGIN PRIVATE KEY-----\n{body}\n", max_lines=10)
    assert result.text == f"loading key\n{REDACTED}"


@pytest.mark.parametrize("kind", [bytes, str])
def test_huge_log_gives_a_bounded_excerpt_of_its_end(kind: type[bytes] | type[str]) -> None:
    line, last = "INFO request served in 12ms\n", "FATAL password=hunter2 out of memory\n"
    raw_text = line * (50 * 1024 * 1024 // len(line)) + last
    raw: bytes | str = raw_text.encode() if kind is bytes else raw_text
    result = excerpt(raw, max_lines=20, max_bytes=4096)
    assert result.original_bytes == len(raw_text)
    assert result.truncated
    assert not result.binary
    assert len(result.text.encode()) <= 4096
    assert result.text.split("\n") == [line.strip()] * 19 + [
        f"FATAL password={REDACTED} out of memory"
    ]


def test_excerpt_of_text_with_lone_surrogates_is_valid_utf8() -> None:
    result = excerpt("bad \udcff byte\n")
    assert result.text.encode("utf-8") == "bad \ufffd\ufffd\ufffd byte".encode()


@pytest.mark.parametrize(
    ("max_lines", "max_bytes"),
    [pytest.param(0, 10, id="no lines"), pytest.param(5, 0, id="no bytes")],
)
def test_excerpt_rejects_empty_budgets(max_lines: int, max_bytes: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        excerpt("x", max_lines=max_lines, max_bytes=max_bytes)


def test_log_excerpt_is_immutable() -> None:
    result = excerpt("x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.text = "changed"  # type: ignore[misc]


# --- env vars ---


def test_env_names_lists_names_and_never_values() -> None:
    env: list[dict[str, object]] = [
        {"name": "DB_HOST", "value": "postgres"},
        {"name": "DB_PASSWORD", "value": "Xk9pL2vQ7mZt"},
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
    ]
    assert env_names(env) == ["DB_HOST", "DB_PASSWORD", "API_TOKEN"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(None, [], id="no env"),
        pytest.param([], [], id="empty env"),
        pytest.param(
            [{"value": "x"}, {"name": ""}, {"name": 3}, {"name": "OK"}], ["OK"], id="malformed"
        ),
    ],
)
def test_env_names_skips_what_has_no_name(
    env: list[dict[str, object]] | None, expected: list[str]
) -> None:
    assert env_names(env) == expected
