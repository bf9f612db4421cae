"""What a crash-looping container says about its death, read from text: the container runtime's
start errors, the kubelet's probe events, and the application's last log lines.

Pure parsing, no I/O. The texts are matched as containerd, CRI-O (runc or crun), the kubelet and
common language runtimes really write them. Nothing here redacts: callers put every line they
copy through `Investigation` or `redact`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from enum import StrEnum

# Only the end of a log is scanned: the crash is there, and a 100 MB log must cost no more.
_SCAN_LINES = 400
_SCAN_CHARS = 64 * 1024
_LINE_LIMIT = 4096  # a JSON log line with its stack trace is read whole


class Signal(StrEnum):
    """The kind of failure a piece of text points at."""

    COMMAND = "command-not-found"
    PERMISSION = "permission-denied"
    EXEC_FORMAT = "exec-format"
    CONFIG_KEY = "missing-config-key"
    CONFIG_FILE = "missing-file"
    DEPENDENCY = "dependency"
    CREDENTIALS = "credentials"  # a dependency answered and refused the credentials
    SEGFAULT = "segfault"
    START_OTHER = "start-error"


@dataclass(frozen=True)
class Clue:
    """One signal found in a text: the line it is in (raw, not redacted), where, and what it
    names (a command, a config key, a file path, a host)."""

    signal: Signal
    line: str
    index: int = 0
    subject: str | None = None
    detail: str = ""
    host_ip: str | None = None
    port: int | None = None


# --- the container runtime's start errors ------------------------------------------------------
# containerd: 'failed to create containerd task: failed to create shim task: OCI runtime create
# failed: runc create failed: unable to start container process: exec: "foo": executable file
# not found in $PATH: unknown'; CRI-O with crun: 'executable file `foo` not found in $PATH: No
# such file or directory: OCI runtime attempted to invoke a command that was not found'.
_START_COMMAND = re.compile(
    r"executable file (?:`[^`]*` )?not found|OCI runtime attempted to invoke a command that was"
    r" not found|exec: \"[^\"]*\": stat [^:]*: no such file or directory"
    r"|unable to start container process: exec[^:]*: no such file or directory",
    re.IGNORECASE,
)
_START_PERMISSION = re.compile(
    r"exec: \"[^\"]*\": permission denied|open executable: permission denied"
    r"|OCI permission denied|unable to start container process: exec[^:]*: permission denied",
    re.IGNORECASE,
)
_START_SUBJECT = re.compile(
    r"exec: \"(?P<s>[^\"]+)\"|executable file `(?P<t>[^`]+)`|exec (?P<u>/\S+?):"
)
# runc: "exec /app/server: exec format error" (older: "standard_init_linux.go:228: exec user
# process caused: exec format error"); crun: "exec container process `/app/server`: Exec format
# error".
_EXEC_FORMAT = re.compile(
    r"exec (?P<s>/\S+?): exec format error|exec container process `(?P<t>[^`]+)`: exec format "
    r"error|exec format error",
    re.IGNORECASE,
)


def start_error(text: str) -> Clue | None:
    """Classify a runtime's start error (a `StartError`/`ContainerCannotRun` message, or the
    kubelet's `Failed` event about it); None when the text is not one."""
    if not text:
        return None
    subject_match = _START_SUBJECT.search(text)
    subject = None
    if subject_match:
        subject = subject_match["s"] or subject_match["t"] or subject_match["u"]
    if _START_COMMAND.search(text):
        return Clue(Signal.COMMAND, text, subject=subject, detail="executable file not found")
    if _START_PERMISSION.search(text):
        return Clue(Signal.PERMISSION, text, subject=subject, detail="permission denied")
    exec_format = _EXEC_FORMAT.search(text)
    if exec_format:
        subject = exec_format["s"] or exec_format["t"]
        return Clue(Signal.EXEC_FORMAT, text, subject=subject, detail="exec format error")
    if re.search(r"OCI runtime|runc create failed|crun:|failed to create (?:shim|containerd) task"
                 r"|failed to start container|container create failed", text, re.I):  # fmt: skip
        return Clue(Signal.START_OTHER, text, detail="the container runtime could not start it")
    return None


