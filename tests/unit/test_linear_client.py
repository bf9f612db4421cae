"""LinearClient, one function at a time, against scripted answers (httpx.MockTransport).

The scripts follow what Linear really sends: GraphQL `errors[]` with `extensions.type`
("ratelimited", "authentication error", "forbidden", "invalid input", ...) and
`extensions.userPresentableMessage`, HTTP 429 with `retry-after`, "Entity not found: Issue" for an
unknown id. `sleep` records the delays instead of waiting and `jitter` is fixed at 0.5, so every
backoff is an exact number: min(backoff_max, 0.5 * 2**retry) * 0.5.
"""

from __future__ import annotations

import asyncio
import json
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from kubetriage import __version__
from kubetriage.escalation import documents as docs
from kubetriage.escalation.linear import (
    IssueRef,
    LinearAuthError,
    LinearClient,
    LinearError,
    LinearNotFound,
    LinearRateLimited,
    LinearRequestError,
    LinearTransportError,
    RequestCount,
    Viewer,
    WorkflowState,
    find_state,
    first_state,
    issue_id_for,
)
from linear_standin import DEFAULT_TEAM_ID, LinearStandin

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

# An issue as every IssueRef-returning document now reads it: state, team, completion times.
FULL_ISSUE = {
    **ISSUE,
    "title": "t",
    "completedAt": "2025-05-01T12:00:00.000Z",
    "canceledAt": None,
    "state": {"id": "s-done", "name": "Done", "type": "completed"},
    "team": {"id": "team-1"},
}
FULL_REF = IssueRef(
    id=ISSUE_ID,
    identifier="OPS-7",
    url=ISSUE["url"],
    state_type="completed",
    state_id="s-done",
    state_name="Done",
    team_id="team-1",
    completed_at=datetime(2025, 5, 1, 12, 0, tzinfo=UTC),
    canceled_at=None,
)
STATE_NODES = [
    {"id": "s-todo", "name": "Todo", "type": "unstarted", "position": 2},
    {"id": "s-backlog", "name": "Backlog", "type": "backlog", "position": 1.0},
    {"id": "s-ready", "name": "Ready", "type": "unstarted", "position": 1.5},
]
STATES = [
    WorkflowState(id="s-backlog", name="Backlog", type="backlog", position=1.0),
    WorkflowState(id="s-ready", name="Ready", type="unstarted", position=1.5),
    WorkflowState(id="s-todo", name="Todo", type="unstarted", position=2.0),
]


