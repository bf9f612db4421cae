"""The Linear stand-in answers as Linear does: schema-checked, idempotent by id, faulty on demand.

Every test talks HTTP to a running stand-in with httpx, as the operator's client will.
"""

from __future__ import annotations

import time
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


def assert_says_nothing_about_the_id(error: dict[str, Any]) -> None:
    """A duplicate-id refusal carries no words a client could match on."""
    said = f"{error['message']} {error['extensions'].get('userPresentableMessage', '')}".lower()
    for words in ("already", "exist", "taken", "duplicate", "unique", "conflict"):
        assert words not in said, said


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
    # Linear's generic refusal: nothing in it says why, so a client must read the id back.
    assert error["message"] == "Argument Validation Error"
    assert_says_nothing_about_the_id(error)
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

    assert first_error(retried)["message"] == "Argument Validation Error"
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


# Workflow states, state changes by a person and through the API -------------------------------

STATES = """
query States($id: String!) {
  team(id: $id) { id states { nodes { id name type position team { id } } } }
}
"""
ISSUE_STATE = """
query IssueState($id: String!) {
  issue(id: $id) {
    id startedAt completedAt canceledAt
    state { id name type }
    team { id }
    history { nodes { actor { id name } fromState { type } toState { type } } }
  }
}
"""
MOVE = """
mutation Move($id: String!, $input: IssueUpdateInput!) {
  issueUpdate(id: $id, input: $input) {
    success
    issue { id title completedAt canceledAt state { id name type } }
  }
}
"""
WORKFLOW_STATE = "query S($id: String!) { workflowState(id: $id) { id name type position } }"


def team_states(linear: LinearStandin, team_id: str = DEFAULT_TEAM_ID) -> list[dict[str, Any]]:
    """The team's states, as `team(id:) { states }` answers."""
    team = post(linear, STATES, {"id": team_id}).json()["data"]["team"]
    nodes: list[dict[str, Any]] = team["states"]["nodes"]
    return nodes


def issue_state(linear: LinearStandin, key: str) -> dict[str, Any]:
    """The issue's state fields, as `issue(id:)` answers."""
    issue: dict[str, Any] = post(linear, ISSUE_STATE, {"id": key}).json()["data"]["issue"]
    return issue


def state_id(linear: LinearStandin, name: str) -> str:
    """The id of the default team's state called `name`."""
    return str(next(s["id"] for s in team_states(linear) if s["name"] == name))


def test_the_team_serves_its_workflow_states_in_position_order(linear: LinearStandin) -> None:
    nodes = team_states(linear)

    assert [(s["name"], s["type"], s["position"]) for s in nodes] == [
        ("Triage", "triage", 0.0),
        ("Backlog", "backlog", 1.0),
        ("Todo", "unstarted", 2.0),
        ("In Progress", "started", 3.0),
        ("Done", "completed", 4.0),
        ("Canceled", "canceled", 5.0),
        ("Duplicate", "duplicate", 6.0),
    ]
    assert {s["team"]["id"] for s in nodes} == {DEFAULT_TEAM_ID}
    assert [s.id for s in linear.team.states] == [s["id"] for s in nodes]
    assert linear.states["completed"].name == "Done"
    done = post(linear, WORKFLOW_STATE, {"id": nodes[4]["id"]}).json()["data"]["workflowState"]
    assert done == {"id": nodes[4]["id"], "name": "Done", "type": "completed", "position": 4.0}


def test_a_second_team_has_its_own_workflow_and_numbering() -> None:
    workflow = [("Ready", "unstarted"), ("Todo", "unstarted"), ("Shipped", "completed")]
    with LinearStandin() as linear:
        team = linear.add_team("SRE", "Reliability", workflow=workflow)
        response = post(linear, CREATE, {"input": {"teamId": team.id, "title": "x"}})
        issue = response.json()["data"]["issueCreate"]["issue"]

        assert issue["identifier"] == "SRE-1"
        assert issue["team"] == {"id": team.id, "key": "SRE"}
        assert issue_state(linear, "SRE-1")["state"]["name"] == "Ready"  # first unstarted
        assert [s["name"] for s in team_states(linear, team.id)] == ["Ready", "Todo", "Shipped"]
        with pytest.raises(ValueError, match="unstarted"):
            linear.add_team("X", "No start", workflow=[("Done", "completed")])
        assert linear.invalid_documents == []