# --- the application's log ---------------------------------------------------------------------
_SHELL = r"^(?:/(?:usr/)?bin/)?(?:ba|da|z|k|a)?sh: (?:\d+: |line \d+: )?(?:exec: )?(?:\d+: )?"
_COMMAND_LOG = (
    re.compile(
        _SHELL + r"(?P<s>[^:\n]+): (?:not found|command not found|No such file or directory)$"
    ),
    re.compile(r"exec (?P<s>\S+): no such file or directory"),
    re.compile(r"exec: \"(?P<s>[^\"]+)\": executable file not found"),
    re.compile(r"^(?P<s>\S+): command not found$"),
    # GNU env quotes the name with typographic quotes in UTF-8 locales.
    re.compile(r"^(?:/usr/bin/)?env: ['\u2018]?(?P<s>[^'\u2019:]+)['\u2019]?: No such file"),
)
_PERMISSION_EXEC_LOG = (
    re.compile(_SHELL + r"(?P<s>[^:\n]+): Permission denied$"),
    re.compile(r"exec (?P<s>\S+): permission denied"),
    re.compile(r"exec: \"(?P<s>[^\"]+)\": permission denied"),
)
_PERMISSION_FILE_LOG = (
    re.compile(
        r"\b(?:open|mkdir|mkdirat|creat|create|stat|lstat|remove|unlink|rename|chmod|chown|write"
        r"|read|symlink|openat)\s+(?P<s>/[^\s:'\"]+): (?:permission denied|read-only file system)",
        re.IGNORECASE,
    ),
    re.compile(r"\[Errno 13\] Permission denied: '(?P<s>[^']+)'"),
    re.compile(r"\[Errno 30\] Read-only file system: '(?P<s>[^']+)'"),
    re.compile(r"EACCES: permission denied, \w+ '(?P<s>[^']+)'"),
    # nginx: mkdir() "/var/cache/nginx/client_temp" failed (13: Permission denied)
    re.compile(
        r"\"(?P<s>/[^\"]+)\" failed \((?:13: Permission denied|30: Read-only file system)\)"
    ),
    re.compile(r"(?P<s>/[^\s:'\"()]+) \(Permission denied\)"),
    re.compile(r"listen tcp (?P<s>[^\s]*:\d+): bind: permission denied"),
)
_CONFIG_KEY_LOG = (
    re.compile(r"required key (?P<s>\w+) missing value"),
    re.compile(
        r"(?:environment variable|env(?:ironment)? var(?:iable)?|env)\s+['\"`]?"
        r"(?P<s>[A-Za-z_][\w.]*)['\"`]?\s+(?:is\s+)?"
        r"(?:not set|unset|missing|undefined|not defined|empty|required|must be set)",
        re.IGNORECASE,
    ),
    # oauth2-proxy: "provider missing setting: client-id", "missing setting: client-secret or
    # client-secret-file": a setting's name may hold hyphens.
    re.compile(
        r"missing (?:required )?(?:environment variables?|env vars?|config(?:uration)? "
        r"(?:keys?|values?"
        r"|options?|settings?|variables?)|settings?|variables?)[:\s]+['\"`\[]?"
        r"(?P<s>[A-Za-z_](?:[\w.-]*\w)?)",
        re.IGNORECASE,
    ),
    re.compile(
        r"(?<![\w.-])['\"`]?(?P<s>[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{3,})['\"`]?\s+(?:environment "
        r"variable\s+)?(?:is\s+)?(?:not set|unset|must be set|is required|required but not set|is "
        r"missing|missing|is empty|not defined|undefined)\b"
    ),
    re.compile(r"KeyError: ['\"](?P<s>[A-Z][A-Z0-9_]+)['\"]"),
    re.compile(r"key not found: \"(?P<s>[A-Z][A-Z0-9_]+)\""),
    re.compile(r"Could not resolve placeholder '(?P<s>[^']+)'"),
)
_LOG_LEVELS = frozenset({"ERROR", "FATAL", "WARN", "WARNING", "INFO", "DEBUG", "TRACE", "PANIC",
                         "CRITICAL", "ERR", "CRIT", "EMERG", "ALERT", "NOTICE"})  # fmt: skip