def states_page(nodes: list[dict[str, Any]], end: str | None = None) -> httpx.Response:
    """One page of a team's states; `end` set means another page follows."""
    page = {"hasNextPage": end is not None, "endCursor": end or "last"}
    return ok({"team": {"id": "team-1", "states": {"nodes": nodes, "pageInfo": page}}})


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
        IssueRef(
            id=ISSUE_ID,
            identifier="OPS-7",
            url=ISSUE["url"],
            state_type="started",
            state_name="In Progress",
        ),
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
    pytest.param(
        lambda c: c.get_issue(ISSUE_ID),
        ok({"issue": FULL_ISSUE}),
        docs.ISSUE_BY_ID,
        {"id": ISSUE_ID},
        FULL_REF,
        id="get_issue reads state, team and completion",
    ),
    pytest.param(
        lambda c: c.find_issue_by_url("kubetriage://shop/diag"),
        ok({"attachmentsForURL": {"nodes": [{"id": "a1", "url": "u", "issue": FULL_ISSUE}]}}),
        docs.ATTACHMENTS_FOR_URL,
        {"url": "kubetriage://shop/diag"},
        FULL_REF,
        id="find_issue_by_url reads the same fields",
    ),
    pytest.param(
        lambda c: c.workflow_states("team-1"),
        states_page(STATE_NODES),
        docs.WORKFLOW_STATES,
        {"teamId": "team-1"},
        STATES,
        id="workflow_states, by position",
    ),
    pytest.param(
        lambda c: c.move_issue(ISSUE_ID, "s-done"),
        ok({"issueUpdate": {"success": True, "issue": FULL_ISSUE}}),
        docs.ISSUE_UPDATE_STATE,
        {"id": ISSUE_ID, "stateId": "s-done"},
        FULL_REF,
        id="move_issue",
    ),
    pytest.param(
        lambda c: c.relate_issues(ISSUE_ID, "old-issue"),
        ok({"issueRelationCreate": {"success": True, "issueRelation": {"id": "r1"}}}),
        docs.ISSUE_RELATION_CREATE,
        {"issueId": ISSUE_ID, "relatedIssueId": "old-issue", "type": "related"},
        "r1",
        id="relate_issues",
    ),
    pytest.param(
        lambda c: c.relate_issues(ISSUE_ID, "old-issue", relation_id="r-fixed"),
        ok({"issueRelationCreate": {"success": True, "issueRelation": {"id": "r-fixed"}}}),
        docs.ISSUE_RELATION_CREATE,
        {"id": "r-fixed", "issueId": ISSUE_ID, "relatedIssueId": "old-issue", "type": "related"},
        "r-fixed",
        id="relate_issues with id",
    ),
    pytest.param(
        lambda c: c.upsert_attachment(
            ISSUE_ID,
            "kubetriage://x",
            "Open",
            "3 occurrences · last seen 2m ago",
            {"category": "CrashLoop", "occurrences": 3, "production": True, "score": 0.5},
        ),
        ok({"attachmentCreate": {"success": True, "attachment": {"id": "a3"}}}),
        docs.ATTACHMENT_CREATE,
        {
            "issueId": ISSUE_ID,
            "url": "kubetriage://x",
            "title": "Open",
            "subtitle": "3 occurrences · last seen 2m ago",
            "metadata": {
                "category": "CrashLoop",
                "occurrences": 3,
                "production": True,
                "score": 0.5,
            },
        },
        "a3",
        id="upsert_attachment with metadata",
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


def answered_unsuccessfully(reply: httpx.Response) -> bool:
    """A 200 whose payload says `success: false`."""
    try:
        data = json.loads(reply.content).get("data") or {}
    except ValueError:
        return False
    return any(isinstance(v, dict) and v.get("success") is False for v in data.values())


@pytest.mark.parametrize(("reply", "error_class", "user_message"), NOT_RETRIED)
async def test_errors_retrying_cannot_fix_are_raised_at_once(
    reply: httpx.Response, error_class: type[LinearError], user_message: str | None
) -> None:
    # A refused issueCreate is checked by reading its id back (here: not found), then raised.
    # ("success": false is an answer, not a refusal: nothing to read back.)
    read_back = issubclass(error_class, LinearRequestError) and not answered_unsuccessfully(reply)
    fake, sleeps = FakeLinear(reply, *([NOT_FOUND] if read_back else [])), Sleeps()
    async with make(fake, sleeps) as client:
        with pytest.raises(error_class) as raised:
            await create(client)
    error = raised.value
    assert type(error) is error_class
    assert not error.retryable
    assert error.attempts == 1
    assert error.operation == "issueCreate"
    queries = [body["query"] for body in fake.bodies]
    assert queries == [docs.ISSUE_CREATE] + ([docs.ISSUE_BY_ID] if read_back else [])
    assert sleeps == []
    if isinstance(error, LinearRequestError):
        assert error.user_message == user_message
    if user_message is not None:
        assert user_message in str(error)


# Idempotent create -----------------------------------------------------------------------------
#
# A refused create that named its own id is checked by reading the id back, whatever the refusal
# says: Linear's answer to a taken id is a generic "Argument Validation Error".

REFUSALS: list[Any] = [
    pytest.param(
        failed("invalid input", "Argument Validation Error", "id is not valid."),
        id="generic argument validation error",
    ),
    pytest.param(failed("invalid input", "Argument Validation Error"), id="no presentable text"),
    pytest.param(failed(None, "Something went sideways", status=400), id="no extensions"),
    pytest.param(failed("invalid input", "Entity already exists"), id="already exists"),
    pytest.param(
        failed("user error", 'duplicate key value violates unique constraint "issue_pkey"'),
        id="duplicate key",
    ),
]


@pytest.mark.parametrize("refusal", REFUSALS)
async def test_create_returns_the_existing_issue_whatever_the_refusal_says(
    refusal: httpx.Response,
) -> None:
    fake, sleeps = FakeLinear(refusal, ok(FOUND)), Sleeps()
    async with make(fake, sleeps) as client:
        count = RequestCount()
        issue = await client.create_issue(**CREATE_ARGS, counter=count)
    assert issue.id == ISSUE_ID
    assert issue.identifier == "OPS-7"
    assert issue.state_type == "started"
    assert [body["query"] for body in fake.bodies] == [docs.ISSUE_CREATE, docs.ISSUE_BY_ID]
    assert fake.bodies[1]["variables"] == {"id": ISSUE_ID}
    assert count.requests == 2
    assert sleeps == []


async def test_a_create_whose_answer_was_lost_is_not_duplicated() -> None:
    # The first create reached Linear but its answer timed out; the retry is refused.
    taken = failed("invalid input", "Argument Validation Error", "id is not valid.")
    fake, sleeps = FakeLinear(httpx.ReadTimeout, taken, ok(FOUND)), Sleeps()
    async with make(fake, sleeps) as client:
        assert (await create(client)).identifier == "OPS-7"
    queries = [body["query"] for body in fake.bodies]
    assert queries == [docs.ISSUE_CREATE, docs.ISSUE_CREATE, docs.ISSUE_BY_ID]
    assert fake.bodies[0]["variables"] == fake.bodies[1]["variables"]  # same id both times
    assert sleeps == [0.25]


READ_BACK_REFUSED: list[Any] = [
    pytest.param(NOT_FOUND, id="not found"),
    pytest.param(failed("invalid input", "Argument Validation Error"), id="read refused too"),
    pytest.param(ok({"issue": None}), id="null issue"),
]


@pytest.mark.parametrize("read_back", READ_BACK_REFUSED)
async def test_a_refusal_whose_id_is_not_there_is_raised_as_it_came(
    read_back: httpx.Response,
) -> None:
    # Previously pinned: a refusal worded as a conflict became LinearConflict. The wording no
    # longer matters; what is raised is Linear's refusal of the issueCreate itself.
    refusal = failed("invalid input", "Argument Validation Error", "teamId must be a UUID.")
    fake, sleeps = FakeLinear(refusal, read_back), Sleeps()
    async with make(fake, sleeps) as client:
        with pytest.raises(LinearRequestError) as raised:
            await create(client)
    error = raised.value
    assert type(error) is LinearRequestError
    assert error.operation == "issueCreate"
    assert error.user_message == "teamId must be a UUID."
    assert str(error) == "issueCreate: Linear: teamId must be a UUID."
    assert not error.retryable


async def test_a_read_back_that_cannot_reach_linear_raises_that_for_a_later_retry() -> None:
    refusal = failed("invalid input", "Argument Validation Error")
    fake, sleeps = FakeLinear(refusal, plain(503)), Sleeps()
    async with make(fake, sleeps, max_attempts=1) as client:
        with pytest.raises(LinearTransportError) as raised:
            await create(client)
    assert raised.value.operation == "issue"
    assert raised.value.retryable


async def test_an_auth_error_on_create_is_not_read_back() -> None:
    fake, sleeps = FakeLinear(plain(401)), Sleeps()
    async with make(fake, sleeps) as client:
        with pytest.raises(LinearAuthError):
            await create(client)
    assert len(fake.requests) == 1


COMMENT_FOUND = ok({"comment": {"id": "c-fixed", "issue": {"id": ISSUE_ID}}})
COMMENT_NOT_FOUND = failed(
    "invalid input", "Entity not found: Comment", "Could not find referenced Comment."
)


async def test_a_refused_comment_whose_id_exists_counts_as_posted() -> None:
    refusal = failed("invalid input", "Argument Validation Error", "id is not valid.")
    fake, sleeps = FakeLinear(refusal, COMMENT_FOUND), Sleeps()
    async with make(fake, sleeps) as client:
        count = RequestCount()
        posted = await client.add_comment(
            ISSUE_ID, "Resolved.", comment_id="c-fixed", counter=count
        )
    assert posted == "c-fixed"
    assert [body["query"] for body in fake.bodies] == [docs.COMMENT_CREATE, docs.COMMENT_BY_ID]
    assert fake.bodies[1]["variables"] == {"id": "c-fixed"}
    assert count.requests == 2


async def test_a_refused_comment_whose_id_does_not_exist_is_raised() -> None:
    # Previously pinned: a comment refused as "already exists" counted as posted unread.
    refusal = failed("invalid input", "Entity already exists")
    fake, sleeps = FakeLinear(refusal, COMMENT_NOT_FOUND), Sleeps()
    async with make(fake, sleeps) as client:
        with pytest.raises(LinearRequestError) as raised:
            await client.add_comment(ISSUE_ID, "Resolved.", comment_id="c-fixed")
    assert raised.value.operation == "commentCreate"


async def test_a_refused_comment_without_an_id_is_raised_unread() -> None:
    fake, sleeps = FakeLinear(failed("invalid input", "Argument Validation Error")), Sleeps()
    async with make(fake, sleeps) as client:
        with pytest.raises(LinearRequestError):
            await client.add_comment(ISSUE_ID, "Resolved.")
    assert len(fake.requests) == 1


RELATION_FOUND = ok(
    {
        "issueRelation": {
            "id": "r-fixed",
            "type": "related",
            "issue": {"id": ISSUE_ID},
            "relatedIssue": {"id": "old"},
        }
    }
)


async def test_a_refused_relation_whose_id_exists_counts_as_made() -> None:
    refusal = failed("invalid input", "Argument Validation Error", "id is not valid.")
    fake, sleeps = FakeLinear(refusal, RELATION_FOUND, refusal, NOT_FOUND, refusal), Sleeps()
    async with make(fake, sleeps) as client:
        assert await client.relate_issues(ISSUE_ID, "old", relation_id="r-fixed") == "r-fixed"
        with pytest.raises(LinearRequestError) as raised:
            await client.relate_issues(ISSUE_ID, "old", relation_id="r-other")
        assert raised.value.operation == "issueRelationCreate"
        with pytest.raises(LinearRequestError):
            await client.relate_issues(ISSUE_ID, "old")  # no id of its own: nothing to read
    queries = [body["query"] for body in fake.bodies]
    assert queries == [
        docs.ISSUE_RELATION_CREATE,
        docs.ISSUE_RELATION_BY_ID,
        docs.ISSUE_RELATION_CREATE,
        docs.ISSUE_RELATION_BY_ID,
        docs.ISSUE_RELATION_CREATE,
    ]
    assert fake.bodies[1]["variables"] == {"id": "r-fixed"}


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


# Workflow states ------------------------------------------------------------------------------


async def test_workflow_states_follow_every_page() -> None:
    first, second = STATE_NODES[:2], STATE_NODES[2:]
    fake, sleeps = FakeLinear(states_page(first, end="cursor-1"), states_page(second)), Sleeps()
    async with make(fake, sleeps) as client:
        count = RequestCount()
        assert await client.workflow_states("team-1", counter=count) == STATES
    assert [body["variables"] for body in fake.bodies] == [
        {"teamId": "team-1"},
        {"teamId": "team-1", "after": "cursor-1"},
    ]
    assert count.requests == 2


async def test_an_unknown_team_is_not_found_and_says_which_entity() -> None:
    missing = failed("invalid input", "Entity not found: Team", "Could not find referenced Team.")
    fake, sleeps = FakeLinear(missing), Sleeps()
    async with make(fake, sleeps) as client:
        with pytest.raises(LinearNotFound) as raised:
            await client.workflow_states("no-such-team")
    assert raised.value.entity == "Team"
    assert raised.value.operation == "team"
    assert not raised.value.retryable


def test_first_state_is_the_lowest_position_of_its_type() -> None:
    assert first_state(STATES, "unstarted") == STATES[1]
    assert first_state(reversed(STATES), "unstarted") == STATES[1]
    assert first_state(STATES, "backlog") == STATES[0]
    assert first_state(STATES, "completed") is None
    assert first_state([], "unstarted") is None


def test_find_state_takes_an_id_or_a_name() -> None:
    assert find_state(STATES, "s-todo") == STATES[2]
    assert find_state(STATES, "ready") == STATES[1]
    assert find_state(STATES, " Backlog ") == STATES[0]
    assert find_state(STATES, "Done") is None


async def test_a_move_that_does_not_succeed_is_an_error() -> None:
    fake, sleeps = FakeLinear(ok({"issueUpdate": {"success": False, "issue": None}})), Sleeps()
    async with make(fake, sleeps) as client:
        with pytest.raises(LinearRequestError) as raised:
            await client.move_issue(ISSUE_ID, "s-done")
    assert raised.value.operation == "issueUpdate"
    assert "issueUpdate did not succeed" in str(raised.value)


# One layer of retries: max_attempts=1 --------------------------------------------------------


async def test_with_one_attempt_a_429_is_raised_at_once_with_its_retry_after() -> None:
    limited = failed("ratelimited", "Rate limit exceeded", status=429, **{"retry-after": "7"})
    fake, sleeps = FakeLinear(limited), Sleeps()
    async with make(fake, sleeps, max_attempts=1) as client:
        count = RequestCount()
        with pytest.raises(LinearRateLimited) as raised:
            await client.create_issue(**CREATE_ARGS, counter=count)
    assert raised.value.retry_after == 7.0
    assert raised.value.attempts == 1
    assert raised.value.operation == "issueCreate"
    assert len(fake.requests) == 1
    assert count.requests == 1
    assert sleeps == []


EVERY_OPERATION: list[Any] = [
    pytest.param(lambda c, n: c.viewer(counter=n), id="viewer"),
    pytest.param(lambda c, n: c.find_issue_by_url("u", counter=n), id="find_issue_by_url"),
    pytest.param(lambda c, n: c.get_issue(ISSUE_ID, counter=n), id="get_issue"),
    pytest.param(lambda c, n: c.create_issue(**CREATE_ARGS, counter=n), id="create_issue"),
    pytest.param(lambda c, n: c.workflow_states("team-1", counter=n), id="workflow_states"),
    pytest.param(lambda c, n: c.move_issue(ISSUE_ID, "s", counter=n), id="move_issue"),
    pytest.param(
        lambda c, n: c.relate_issues(ISSUE_ID, "old", relation_id="r", counter=n),
        id="relate_issues",
    ),
    pytest.param(
        lambda c, n: c.upsert_attachment(ISSUE_ID, "u", "t", "s", {"k": 1}, counter=n),
        id="upsert_attachment",
    ),
    pytest.param(lambda c, n: c.attach_url(ISSUE_ID, "u", "t", counter=n), id="attach_url"),
    pytest.param(
        lambda c, n: c.add_comment(ISSUE_ID, "b", comment_id="c", counter=n), id="add_comment"
    ),
]


@pytest.mark.parametrize("call", EVERY_OPERATION)
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(plain(503), id="503"),
        pytest.param(httpx.ReadTimeout, id="timeout"),
        pytest.param(plain(429, **{"retry-after": "7"}), id="429"),
    ],
)
async def test_with_one_attempt_every_operation_makes_one_request(
    call: Callable[[LinearClient, RequestCount], Awaitable[object]], fault: Reply
) -> None:
    fake, sleeps = FakeLinear(fault), Sleeps()
    async with make(fake, sleeps, max_attempts=1) as client:
        count = RequestCount()
        with pytest.raises(LinearTransportError) as raised:
            await call(client, count)
    assert len(fake.requests) == 1
    assert count.requests == 1
    assert raised.value.attempts == 1
    assert raised.value.operation is not None
    assert sleeps == []
    if isinstance(raised.value, LinearRateLimited):
        assert raised.value.retry_after == 7.0


