"""LinearClient, one function at a time, against scripted answers (httpx.MockTransport).

The scripts follow what Linear really sends: GraphQL `errors[]` with `extensions.type`
("ratelimited", "authentication error", "forbidden", "invalid input", ...) and
`extensions.userPresentableMessage`, HTTP 429 with `retry-after`, "Entity not found: Issue" for an
unknown id. `sleep` records the delays instead of waiting and `jitter` is fixed at 0.5, so every
backoff is an exact number: min(backoff_max, 0.5 * 2**retry) * 0.5.
"""

from __future__ import annotations

import json
import traceback
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from kubetriage import __version__
from kubetriage.escalation import documents as docs
from kubetriage.escalation.linear import (
    IssueRef,
    LinearAuthError,
    LinearClient,
    LinearConflict,
    LinearError,
    LinearRateLimited,
    LinearRequestError,
    LinearTransportError,
    Viewer,
    issue_id_for,
)

# Assembled at run time so that no secret scanner flags this file.
API_KEY = "lin_api_" + "".join(
    "abcdefghjkmnpqrstuvwxyz23456789"[(5 * i + 1) % 31] for i in range(40)
)
URL = "https://linear.test/graphql"
ISSUE_ID = issue_id_for("3f1c2b9e-8a7d-4c6b-9e5f-1a2b3c4d5e6f/1")
ISSUE = {"id": ISSUE_ID, "identifier": "OPS-7", "url": "https://linear.app/o/issue/OPS-7/x"}
REF = IssueRef(id=ISSUE_ID, identifier="OPS-7", url=ISSUE["url"])

Reply = httpx.Response | type[httpx.TransportError]


class FakeLinear:
    """Answers each request with the next scripted reply, and keeps the requests."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.replies, f"unexpected request: {request.content!r}"
        reply = self.replies.pop(0)
        if isinstance(reply, httpx.Response):
            return reply
        raise reply(f"scripted {reply.__name__}", request=request)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


class Sleeps(list[float]):
    """A `sleep` that records how long it was asked to wait."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)


def make(fake: FakeLinear, sleeps: Sleeps, **options: Any) -> LinearClient:
    return LinearClient(
        API_KEY,
        url=URL,
        transport=httpx.MockTransport(fake),
        sleep=sleeps,
        jitter=lambda: 0.5,
        **options,
    )


def ok(data: dict[str, Any], status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"data": data}, headers=headers)


def failed(
    kind: str | None,
    message: str,
    user: str | None = None,
    status: int = 200,
    **headers: str,
) -> httpx.Response:
    """An answer carrying one GraphQL error, shaped as Linear shapes them."""
    extensions: dict[str, Any] = {}
    if kind is not None:
        extensions["type"] = kind
    if user is not None:
        extensions["userPresentableMessage"] = user
    error = {"message": message, "extensions": extensions}
    return httpx.Response(status, json={"errors": [error], "data": None}, headers=headers)