# "missing setting for email validation: ..." names no setting.
_NOT_NAMES = frozenset({"for", "in", "from", "the", "a", "an", "of", "to", "or", "and", "at", "on",
                        "value", "values", "required"})  # fmt: skip
# pydantic-settings names the field on the line before: "database_url\n  Field required [...".
_PYDANTIC_MISSING = re.compile(r"^\s*Field required \[type=missing")
_CONFIG_FILE_LOG = (
    re.compile(r"\bopen (?P<s>/[^\s:'\"]+): no such file or directory", re.IGNORECASE),
    re.compile(r"No such file or directory: '(?P<s>/[^']+)'"),
    re.compile(r"ENOENT: no such file or directory, \w+ '(?P<s>/[^']+)'"),
    re.compile(r"(?P<s>/[^\s:'\"()]+) \(No such file or directory\)"),
    re.compile(r"Config File \"(?P<s>[^\"]+)\" Not Found"),
    re.compile(
        r"config(?:uration)? file ['\"]?(?P<s>/[^\s'\"]+)['\"]? "
        r"(?:not found|does not exist|is missing)",
        re.I,
    ),
    # Rust's anyhow chain, read as one line: "failed to read /etc/x.toml: No such file or
    # directory (os error 2)".
    re.compile(
        r"\b(?:read|open|load|reading|opening|loading)\s+['\"`]?(?P<s>/[^\s:'\"`()]+)['\"`]?: "
        r"No such file or directory",
        re.I,
    ),
)
_DEPENDENCY_FAILURES = (
    ("DNS lookup failed (no such host)", re.compile(
        r"no such host|name or service not known|could not translate host name|getaddrinfo "
        r"(?:ENOTFOUND|EAI_AGAIN)|temporary failure in name resolution|UnknownHostException"
        r"|nodename nor servname|Name does not resolve|server misbehaving", re.IGNORECASE)),
    ("connection refused", re.compile(
        r"connection refused|ECONNREFUSED|\bconnection to \S+ refused", re.IGNORECASE)),
    ("connection timed out", re.compile(
        r"i/o timeout|connection timed out|ETIMEDOUT|connect timeout|timed out (?:while )?"
        r"connecting|server selection timed out|connection attempt timed out", re.IGNORECASE)),
    ("host unreachable", re.compile(
        r"no route to host|EHOSTUNREACH|network is unreachable|ENETUNREACH", re.IGNORECASE)),
    ("connection could not be established", re.compile(
        r"could not be established|broker may not be available|connection reset by peer"
        r"|ECONNRESET", re.IGNORECASE)),
    ("could not connect", re.compile(
        r"\b(?:unable to|could not|couldn't|cannot|can't|failed to) (?:connect|dial|reach)\b",
        re.IGNORECASE)),
)  # fmt: skip
# A dependency that answered and refused the credentials: PostgreSQL (28P01), MySQL and MariaDB
# (1045), SQL Server (18456), Redis ACLs, Kafka SASL, MongoDB, RabbitMQ.
_CREDENTIALS = re.compile(
    r"password authentication failed|SQLSTATE[ =]?28P01|\(SQLSTATE 28P01\)|InvalidPasswordError"
    r"|Access denied for user\b|\bLogin failed for user\b|\bWRONGPASS\b|\bNOAUTH\b"
    r"|SASL authentication (?:failed|error)|failed SASL auth|SaslAuthenticationException"
    r"|due to invalid credentials|Authentication failed\.|\bAuthenticationFailed\b"
    r"|ACCESS_REFUSED - Login was refused|invalid username[- /]?(?:or )?password"
    r"|\bbad credentials\b|\binvalid credentials\b",
    re.IGNORECASE,
)
# An API the app calls that answered 401 or 403: the client's words, not an access log line.
_HTTP_REFUSED = re.compile(
    r"\b(?:401|403) (?:Client Error|Unauthori[sz]ed|Forbidden)\b|status code (?:401|403)\b"
    r"|unexpected status(?: code)?:? \"?(?:401|403)\b|: Unauthori[sz]ed\s*$",
    re.IGNORECASE,
)
_ACCESS_LOG = re.compile(r"\"(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /\S* HTTP/[\d.]+\"")
# A failed login or handshake is the dependency answering: not an unavailable one.
_ANSWERED = re.compile(
    r"authentication failed|access denied|password|certificate|x509|tls: |unauthori[sz]ed"
    r"|permission denied for|does not exist",
    re.IGNORECASE,
)
_HOST = r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*)"
_IP = r"(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:]+\])"
_HOST_PATTERNS = (
    re.compile(rf"lookup {_HOST}(?: on \S+)?: (?:no such host|server misbehaving|i/o timeout)"),
    re.compile(rf"could not translate host name \"{_HOST}\""),
    re.compile(rf"getaddrinfo (?:ENOTFOUND|EAI_AGAIN) {_HOST}"),
    re.compile(rf"UnknownHostException: {_HOST}"),
    re.compile(rf"connection to server at \"{_HOST}\"(?: \({_IP}\))?, port (?P<port>\d+)"),
    re.compile(rf"{_IP}:(?P<port>\d+) \({_HOST}\)"),  # pgx: "10.96.131.7:5432 (postgres)"
    re.compile(rf"(?<![\w./-]){_HOST}/{_IP}:(?P<port>\d+)"),  # Java, Kafka: "kafka/10.0.0.5:9092"
    re.compile(
        rf"connecting to {_HOST}:(?P<port>\d+)"
    ),  # redis-py: "Error 111 connecting to redis:6379."
    re.compile(rf"dial tcp (?:{_IP}|{_HOST}):(?P<port>\d+)"),
    re.compile(rf"ECONNREFUSED (?:{_IP}|{_HOST}):(?P<port>\d+)"),
    re.compile(
        rf"\b(?:connect|connection|connecting) to (?:host )?['\"`]?(?:{_IP}|{_HOST}):(?P<port>\d+)"
    ),
    re.compile(rf"\b[a-z][a-z0-9+._-]*://(?:[^@/\s]*@)?{_HOST}(?::(?P<port>\d+))?"),
    re.compile(rf"(?<![\w./-]){_HOST}:(?P<port>\d{{2,5}})\b"),
)
# A name found next to an IP in structured logs: {"host":"postgres"} or host=postgres.
_NAME = r"([A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*)"
# Not "hostname": pino, bunyan and winston write the logger's own host there (the pod's name).
_HOST_FIELDS = re.compile(
    rf"\"(?:host|server|addr|address|db_host)\"\s*:\s*\"{_NAME}\"|\bhost=['\"]?{_NAME}",
    re.IGNORECASE,
)
_SOURCE_FILE = re.compile(r"\.(?:go|py|js|mjs|ts|java|kt|scala|rb|rs|c|cc|cpp|h|cs|php|ex|exs)$")
_SEGFAULT = re.compile(r"segmentation fault|SIGSEGV|\bsignal 11\b|segfault", re.IGNORECASE)
# Go reports a nil dereference as "panic: runtime error: invalid memory address ... [signal
# SIGSEGV ...]" and exits 2: an application bug, not a native crash.
_GO_PANIC = re.compile(r"panic: runtime error|goroutine \d+ \[")
_ERRORISH = re.compile(
    r"(?i)\b(?:error|exception|fatal|panic|traceback|failed|failure|critical|denied|refused"
    r"|not found|cannot|can't|could not|unable to|invalid|no such|missing|undefined|not defined"
    r"|unknown|killed|abort(?:ed|ing)?|exiting)\b"
)
# A line that opens with an exception or a fatal word. .NET's inner exceptions ("---> X: msg"),
# its "Unhandled exception. X: msg", errno-style suffixes ("SocketException (111): msg") and
# PHP's "PHP Fatal error:  Uncaught X: msg" count; so does a Rust panic.
_HEADLINE = re.compile(
    r"^\s*(?:--->\s*|Unhandled exception\.\s*)?(?:[\w.$\\]*(?:Error|Exception|Panic)\b"
    r"(?:\s*\([^)]*\))?\s*[:(]|panic:|fatal error:|FATAL\b|Fatal\b|"
    r"\[?(?:CRITICAL|FATAL|EMERG)\]?\b|Caused by:)|^PHP (?:Fatal|Parse) error:|^thread '[^']*' "
    r"panicked at|flag provided but not defined|unknown (?:flag|"
    r"option|command)|unrecognized (?:arguments|option)|invalid (?:option|argument)"
)
_USAGE = re.compile(r"^\s*(?:Usage of |usage: |Usage: )")
# Lines that only say where an error went, never what it was: stack frames and the footers that
# runtimes print between and after them (Java, .NET, Node, Python, PHP, Ruby, Rust, Go), and the
# code excerpts some error pages print.
_FRAME = re.compile(
    r"^\s+at\s+\S|^\s*--- End of (?:inner exception )?stack trace|^\s*\.\.\. \d+ (?:more|common "
    r"frames omitted)|^\s*File \"[^\"]+\", line \d+|^Traceback \(most recent call last\):"
    r"|^\s*#\d+ |^Stack trace:\s*$|^\s*thrown in .+ on line \d+\s*$|^\s*from \S+:\d+:in "
    r"|^note: run with `RUST_BACKTRACE=|^stack backtrace:\s*$|^goroutine \d+ \[|^\s+/\S+\.go:\d+"
    r"|^Node\.js v\d|^\s*\^+\s*$|^\s*[{}]\s*$|^\s+(?:errno|code|syscall|address|port|hostname"
    r"|path|dest|info|requireStack|cause|reason):|^node:internal/|^\s*\(Background on this error "
    r"at:|^\s*(?:During handling of the above exception|The above exception was the direct cause)"
    r"|^\s*\+\d+ vendor frames|^\s*(?:➜\s*)?\d+▕|^\s*\d+\s+\S+:\d+\s*$"
)
# A line that names an exception and nothing else: the message is on another line.
_BARE_CLASS = re.compile(
    r"(?:Caused by:\s*|--->\s*|Unhandled exception\.\s*|Exception in thread \"[^\"]*\"\s*)?"
    r"[\w.$\\]+(?:Exception|Error)(?:\s*\((?:0x)?[0-9A-Fa-f]+\))?:?"
)
_CAUSE_PREFIX = re.compile(r"^(?:Caused by:\s*|--->\s*)")
_RUST_PANIC = re.compile(r"^thread '[^']*' panicked at \S+:\d+:\d+:$")
_CHAIN_ITEM = re.compile(r"^\s+(?:\d+: )?(?P<m>\S.*)$")
# The kubelet's answer when the log of a container's run is gone (the runtime removed it):
# its words, not the application's.
_UNRETRIEVABLE = re.compile(r"^unable to retrieve container logs for \S+$")
# A process that stalled while it ran (an event loop or a runtime pause): why a liveness probe
# that passed for a while stops answering.
_STALL = re.compile(
    r"event[- ]loop (?:lag|delay|blocked|utili[sz]ation)|blocked the event loop|GC pause|Pause "
    r"Full|stop-the-world|thread ?pool starvation|Heartbeat took longer than|blocked for more than"
    r"|\bdeadlock detected\b",
    re.IGNORECASE,
)


