"""The Linear stand-in answers as Linear does: schema-checked, idempotent by id, faulty on demand.

Every test talks HTTP to a running stand-in with httpx, as the operator's client will.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from helpers import wait_until
from linear_standin import DEFAULT_TEAM_ID, FaultKind, LinearStandin, document_errors

CREATE = """
mutation Create($input: IssueCreateInput!) {
  issueCreate(input: $input) {
    success
    issue { id identifier url number title description priority priorityLabel labelIds
            createdAt updatedAt team { id key } }
  }
}
"""
ISSUE = "query Issue($id: String!) { issue(id: $id) { id identifier title state { name type } } }"
ATTACH = """
mutation Attach($input: AttachmentCreateInput!) {
  attachmentCreate(input: $input) {
    success
    attachment { id url title issue { id identifier url } }
  }
}
"""
FOR_URL = """
query ForUrl($url: String!) {
  attachmentsForURL(url: $url) { nodes { id url title issue { id identifier url title } } }
}
"""
COMMENT = """
mutation Comment($input: CommentCreateInput!) {
  commentCreate(input: $input) { success comment { id body issue { id } } }
}
"""
VIEWER = "query Viewer { viewer { id name } }"
REPORT_URL = "https://kubetriage.invalid/reports/ns/web-oom"
# One client for the module: a new one per request costs ~60 ms of TLS set-up. No proxy from the
# environment may sit between the tests and 127.0.0.1.
HTTP = httpx.Client(trust_env=False)


@pytest.fixture
def linear() -> Iterator[LinearStandin]:
    """A running stand-in; every test also checks that it sent only valid documents."""
    with LinearStandin() as standin:
        yield standin
        assert standin.invalid_documents == [], "a test sent a document Linear's schema refuses"


def post(
    linear: LinearStandin,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    timeout: float = 5.0,
) -> httpx.Response:
    """POST one GraphQL request, authenticated with the stand-in's key unless `key` is given."""
    headers = {"Authorization": linear.api_key if key is None else key}
    body = {"query": query, "variables": variables or {}}
    return HTTP.post(linear.url, json=body, headers=headers, timeout=timeout)


def create(linear: LinearStandin, title: str = "web OOMKilled", **fields: Any) -> httpx.Response:
    """issueCreate on the stand-in's team."""
    return post(linear, CREATE, {"input": {"teamId": DEFAULT_TEAM_ID, "title": title, **fields}})


def first_error(response: httpx.Response) -> dict[str, Any]:
    """The first GraphQL error of a response."""
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors[0]


def test_creates_numbered_issues_with_linear_fields(linear: LinearStandin) -> None:
    first = create(linear, "Deployment web: OOMKilled (3 restarts)", priority=2, labelIds=["l1"])
    second = create(linear, "Second")

    assert first.status_code == 200
    issue = first.json()["data"]["issueCreate"]["issue"]
    assert first.json()["data"]["issueCreate"]["success"] is True
    assert issue["identifier"] == "OPS-1"
    assert issue["number"] == 1
    assert issue["url"] == (
        "https://linear.app/kubetriage/issue/OPS-1/deployment-web-oomkilled-3-restarts"
    )
    assert (issue["priority"], issue["priorityLabel"]) == (2, "High")
    assert issue["labelIds"] == ["l1"]
    assert issue["team"] == {"id": DEFAULT_TEAM_ID, "key": "OPS"}
    assert issue["createdAt"].endswith("Z")
    assert uuid.UUID(issue["id"]).version == 4
    assert second.json()["data"]["issueCreate"]["issue"]["identifier"] == "OPS-2"
    assert [i.identifier for i in linear.issues_created()] == ["OPS-1", "OPS-2"]