# Which request failed, and how many this call made --------------------------------------------


@pytest.mark.parametrize(
    ("call", "operation"),
    [
        pytest.param(lambda c: c.viewer(), "viewer", id="viewer"),
        pytest.param(lambda c: c.find_issue_by_url("u"), "attachmentsForURL", id="by url"),
        pytest.param(lambda c: c.get_issue(ISSUE_ID), "issue", id="issue"),
        pytest.param(create, "issueCreate", id="issueCreate"),
        pytest.param(lambda c: c.workflow_states("t"), "team", id="team states"),
        pytest.param(lambda c: c.move_issue(ISSUE_ID, "s"), "issueUpdate", id="issueUpdate"),
        pytest.param(
            lambda c: c.relate_issues(ISSUE_ID, "o"), "issueRelationCreate", id="relation"
        ),
        pytest.param(
            lambda c: c.upsert_attachment(ISSUE_ID, "u", "t"), "attachmentCreate", id="attach"
        ),
        pytest.param(lambda c: c.add_comment(ISSUE_ID, "b"), "commentCreate", id="comment"),
    ],
)
async def test_an_error_names_the_request_that_failed(call: Call, operation: str) -> None:
    fake, sleeps = FakeLinear(*[plain(500)] * 2), Sleeps()
    async with make(fake, sleeps, max_attempts=2) as client:
        with pytest.raises(LinearError) as raised:
            await call(client)
    assert raised.value.operation == operation
    assert str(raised.value) == (
        f"{operation}: Linear answered HTTP 500 without GraphQL data (after 2 attempts)"
    )