@pytest.mark.parametrize(
    ("target", "completed", "canceled"),
    [("Done", True, False), ("Canceled", False, True), ("In Progress", False, False)],
)
def test_issue_update_moves_the_state_and_sets_linears_timestamps(
    linear: LinearStandin, target: str, completed: bool, canceled: bool
) -> None:
    issue_id = create(linear).json()["data"]["issueCreate"]["issue"]["id"]

    moved = post(linear, MOVE, {"id": issue_id, "input": {"stateId": state_id(linear, target)}})
    found = issue_state(linear, issue_id)

    payload = moved.json()["data"]["issueUpdate"]
    assert payload["success"] is True
    assert payload["issue"]["state"]["name"] == target
    assert found["state"]["name"] == target
    assert (found["completedAt"] is not None, found["canceledAt"] is not None) == (
        completed,
        canceled,
    )
    assert (found["startedAt"] is not None) == (target == "In Progress")
    [change] = linear.state_changes(issue_id)
    assert (change.actor, change.by_person) == (linear.viewer, False)
    assert (change.from_state.name, change.to_state.name) == ("Todo", target)


def test_reopening_clears_completed_at(linear: LinearStandin) -> None:
    issue_id = create(linear).json()["data"]["issueCreate"]["issue"]["id"]
    post(linear, MOVE, {"id": issue_id, "input": {"stateId": state_id(linear, "Done")}})

    post(linear, MOVE, {"id": issue_id, "input": {"stateId": state_id(linear, "Todo")}})

    found = issue_state(linear, issue_id)
    assert found["state"]["type"] == "unstarted"
    assert (found["completedAt"], found["canceledAt"]) == (None, None)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        pytest.param("unknown", "Entity not found: WorkflowState", id="unknown state"),
        pytest.param("other team", "Argument Validation Error", id="state of another team"),
    ],
)
def test_issue_update_refuses_a_state_the_issue_cannot_take(
    linear: LinearStandin, state: str, message: str
) -> None:
    issue_id = create(linear).json()["data"]["issueCreate"]["issue"]["id"]
    other = linear.add_team("SRE", "Reliability")
    target = str(uuid.uuid4()) if state == "unknown" else other.states[0].id

    response = post(linear, MOVE, {"id": issue_id, "input": {"stateId": target}})

    assert first_error(response)["message"] == message
    assert issue_state(linear, issue_id)["state"]["name"] == "Todo"
    assert linear.state_changes(issue_id) == []


def test_issue_update_refuses_fields_the_standin_does_not_model(linear: LinearStandin) -> None:
    issue_id = create(linear).json()["data"]["issueCreate"]["issue"]["id"]

    response = post(linear, MOVE, {"id": issue_id, "input": {"estimate": 3}})

    assert first_error(response)["message"] == "Argument Validation Error"
    assert "estimate" in first_error(response)["extensions"]["userPresentableMessage"]


def test_a_person_completes_cancels_and_reopens_and_is_recorded(linear: LinearStandin) -> None:
    issue_id = create(linear).json()["data"]["issueCreate"]["issue"]["id"]

    completed = linear.complete_issue("OPS-1")
    after_completion = issue_state(linear, issue_id)
    linear.reopen_issue("OPS-1", by="Sam Lead")
    after_reopening = issue_state(linear, issue_id)
    linear.cancel_issue(issue_id)
    after_cancellation = issue_state(linear, issue_id)

    assert completed is not None
    assert completed.by_person
    assert after_completion["state"]["type"] == "completed"
    assert after_completion["completedAt"] is not None
    assert after_reopening["state"]["name"] == "Todo"
    assert after_reopening["completedAt"] is None
    assert after_cancellation["state"]["type"] == "canceled"
    assert after_cancellation["canceledAt"] is not None
    changes = linear.state_changes("OPS-1")
    assert [(c.actor.name, c.to_state.type) for c in changes] == [
        ("Dana On-call", "completed"),
        ("Sam Lead", "unstarted"),
        ("Dana On-call", "canceled"),
    ]
    assert all(c.by_person and c.actor.id != linear.viewer.id for c in changes)
    # The same record is what Linear's API shows as the issue's history.
    history = after_cancellation["history"]["nodes"]
    assert [(h["actor"]["name"], h["toState"]["type"]) for h in history] == [
        ("Dana On-call", "completed"),
        ("Sam Lead", "unstarted"),
        ("Dana On-call", "canceled"),
    ]