def log_lines(text: str | None) -> list[str]:
    """The last lines of a log, each bounded, for scanning; a message a runtime spreads over
    several lines (a Rust panic, an anyhow error chain) is joined into one."""
    if not text:
        return []
    lines = text[-_SCAN_CHARS:].replace("\r\n", "\n").split("\n")
    return _joined([line[:_LINE_LIMIT] for line in lines[-_SCAN_LINES:] if line.strip()])


def _joined(lines: list[str]) -> list[str]:
    """Rust's panic message on the line after "panicked at file:line:col:", and anyhow's
    "Error: X" + "Caused by:" + its indented chain, each as the one line they mean."""
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if _RUST_PANIC.match(line.strip()) and following and not _FRAME.search(following):
            out.append(f"{line.strip()} {following.strip()}")
            index += 2
            continue
        if line.startswith("Error: ") and following.strip() == "Caused by:":
            chain = [line.removeprefix("Error: ").strip()]
            index += 2
            while index < len(lines) and (item := _CHAIN_ITEM.match(lines[index])):
                chain.append(item["m"].strip())
                index += 1
            out.append("Error: " + ": ".join(chain))
            continue
        out.append(line)
        index += 1
    return out


def scan_log(text: str | None) -> list[Clue]:
    """Every signal in a log, in the order of the lines (the last is nearest to the crash)."""
    lines = log_lines(text)
    found: list[Clue] = []
    go_panic = any(_GO_PANIC.search(line) for line in lines)
    for index, line in enumerate(lines):
        hit = _scan_line(line, index, lines, go_panic=go_panic)
        if hit is not None:
            found.append(hit)
    return found