def test_a_client_id_is_kept_and_a_second_create_with_it_is_refused(
    linear: LinearStandin,
) -> None:
    issue_id = str(uuid.uuid4())
    created = create(linear, id=issue_id)
    again = create(linear, "retry", id=issue_id.upper())

    assert created.json()["data"]["issueCreate"]["issue"]["id"] == issue_id
    assert again.status_code == 200
    assert again.json()["data"] is None
    error = first_error(again)
    assert error["extensions"]["type"] == "invalid input"
    assert "already exists" in error["message"]
    assert error["path"] == ["issueCreate"]
    assert [i.id for i in linear.issues_created()] == [issue_id]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"id": str(uuid.uuid1())}, "Argument Validation Error", id="uuid1 id"),
        pytest.param({"id": "report-42"}, "Argument Validation Error", id="id not a uuid"),
        pytest.param({"teamId": str(uuid.uuid4())}, "Entity not found: Team", id="unknown team"),
        pytest.param({"teamId": "OPS"}, "Entity not found: Team", id="team key for id"),
        pytest.param({"priority": 7}, "Argument Validation Error", id="priority out of range"),
        pytest.param({"title": " "}, "Argument Validation Error", id="blank title"),
    ],
)
def test_bad_create_input_is_invalid_input_and_creates_nothing(
    linear: LinearStandin, fields: dict[str, Any], message: str
) -> None:
    response = create(linear, **fields)

    assert response.status_code == 200
    assert first_error(response)["message"] == message
    assert first_error(response)["extensions"]["type"] == "invalid input"
    assert linear.issues_created() == []


@pytest.mark.parametrize("by", ["id", "identifier", "lower-case identifier"])
def test_issue_is_found_by_id_or_identifier(linear: LinearStandin, by: str) -> None:
    issue = create(linear, "Find me").json()["data"]["issueCreate"]["issue"]
    key = {"id": issue["id"], "identifier": "OPS-1", "lower-case identifier": "ops-1"}[by]

    found = post(linear, ISSUE, {"id": key}).json()["data"]["issue"]

    assert found["id"] == issue["id"]
    assert (found["identifier"], found["title"]) == ("OPS-1", "Find me")


@pytest.mark.parametrize(
    ("state_type", "name"), [(None, "Todo"), ("completed", "Done"), ("canceled", "Canceled")]
)
def test_an_issue_starts_in_todo_and_moves_as_a_person_moves_it(
    linear: LinearStandin, state_type: str | None, name: str
) -> None:
    create(linear)
    if state_type is not None:
        linear.set_issue_state("OPS-1", state_type)

    found = post(linear, ISSUE, {"id": "OPS-1"}).json()["data"]["issue"]

    assert found["state"] == {"name": name, "type": state_type or "unstarted"}


def test_an_unknown_issue_is_entity_not_found(linear: LinearStandin) -> None:
    response = post(linear, ISSUE, {"id": "OPS-99"})

    assert response.status_code == 200
    assert response.json()["data"] is None
    assert first_error(response)["message"] == "Entity not found: Issue"
    assert first_error(response)["extensions"]["type"] == "invalid input"


def test_an_attachment_is_upserted_by_url_and_found_again(linear: LinearStandin) -> None:
    issue = create(linear).json()["data"]["issueCreate"]["issue"]
    attach = {"issueId": issue["id"], "url": REPORT_URL, "title": "report"}

    first = post(linear, ATTACH, {"input": attach}).json()["data"]["attachmentCreate"]
    second = post(linear, ATTACH, {"input": {**attach, "title": "report (updated)"}})
    other = post(linear, ATTACH, {"input": {**attach, "url": REPORT_URL + "-2"}})
    found = post(linear, FOR_URL, {"url": REPORT_URL}).json()["data"]["attachmentsForURL"]

    attachment = second.json()["data"]["attachmentCreate"]["attachment"]
    assert attachment["id"] == first["attachment"]["id"]
    assert attachment["title"] == "report (updated)"
    assert attachment["issue"] == {k: issue[k] for k in ("id", "identifier", "url")}
    assert other.json()["data"]["attachmentCreate"]["success"] is True
    assert [a.url for a in linear.attachments_on("OPS-1")] == [REPORT_URL, REPORT_URL + "-2"]
    assert found["nodes"] == [
        {
            "id": attachment["id"],
            "url": REPORT_URL,
            "title": "report (updated)",
            "issue": {k: issue[k] for k in ("id", "identifier", "url", "title")},
        }
    ]


