"""Linear's GraphQL API over httpx, with retries and an error for each thing a caller decides on.

Every failure is a `LinearError`; what a caller does next depends only on the subclass:

    LinearError                  base; `.retryable`, `.status`, `.error_type`, `.attempts`
    ├── LinearTransportError     timeout, connection error, HTTP 5xx, Linear's "internal error" or
    │   │                        "lock timeout": retryable
    │   └── LinearRateLimited    HTTP 429 or errors[].extensions.type "ratelimited": retryable,
    │                            no sooner than `.retry_after` seconds (the `retry-after` header;
    │                            failing that, `.reset_at` from `x-ratelimit-*-reset`)
    ├── LinearAuthError          bad, expired or under-scoped key: "authentication error" or
    │                            "forbidden", HTTP 401/403. Not retryable: retrying cannot fix it
    └── LinearRequestError       invalid input, user error, GraphQL validation, anything else
        │                        Linear refused. Not retryable; `.user_message` carries Linear's
        │                        `userPresentableMessage` when it sent one
        └── LinearConflict       a create whose client-chosen id already exists ("... already
                                 exists", a duplicate key or unique constraint)

`LinearRateLimited` is a `LinearTransportError` because both mean "the request may succeed
later" and a caller that catches the one should not forget the other.

`LinearClient.execute` retries the retryable errors (exponential backoff, full jitter, never
sooner than `retry_after`) and re-raises the last one after `max_attempts`, with `.attempts`
set. The API key is sent only in the `Authorization` header: no message, repr or attribute of
an error carries it, and the client's repr does not either.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self

import httpx

from kubetriage import __version__
from kubetriage.escalation import documents as docs

DEFAULT_URL = "https://api.linear.app/graphql"
USER_AGENT = f"kubetriage/{__version__}"

# Linear's extensions.type values (its SDK's errorMap) by the class that handles them. A few
# deployments and proxies answer with an upper-case extensions.code instead; those map the same.
_RATE_LIMITED = {"ratelimited", "rate_limited"}
_AUTH = {"authentication error", "authentication_error", "unauthenticated", "forbidden"}
_SERVER = {"internal error", "internal_error", "lock timeout", "lock_timeout"}

# How Linear words "that id is taken". Its documented not-found text is "Entity not found: Issue"
# ("Could not find referenced Issue."); no published text for a duplicate id exists, so accept
# the forms a Postgres-backed API gives: "already exists", a duplicate key, a unique constraint.
_CONFLICT = re.compile(
    r"already exists|already in use|already been taken|duplicate key|unique constraint|"
    r"\bconflict\b",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(r"entity not found|could not find|not found", re.IGNORECASE)


class LinearError(Exception):
    """Any failure talking to Linear. Subclasses say whether retrying can help."""

    retryable: ClassVar[bool] = False

    def __init__(
        self, message: str, *, status: int | None = None, error_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.attempts = 1  # requests made before giving up; `execute` sets it

    def __str__(self) -> str:
        if self.attempts > 1:
            return f"{self.message} (after {self.attempts} attempts)"
        return self.message


class LinearTransportError(LinearError):
    """Linear could not be reached or failed on its side; the request may succeed later."""

    retryable = True


class LinearRateLimited(LinearTransportError):
    """Linear is rate limiting this key.

    `retry_after` is its requested wait in seconds; `reset_at` (Unix seconds) is when the spent
    budget refills, from `x-ratelimit-requests-reset` or `x-ratelimit-complexity-reset`.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        reset_at: float | None = None,
        status: int | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message, status=status, error_type=error_type)
        self.retry_after = retry_after
        self.reset_at = reset_at


class LinearAuthError(LinearError):
    """The API key is missing, wrong, expired or lacks a scope: a human must fix it."""


class LinearRequestError(LinearError):
    """Linear refused the request itself; `user_message` is its readable reason, if given."""

    def __init__(
        self,
        message: str,
        *,
        user_message: str | None = None,
        status: int | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message, status=status, error_type=error_type)
        self.user_message = user_message