def _first(patterns: tuple[re.Pattern[str], ...], line: str) -> re.Match[str] | None:
    return next((m for m in (p.search(line) for p in patterns) if m), None)


def _scan_line(line: str, index: int, lines: list[str], *, go_panic: bool) -> Clue | None:
    stripped = line.strip()
    match = _first(_COMMAND_LOG, stripped)
    if match:
        return Clue(Signal.COMMAND, line, index, match["s"].strip(), "not found")
    match = _first(_PERMISSION_EXEC_LOG, stripped)
    if match:
        return Clue(Signal.PERMISSION, line, index, match["s"].strip(), "exec")
    exec_format = _EXEC_FORMAT.search(line)
    if exec_format:
        subject = exec_format["s"] or exec_format["t"]
        return Clue(Signal.EXEC_FORMAT, line, index, subject, "exec format error")
    match = _first(_PERMISSION_FILE_LOG, line)
    if match:
        kind = "bind" if "bind:" in line else "read-only" if "read-only" in line.lower() else "file"
        return Clue(Signal.PERMISSION, line, index, match["s"], kind)
    credentials = _credentials(line, index)
    if credentials is not None:
        return credentials
    match = _first(_CONFIG_KEY_LOG, line)
    if match and match["s"].upper() not in _LOG_LEVELS and match["s"].lower() not in _NOT_NAMES:
        return Clue(Signal.CONFIG_KEY, line, index, match["s"], "missing key")
    if _PYDANTIC_MISSING.search(line) and index > 0:
        field = lines[index - 1].strip()
        if re.fullmatch(r"[A-Za-z_][\w.]*", field):
            return Clue(Signal.CONFIG_KEY, f"{field}: {line.strip()}", index, field, "missing key")
    match = _first(_CONFIG_FILE_LOG, line)
    if match:
        return Clue(Signal.CONFIG_FILE, line, index, match["s"], "missing file")
    dependency = _dependency(line, index, lines)
    if dependency is not None:
        return dependency
    if _SEGFAULT.search(line) and not go_panic:
        return Clue(Signal.SEGFAULT, line, index, None, "segmentation fault")
    return None