async def test_a_counter_adds_up_the_requests_of_several_calls_retries_included() -> None:
    fake = FakeLinear(
        plain(503),
        ok({"attachmentsForURL": {"nodes": []}}),
        failed("invalid input", "Argument Validation Error"),
        ok(FOUND),
        plain(502),
        plain(502),
    )
    async with make(fake, Sleeps(), max_attempts=2) as client:
        count = RequestCount()
        assert await client.find_issue_by_url("u", counter=count) is None
        await client.create_issue(**CREATE_ARGS, counter=count)
        assert count.requests == 4
        with pytest.raises(LinearTransportError):
            await client.viewer(counter=count)  # 502 twice: max_attempts spent
    assert count.requests == 6
    assert client.attempts == 6


async def test_concurrent_calls_each_count_only_their_own_requests() -> None:
    # Three deliveries share one client; the Linear behind it fails each a different number of
    # times before it answers. Every delivery's count is its own, not the client's total.
    failures = {"issue-a": 0, "issue-b": 1, "issue-c": 2}
    served: list[str] = []

    async def linear(request: httpx.Request) -> httpx.Response:
        issue_id = json.loads(request.content)["variables"]["id"]
        served.append(issue_id)
        await asyncio.sleep(0)  # let the other deliveries' requests interleave
        if failures[issue_id] > 0:
            failures[issue_id] -= 1
            return plain(503)
        return ok({"issue": {**ISSUE, "id": issue_id}})

    counts = {key: RequestCount() for key in failures}
    client = LinearClient(
        API_KEY,
        url=URL,
        transport=httpx.MockTransport(linear),
        sleep=Sleeps(),
        jitter=lambda: 0.5,
    )
    async with client:
        issues = await asyncio.gather(
            *(client.get_issue(key, counter=counts[key]) for key in failures)
        )
    assert [issue.id if issue else None for issue in issues] == list(failures)
    assert {key: count.requests for key, count in counts.items()} == {
        "issue-a": 1,
        "issue-b": 2,
        "issue-c": 3,
    }
    assert client.attempts == 6  # the shared total, for metrics only
    assert len(set(served[:3])) == 3  # the three really ran side by side