class LinearConflict(LinearRequestError):
    """A create named an id that already exists (typically: an earlier attempt succeeded)."""


@dataclass(frozen=True)
class IssueRef:
    """Enough of an issue to link to it; `state_type` only when it was read (get_issue)."""

    id: str
    identifier: str
    url: str
    state_type: str | None = None  # "triage", "backlog", "unstarted", "started", "completed", ...


@dataclass(frozen=True)
class Viewer:
    """The user the API key belongs to."""

    id: str
    name: str


def issue_id_for(key: str) -> str:
    """A stable issue id for `key` (report uid + episode), shaped as a UUID version 4.

    Linear asks for "UUID v4 format", so the sha256 of the key is cut to 16 bytes and given the
    version-4 and RFC 4122 variant bits: the same key always names the same issue, which is what
    makes a retried or repeated issueCreate land once (DESIGN.md section 6).
    """
    raw = bytearray(hashlib.sha256(key.encode("utf-8")).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # variant 10xx: RFC 4122
    return str(uuid.UUID(bytes=bytes(raw)))


class LinearClient:
    """An async client for the few operations kubetriage needs, each retried when that helps."""

    def __init__(
        self,
        api_key: str,
        *,
        url: str = DEFAULT_URL,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._url = url
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock
        # Kept only to scrub it out of any text Linear or httpx might echo back.
        self._secret = api_key
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            headers={
                "Authorization": api_key,  # a personal key goes bare; "Bearer" is for OAuth
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
        )
        self.attempts = 0  # every request sent, retries included: for metrics and logs
        self._on_outcome = on_outcome

    def __repr__(self) -> str:
        return f"LinearClient(url={self._url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def execute(
        self, document: str, variables: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send one document and return its `data`, retrying what may succeed later.

        Raises the last `LinearError` when retrying cannot help or `max_attempts` is spent; its
        `.attempts` says how many requests were made.
        """
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            try:
                data = await self._send(document, variables or {})
            except LinearError as error:
                self._report(_outcome(error))
                error.attempts = attempt
                if not error.retryable or attempt >= self._max_attempts:
                    raise
                await self._sleep(self._delay(attempt - 1, error))
                continue
            self._report("ok")
            return data

    def _report(self, outcome: str) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def _delay(self, retry: int, error: LinearError) -> float:
        # Full jitter spreads replicas that failed together; retry-after is Linear's floor.
        delay = min(self._backoff_max, self._backoff_base * 2.0**retry) * self._jitter()
        if isinstance(error, LinearRateLimited):
            if error.retry_after is not None:
                delay = max(delay, error.retry_after)
            elif error.reset_at is not None:
                # A reset can be a whole window away: wait for it up to backoff_max only. Longer
                # waits belong to the caller's outbox (the report stays Pending), not to a
                # worker parked inside one call.
                until_reset = max(0.0, error.reset_at - self._clock())
                delay = max(delay, min(self._backoff_max, until_reset))
        return delay

    async def _send(self, document: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.post(
                self._url, json={"query": document, "variables": dict(variables)}
            )
        # `from None` on both: an httpx error holds the request, and with it the Authorization
        # header; its type and text are copied into the message instead.
        except httpx.TimeoutException as error:
            raise LinearTransportError(
                f"Linear did not answer in time ({type(error).__name__})"
            ) from None
        except httpx.TransportError as error:
            text = self._scrub(str(error))
            raise LinearTransportError(
                f"could not reach Linear: {type(error).__name__}: {text}"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors:
            raise self._from_errors(errors, response)
        if response.status_code >= 400 or not isinstance(body, dict):
            raise self._from_status(response)
        data = body.get("data")
        if not isinstance(data, dict):
            raise LinearTransportError("Linear answered without data", status=response.status_code)
        return data

    def _from_errors(self, errors: list[Any], response: httpx.Response) -> LinearError:
        status = response.status_code
        found = [e for e in errors if isinstance(e, dict)] or [{}]
        kinds = [_kind(e) for e in found]
        first = found[0]
        kind = kinds[0]
        user_message = _text(_extensions(first).get("userPresentableMessage"))
        detail = self._scrub(user_message or _text(first.get("message")) or kind or "no message")
        message = f"Linear: {detail}"
        if _RATE_LIMITED & set(kinds) or status == 429:
            return LinearRateLimited(
                message,
                retry_after=_retry_after(response),
                reset_at=_reset_at(response),
                status=status,
                error_type="ratelimited",
            )
        if _AUTH & set(kinds) or status in (401, 403):
            # Say which knob to turn: this text ends up in the report's escalation.lastError.
            return LinearAuthError(
                f"Linear refused the API key: {detail}", status=status, error_type=kind
            )
        if _SERVER & set(kinds) or status >= 500:
            return LinearTransportError(message, status=status, error_type=kind)
        said = " ".join(
            f"{_text(e.get('message'))} {_text(_extensions(e).get('userPresentableMessage'))}"
            for e in found
        )
        error_class = LinearConflict if _CONFLICT.search(said) else LinearRequestError
        return error_class(
            message,
            user_message=self._scrub(user_message) if user_message else None,
            status=status,
            error_type=kind,
        )

    def _from_status(self, response: httpx.Response) -> LinearError:
        status = response.status_code
        if status == 429:
            return LinearRateLimited(
                "Linear: rate limited (HTTP 429)",
                retry_after=_retry_after(response),
                reset_at=_reset_at(response),
                status=429,
            )
        if status in (401, 403):
            return LinearAuthError(f"Linear refused the API key (HTTP {status})", status=status)
        if status >= 500 or status < 400:
            # A 5xx, or a 2xx that is not GraphQL JSON (a proxy's page): a fault on the way.
            return LinearTransportError(
                f"Linear answered HTTP {status} without GraphQL data", status=status
            )
        return LinearRequestError(f"Linear refused the request (HTTP {status})", status=status)

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    # Typed operations ----------------------------------------------------------------------

    async def viewer(self) -> Viewer:
        """Who the key belongs to: a cheap check that the key works."""
        data = await self.execute(docs.VIEWER)
        node = data["viewer"]
        return Viewer(id=node["id"], name=node["name"])

    async def find_issue_by_url(self, url: str) -> IssueRef | None:
        """The issue an attachment with `url` is on (the report's link), None when there is none."""
        data = await self.execute(docs.ATTACHMENTS_FOR_URL, {"url": url})
        for node in (data.get("attachmentsForURL") or {}).get("nodes") or []:
            issue = node.get("issue")
            if issue:
                return _issue_ref(issue)
        return None

    async def get_issue(self, issue_id: str) -> IssueRef | None:
        """An issue by id, None when Linear does not know it ("Entity not found: Issue")."""
        try:
            data = await self.execute(docs.ISSUE_BY_ID, {"id": issue_id})
        except LinearRequestError as error:
            if _NOT_FOUND.search(f"{error.message} {error.user_message or ''}"):
                return None
            raise
        issue = data.get("issue")
        return _issue_ref(issue) if issue else None

    async def create_issue(
        self,
        *,
        issue_id: str,
        team_id: str,
        title: str,
        description: str,
        priority: int,
        label_ids: list[str],
    ) -> IssueRef:
        """Create the issue `issue_id` (see `issue_id_for`), or return it if it already exists.

        Idempotent: when an earlier attempt created the issue but its answer was lost, Linear
        refuses the id as taken, and the existing issue is fetched and returned instead.
        """
        variables = {
            "id": issue_id,
            "teamId": team_id,
            "title": title,
            "description": description,
            "priority": priority,
            "labelIds": list(label_ids),
        }
        try:
            data = await self.execute(docs.ISSUE_CREATE, variables)
        except LinearConflict:
            existing = await self.get_issue(issue_id)
            if existing is None:
                raise  # the conflict was about something else; say what Linear said
            return existing
        payload = data.get("issueCreate") or {}
        issue = payload.get("issue")
        if not payload.get("success") or not issue:
            raise LinearRequestError(
                "Linear: issueCreate did not succeed", error_type="success false"
            )
        return _issue_ref(issue)

    async def attach_url(
        self, issue_id: str, url: str, title: str, subtitle: str | None = None
    ) -> str:
        """Link `url` to the issue (Linear updates an attachment with the same url and issue).

        Returns the attachment id.
        """
        variables = _given({"issueId": issue_id, "url": url, "title": title, "subtitle": subtitle})
        data = await self.execute(docs.ATTACHMENT_CREATE, variables)
        return _created(data, "attachmentCreate", "attachment")

    async def add_comment(self, issue_id: str, body: str, *, comment_id: str | None = None) -> str:
        """Comment on the issue; returns the comment id.

        With `comment_id` (e.g. `issue_id_for(report uid + event)`) a retry cannot comment
        twice: a comment that already exists counts as done.
        """
        variables = _given({"issueId": issue_id, "body": body, "id": comment_id})
        try:
            data = await self.execute(docs.COMMENT_CREATE, variables)
        except LinearConflict:
            if comment_id is None:
                raise
            return comment_id
        return _created(data, "commentCreate", "comment")


def _given(variables: dict[str, Any]) -> dict[str, Any]:
    """The variables that have a value.

    An unset variable leaves its input field out entirely, which is what "not provided" means to
    Linear (an explicit null may not be).
    """
    return {name: value for name, value in variables.items() if value is not None}


def _extensions(error: Mapping[str, Any]) -> Mapping[str, Any]:
    extensions = error.get("extensions")
    return extensions if isinstance(extensions, dict) else {}


def _kind(error: Mapping[str, Any]) -> str:
    """Linear's extensions.type, lower case; failing that its extensions.code."""
    extensions = _extensions(error)
    return (_text(extensions.get("type")) or _text(extensions.get("code"))).strip().lower()


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _retry_after(response: httpx.Response) -> float | None:
    """The `retry-after` header in seconds; None when absent or not a number of seconds."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from Linear, and backoff still applies
    return seconds if seconds >= 0 else None


def _reset_at(response: httpx.Response) -> float | None:
    """When the exhausted budget (requests or complexity) refills, in Unix seconds, if said.

    Linear sends these resets as Unix time in milliseconds; a value small enough to be seconds
    is read as seconds.
    """
    resets = []
    for budget in ("requests", "complexity"):
        try:
            reset = float(response.headers[f"x-ratelimit-{budget}-reset"])
            remaining = float(response.headers.get(f"x-ratelimit-{budget}-remaining", "0"))
        except (KeyError, ValueError):
            continue
        if remaining <= 0:
            resets.append(reset / 1000 if reset > 1e11 else reset)
    return max(resets) if resets else None


def _issue_ref(node: Mapping[str, Any]) -> IssueRef:
    state = node.get("state")
    state_type = state.get("type") if isinstance(state, dict) else None
    return IssueRef(
        id=node["id"], identifier=node["identifier"], url=node["url"], state_type=state_type
    )


def _created(data: Mapping[str, Any], field: str, entity: str) -> str:
    payload = data.get(field) or {}
    created = payload.get(entity)
    if not payload.get("success") or not created:
        raise LinearRequestError(f"Linear: {field} did not succeed", error_type="success false")
    return str(created["id"])


def _outcome(error: LinearError) -> str:
    """A bounded label for a failed request, for the operator's metrics."""
    if isinstance(error, LinearRateLimited):
        return "rate_limited"
    if isinstance(error, LinearTransportError):
        return "transport"
    if isinstance(error, LinearAuthError):
        return "auth"
    return "request"
