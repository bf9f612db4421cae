"""Linear's GraphQL API over httpx, with retries and an error for each thing a caller decides on.

Every failure is a `LinearError`; what a caller does next depends only on the subclass:

    LinearError                  base; `.retryable`, `.status`, `.error_type`, `.attempts`,
    │                            `.operation` (the request that failed, e.g. "issueCreate")
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
        └── LinearNotFound       Linear's documented "Entity not found: <Entity>" ("Could not
                                 find referenced <Entity>."); `.entity` names what is missing
                                 ("Issue", "Team", ...) when the text says

No decision that keeps escalations from being lost or duplicated rests on Linear's wording. A
create that names its own id (an issue, a comment, a relation) and is refused for any reason is
checked by reading that id back: if the entity exists, an earlier attempt created it and the
create counts as done; if not, the refusal is raised as it came. (Linear words "that id is
taken" as a generic "Argument Validation Error", so the refusal itself says nothing usable.)

`LinearRateLimited` is a `LinearTransportError` because both mean "the request may succeed
later" and a caller that catches the one should not forget the other.

`LinearClient.execute` retries the retryable errors (exponential backoff, full jitter, never
sooner than `retry_after`) and re-raises the last one after `max_attempts`, with `.attempts`
set. With `max_attempts=1` it makes exactly one request and raises its error at once, for a
caller that keeps its own single layer of retries (the report's outbox).

Requests are counted per call, not per client: every operation takes an optional
`counter: RequestCount` and adds each request it sends to it (retries, and the read-back of a
refused create, included), so concurrent deliveries sharing one client each know their own
count. `LinearClient.attempts` is the client-wide total, for metrics only.

The API key is sent only in the `Authorization` header: no message, repr or attribute of an
error carries it, and the client's repr does not either.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

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

# Linear's documented not-found text: "Entity not found: Issue" ("Could not find referenced
# Issue."). Used to say that a read found nothing (get_issue -> None) and to name what a refused
# write was missing; never to decide whether a create already happened.
_NOT_FOUND = re.compile(r"entity not found|could not find|not found", re.IGNORECASE)
_NOT_FOUND_ENTITY = re.compile(
    r"entity not found:\s*(\w+)|could not find referenced (\w+)", re.IGNORECASE
)
# The first field of a document's operation ("issueCreate"): which request failed, in errors.
_ROOT_FIELD = re.compile(r"^\s*(?:(?:query|mutation)\b[^{]*)?\{\s*(\w+)")


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
        # The request's root field ("issueCreate", "issue", "commentCreate", ...); `execute`
        # sets it, so a report's lastError can say which request failed.
        self.operation: str | None = None

    def __str__(self) -> str:
        text = f"{self.operation}: {self.message}" if self.operation else self.message
        if self.attempts > 1:
            return f"{text} (after {self.attempts} attempts)"
        return text


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


class LinearNotFound(LinearRequestError):
    """Linear says an entity the request names does not exist ("Entity not found: Team").

    `entity` is the entity's type as Linear named it, None when the text did not say.
    """

    def __init__(
        self,
        message: str,
        *,
        entity: str | None = None,
        user_message: str | None = None,
        status: int | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message, user_message=user_message, status=status, error_type=error_type)
        self.entity = entity


@dataclass
class RequestCount:
    """The requests one caller made through any number of calls: pass it as `counter=`.

    Each call adds every request it sends (retries, and the read-back of a refused create,
    included), whether the call then succeeds or raises. One object per delivery attempt of a
    report gives that report's own count, however many deliveries share the client.
    """

    requests: int = 0


@dataclass(frozen=True)
class IssueRef:
    """An issue as Linear last answered about it.

    Every call that returns an `IssueRef` (`create_issue`, `get_issue`, `find_issue_by_url`,
    `move_issue`) reads the same fields, so each is filled whichever call produced it. A field
    is None only when Linear left it null or an answer did not carry it: `completed_at` is set
    only while the issue is in a `completed` state, `canceled_at` only while `canceled`.
    """

    id: str
    identifier: str
    url: str
    # "triage", "backlog", "unstarted", "started", "completed", "canceled" or "duplicate".
    state_type: str | None = None
    state_id: str | None = None
    state_name: str | None = None
    team_id: str | None = None
    completed_at: datetime | None = None
    canceled_at: datetime | None = None


@dataclass(frozen=True)
class WorkflowState:
    """One of a team's workflow states; `position` orders states of a team (lowest first)."""

    id: str
    name: str
    type: str
    position: float