# Against the Linear stand-in: answers lost, ids refused in words that say nothing --------------


@pytest.fixture
def standin() -> Iterator[LinearStandin]:
    """A running stand-in; every test also checks that the client sent only valid documents."""
    with LinearStandin() as server:
        yield server
        assert server.invalid_documents == [], "the client sent a document Linear refuses"


def on(standin: LinearStandin, **options: Any) -> LinearClient:
    """A client of the stand-in that does not wait between retries."""
    return LinearClient(standin.api_key, url=standin.url, timeout=2.0, sleep=Sleeps(), **options)


def standin_create_args(key: str = "uid/1") -> dict[str, Any]:
    """create_issue's arguments for the stand-in's team."""
    return {
        **CREATE_ARGS,
        "issue_id": issue_id_for(key),
        "team_id": DEFAULT_TEAM_ID,
        "label_ids": [],
    }


@pytest.mark.parametrize("max_attempts", [1, 3], ids=["operator retries", "client retries"])
async def test_an_issue_created_with_its_answer_lost_is_found_not_duplicated(
    standin: LinearStandin, max_attempts: int
) -> None:
    standin.fail_next("drop_after_processing", only="issueCreate")
    args = standin_create_args()
    async with on(standin, max_attempts=max_attempts) as client:
        count = RequestCount()
        if max_attempts == 1:
            # The operator's own retry: the first call fails, the next one finds the issue.
            with pytest.raises(LinearTransportError) as raised:
                await client.create_issue(**args, counter=count)
            assert raised.value.operation == "issueCreate"
        issue = await client.create_issue(**args, counter=count)
    [created] = standin.issues_created()
    assert issue.id == created.id == args["issue_id"]
    assert (issue.identifier, issue.state_type) == ("OPS-1", "unstarted")
    assert issue.team_id == DEFAULT_TEAM_ID
    refusal = standin.requests_for("issueCreate")[1]
    assert refusal.status == 200
    assert [r.fields for r in standin.requests] == [("issueCreate",), ("issueCreate",), ("issue",)]
    assert count.requests == 3