def _credentials(line: str, index: int) -> Clue | None:
    """A dependency that answered and refused the credentials, and which one when the line
    says; a 401/403 only as a client reports it (an access log of the app's own answers is not
    one)."""
    found = _CREDENTIALS.search(line)
    if found is None:
        found = None if _ACCESS_LOG.search(line) else _HTTP_REFUSED.search(line)
    if found is None:
        return None
    host, _, port = _host_port(line)
    return Clue(Signal.CREDENTIALS, line, index, host, found[0].strip(), port=port)


# Which kind of server refused the credentials, by its words; the words name its settings too.
_CREDENTIAL_KINDS = (
    ("PostgreSQL server", re.compile(r"28P01|password authentication failed|InvalidPassword"
                                     r"|failed SASL auth|\bpq: ", re.I), ("postgres", "pg", "db")),
    ("MySQL server", re.compile(r"Access denied for user|\b1045\b", re.I), ("mysql", "db")),
    ("SQL Server", re.compile(r"Login failed for user", re.I), ("mssql", "sql", "db")),
    ("Redis server", re.compile(r"WRONGPASS|NOAUTH", re.I), ("redis", "cache")),
    ("Kafka broker", re.compile(r"SASL|kafka", re.I), ("kafka", "sasl", "broker")),
    ("MongoDB server", re.compile(r"mongo", re.I), ("mongo", "mongodb", "db")),
    ("RabbitMQ broker", re.compile(r"ACCESS_REFUSED|amqp|rabbit", re.I), ("rabbitmq", "amqp")),
)  # fmt: skip
_QUOTE_END = re.compile(r" \(Connection: |\\?\", ?\\?\"|\"\}| in /\S+:\d+| at /| For details")