def test_attachments_for_an_unknown_url_are_none(linear: LinearStandin) -> None:
    create(linear)

    found = post(linear, FOR_URL, {"url": REPORT_URL}).json()["data"]["attachmentsForURL"]

    assert found == {"nodes": []}


def test_a_comment_lands_on_its_issue(linear: LinearStandin) -> None:
    issue_id = create(linear).json()["data"]["issueCreate"]["issue"]["id"]

    response = post(linear, COMMENT, {"input": {"issueId": issue_id, "body": "Recurred."}})
    missing = post(linear, COMMENT, {"input": {"issueId": "OPS-9", "body": "lost"}})

    comment = response.json()["data"]["commentCreate"]["comment"]
    assert comment["body"] == "Recurred."
    assert comment["issue"] == {"id": issue_id}
    assert [c.body for c in linear.comments_on(issue_id)] == ["Recurred."]
    assert first_error(missing)["message"] == "Entity not found: Issue"


def test_viewer_and_team_answer_a_key_check(linear: LinearStandin) -> None:
    viewer = post(linear, VIEWER).json()["data"]["viewer"]
    team = post(
        linear, "query T($id: String!) { team(id: $id) { id key name } }", {"id": DEFAULT_TEAM_ID}
    )

    assert viewer == {"id": linear.viewer.id, "name": linear.viewer.name}
    assert team.json()["data"]["team"] == {
        "id": DEFAULT_TEAM_ID,
        "key": "OPS",
        "name": "Operations",
    }


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        pytest.param(
            "query { viewer { id nickname } }", {}, "GRAPHQL_VALIDATION_FAILED", id="unknown field"
        ),
        pytest.param("query { viewer { id }", {}, "GRAPHQL_PARSE_FAILED", id="syntax error"),
        pytest.param(
            "query Q($id: Int!) { issue(id: $id) { id } }",
            {"id": 1},
            "GRAPHQL_VALIDATION_FAILED",
            id="wrong variable type",
        ),
        pytest.param(ISSUE, {}, "BAD_USER_INPUT", id="missing variable"),
    ],
)
def test_an_invalid_document_is_refused_with_400_and_recorded(
    query: str, variables: dict[str, Any], code: str
) -> None:
    with LinearStandin() as linear:
        response = post(linear, query, variables)

        assert response.status_code == 400
        assert first_error(response)["extensions"]["type"] == "graphql error"
        assert first_error(response)["extensions"]["code"] == code
        assert [d.query for d in linear.invalid_documents] == [query]
        # Only the missing variable is a valid document; the schema check alone agrees.
        assert (document_errors(query) == []) == (code == "BAD_USER_INPUT")


def test_the_documents_used_here_are_valid_for_linear() -> None:
    for query in (CREATE, ISSUE, ATTACH, FOR_URL, COMMENT, VIEWER):
        assert document_errors(query) == [], query


@pytest.mark.parametrize("kind", ["wrong key", "bearer prefix", "no key", "revoked key"])
def test_bad_credentials_are_an_authentication_error(linear: LinearStandin, kind: str) -> None:
    key = {
        "wrong key": "lin_api_other",
        "bearer prefix": f"Bearer {linear.api_key}",
        "no key": "",
        "revoked key": linear.api_key,
    }[kind]
    linear.set_api_key_valid(kind != "revoked key")

    response = create(linear) if kind == "revoked key" else post(linear, CREATE, key=key)

    assert response.status_code == 401
    error = first_error(response)
    assert error["message"] == "Authentication required, not authenticated"
    assert error["extensions"]["type"] == "authentication error"
    assert linear.issues_created() == []


