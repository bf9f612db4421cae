"""Removal of secrets from anything that leaves the cluster (DESIGN.md section 8).

Reports and Linear issues are read by many people, so every log excerpt and message copied from
the cluster goes through `redact` first, and env vars are reported by name only (`env_names`).
`excerpt` turns a container log of any size into a short, redacted, valid UTF-8 tail.

Redaction is pattern based and errs towards removing too much next to a secret-looking key, but
leaves identifiers the diagnosis needs readable: image digests, pod UIDs, hex hashes, paths,
timestamps and host:port pairs.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["REDACTED", "LogExcerpt", "env_names", "excerpt", "redact"]

REDACTED = "[REDACTED]"

# Logs are written by whatever runs in the cluster, so every pattern here runs in time linear in
# its input: a pattern that scans a run of characters may only start where such a run starts
# (the look-behinds), and possessive quantifiers (*+) keep a failed match from retrying shorter
# runs. `redact` also skips the patterns whose marker text does not occur at all.

# --- private keys ---
_PEM_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----")
# A line break inside a PEM body: a real one, a JSON-escaped one, or the spaces a PEM pasted into
# an env var gets. Body chunks shorter than 16 characters must end in padding, so that an
# unterminated block does not swallow the ordinary words of the lines after it.
_PEM_BREAK = r"(?:\r?\n|\\r?\\n|[ \t])+"
_PEM_CHUNK = (
    r"(?:[A-Za-z0-9+/]{16,}={0,2}|[A-Za-z0-9+/]*={1,2}|Proc-Type:[^\r\n\\]*|DEK-Info:[^\r\n\\]*)"
)
_PEM_UNTERMINATED_BODY = re.compile(rf"(?:{_PEM_BREAK}{_PEM_CHUNK})*")
_PEM_LINE_SPLIT = re.compile(r"(\r?\n|\\r?\\n)")
_PEM_BODY_LINE = re.compile(r"[ \t]*(?:[A-Za-z0-9+/=]*|Proc-Type:.*|DEK-Info:.*)[ \t]*")
_PEM_LOOKBACK = 16384  # an 8192-bit RSA key is about 6.5 KB of base64


# --- tokens recognisable by their shape, wherever they appear ---
def _token(prefix: str, body: str, *, hyphen_joins: bool = False) -> str:
    """A token that starts with `prefix` at the start of a word and continues with `body`.

    The word-start check is a look-behind placed after the prefix, so that every alternative of
    `_TOKENS` starts with a literal and the regex engine jumps between candidate characters
    instead of trying each position (about a hundred times faster on ordinary logs).
    """
    before = r"[\w-]" if hyphen_joins else r"\w"
    return f"{re.escape(prefix)}(?<!{before}{re.escape(prefix)}){body}"


_AWS_KEY_ID_PREFIXES = (
    "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "AROA", "ANPA", "ANVA", "APKA",
)  # fmt: skip
_TOKENS = re.compile(
    "|".join(
        (
            *(_token(prefix, r"[A-Z0-9]{16}\b") for prefix in _AWS_KEY_ID_PREFIXES),
            _token("eyJ", r"[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]*+", hyphen_joins=True),  # JWT
            _token("gh", r"[pousr]_[A-Za-z0-9]{20,}"),
            _token("github_pat_", r"\w{20,}"),
            _token("glpat-", r"[\w-]{20,}+", hyphen_joins=True),
            _token("xox", r"[abposr]-[A-Za-z0-9-]{10,}+", hyphen_joins=True),
            _token("xapp-", r"[A-Za-z0-9-]{10,}+", hyphen_joins=True),
            _token("sk_", r"(?:live|test)_[A-Za-z0-9]{10,}"),  # Stripe; pk_ keys are public
            _token("rk_", r"(?:live|test)_[A-Za-z0-9]{10,}"),
            _token("whsec_", r"[A-Za-z0-9]{10,}"),
            _token("lin_", r"(?:api|oauth)_[A-Za-z0-9]{20,}"),
            _token("AIza", r"[\w-]{35}"),
            _token("npm_", r"[A-Za-z0-9]{36}"),
        )
    )
)
# OpenAI/Anthropic style keys. They are only taken with a capital and a digit, which keeps
# lowercase pod names such as sk-worker-7d9f8b6c5-x2k4z out.
_SK_KEY = re.compile(_token("sk-", r"[\w-]{20,}+", hyphen_joins=True))
_SLACK_WEBHOOK = re.compile(r"(https://hooks\.slack\.com/services/)[A-Za-z0-9/_-]+")

# --- headers and URLs ---
# Separator of a header written as `Name: v`, `"Name": "v"` or, in escaped JSON, `\"Name\":\"v\"`.
_HEADER_SEP = r"\\*[\"']?[ \t]*[:=][ \t]*\\*[\"']?"
_AUTH_HEADER = re.compile(
    rf"(?i)\b((?:proxy-)?authorization{_HEADER_SEP})"
    r"((?:bearer|basic|digest|token|negotiate|ntlm|apikey|aws4-hmac-sha256)[ \t]+)?[^\s\"'\\]+"
)
_COOKIE_HEADER = re.compile(rf"(?i)\b((?:set-)?cookie{_HEADER_SEP})[^\r\n\"'\\]+")
_BEARER = re.compile(r"(?i)\b(bearer[ \t]+)([A-Za-z0-9._~+/-]++=*)")
# scheme://user:password@host; the password may hold an unescaped '@', the last one ends it.
_URL_USERINFO = re.compile(
    r"(?<![a-zA-Z0-9+.-])([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s:/?#@'\"]*)(?::([^\s/?#'\"]*))?@"
)

# --- key/value pairs ---
_SEP = r"[ \t]*(?:=>|:=|[:=])[ \t]*"
_QUOTED = r"\\+\"[^\"\n]*?\\+\"|\"(?:[^\"\\\n]|\\.)*\"?|'(?:[^'\\\n]|\\.)*'?"
_ENV_REF = r"\$\{[^}\s]*\}|\$\([^)\s]*\)"
_UNQUOTED = r"(?:[^\s\"'`,;&<>(){}\[\]\\]|\[[^\s\[\]]*\])+"
# Keys start a word: not inside a path (/volumes/secret/password: ...), an identifier or a domain.
_KEY_START = r"(?<![\w./\\-])"
# A key is a whole word (possessive) with one of these stems in it; _is_secret_key decides.
_KEY_STEMS = ("pass", "pwd", "secret", "token", "key", "auth", "credential", "sig")
_KEY_STEM_HINT = re.compile("|".join(_KEY_STEMS))
_SECRETISH_KEY = rf"(?=[\w.-]*?(?:{'|'.join(_KEY_STEMS)}))[\w.-]*+"
_SECRET_KV = re.compile(
    rf"(?i)(?<!\\)(?P<q>\\*[\"'])(?P<qkey>{_SECRETISH_KEY})(?P=q)(?P<qsep>{_SEP})(?P<qval>{_QUOTED})"
    rf"|{_KEY_START}(?P<key>{_SECRETISH_KEY})(?P<sep>{_SEP})"
    rf"(?P<val>{_QUOTED}|{_ENV_REF}|{_UNQUOTED})"
)
# Command-line flags take their value after a space too: `mysql --password hunter2`.
_SECRET_FLAG = re.compile(
    rf"(?i){_KEY_START}(?P<key>--?{_SECRETISH_KEY})(?P<sep>[ \t]+)"
    rf"(?P<val>{_QUOTED}|[^\s\"'`-][^\s\"'`]*)"
)
_ENTROPY_KV = re.compile(
    rf"{_KEY_START}(?P<head>\\*[\"']?[A-Za-z_][\w.-]*\\*[\"']?{_SEP})(?P<q>\\*[\"'])?"
    r"(?P<val>[A-Za-z0-9+/_-]{20,}={0,2})"
    r"(?(q)(?P=q)|(?=[\s,;&\"'<>(){}\[\]\\]|\.(?:\s|$)|$))"
)

_SECRET_WORDS = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey", "privatekey",
    "credential", "signature", "authkey", "sessionkey", "signingkey", "encryptionkey", "masterkey",
)  # fmt: skip
# Too short to look for inside longer words: "author", "signal", "compass" are not secrets.
_SECRET_LAST_WORDS = frozenset({"pass", "pwd", "auth", "sig"})
# Keys that name, point at or count a secret rather than hold one; PWD is the working directory.
_NOT_SECRET_KEYS = frozenset({"pwd", "oldpwd", "authorization", "proxyauthorization"})
_NOT_SECRET_SUFFIXES = (
    "name", "names", "ref", "file", "path", "dir", "type", "expiry", "expiresat", "expiration",
    "ttl", "length", "url", "uri", "endpoint", "count", "tokens", "secrets", "size", "mode",
    "version", "kind", "enabled", "required", "source", "namespace", "provider", "policy",
    "header", "field", "mount", "volume", "format",
)  # fmt: skip
# `*_key` is a secret unless the first part says what kind of non-secret key it is.
_NOT_SECRET_KEY_KINDS = frozenset({
    "public", "primary", "foreign", "sort", "partition", "cache", "routing", "label", "selector",
    "topology",
})  # fmt: skip
# Values that hold nothing secret: empty, masked, null-ish, or a reference to another variable.
_PLACEHOLDER = re.compile(rf"(?i)\*{{0,64}}|\[REDACTED\]|null|nil|none|true|false|{_ENV_REF}")
# "failed to fetch anonymous token: unexpected status" is a sentence, not a key and its value.
_PROSE_BEFORE = re.compile(r"[A-Za-z][ \t]")
_PROSE_AFTER = re.compile(r"[ \t]+[a-z]+(?![\w.-]*[:=])")  # a next word that is not a key
_PROSE_WORD = re.compile(r"[a-z]+")
# What a message says next after naming a credential ("failed SASL auth: FATAL: password
# authentication failed", MySQL's "(using password: YES)"): the word a secret is named by is not
# the secret, and neither are these. Only after `: ` in prose, never after `=`.
_MESSAGE_WORD = re.compile(
    r"(?i)fatal|error|err|panic|critical|crit|warn|warning|yes|no|failed|invalid|denied"
    r"|refused|rejected|expired|missing|required|unauthori[sz]ed|forbidden"
)
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def redact(text: str) -> str:
    """Return `text` with every secret this module recognises replaced by ``[REDACTED]``.

    Keys, URL schemes, users and hosts, and header names stay so that the reader still sees what
    was there (``password=[REDACTED]``, ``postgres://app:[REDACTED]@db:5432/shop``). Redacting
    already redacted text changes nothing.
    """
    if not text:
        return text
    # Substring tests are far cheaper than regex scans; "[REDACTED]" adds none of these markers.
    lowered = text.lower()
    if "private key" in lowered:
        text = _redact_private_keys(text)
    if "://" in text:
        text = _URL_USERINFO.sub(_url_userinfo, text)
    if "authorization" in lowered:
        text = _AUTH_HEADER.sub(lambda m: f"{m[1]}{m[2] or ''}{REDACTED}", text)
    if "cookie" in lowered:
        text = _COOKIE_HEADER.sub(lambda m: m[1] + REDACTED, text)
    if "bearer" in lowered:
        text = _BEARER.sub(lambda m: m[1] + REDACTED if _tokenish(m[2]) else m[0], text)
    text = _TOKENS.sub(REDACTED, text)
    if "sk-" in text:
        text = _SK_KEY.sub(lambda m: REDACTED if _has_upper_and_digit(m[0]) else m[0], text)
    if "hooks.slack.com" in text:
        text = _SLACK_WEBHOOK.sub(lambda m: m[1] + REDACTED, text)
    if _KEY_STEM_HINT.search(lowered):
        text = _SECRET_KV.sub(_secret_kv, text)
        text = _SECRET_FLAG.sub(_secret_kv, text)
    return _ENTROPY_KV.sub(_entropy_kv, text)


def _redact_private_keys(text: str) -> str:
    text = _redact_pem_blocks(text)
    # An END without its BEGIN: the excerpt started inside the block. Walk back over its body lines.
    out: list[str] = []
    done = 0
    for end in _PEM_END.finditer(text):
        floor = max(done, end.start() - _PEM_LOOKBACK)
        cut = pos = end.start()
        pieces = _PEM_LINE_SPLIT.split(text[floor:pos])  # lines at even indexes, breaks between
        for index in range(len(pieces) - 1, -1, -1):
            is_line = index % 2 == 0
            if is_line and not _PEM_BODY_LINE.fullmatch(pieces[index]):
                break
            pos -= len(pieces[index])
            if is_line:
                cut = pos
        out += [text[done:cut], REDACTED]
        done = end.end()
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _redact_pem_blocks(text: str) -> str:
    """Replace BEGIN..END blocks whole; a block without END up to where its base64 stops."""
    out: list[str] = []
    done = 0
    more_ends = True  # once no END follows a BEGIN, none follows a later one: do not search again
    while begin := _PEM_BEGIN.search(text, done):
        end = _PEM_END.search(text, begin.end()) if more_ends else None
        more_ends = end is not None
        body = None if end else _PEM_UNTERMINATED_BODY.match(text, begin.end())
        out += [text[done : begin.start()], REDACTED]
        done = end.end() if end else body.end() if body else begin.end()
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _has_upper_and_digit(value: str) -> bool:
    return any(c.isupper() for c in value) and any(c.isdigit() for c in value)


def _url_userinfo(match: re.Match[str]) -> str:
    scheme, user, password = match[1], match[2], match[3]
    if password:
        return f"{scheme}{user}:{REDACTED}@"
    # A user without a password that is long is a token used as the user (https://<token>@host).
    if password is None and len(user) >= 16 and user != REDACTED:
        return f"{scheme}{REDACTED}@"
    return match[0]


def _tokenish(value: str) -> bool:
    """Whether the word after `Bearer` is a credential, not prose ("bearer authentication")."""
    if len(value) < 8:
        return False
    return any(not c.isalpha() for c in value) or any(c.isupper() for c in value[1:])


def _is_secret_key(key: str) -> bool:
    words = re.split(r"[^a-z0-9]+", _CAMEL.sub(r"\1_\2", key).lower())
    words = [word for word in words if word]
    compact = "".join(words)
    if not words or compact in _NOT_SECRET_KEYS or compact.endswith(_NOT_SECRET_SUFFIXES):
        return False
    if any(word in compact for word in _SECRET_WORDS) or words[-1] in _SECRET_LAST_WORDS:
        return True
    return len(words) >= 2 and words[-1] == "key" and words[-2] not in _NOT_SECRET_KEY_KINDS


def _quoted_redaction(value: str) -> str:
    """`value` with its content replaced, its quotes (plain or backslash-escaped) kept."""
    quote = re.match(r"\\*[\"']?", value)
    lead = quote[0] if quote else ""
    trail = lead if lead and len(value) >= 2 * len(lead) and value.endswith(lead) else ""
    inner = value[len(lead) : len(value) - len(trail)]
    if _PLACEHOLDER.fullmatch(inner):
        return value  # nothing secret there, and keeping it makes redaction idempotent
    return f"{lead}{REDACTED}{trail}"


def _secret_kv(match: re.Match[str]) -> str:
    if match.groupdict().get("qkey") is not None:  # _SECRET_FLAG has no quoted-key branch
        if not _is_secret_key(match["qkey"]):
            return match[0]
        head = match[0][: match.start("qval") - match.start()]
        return head + _quoted_redaction(match["qval"])
    if not _is_secret_key(match["key"]) or _in_prose(match):
        return match[0]
    return f"{match['key']}{match['sep']}{_quoted_redaction(match['val'])}"


def _in_prose(match: re.Match[str]) -> bool:
    """Whether `key: value` is part of a message ("fetch token: unexpected status from").

    Only a lowercase word (or one of the words a message goes on with: FATAL, YES) after `: `
    counts, and only when a word comes before the key or a word that is not another key comes
    after the value: YAML (`password: x` alone on its line), `user: a password: b`, logfmt (`=`)
    and values with digits or capitals are still redacted.
    """
    sep, start, end = match["sep"], match.start(), match.end()
    return (
        sep.strip() == ":"
        and sep[-1] in " \t"
        and (
            _PROSE_WORD.fullmatch(match["val"]) is not None
            or _MESSAGE_WORD.fullmatch(match["val"].removesuffix(":")) is not None
        )
        and (
            _PROSE_BEFORE.fullmatch(match.string, max(0, start - 2), start) is not None
            or _PROSE_AFTER.match(match.string, end) is not None
        )
    )


def _looks_random(value: str) -> bool:
    """Whether a value is machine-generated key material rather than a name, version or hash.

    Random key material mixes capitals, lowercase and digits and switches between them often.
    Hex strings never qualify, being of one case: digests, commit and trace ids and pod UIDs are
    what a diagnosis needs and are not secret. Nor do identifiers such as `MyService-1.22.3`.
    """
    body = value.rstrip("=")
    if len(body) < 20:
        return False
    if not (_has_upper_and_digit(body) and any(c.islower() for c in body)):
        return False
    kinds = [2 if c.isupper() else 1 if c.islower() else 0 if c.isdigit() else -1 for c in body]
    switches = sum(a != b for a, b in itertools.pairwise(kinds))
    entropy = -sum(n / len(body) * math.log2(n / len(body)) for n in Counter(body).values())
    return switches >= 0.3 * len(body) and entropy >= 3.5


def _entropy_kv(match: re.Match[str]) -> str:
    if not _looks_random(match["val"]):
        return match[0]
    quote = match["q"] or ""
    return f"{match['head']}{quote}{REDACTED}{quote}"


# --- log excerpts ---


@dataclass(frozen=True, slots=True)
class LogExcerpt:
    """The redacted end of a container log, as it goes into a report.

    `text` is valid UTF-8 without carriage returns or terminal escapes; `truncated` says that
    earlier output was left out; `binary` that the log did not look like text, in which case
    `text` holds a note and the printable fragments only; `original_bytes` is the log's size.
    """

    text: str
    truncated: bool
    binary: bool
    original_bytes: int


# Only this much of the end of a log is ever looked at, so a 100 MB log costs what 64 KB does.
# Four times the byte budget leaves room for what cleaning (colour codes, redrawn progress lines)
# and redaction remove.
_WINDOW_MIN = 64 * 1024
_WINDOW_PER_BYTE = 4
# Lines before the shown ones that redaction still sees, so that a private key or a multi-line
# value starting above the excerpt is recognised from its beginning.
_CONTEXT_LINES = 200
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\n]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# Bidirectional overrides go too: in a report they could make text read other than it is.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e\t]{6,}")
# Share of control or undecodable bytes above which a log is treated as binary. Text in a legacy
# 8-bit encoding stays well below it; compressed or executable data is far above.
_BINARY_SHARE = 0.3


def excerpt(raw: bytes | str, *, max_lines: int = 50, max_bytes: int = 8192) -> LogExcerpt:
    """Return the last lines of a container log, redacted and bounded for a report.

    The result keeps the end of the log, where a crash shows, within `max_lines` lines and
    `max_bytes` UTF-8 bytes, and never cuts a character in half. Only the tail of `raw` is read.
    A log that looks binary (NUL bytes, or many control or undecodable bytes) yields a note and
    its printable fragments instead.
    """
    if max_lines < 1 or max_bytes < 1:
        raise ValueError(f"max_lines and max_bytes must be positive, not {max_lines}, {max_bytes}")
    tail, total = _tail(raw, max(_WINDOW_MIN, _WINDOW_PER_BYTE * max_bytes))
    if not tail:
        return LogExcerpt(text="", truncated=False, binary=False, original_bytes=total)
    cut = len(tail) < total
    if _looks_binary(tail):
        return _binary_excerpt(tail, total, max_lines, max_bytes)
    if cut:
        tail = _from_line_start(tail)
    lines = _clean(tail.decode("utf-8", "replace")).split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another one
    context = lines[-(max_lines + _CONTEXT_LINES) :]
    redacted = redact("\n".join(context)).split("\n") if context else []
    text, dropped = _bounded(redacted, max_lines, max_bytes)
    return LogExcerpt(
        text=text,
        truncated=cut or dropped or len(context) < len(lines),
        binary=False,
        original_bytes=total,
    )


def _tail(raw: bytes | str, window: int) -> tuple[bytes, int]:
    """The last `window` bytes of `raw` as UTF-8, and the size of all of it; reads no more."""
    if isinstance(raw, str):
        # isascii() is a flag lookup; only non-ASCII text needs encoding to be measured.
        total = len(raw) if raw.isascii() else len(raw.encode("utf-8", "surrogatepass"))
        # Every character is at least one byte, so `window` characters cover `window` bytes.
        return raw[-window:].encode("utf-8", "surrogatepass")[-window:], total
    return bytes(raw[-window:]), len(raw)


def _from_line_start(tail: bytes) -> bytes:
    """Drop the partial line the window starts in, unless it is the only line there is."""
    newline = tail.find(b"\n")
    if newline != -1 and tail[newline + 1 :].strip():
        return tail[newline + 1 :]
    return _skip_continuation_bytes(tail)


def _skip_continuation_bytes(data: bytes) -> bytes:
    start = 0
    while start < min(len(data), 3) and data[start] & 0xC0 == 0x80:
        start += 1
    return data[start:]


def _looks_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    control = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    undecodable = sample.decode("utf-8", "replace").count("\ufffd")
    return control + undecodable > _BINARY_SHARE * len(sample)


def _clean(text: str) -> str:
    """Remove terminal escapes and control characters; resolve carriage-return redraws."""
    text = _ANSI.sub("", text)
    if "\r" in text:
        text = "\n".join(_last_drawn(line) if "\r" in line else line for line in text.split("\n"))
    return _CONTROL.sub("", text)


def _last_drawn(line: str) -> str:
    """What a terminal shows for a line redrawn with bare carriage returns (progress bars)."""
    drawn = [part for part in line.split("\r") if part]
    return drawn[-1] if drawn else ""


def _bounded(lines: list[str], max_lines: int, max_bytes: int) -> tuple[str, bool]:
    """The last lines within both limits, and whether anything was left out."""
    kept = lines[-max_lines:]
    text = "\n".join(kept)
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, len(kept) < len(lines)
    return _skip_continuation_bytes(data[-max_bytes:]).decode("utf-8"), True


def _binary_excerpt(tail: bytes, total: int, max_lines: int, max_bytes: int) -> LogExcerpt:
    fragments = "\n".join(run.decode("ascii") for run in _PRINTABLE_RUN.findall(tail))
    note = f"[binary output: {total} bytes omitted; printable fragments follow]"
    room = max_bytes - len(note) - 1
    body = ""
    if fragments and max_lines > 1 and room > 0:
        body = _bounded(redact(fragments).split("\n"), max_lines - 1, room)[0]
    text = f"{note}\n{body}" if body else f"[binary output: {total} bytes omitted]"
    return LogExcerpt(
        text=_bounded([text], 1, max_bytes)[0], truncated=True, binary=True, original_bytes=total
    )


def env_names(env: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """Names of a container's env vars, in order. Values and valueFrom are never read or copied."""
    names: list[str] = []
    for var in env or ():
        name = var.get("name")
        if isinstance(name, str) and name:
            names.append(name)
    return names