def test_set_issue_state_is_a_person_and_a_no_op_when_already_there(
    linear: LinearStandin,
) -> None:
    create(linear)

    assert linear.set_issue_state("OPS-1", "unstarted") is None
    change = linear.set_issue_state("OPS-1", "completed", by="Robin")

    assert change is not None
    assert (change.actor.name, change.by_person) == ("Robin", True)
    assert linear.issue("OPS-1").completed_at is not None
    with pytest.raises(KeyError):
        linear.set_issue_state("OPS-9", "completed")
    with pytest.raises(KeyError):
        linear.set_issue_state("OPS-1", "paused")


# Relations --------------------------------------------------------------------------------------

RELATE = """
mutation Relate($input: IssueRelationCreateInput!) {
  issueRelationCreate(input: $input) {
    success
    issueRelation { id type issue { id } relatedIssue { id } }
  }
}
"""
RELATION = "query R($id: String!) { issueRelation(id: $id) { id type issue { identifier } } }"
RELATIONS_OF = """
query Rel($id: String!) {
  issue(id: $id) {
    relations { nodes { id relatedIssue { identifier } } }
    inverseRelations { nodes { id issue { identifier } } }
  }
}
"""


def two_issues(linear: LinearStandin) -> tuple[str, str]:
    """OPS-1 and OPS-2, by id."""
    first = create(linear, "old").json()["data"]["issueCreate"]["issue"]["id"]
    second = create(linear, "new").json()["data"]["issueCreate"]["issue"]["id"]
    return first, second


def test_a_relation_is_recorded_on_both_issues_and_found_by_id(linear: LinearStandin) -> None:
    old, new = two_issues(linear)
    relation_id = str(uuid.uuid4())

    response = post(
        linear,
        RELATE,
        {"input": {"id": relation_id, "issueId": new, "relatedIssueId": old, "type": "related"}},
    )
    found = post(linear, RELATION, {"id": relation_id}).json()["data"]["issueRelation"]
    listed = post(linear, RELATIONS_OF, {"id": new}).json()["data"]["issue"]
    inverse = post(linear, RELATIONS_OF, {"id": old}).json()["data"]["issue"]

    payload = response.json()["data"]["issueRelationCreate"]
    assert payload["issueRelation"] == {
        "id": relation_id,
        "type": "related",
        "issue": {"id": new},
        "relatedIssue": {"id": old},
    }
    assert found == {"id": relation_id, "type": "related", "issue": {"identifier": "OPS-2"}}
    assert listed["relations"]["nodes"] == [
        {"id": relation_id, "relatedIssue": {"identifier": "OPS-1"}}
    ]
    assert inverse["inverseRelations"]["nodes"] == [
        {"id": relation_id, "issue": {"identifier": "OPS-2"}}
    ]
    assert [r.id for r in linear.relations_of("OPS-1")] == [relation_id]
    assert [r.id for r in linear.relations_of(new)] == [relation_id]
    assert linear.relations_of("OPS-9") == []