async def test_the_standins_refusal_says_nothing_the_client_could_match(
    standin: LinearStandin,
) -> None:
    args = standin_create_args()
    async with on(standin) as client:
        await client.create_issue(**args)
        with pytest.raises(LinearRequestError) as raised:
            # Bypass create_issue's read-back to see the refusal itself.
            await client.execute(
                docs.ISSUE_CREATE,
                {"id": args["issue_id"], "teamId": DEFAULT_TEAM_ID, "title": "again"},
            )
    said = f"{raised.value} {raised.value.user_message}".lower()
    assert "already exists" not in said
    assert "taken" not in said
    assert "duplicate" not in said


@pytest.mark.parametrize("max_attempts", [1, 3], ids=["operator retries", "client retries"])
async def test_a_comment_posted_with_its_answer_lost_lands_once(
    standin: LinearStandin, max_attempts: int
) -> None:
    async with on(standin, max_attempts=max_attempts) as client:
        issue = await client.create_issue(**standin_create_args())
        comment_id = issue_id_for(f"{issue.id}/relapse-2")
        standin.fail_next("drop_after_processing", only="commentCreate")
        if max_attempts == 1:
            with pytest.raises(LinearTransportError):
                await client.add_comment(issue.id, "Relapsed.", comment_id=comment_id)
        count = RequestCount()
        posted = await client.add_comment(
            issue.id, "Relapsed.", comment_id=comment_id, counter=count
        )
        again = await client.add_comment(issue.id, "Relapsed.", comment_id=comment_id)
    assert posted == again == comment_id
    assert [c.body for c in standin.comments_on(issue.id)] == ["Relapsed."]
    assert count.requests == (2 if max_attempts == 1 else 3)