def plain(status: int, text: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(status, text=text, headers=headers)


VIEWER_DATA = {"viewer": {"id": "u1", "name": "kubetriage bot"}}
CREATED = {"issueCreate": {"success": True, "issue": {**ISSUE, "title": "t"}}}
FOUND = {"issue": {**ISSUE, "title": "t", "state": {"name": "In Progress", "type": "started"}}}
NOT_FOUND = failed("invalid input", "Entity not found: Issue", "Could not find referenced Issue.")

Call = Callable[[LinearClient], Awaitable[object]]

CREATE_ARGS: dict[str, Any] = {
    "issue_id": ISSUE_ID,
    "team_id": "team-1",
    "title": "api is crash-looping",
    "description": "## Summary\n...",
    "priority": 1,
    "label_ids": ["l1", "l2"],
}


def create(client: LinearClient) -> Awaitable[IssueRef]:
    return client.create_issue(**CREATE_ARGS)


# Success paths ---------------------------------------------------------------------------------

SUCCESS: list[Any] = [
    pytest.param(
        lambda c: c.viewer(),
        ok(VIEWER_DATA),
        docs.VIEWER,
        {},
        Viewer(id="u1", name="kubetriage bot"),
        id="viewer",
    ),
    pytest.param(
        lambda c: c.find_issue_by_url("kubetriage://shop/diag"),
        ok({"attachmentsForURL": {"nodes": [{"id": "a1", "url": "u", "issue": ISSUE}]}}),
        docs.ATTACHMENTS_FOR_URL,
        {"url": "kubetriage://shop/diag"},
        REF,
        id="find_issue_by_url found",
    ),
    pytest.param(
        lambda c: c.find_issue_by_url("kubetriage://shop/diag"),
        ok({"attachmentsForURL": {"nodes": []}}),
        docs.ATTACHMENTS_FOR_URL,
        {"url": "kubetriage://shop/diag"},
        None,
        id="find_issue_by_url none",
    ),
    pytest.param(
        lambda c: c.find_issue_by_url("kubetriage://shop/diag"),
        ok({"attachmentsForURL": {"nodes": [{"id": "a0", "url": "u", "issue": None}]}}),
        docs.ATTACHMENTS_FOR_URL,
        {"url": "kubetriage://shop/diag"},
        None,
        id="find_issue_by_url issue gone",
    ),
    pytest.param(
        lambda c: c.get_issue(ISSUE_ID),
        ok(FOUND),
        docs.ISSUE_BY_ID,
        {"id": ISSUE_ID},
        IssueRef(id=ISSUE_ID, identifier="OPS-7", url=ISSUE["url"], state_type="started"),
        id="get_issue found",
    ),
    pytest.param(
        lambda c: c.get_issue(ISSUE_ID),
        NOT_FOUND,
        docs.ISSUE_BY_ID,
        {"id": ISSUE_ID},
        None,
        id="get_issue not found",
    ),
    pytest.param(
        create,
        ok(CREATED),
        docs.ISSUE_CREATE,
        {
            "id": ISSUE_ID,
            "teamId": "team-1",
            "title": "api is crash-looping",
            "description": "## Summary\n...",
            "priority": 1,
            "labelIds": ["l1", "l2"],
        },
        REF,
        id="create_issue",
    ),
    pytest.param(
        lambda c: c.attach_url(ISSUE_ID, "kubetriage://shop/diag", "DiagnosisReport shop/diag"),
        ok({"attachmentCreate": {"success": True, "attachment": {"id": "a1"}}}),
        docs.ATTACHMENT_CREATE,
        {
            "issueId": ISSUE_ID,
            "url": "kubetriage://shop/diag",
            "title": "DiagnosisReport shop/diag",
        },
        "a1",
        id="attach_url",
    ),
    pytest.param(
        lambda c: c.attach_url(ISSUE_ID, "kubetriage://x", "t", subtitle="CrashLoopBackOff"),
        ok({"attachmentCreate": {"success": True, "attachment": {"id": "a2"}}}),
        docs.ATTACHMENT_CREATE,
        {
            "issueId": ISSUE_ID,
            "url": "kubetriage://x",
            "title": "t",
            "subtitle": "CrashLoopBackOff",
        },
        "a2",
        id="attach_url with subtitle",
    ),
    pytest.param(
        lambda c: c.add_comment(ISSUE_ID, "Resolved."),
        ok({"commentCreate": {"success": True, "comment": {"id": "c1"}}}),
        docs.COMMENT_CREATE,
        {"issueId": ISSUE_ID, "body": "Resolved."},
        "c1",
        id="add_comment",
    ),
    pytest.param(
        lambda c: c.add_comment(ISSUE_ID, "Again.", comment_id="c-fixed"),
        ok({"commentCreate": {"success": True, "comment": {"id": "c-fixed"}}}),
        docs.COMMENT_CREATE,
        {"issueId": ISSUE_ID, "body": "Again.", "id": "c-fixed"},
        "c-fixed",
        id="add_comment with id",
    ),
]


@pytest.mark.parametrize(("call", "reply", "document", "variables", "expected"), SUCCESS)
async def test_operation_sends_its_document_and_reads_the_answer(
    call: Call, reply: httpx.Response, document: str, variables: dict[str, Any], expected: object
) -> None:
    fake, sleeps = FakeLinear(reply), Sleeps()
    async with make(fake, sleeps) as client:
        assert await call(client) == expected
        assert client.attempts == 1
    [request] = fake.requests
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["Authorization"] == API_KEY  # a personal key goes bare, no "Bearer"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"kubetriage/{__version__}"
    [body] = fake.bodies
    assert body["query"] == document
    assert body["query"] in docs.ALL_DOCUMENTS
    assert body["variables"] == variables
    assert sleeps == []


# Retries ---------------------------------------------------------------------------------------

RETRIED: list[Any] = [
    pytest.param(
        [failed("ratelimited", "Rate limit exceeded", status=429, **{"retry-after": "7"})],
        [7.0],
        id="429 with retry-after",
    ),
    pytest.param(
        [plain(429, "Too Many Requests", **{"retry-after": "3.5"})],
        [3.5],
        id="bare 429 with retry-after",
    ),
    pytest.param([plain(429)], [0.25], id="429 without retry-after backs off"),
    pytest.param(
        [failed("ratelimited", "Rate limit exceeded", status=400, **{"retry-after": "2"})],
        [2.0],
        id="errors[] ratelimited, HTTP 400",
    ),
    pytest.param(
        [failed("ratelimited", "Rate limit exceeded"), failed("ratelimited", "again")],
        [0.25, 0.5],
        id="errors[] ratelimited twice, HTTP 200",
    ),
    pytest.param(
        [plain(500), plain(502, "<html>bad gateway</html>"), plain(503)],
        [0.25, 0.5, 1.0],
        id="5xx three times",
    ),
    pytest.param([failed("internal error", "Internal server error")], [0.25], id="internal error"),
    pytest.param([failed("lock timeout", "lock timeout")], [0.25], id="lock timeout"),
    pytest.param([httpx.ReadTimeout, httpx.ConnectTimeout], [0.25, 0.5], id="timeouts"),
    pytest.param([httpx.ConnectError], [0.25], id="connection refused"),
    pytest.param([plain(200, "<html>captive portal</html>")], [0.25], id="200 that is not JSON"),
]


@pytest.mark.parametrize(("faults", "delays"), RETRIED)
async def test_retryable_faults_are_retried_then_succeed(
    faults: list[Reply], delays: list[float]
) -> None:
    fake, sleeps = FakeLinear(*faults, ok(VIEWER_DATA)), Sleeps()
    async with make(fake, sleeps) as client:
        assert await client.viewer() == Viewer(id="u1", name="kubetriage bot")
        assert client.attempts == len(faults) + 1
    assert sleeps == delays
    assert all(body["query"] == docs.VIEWER for body in fake.bodies)


async def test_retry_after_is_a_floor_on_the_backoff_never_a_ceiling() -> None:
    # Two 429s asking for 1s: the second backoff (0.5 * 2**1 * 1.0 = 1.0) ties it, the third wins.
    replies = [plain(429, **{"retry-after": "1"}) for _ in range(3)]
    fake, sleeps = FakeLinear(*replies, ok(VIEWER_DATA)), Sleeps()
    client = LinearClient(
        API_KEY, url=URL, transport=httpx.MockTransport(fake), sleep=sleeps, jitter=lambda: 1.0
    )
    async with client:
        await client.viewer()
    assert sleeps == [1.0, 1.0, 2.0]
    assert all(delay >= 1.0 for delay in sleeps)


async def test_backoff_is_capped_and_jittered() -> None:
    draws = iter([0.0, 1.0, 0.3, 1.0, 1.0])
    fake, sleeps = FakeLinear(*[plain(503)] * 5, ok(VIEWER_DATA)), Sleeps()
    client = LinearClient(
        API_KEY,
        url=URL,
        transport=httpx.MockTransport(fake),
        sleep=sleeps,
        jitter=lambda: next(draws),
        backoff_base=1.0,
        backoff_max=4.0,
    )
    async with client:
        await client.viewer()
    # min(4, 1 * 2**n) * jitter for n = 0..4
    assert sleeps == pytest.approx([0.0, 2.0, 1.2, 4.0, 4.0])


NOW = 1_800_000_000.0


def limited(**headers: str) -> httpx.Response:
    """Linear's rate-limited answer (HTTP 400, as captured) with the given budget headers."""
    return failed("ratelimited", "Rate limit exceeded", status=400, **headers)


RESETS: list[Any] = [
    pytest.param(
        limited(
            **{"x-ratelimit-requests-remaining": "0", "x-ratelimit-requests-reset": "1800000004000"}
        ),
        4.0,
        id="requests reset in 4s (epoch ms)",
    ),
    pytest.param(
        limited(
            **{
                "x-ratelimit-complexity-remaining": "0",
                "x-ratelimit-complexity-reset": "1800000002",
            }
        ),
        2.0,
        id="complexity reset in 2s (epoch s)",
    ),
    pytest.param(
        limited(
            **{"x-ratelimit-requests-remaining": "0", "x-ratelimit-requests-reset": "1800003600000"}
        ),
        30.0,
        id="reset an hour away waits backoff_max only",
    ),
    pytest.param(
        limited(
            **{
                "x-ratelimit-requests-remaining": "12",
                "x-ratelimit-requests-reset": "1800000009000",
            }
        ),
        0.25,
        id="budget not spent: plain backoff",
    ),
    pytest.param(
        limited(
            **{
                "retry-after": "1",
                "x-ratelimit-requests-remaining": "0",
                "x-ratelimit-requests-reset": "1800000009000",
            }
        ),
        1.0,
        id="retry-after wins over the reset",
    ),
]


@pytest.mark.parametrize(("reply", "delay"), RESETS)
async def test_without_retry_after_the_budget_reset_sets_the_wait(
    reply: httpx.Response, delay: float
) -> None:
    fake, sleeps = FakeLinear(reply, ok(VIEWER_DATA)), Sleeps()
    async with make(fake, sleeps, clock=lambda: NOW) as client:
        await client.viewer()
    assert sleeps == pytest.approx([delay])


EXHAUSTED: list[Any] = [
    pytest.param(plain(503), LinearTransportError, id="5xx"),
    pytest.param(httpx.ReadTimeout, LinearTransportError, id="timeout"),
    pytest.param(plain(429, **{"retry-after": "5"}), LinearRateLimited, id="rate limited"),
]


@pytest.mark.parametrize(("fault", "error_class"), EXHAUSTED)
async def test_after_max_attempts_the_last_error_is_raised_with_the_count(
    fault: Reply, error_class: type[LinearError]
) -> None:
    fake, sleeps = FakeLinear(*[fault] * 3), Sleeps()
    async with make(fake, sleeps, max_attempts=3) as client:
        with pytest.raises(error_class) as raised:
            await client.viewer()
        assert client.attempts == 3
    error = raised.value
    assert type(error) is error_class
    assert error.retryable
    assert error.attempts == 3
    assert "after 3 attempts" in str(error)
    assert len(fake.requests) == 3
    assert len(sleeps) == 2  # no pointless wait after the last attempt
    if isinstance(error, LinearRateLimited):
        assert error.retry_after == 5.0
        assert sleeps == [5.0, 5.0]


# Errors retrying cannot fix --------------------------------------------------------------------

NOT_RETRIED: list[Any] = [
    pytest.param(
        failed("authentication error", "Authentication required, not authenticated", status=400),
        LinearAuthError,
        None,
        id="bad key, errors[]",
    ),
    pytest.param(plain(401), LinearAuthError, None, id="bad key, bare 401"),
    pytest.param(
        failed("forbidden", "Invalid scope: 'write' required", status=403),
        LinearAuthError,
        None,
        id="key lacks a scope",
    ),
    pytest.param(
        failed("invalid input", "Argument Validation Error", "teamId must be a UUID.", status=400),
        LinearRequestError,
        "teamId must be a UUID.",
        id="invalid input",
    ),
    pytest.param(
        failed("user error", "Label not in team", "The label does not belong to this team."),
        LinearRequestError,
        "The label does not belong to this team.",
        id="user error",
    ),
    pytest.param(
        failed("graphql error", 'Cannot query field "nope" on type "Issue".', status=400),
        LinearRequestError,
        None,
        id="graphql validation",
    ),
    pytest.param(
        failed(None, "Variable '$id' of required type 'String!' was not provided.", status=400),
        LinearRequestError,
        None,
        id="error without extensions",
    ),
    pytest.param(
        failed("usage limit exceeded", "Usage limit exceeded", "Upgrade to create more issues."),
        LinearRequestError,
        "Upgrade to create more issues.",
        id="usage limit",
    ),
    pytest.param(plain(400, "bad request"), LinearRequestError, None, id="bare 400"),
    pytest.param(
        ok({"issueCreate": {"success": False, "issue": None}}),
        LinearRequestError,
        None,
        id="success false",
    ),
]


@pytest.mark.parametrize(("reply", "error_class", "user_message"), NOT_RETRIED)
async def test_errors_retrying_cannot_fix_are_raised_at_once(
    reply: httpx.Response, error_class: type[LinearError], user_message: str | None
) -> None:
    fake, sleeps = FakeLinear(reply), Sleeps()
    async with make(fake, sleeps) as client:
        with pytest.raises(error_class) as raised:
            await create(client)
    error = raised.value
    assert type(error) is error_class
    assert not error.retryable
    assert error.attempts == 1
    assert len(fake.requests) == 1
    assert sleeps == []
    if isinstance(error, LinearRequestError):
        assert error.user_message == user_message
    if user_message is not None:
        assert user_message in str(error)


# Idempotent create -----------------------------------------------------------------------------

CONFLICTS: list[Any] = [
    pytest.param(failed("invalid input", "Entity already exists"), id="already exists"),
    pytest.param(
        failed(
            "invalid input", "Argument Validation Error", "An issue with this id already exists."
        ),
        id="user-presentable",
    ),
    pytest.param(
        failed("user error", 'duplicate key value violates unique constraint "issue_pkey"'),
        id="duplicate key",
    ),
]


@pytest.mark.parametrize("conflict", CONFLICTS)
async def test_create_returns_the_existing_issue_when_its_id_is_taken(
    conflict: httpx.Response,
) -> None:
    fake, sleeps = FakeLinear(conflict, ok(FOUND)), Sleeps()
    async with make(fake, sleeps) as client:
        issue = await create(client)
    assert issue.id == ISSUE_ID
    assert issue.identifier == "OPS-7"
    assert [body["query"] for body in fake.bodies] == [docs.ISSUE_CREATE, docs.ISSUE_BY_ID]
    assert fake.bodies[1]["variables"] == {"id": ISSUE_ID}
    assert sleeps == []


async def test_a_create_whose_answer_was_lost_is_not_duplicated() -> None:
    # The first create reached Linear but its answer timed out; the retry finds the id taken.
    taken = failed("invalid input", "Entity already exists")
    fake, sleeps = FakeLinear(httpx.ReadTimeout, taken, ok(FOUND)), Sleeps()
    async with make(fake, sleeps) as client:
        assert (await create(client)).identifier == "OPS-7"
    queries = [body["query"] for body in fake.bodies]
    assert queries == [docs.ISSUE_CREATE, docs.ISSUE_CREATE, docs.ISSUE_BY_ID]
    assert fake.bodies[0]["variables"] == fake.bodies[1]["variables"]  # same id both times
    assert sleeps == [0.25]


async def test_a_conflict_about_something_else_is_raised() -> None:
    fake, sleeps = FakeLinear(failed("invalid input", "Entity already exists"), NOT_FOUND), Sleeps()
    async with make(fake, sleeps) as client:
        with pytest.raises(LinearConflict) as raised:
            await create(client)
    assert isinstance(raised.value, LinearRequestError)
    assert not raised.value.retryable


async def test_a_comment_with_a_taken_id_counts_as_posted() -> None:
    fake, sleeps = FakeLinear(failed("invalid input", "Entity already exists")), Sleeps()
    async with make(fake, sleeps) as client:
        assert await client.add_comment(ISSUE_ID, "Resolved.", comment_id="c-fixed") == "c-fixed"
        # Without an id of its own, a conflict is not ours to swallow.
        fake.replies.append(failed("invalid input", "Entity already exists"))
        with pytest.raises(LinearConflict):
            await client.add_comment(ISSUE_ID, "Resolved.")


# The API key never leaks -----------------------------------------------------------------------

LEAKS: list[Any] = [
    pytest.param(
        failed("authentication error", f"Invalid API key: {API_KEY}", f"Key {API_KEY} is invalid"),
        id="auth error echoing the key",
    ),
    pytest.param(failed("invalid input", f"bad header {API_KEY}", f"bad {API_KEY}"), id="input"),
    pytest.param(failed("ratelimited", f"limited: {API_KEY}"), id="rate limited"),
    pytest.param(httpx.ConnectError, id="connection error"),
    pytest.param(httpx.ReadTimeout, id="timeout"),
    pytest.param(plain(500, API_KEY), id="5xx body"),
]


@pytest.mark.parametrize("reply", LEAKS)
async def test_the_api_key_appears_in_no_error_and_no_repr(reply: Reply) -> None:
    fake, sleeps = FakeLinear(reply), Sleeps()
    async with make(fake, sleeps, max_attempts=1) as client:
        assert API_KEY not in repr(client)
        assert API_KEY not in str(client)
        with pytest.raises(LinearError) as raised:
            await client.viewer()
    error = raised.value
    printed = "".join(traceback.format_exception(error))
    for text in (str(error), repr(error), printed, repr(vars(error))):
        assert API_KEY not in text
    assert error.__cause__ is None


async def test_the_api_key_in_a_transport_error_message_is_scrubbed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused with {request.headers['Authorization']}")

    async with LinearClient(
        API_KEY, url=URL, transport=httpx.MockTransport(refuse), max_attempts=1
    ) as client:
        with pytest.raises(LinearTransportError) as raised:
            await client.viewer()
    assert API_KEY not in str(raised.value)
    assert "***" in str(raised.value)


# Construction and the issue id -----------------------------------------------------------------


async def test_async_with_closes_the_connection_pool() -> None:
    fake = FakeLinear(ok(VIEWER_DATA))
    async with make(fake, Sleeps()) as client:
        await client.viewer()
    with pytest.raises(RuntimeError):
        await client.viewer()


def test_max_attempts_must_allow_one_request() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        LinearClient(API_KEY, max_attempts=0)


@pytest.mark.parametrize(
    "key", ["3f1c2b9e-8a7d-4c6b-9e5f-1a2b3c4d5e6f/1", "3f1c2b9e-8a7d-4c6b-9e5f-1a2b3c4d5e6f/2", ""]
)
def test_issue_id_is_a_stable_uuid_v4(key: str) -> None:
    issue_id = issue_id_for(key)
    parsed = uuid.UUID(issue_id)
    assert parsed.version == 4
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed) == issue_id  # canonical, lower case, hyphenated
    assert issue_id_for(key) == issue_id


def test_issue_ids_differ_per_key_and_are_pinned() -> None:
    ids = {issue_id_for(f"uid/{episode}") for episode in range(1000)}
    assert len(ids) == 1000
    # Pinned: changing the derivation would orphan every issue already opened.
    assert issue_id_for("uid/1") == PINNED_ID


PINNED_ID = "df59627b-b46b-4305-a0a3-dcb831d96c1d"