def test_a_relation_id_used_twice_is_refused_without_saying_why(linear: LinearStandin) -> None:
    old, new = two_issues(linear)
    relation = {"id": str(uuid.uuid4()), "issueId": new, "relatedIssueId": old, "type": "related"}

    post(linear, RELATE, {"input": relation})
    again = post(linear, RELATE, {"input": relation})

    assert first_error(again)["message"] == "Argument Validation Error"
    assert_says_nothing_about_the_id(first_error(again))
    assert len(linear.relations_of(new)) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"relatedIssueId": "OPS-9"}, "Entity not found: Issue", id="unknown issue"),
        pytest.param({"relatedIssueId": "OPS-2"}, "Argument Validation Error", id="itself"),
    ],
)
def test_a_relation_needs_two_existing_issues(
    linear: LinearStandin, change: dict[str, str], message: str
) -> None:
    _, new = two_issues(linear)

    response = post(
        linear,
        RELATE,
        {"input": {"issueId": new, "relatedIssueId": "OPS-1", "type": "related", **change}},
    )

    assert first_error(response)["message"] == message
    assert linear.relations_of(new) == []


def test_an_unknown_relation_is_entity_not_found(linear: LinearStandin) -> None:
    response = post(linear, RELATION, {"id": str(uuid.uuid4())})

    assert first_error(response)["message"] == "Entity not found: IssueRelation"


# Attachments as live status, comments by id -----------------------------------------------------

ATTACH_META = """
mutation AttachMeta($input: AttachmentCreateInput!) {
  attachmentCreate(input: $input) { success attachment { id title subtitle metadata } }
}
"""


def test_an_attachment_update_changes_title_subtitle_metadata_and_is_recorded(
    linear: LinearStandin,
) -> None:
    issue_id = create(linear).json()["data"]["issueCreate"]["issue"]["id"]
    attach = {"issueId": issue_id, "url": REPORT_URL}
    first = {"title": "Open", "subtitle": "1 occurrence", "metadata": {"occurrences": 1}}
    second = {"title": "Open", "subtitle": "3 occurrences", "metadata": {"occurrences": 3}}

    created = post(linear, ATTACH_META, {"input": {**attach, **first}})
    updated = post(linear, ATTACH_META, {"input": {**attach, **second}})
    titled = post(linear, ATTACH_META, {"input": {**attach, "title": "Resolved after 14m"}})

    one = created.json()["data"]["attachmentCreate"]["attachment"]
    two = updated.json()["data"]["attachmentCreate"]["attachment"]
    three = titled.json()["data"]["attachmentCreate"]["attachment"]
    assert one["id"] == two["id"] == three["id"]
    assert (two["subtitle"], two["metadata"]) == ("3 occurrences", {"occurrences": 3})
    # What a call leaves out keeps its value.
    assert (three["title"], three["subtitle"], three["metadata"]) == (
        "Resolved after 14m",
        "3 occurrences",
        {"occurrences": 3},
    )
    [attachment] = linear.attachments_on(issue_id)
    assert attachment.subtitle == "3 occurrences"
    history = linear.attachment_history("OPS-1")
    assert [(h.created, h.title, h.subtitle, h.metadata) for h in history] == [
        (True, "Open", "1 occurrence", {"occurrences": 1}),
        (False, "Open", "3 occurrences", {"occurrences": 3}),
        (False, "Resolved after 14m", "3 occurrences", {"occurrences": 3}),
    ]
    assert {h.attachment_id for h in history} == {one["id"]}
    assert linear.attachment_history("OPS-9") == []


def test_an_attachment_id_used_on_another_url_is_refused_without_saying_why(
    linear: LinearStandin,
) -> None:
    issue_id = create(linear).json()["data"]["issueCreate"]["issue"]["id"]
    attachment_id = str(uuid.uuid4())
    attach = {"issueId": issue_id, "title": "t", "id": attachment_id}

    post(linear, ATTACH, {"input": {**attach, "url": REPORT_URL}})
    again = post(linear, ATTACH, {"input": {**attach, "url": REPORT_URL + "-2"}})

    assert first_error(again)["message"] == "Argument Validation Error"
    assert_says_nothing_about_the_id(first_error(again))


COMMENT_BY_ID = "query C($id: String!) { comment(id: $id) { id body user { id } issue { id } } }"