@pytest.mark.parametrize(
    ("kind", "options", "status", "error_type", "retry_after"),
    [
        pytest.param("http429", {}, 429, "ratelimited", "1", id="http429"),
        pytest.param("http429", {"retry_after": 7}, 429, "ratelimited", "7", id="http429 7s"),
        pytest.param("ratelimited", {}, 400, "ratelimited", None, id="ratelimited"),
        pytest.param("ratelimited", {"status": 200}, 200, "ratelimited", None, id="on 200"),
        pytest.param("http500", {}, 500, "internal error", None, id="http500"),
        pytest.param("http500", {"status": 503}, 503, "internal error", None, id="http503"),
    ],
)
def test_a_refusing_fault_applies_nothing_and_then_clears(
    linear: LinearStandin,
    kind: FaultKind,
    options: dict[str, Any],
    status: int,
    error_type: str,
    retry_after: str | None,
) -> None:
    linear.fail_next(kind, times=2, **options)

    refused = [create(linear), create(linear)]
    served = create(linear)

    for response in refused:
        assert response.status_code == status
        assert first_error(response)["extensions"]["type"] == error_type
        assert response.headers.get("retry-after") == retry_after
    if error_type == "ratelimited":
        assert refused[0].headers["x-ratelimit-requests-remaining"] == "0"
    assert served.status_code == 200
    assert [i.identifier for i in linear.issues_created()] == ["OPS-1"]


@pytest.mark.parametrize("process_first", [False, True], ids=["then processed", "processed first"])
def test_a_slow_answer_times_out_but_the_create_happens(
    linear: LinearStandin, process_first: bool
) -> None:
    issue_id = str(uuid.uuid4())
    linear.fail_next("slow", seconds=0.6, process_first=process_first)

    with pytest.raises(httpx.ReadTimeout):
        post(
            linear,
            CREATE,
            {"input": {"teamId": DEFAULT_TEAM_ID, "title": "t", "id": issue_id}},
            timeout=0.2,
        )
    if process_first:
        assert len(linear.issues_created()) == 1  # applied at once; only the answer is late
    else:
        assert linear.issues_created() == []  # still waiting, to be applied after the delay
    wait_until(linear.issues_created, timeout=5, what="the slow create to be applied")
    retried = create(linear, id=issue_id)

    assert "already exists" in first_error(retried)["message"]
    assert [i.id for i in linear.issues_created()] == [issue_id]


def test_a_connection_dropped_after_processing_still_created_the_issue(
    linear: LinearStandin,
) -> None:
    linear.fail_next("drop_after_processing")

    with pytest.raises(httpx.RemoteProtocolError):
        create(linear, "lost answer")
    after = post(linear, ISSUE, {"id": "OPS-1"})

    assert after.json()["data"]["issue"]["title"] == "lost answer"
    assert len(linear.issues_created()) == 1


def test_an_unknown_fault_kind_is_refused(linear: LinearStandin) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        linear.fail_next("http418")  # type: ignore[arg-type]


def test_requests_are_recorded_with_headers_and_rate_limits(linear: LinearStandin) -> None:
    first = create(linear, "needle-7f3a in the title")
    second = post(linear, VIEWER)

    assert [r.path for r in linear.requests] == ["/graphql", "/graphql"]
    assert linear.requests[0].headers["authorization"] == linear.api_key
    assert "needle-7f3a" in linear.requests[0].body
    assert linear.requests_containing("needle-7f3a") == [linear.requests[0]]
    assert linear.requests_containing("never-sent") == []
    assert first.headers["x-ratelimit-requests-limit"] == "5000"
    assert int(first.headers["x-ratelimit-requests-remaining"]) == 4999
    assert int(second.headers["x-ratelimit-requests-remaining"]) == 4998
    assert int(first.headers["x-ratelimit-requests-reset"]) > 10**12  # epoch milliseconds