async def test_a_relation_made_with_its_answer_lost_is_made_once(standin: LinearStandin) -> None:
    async with on(standin) as client:
        old = await client.create_issue(**standin_create_args("uid/1"))
        new = await client.create_issue(**standin_create_args("uid/2"))
        relation_id = issue_id_for(f"{new.id}/related/{old.id}")
        standin.fail_next("drop_after_processing", only="issueRelationCreate")
        made = await client.relate_issues(new.id, old.id, relation_id=relation_id)
        again = await client.relate_issues(new.id, old.id, relation_id=relation_id)
    assert made == again == relation_id
    [relation] = standin.relations_of(old.id)
    assert (relation.issue.id, relation.related_issue.id, relation.type) == (
        new.id,
        old.id,
        "related",
    )


async def test_a_completed_issue_is_read_and_reopened_into_the_first_unstarted_state(
    standin: LinearStandin,
) -> None:
    async with on(standin) as client:
        issue = await client.create_issue(**standin_create_args())
        standin.complete_issue(issue.id)  # a person, in Linear's app
        completed = await client.get_issue(issue.id)
        states = await client.workflow_states(DEFAULT_TEAM_ID)
        target = first_state(states, "unstarted")
        assert target is not None
        reopened = await client.move_issue(issue.id, target.id)
        after = await client.get_issue(issue.id)
    assert completed is not None
    assert (completed.state_type, completed.state_name) == ("completed", "Done")
    assert completed.completed_at is not None
    assert completed.completed_at.tzinfo is not None
    assert [s.name for s in states][:3] == ["Triage", "Backlog", "Todo"]
    assert (reopened.state_type, reopened.state_name, reopened.completed_at) == (
        "unstarted",
        "Todo",
        None,
    )
    assert after == reopened
    first, second = standin.state_changes(issue.id)
    assert (first.by_person, second.by_person) == (True, False)
    assert second.actor == standin.viewer