def test_a_comment_is_found_by_id_and_a_second_create_with_it_refused(
    linear: LinearStandin,
) -> None:
    issue_id = create(linear).json()["data"]["issueCreate"]["issue"]["id"]
    comment_id = str(uuid.uuid4())
    comment = {"issueId": issue_id, "body": "Recurred.", "id": comment_id}

    post(linear, COMMENT, {"input": comment})
    again = post(linear, COMMENT, {"input": {**comment, "body": "again"}})
    found = post(linear, COMMENT_BY_ID, {"id": comment_id.upper()}).json()["data"]["comment"]
    missing = post(linear, COMMENT_BY_ID, {"id": str(uuid.uuid4())})

    assert first_error(again)["message"] == "Argument Validation Error"
    assert_says_nothing_about_the_id(first_error(again))
    assert found == {
        "id": comment_id,
        "body": "Recurred.",
        "user": {"id": linear.viewer.id},
        "issue": {"id": issue_id},
    }
    assert first_error(missing)["message"] == "Entity not found: Comment"
    assert [c.body for c in linear.comments_on(issue_id)] == ["Recurred."]


def test_the_documents_of_the_additions_are_valid_for_linear() -> None:
    for query in (STATES, ISSUE_STATE, MOVE, WORKFLOW_STATE, RELATE, RELATION, RELATIONS_OF,
                  ATTACH_META, COMMENT_BY_ID):  # fmt: skip
        assert document_errors(query) == [], query


# An outage, and the request log -----------------------------------------------------------------


def test_fail_for_refuses_every_request_for_a_while_then_serves(linear: LinearStandin) -> None:
    linear.fail_next("http429", only="Create")  # queued: waits for the outage to end
    linear.fail_for(0.5)

    during = [create(linear) for _ in range(3)] + [post(linear, VIEWER)]
    time.sleep(0.6)
    queued = create(linear)
    after = create(linear)

    assert [r.status_code for r in during] == [500, 500, 500, 500]
    assert {first_error(r)["extensions"]["type"] for r in during} == {"internal error"}
    assert queued.status_code == 429
    assert after.status_code == 200
    assert [i.identifier for i in linear.issues_created()] == ["OPS-1"]


def test_fail_for_with_429_says_when_to_come_back_and_clear_faults_ends_it(
    linear: LinearStandin,
) -> None:
    linear.fail_for(30, status=429)

    limited = create(linear)
    linear.clear_faults()
    served = create(linear)

    assert limited.status_code == 429
    assert first_error(limited)["extensions"]["type"] == "ratelimited"
    assert 29 <= int(limited.headers["retry-after"]) <= 30
    assert served.status_code == 200


def test_fail_for_503(linear: LinearStandin) -> None:
    linear.fail_for(30, status=503)

    assert create(linear).status_code == 503


def test_the_request_log_has_operation_fields_variables_time_and_status(
    linear: LinearStandin,
) -> None:
    started = time.time()
    create(linear, "logged")
    linear.fail_next("http500")
    post(linear, VIEWER)
    linear.fail_next("drop_after_processing")
    with pytest.raises(httpx.RemoteProtocolError):
        post(linear, COMMENT, {"input": {"issueId": "OPS-1", "body": f"{linear.api_key} leak"}})
    HTTP.post(linear.url, content=b"not json", headers={"Authorization": linear.api_key})

    first, second, third, fourth = linear.requests
    assert (first.operation, first.fields, first.status) == ("Create", ("issueCreate",), 200)
    assert first.variables == {"input": {"teamId": DEFAULT_TEAM_ID, "title": "logged"}}
    assert started <= first.at <= second.at <= time.time()
    assert (second.operation, second.fields, second.status) == ("Viewer", ("viewer",), 500)
    assert (third.fields, third.status) == (("commentCreate",), None)  # answered nothing
    assert third.variables == {"input": {"issueId": "OPS-1", "body": "*** leak"}}
    assert (fourth.operation, fourth.fields, fourth.variables, fourth.status) == (
        "",
        (),
        {},
        400,
    )
    assert linear.requests_for("commentCreate") == [third]
    assert linear.requests_for("Viewer") == [second]
    assert len(linear.comments_on("OPS-1")) == 1  # the dropped answer's comment was made
    linear.invalid_documents.clear()  # the "not json" body was refused on purpose