def credential_kind(line: str) -> str:
    """What refused the credentials: "PostgreSQL server", "Redis server", "API"."""
    return next((kind for kind, pattern, _ in _CREDENTIAL_KINDS if pattern.search(line)), "API")


def credential_words(line: str) -> set[str]:
    """Words that env var names of that kind of server's settings use (DB, POSTGRES, REDIS)."""
    found = next((words for _, pattern, words in _CREDENTIAL_KINDS if pattern.search(line)), ())
    return {*found, "database"} if "db" in found else set(found)


def credential_quote(line: str) -> str | None:
    """The refusal as the server or client worded it, from its first telling word: 'password
    authentication failed for user "orders" (SQLSTATE 28P01)'."""
    text = _readable(line)
    if text.startswith("{"):  # a JSON line cut short: its escaped quotes are quotes
        text = text.replace('\\"', '"')
    found = _CREDENTIALS.search(text) or _HTTP_REFUSED.search(text)
    if found is None:
        return None
    quote = text[found.start() :]
    end = _QUOTE_END.search(quote)
    return (quote[: end.start()] if end else quote).strip()[:160] or None


def _dependency(line: str, index: int, lines: list[str]) -> Clue | None:
    failure = next((name for name, pattern in _DEPENDENCY_FAILURES if pattern.search(line)), None)
    if failure is None or (failure == "could not connect" and _ANSWERED.search(line)):
        return None
    host, ip, port = _host_port(line)
    if host is None and ip is not None:
        host = _name_nearby(lines, index)
    return Clue(Signal.DEPENDENCY, line, index, host, failure, host_ip=ip, port=port)


def _host_port(line: str) -> tuple[str | None, str | None, int | None]:
    """(name, ip, port) of the peer a failure line names; the name is None when only an IP is."""
    for pattern in _HOST_PATTERNS:
        for match in pattern.finditer(line):
            groups = match.groupdict()
            host, ip = groups.get("host"), groups.get("ip")
            if host and (_SOURCE_FILE.search(host) or host.isdigit()):
                continue
            if host and is_ip(host):
                host, ip = None, host
            if not host and not ip:
                continue
            port = int(groups["port"]) if groups.get("port") else None
            return host, ip, port
    return None, None, None


def _name_nearby(lines: list[str], index: int) -> str | None:
    """A host name given by a structured field on this line or one of the few lines before."""
    for line in reversed(lines[max(0, index - 5) : index + 1]):
        match = _HOST_FIELDS.search(line)
        if match:
            name = next(g for g in match.groups() if g)
            if not is_ip(name):
                return name
    return None


def is_ip(host: str) -> bool:
    """Whether a host is an IP address rather than a name (`db`, `cafe` and `feed` are names,
    though made of hex digits)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def unretrievable(text: str | None) -> bool:
    """Whether a "log" is the kubelet saying the run's log is gone."""
    return bool(text) and _UNRETRIEVABLE.match((text or "").strip()) is not None


def stall_line(text: str | None) -> str | None:
    """The last line saying the process stalled while it ran (event-loop lag, a GC pause), as
    it reads."""
    found = next((line for line in reversed(log_lines(text)) if _STALL.search(line)), None)
    return _readable(found).strip()[:200] if found else None


def _without_usage(lines: list[str]) -> list[str]:
    """The lines without a command-line usage text (its help lines mention "error" and such)."""
    kept: list[str] = []
    in_usage = False
    for line in lines:
        if _USAGE.match(line):
            in_usage = True
            continue
        if in_usage and line[:1] in " \t":
            continue
        in_usage = False
        kept.append(line)
    return kept or lines