async def test_a_canceled_issue_reads_as_canceled(standin: LinearStandin) -> None:
    async with on(standin) as client:
        issue = await client.create_issue(**standin_create_args())
        standin.cancel_issue(issue.id)
        canceled = await client.get_issue(issue.id)
    assert canceled is not None
    assert canceled.state_type == "canceled"
    assert canceled.canceled_at is not None
    assert canceled.completed_at is None


async def test_the_attachment_is_upserted_as_the_issues_live_status(
    standin: LinearStandin,
) -> None:
    url = "https://kubetriage.invalid/clusters/c/namespaces/shop/diagnosisreports/api"
    async with on(standin) as client:
        issue = await client.create_issue(**standin_create_args())
        first = await client.attach_url(issue.id, url, "api", subtitle="shop · c")
        second = await client.upsert_attachment(
            issue.id, url, "api", "Open · 3 occurrences", {"occurrences": 3, "phase": "Open"}
        )
        third = await client.upsert_attachment(
            issue.id, url, "api", "Resolved after 14m", {"occurrences": 3, "phase": "Resolved"}
        )
        found = await client.find_issue_by_url(url)
    assert first == second == third
    history = standin.attachment_history(issue.id)
    assert [(h.created, h.subtitle, h.metadata.get("phase")) for h in history] == [
        (True, "shop · c", None),
        (False, "Open · 3 occurrences", "Open"),
        (False, "Resolved after 14m", "Resolved"),
    ]
    assert found is not None
    assert found.id == issue.id


async def test_an_outage_with_one_attempt_fails_fast_then_delivers(
    standin: LinearStandin,
) -> None:
    standin.fail_for(0.4)
    async with on(standin, max_attempts=1) as client:
        count = RequestCount()
        with pytest.raises(LinearTransportError) as raised:
            await client.create_issue(**standin_create_args(), counter=count)
        assert raised.value.status == 500
        await asyncio.sleep(0.5)
        issue = await client.create_issue(**standin_create_args(), counter=count)
    assert issue.identifier == "OPS-1"
    assert count.requests == 2
    assert [r.status for r in standin.requests] == [500, 200]