def first_state(states: Iterable[WorkflowState], state_type: str) -> WorkflowState | None:
    """The team's first state of `state_type` by position, None when it has none.

    E.g. `first_state(states, "unstarted")` is where a completed issue is reopened to.
    """
    matching = [state for state in states if state.type == state_type]
    return min(matching, key=lambda state: state.position) if matching else None


def find_state(states: Iterable[WorkflowState], wanted: str) -> WorkflowState | None:
    """The state whose id is `wanted`, or failing that whose name is (case-insensitive).

    For a configured state (`KUBETRIAGE_LINEAR_RESOLVED_STATE`) given by id or name.
    """
    candidates = list(states)
    by_id = next((state for state in candidates if state.id == wanted), None)
    if by_id is not None:
        return by_id
    folded = wanted.strip().casefold()
    return next((state for state in candidates if state.name.casefold() == folded), None)


AttachmentMetadata = Mapping[str, str | int | float | bool]
"""An attachment's `metadata` (a JSONObject): flat, scalar values only."""

RelationType = Literal["related", "blocks", "duplicate", "similar"]
"""Linear's IssueRelationType."""


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
        # Every request this client sent, retries included, whoever asked: for metrics only.
        # One caller's own count is a `RequestCount` passed as `counter=`.
        self.attempts = 0
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
        self,
        document: str,
        variables: Mapping[str, Any] | None = None,
        *,
        counter: RequestCount | None = None,
    ) -> dict[str, Any]:
        """Send one document and return its `data`, retrying what may succeed later.

        Raises the last `LinearError` when retrying cannot help or `max_attempts` is spent; its
        `.attempts` says how many requests this call made and `.operation` which request it
        was (the document's root field). Each request is also added to `counter`, if given.
        """
        operation = root_field(document)
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            if counter is not None:
                counter.requests += 1
            try:
                data = await self._send(document, variables or {})
            except LinearError as error:
                self._report(_outcome(error))
                error.attempts = attempt
                error.operation = operation
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
        presentable = self._scrub(user_message) if user_message else None
        if _NOT_FOUND.search(said):
            named = _NOT_FOUND_ENTITY.search(said)
            entity = (named.group(1) or named.group(2)) if named else None
            return LinearNotFound(
                message, entity=entity, user_message=presentable, status=status, error_type=kind
            )
        return LinearRequestError(message, user_message=presentable, status=status, error_type=kind)

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
    #
    # Each takes `counter=` (see `RequestCount`) and raises what `execute` raises. None retries
    # beyond `max_attempts`; with `max_attempts=1` each request is made once.

    async def viewer(self, *, counter: RequestCount | None = None) -> Viewer:
        """Who the key belongs to: a cheap check that the key works."""
        data = await self.execute(docs.VIEWER, counter=counter)
        node = data["viewer"]
        return Viewer(id=node["id"], name=node["name"])

    async def find_issue_by_url(
        self, url: str, *, counter: RequestCount | None = None
    ) -> IssueRef | None:
        """The issue an attachment with `url` is on (the report's link), None when there is none."""
        data = await self.execute(docs.ATTACHMENTS_FOR_URL, {"url": url}, counter=counter)
        for node in (data.get("attachmentsForURL") or {}).get("nodes") or []:
            issue = node.get("issue")
            if issue:
                return _issue_ref(issue)
        return None

    async def get_issue(
        self, issue_id: str, *, counter: RequestCount | None = None
    ) -> IssueRef | None:
        """An issue by id (or identifier), with its state; None when Linear does not know it."""
        node = await self._read(docs.ISSUE_BY_ID, issue_id, "issue", counter)
        return _issue_ref(node) if node else None

    async def create_issue(
        self,
        *,
        issue_id: str,
        team_id: str,
        title: str,
        description: str,
        priority: int,
        label_ids: list[str],
        counter: RequestCount | None = None,
    ) -> IssueRef:
        """Create the issue `issue_id` (see `issue_id_for`), or return it if it already exists.

        Idempotent: when an earlier attempt created the issue but its answer was lost, Linear
        refuses the retry (in words that do not say why). Any refusal is therefore checked by
        reading `issue_id` back: an issue found is returned as created; otherwise the refusal
        is raised unchanged (`.operation == "issueCreate"`).
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
            data = await self.execute(docs.ISSUE_CREATE, variables, counter=counter)
        except LinearRequestError as refused:
            node = await self._exists(docs.ISSUE_BY_ID, issue_id, "issue", counter)
            if node is None:
                raise refused from None
            return _issue_ref(node)
        payload = data.get("issueCreate") or {}
        issue = payload.get("issue")
        if not payload.get("success") or not issue:
            raise _unsuccessful("issueCreate")
        return _issue_ref(issue)

    async def workflow_states(
        self, team_id: str, *, counter: RequestCount | None = None
    ) -> list[WorkflowState]:
        """The team's workflow states (archived ones left out), ordered by position.

        A team Linear does not know raises `LinearNotFound` (entity "Team").
        """
        states: list[WorkflowState] = []
        after: str | None = None
        while True:
            variables = _given({"teamId": team_id, "after": after})
            data = await self.execute(docs.WORKFLOW_STATES, variables, counter=counter)
            connection = ((data.get("team") or {}).get("states")) or {}
            for node in connection.get("nodes") or []:
                states.append(
                    WorkflowState(
                        id=str(node["id"]),
                        name=str(node["name"]),
                        type=str(node["type"]),
                        position=float(node["position"]),
                    )
                )
            page = connection.get("pageInfo") or {}
            after = page.get("endCursor")
            if not page.get("hasNextPage") or not after:
                break
        return sorted(states, key=lambda state: (state.position, state.name))

    async def move_issue(
        self, issue_id: str, state_id: str, *, counter: RequestCount | None = None
    ) -> IssueRef:
        """Move the issue to the workflow state `state_id` (see `first_state`, `find_state`).

        Returns the issue as it is after the move (Linear sets `completed_at`/`canceled_at`
        from the new state's type). Moving an issue to the state it is in changes nothing, so
        a retry is harmless.
        """
        variables = {"id": issue_id, "stateId": state_id}
        data = await self.execute(docs.ISSUE_UPDATE_STATE, variables, counter=counter)
        payload = data.get("issueUpdate") or {}
        issue = payload.get("issue")
        if not payload.get("success") or not issue:
            raise _unsuccessful("issueUpdate")
        return _issue_ref(issue)

    async def relate_issues(
        self,
        issue_id: str,
        related_issue_id: str,
        *,
        relation_id: str | None = None,
        relation_type: RelationType = "related",
        counter: RequestCount | None = None,
    ) -> str:
        """Link two issues (`related` unless said otherwise); returns the relation id.

        With `relation_id` (e.g. `issue_id_for(old issue + new issue)`) a retry cannot link
        twice: a refused create is checked by reading that relation back, and one that exists
        counts as done.
        """
        variables = _given(
            {
                "id": relation_id,
                "issueId": issue_id,
                "relatedIssueId": related_issue_id,
                "type": relation_type,
            }
        )
        try:
            data = await self.execute(docs.ISSUE_RELATION_CREATE, variables, counter=counter)
        except LinearRequestError as refused:
            if relation_id is None:
                raise
            node = await self._exists(
                docs.ISSUE_RELATION_BY_ID, relation_id, "issueRelation", counter
            )
            if node is None:
                raise refused from None
            return str(node["id"])
        return _created(data, "issueRelationCreate", "issueRelation")

    async def upsert_attachment(
        self,
        issue_id: str,
        url: str,
        title: str,
        subtitle: str | None = None,
        metadata: AttachmentMetadata | None = None,
        *,
        counter: RequestCount | None = None,
    ) -> str:
        """Link `url` to the issue, or update the attachment that already does; returns its id.

        Linear's attachmentCreate keeps one attachment per (issue, url): a second call updates
        its title, subtitle and metadata, which makes the attachment the issue's live status
        and a retry harmless. A `subtitle` or `metadata` left as None keeps what it was.
        """
        variables = _given(
            {
                "issueId": issue_id,
                "url": url,
                "title": title,
                "subtitle": subtitle,
                "metadata": dict(metadata) if metadata is not None else None,
            }
        )
        data = await self.execute(docs.ATTACHMENT_CREATE, variables, counter=counter)
        return _created(data, "attachmentCreate", "attachment")

    async def attach_url(
        self,
        issue_id: str,
        url: str,
        title: str,
        subtitle: str | None = None,
        *,
        counter: RequestCount | None = None,
    ) -> str:
        """`upsert_attachment` without metadata: link `url` to the issue; returns the id."""
        return await self.upsert_attachment(issue_id, url, title, subtitle, counter=counter)

    async def add_comment(
        self,
        issue_id: str,
        body: str,
        *,
        comment_id: str | None = None,
        counter: RequestCount | None = None,
    ) -> str:
        """Comment on the issue; returns the comment id.

        With `comment_id` (e.g. `issue_id_for(report uid + event)`) a retry cannot comment
        twice: a refused create is checked by reading `comment(id:)` back, and a comment that
        exists counts as posted. Without one, a refusal is raised as it came.
        """
        variables = _given({"issueId": issue_id, "body": body, "id": comment_id})
        try:
            data = await self.execute(docs.COMMENT_CREATE, variables, counter=counter)
        except LinearRequestError as refused:
            if comment_id is None:
                raise
            node = await self._exists(docs.COMMENT_BY_ID, comment_id, "comment", counter)
            if node is None:
                raise refused from None
            return str(node["id"])
        return _created(data, "commentCreate", "comment")

    async def _read(
        self, document: str, entity_id: str, field: str, counter: RequestCount | None
    ) -> dict[str, Any] | None:
        """`field` of a by-id query; None when Linear says the entity does not exist."""
        try:
            data = await self.execute(document, {"id": entity_id}, counter=counter)
        except LinearNotFound:
            return None
        node = data.get(field)
        return node if isinstance(node, dict) and node.get("id") else None

    async def _exists(
        self, document: str, entity_id: str, field: str, counter: RequestCount | None
    ) -> dict[str, Any] | None:
        """After a refused create: the entity if it exists, None if Linear will not show it.

        Any refusal of the read itself counts as "not there", so that only an entity Linear
        actually returns makes the create count as done; errors that may pass (transport,
        rate limits) and a refused key propagate, for the caller to retry later.
        """
        try:
            return await self._read(document, entity_id, field, counter)
        except LinearRequestError:
            return None


def root_field(document: str) -> str | None:
    """The first field the document's operation selects, e.g. "issueCreate"."""
    found = _ROOT_FIELD.search(document)
    return found.group(1) if found else None


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
    state = state if isinstance(state, dict) else {}
    team = node.get("team")
    team = team if isinstance(team, dict) else {}
    return IssueRef(
        id=node["id"],
        identifier=node["identifier"],
        url=node["url"],
        state_type=_optional(state.get("type")),
        state_id=_optional(state.get("id")),
        state_name=_optional(state.get("name")),
        team_id=_optional(team.get("id")),
        completed_at=_timestamp(node.get("completedAt")),
        canceled_at=_timestamp(node.get("canceledAt")),
    )


def _optional(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _timestamp(value: object) -> datetime | None:
    """A GraphQL DateTime ("2025-05-01T12:00:00.000Z") as an aware datetime; None if absent."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _unsuccessful(field: str) -> LinearRequestError:
    error = LinearRequestError(f"Linear: {field} did not succeed", error_type="success false")
    error.operation = field
    return error


def _created(data: Mapping[str, Any], field: str, entity: str) -> str:
    payload = data.get(field) or {}
    created = payload.get(entity)
    if not payload.get("success") or not created:
        raise _unsuccessful(field)
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