def error_lines(text: str | None, limit: int = 5) -> list[str]:
    """The last lines of a log that read like errors (the last lines at all when none do),
    without stack frames and footers."""
    lines = _without_usage(log_lines(text))
    said = [line for line in lines if not _FRAME.search(line)] or lines
    errors = [line for line in said if _ERRORISH.search(line)]
    return (errors or said)[-limit:]


def headline(text: str | None) -> str | None:
    """The one log line that best says why the process ended: the last exception or fatal line
    (the deepest cause of a chain), else the last error-like line, else the last line. Stack
    frames and footers are never it, nor an exception's bare class name when a line with its
    message exists. Structured (JSON) lines are read as their message and error fields."""
    lines = _without_usage(log_lines(text))
    if not lines:
        return None
    said = [line for line in lines if not _FRAME.search(line)] or lines
    worded = [line for line in said if not _BARE_CLASS.fullmatch(line.strip())] or said
    chosen = next(
        (line for line in reversed(worded) if _HEADLINE.search(line) or _fatal_json(line)), None
    )
    if chosen is None:
        chosen = next(
            (line for line in reversed(worded) if _ERRORISH.search(line) or _warn_json(line)),
            worded[-1],
        )
    readable = _readable(chosen).strip()
    return _CAUSE_PREFIX.sub("", readable)[:300] if readable else None


def reads_as_error(line: str) -> bool:
    """Whether a (headline) line says something went wrong, rather than being ordinary output."""
    return bool(_HEADLINE.search(line) or _ERRORISH.search(line))


def _fatal_json(line: str) -> bool:
    return line.lstrip().startswith("{") and bool(
        re.search(
            r"\"(?:level|severity|lvl)\"\s*:\s*(?:\"(?:fatal|panic|critical|emerg)\"|60)",
            line,
            re.I,
        )
    )


def _warn_json(line: str) -> bool:
    return line.lstrip().startswith("{") and bool(
        re.search(
            r"\"(?:level|severity|lvl)\"\s*:\s*(?:\"(?:warn|warning|error|err)\"|40|50)", line, re.I
        )
    )


def _readable(line: str) -> str:
    """A JSON log line as "msg: error"; any other line as it is."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return stripped
    try:
        record = json.loads(stripped)
    except ValueError:
        return stripped
    if not isinstance(record, dict):
        return stripped
    parts = [record.get(key) for key in ("msg", "message", "error", "err", "exception")]
    text = ": ".join(str(part) for part in parts if isinstance(part, str | int | float) and part)
    return text or stripped


# --- the kubelet's probe events ---------------------------------------------------------------
_PROBE_FAILED = re.compile(
    r"^(?P<probe>Liveness|Readiness|Startup) probe (?:failed|errored)(?::\s*(?P<detail>.*))?", re.S
)
_PROBE_KILL = re.compile(
    r"^Container (?P<container>\S+) failed (?P<probe>liveness|startup) probe, will be restarted"
)


@dataclass(frozen=True)
class ProbeFailure:
    """One `Unhealthy` event: which probe failed and how."""

    probe: str  # liveness | readiness | startup
    detail: str
    kind: str  # timeout | refused | status | reset | other


def probe_failure(message: str) -> ProbeFailure | None:
    """Parse an `Unhealthy` event message ("Liveness probe failed: HTTP probe failed with
    statuscode: 500"); None for anything else."""
    match = _PROBE_FAILED.match(message.strip())
    if not match:
        return None
    detail = (match["detail"] or "").strip()
    lowered = detail.lower()
    if re.search(r"deadline exceeded|client\.timeout|timed out|timeout", lowered):
        kind = "timeout"
    elif "connection refused" in lowered:
        kind = "refused"
    elif re.search(r"statuscode: \d+", lowered):
        kind = "status"
    elif "connection reset" in lowered or lowered.endswith("eof"):
        kind = "reset"
    else:
        kind = "other"
    return ProbeFailure(match["probe"].lower(), detail, kind)


def probe_kill(message: str) -> str | None:
    """The probe ("liveness" or "startup") a `Killing` event says the kubelet restarted the
    container for; None when the kill was for another reason."""
    match = _PROBE_KILL.match(message.strip())
    return match["probe"] if match else None
