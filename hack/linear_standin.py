"""A local stand-in for Linear's GraphQL API, for tests (DESIGN.md section 6).

It validates every document against Linear's real public schema (`../shared/linear/schema.graphql`)
and executes it with graphql-core over that same schema, so a query the real API would refuse is
refused here too. It keeps issues, attachments and comments in memory, records every request, and
injects the faults the client must survive: rate limiting, 5xx, answers that arrive too late, and a
connection cut after the mutation was applied.

The answers copy the shapes Linear gives, as captured by others from api.linear.app and as Linear's
SDK (`packages/sdk/src/error.ts`) reads them: the error kind is `errors[0].extensions.type`, the
readable text `extensions.userPresentableMessage`; HTTP 429 means rate limited, another 4xx without
a typed error means bad credentials, 5xx a server or network fault.

What it answers (HTTP status, then `errors[0]`: message and `extensions.type`):
- an invalid document: 400, graphql-core's validation message, "graphql error";
- a bad, missing or "Bearer"-prefixed key: 401, "Authentication required, not authenticated",
  "authentication error" (Linear's captured body; older captures show 400, and the SDK reads the
  type first, then any other 4xx as an authentication error);
- an unknown id or identifier: 200 with data null, "Entity not found: Issue", "invalid input";
- a create (issue, comment, relation, attachment) naming an id already used: 200 with data null,
  "Argument Validation Error", "invalid input", and a presentable text that says nothing about
  why ("id is not valid.");
- an id that is not a UUID v4, an empty title: 200, "Argument Validation Error", "invalid input";
- fail_next("http429"): 429 with `retry-after`, "Rate limit exceeded", "ratelimited";
- fail_next("ratelimited"): 400 (as third-party captures show), the same body, requests remaining 0;
- fail_next("http500"): 500, "Internal server error", "internal error".

No public capture shows the duplicate-id answer, so its wording is this stand-in's choice, and a
deliberately unhelpful one: Linear's generic class-validator refusal, with no "already exists",
"taken" or "duplicate" in it. A client must not read the refusal; it reads the id back instead.

Beyond serving, tests drive it as a person would in Linear's app, and inspect what was sent:
- teams and their workflow states (`add_team`, `team.states`, `states`), served through
  `team(id:) { states }` and `workflowState(id:)`;
- `set_issue_state`, `complete_issue`, `cancel_issue`, `reopen_issue`: a state change "by a
  person", recorded in the issue's `history` with who made it (`state_changes`), and setting
  `startedAt` / `completedAt` / `canceledAt` as `issueUpdate` through the API does;
- `relations_of`, `attachment_history`, `comments_on`, `issues_created`: what the client made;
- `requests`, `requests_for`, `requests_containing`: every request with its operation, root
  fields, variables, time and HTTP status;
- `fail_next` (one request at a time) and `fail_for` (every request for a while): faults.

Connections (`team.states`, `issue.relations`, `issue.history`, `attachmentsForURL`...) accept
Linear's paging and filter arguments and ignore them: each answers everything in one page.

    with LinearStandin() as linear:
        linear.fail_next("http429", retry_after=2)
        httpx.post(linear.url, json={"query": "{ viewer { id } }"},
                   headers={"Authorization": linear.api_key})
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, get_args

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    execute_sync,
    get_named_type,
    parse,
    validate,
)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "shared" / "linear" / "schema.graphql"
DEFAULT_TEAM_ID = "0f1e2d3c-4b5a-4678-9abc-def012345678"
DEFAULT_VIEWER_ID = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f60718293"
PRIORITY_LABELS = ("No priority", "Urgent", "High", "Medium", "Low")
# A new team's workflow in Linear (with triage on), as (name, type) in position order; issues
# start in the first "unstarted" state.
DEFAULT_WORKFLOW: tuple[tuple[str, str], ...] = (
    ("Triage", "triage"),
    ("Backlog", "backlog"),
    ("Todo", "unstarted"),
    ("In Progress", "started"),
    ("Done", "completed"),
    ("Canceled", "canceled"),
    ("Duplicate", "duplicate"),
)
STATE_TYPES = ("triage", "backlog", "unstarted", "started", "completed", "canceled", "duplicate")
# Who changes an issue "by a person" unless a test names someone else.
DEFAULT_PERSON = "Dana On-call"
FaultKind = Literal["http429", "ratelimited", "http500", "slow", "drop_after_processing"]

_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.I)
_schema_lock = threading.Lock()


@functools.cache
def _build_schema(path: Path) -> GraphQLSchema:
    # The SDL is Linear's own, so graphql-core's checks of the SDL itself only cost time.
    return build_schema(path.read_text(encoding="utf-8"), assume_valid_sdl=True)


def linear_schema(path: Path = SCHEMA_PATH) -> GraphQLSchema:
    """Linear's public schema, built once per process: the 1.2 MB SDL takes seconds to build."""
    with _schema_lock:
        return _build_schema(path)


def document_errors(query: str) -> list[GraphQLError]:
    """Why `query` is not a valid document for Linear's schema; empty when it is."""
    try:
        document = parse(query)
    except GraphQLError as error:
        return [error]
    return list(validate(linear_schema(), document))


@dataclass(eq=False)
class TeamRecord:
    """A team and its workflow (`Team.states`, in position order)."""

    id: str
    key: str
    name: str
    states: list[StateRecord] = field(default_factory=list)


@dataclass(eq=False)
class StateRecord:
    """A workflow state of a team (`Issue.state`, `Team.states`)."""

    id: str
    name: str
    type: str
    position: float
    team: TeamRecord
    created_at: str
    updated_at: str
    color: str = "#e2e2e2"


@dataclass(eq=False)
class UserRecord:
    """The user the API key belongs to (`viewer`)."""

    id: str
    name: str
    email: str
    display_name: str
    active: bool = True


@dataclass(eq=False)  # identity, not field equality: issues and attachments refer to each other
class IssueRecord:
    """An issue as created; GraphQL fields resolve to the snake_case attributes."""

    id: str
    identifier: str
    number: int
    title: str
    description: str | None
    priority: int
    label_ids: list[str]
    url: str
    team: TeamRecord
    state: StateRecord
    created_at: str
    updated_at: str
    started_at: str | None = None
    completed_at: str | None = None
    canceled_at: str | None = None
    attachments: list[AttachmentRecord] = field(default_factory=list)
    comments: list[CommentRecord] = field(default_factory=list)
    history: list[IssueHistoryRecord] = field(default_factory=list)
    relations: list[RelationRecord] = field(default_factory=list)  # this issue -> another
    inverse_relations: list[RelationRecord] = field(default_factory=list)  # another -> this

    @property
    def priority_label(self) -> str:
        """Linear's name for the priority number."""
        return PRIORITY_LABELS[self.priority]


@dataclass(eq=False)
class AttachmentRecord:
    """A URL linked to an issue; Linear keeps one per (issue, url)."""

    id: str
    url: str
    title: str
    subtitle: str | None
    metadata: dict[str, Any]
    issue: IssueRecord
    created_at: str
    updated_at: str
    group_by_source: bool = False


@dataclass(eq=False)
class CommentRecord:
    """A comment on an issue; `user` wrote it (the API key's user, for comments sent)."""

    id: str
    body: str
    issue: IssueRecord
    url: str
    created_at: str
    updated_at: str
    user: UserRecord | None = None


@dataclass(eq=False)
class IssueHistoryRecord:
    """A state change of an issue (`Issue.history`), and who made it.

    `by_person` tells a change made through the admin API "in Linear's app" from one the API
    key's user made with `issueUpdate`.
    """

    id: str
    issue: IssueRecord
    actor: UserRecord
    from_state: StateRecord
    to_state: StateRecord
    created_at: str
    updated_at: str
    by_person: bool

    @property
    def actor_id(self) -> str:
        """`IssueHistory.actorId`."""
        return self.actor.id

    @property
    def from_state_id(self) -> str:
        """`IssueHistory.fromStateId`."""
        return self.from_state.id

    @property
    def to_state_id(self) -> str:
        """`IssueHistory.toStateId`."""
        return self.to_state.id


@dataclass(eq=False)
class RelationRecord:
    """An issue relation (`IssueRelation`): `issue` relates to `related_issue` as `type`."""

    id: str
    type: str
    issue: IssueRecord
    related_issue: IssueRecord
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class AttachmentChange:
    """An attachment as one attachmentCreate left it: `created` for the first, else an update."""

    attachment_id: str
    issue_id: str
    url: str
    title: str
    subtitle: str | None
    metadata: dict[str, Any]
    at: str
    created: bool


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it reached the stand-in, and how it was answered.

    `headers` (names lower-case) and `body` are raw, the Authorization header included, for
    tests of how the key is sent. `operation` is the operation's name ("KubetriageIssueCreate"),
    `fields` its root fields (("issueCreate",)), `variables` as sent with any occurrence of the
    API key replaced by "***"; all three stay empty for a body that does not parse (and
    `operation` for an anonymous operation). `at` is the
    arrival time (Unix seconds); `status` the HTTP status answered, None while it is being
    served or when the connection was closed unanswered.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: str
    at: float = 0.0
    operation: str = ""
    fields: tuple[str, ...] = ()
    variables: dict[str, Any] = field(default_factory=dict)
    status: int | None = None


@dataclass(frozen=True)
class InvalidDocument:
    """A request the schema refused, and why."""

    query: str
    errors: list[str]


@dataclass(frozen=True)
class _Fault:
    kind: FaultKind | None
    seconds: float = 0.0
    retry_after: int | None = None
    status: int | None = None
    process_first: bool = False
    only: str | None = None  # an operation-name fragment: the fault waits for such a request


_NO_FAULT = _Fault(None)


@dataclass(frozen=True)
class _Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(message: str, kind: str, code: str, status: int, presentable: str) -> GraphQLError:
    extensions = {"type": kind, "code": code, "statusCode": status, "userError": status < 500}
    return GraphQLError(message, extensions={**extensions, "userPresentableMessage": presentable})


def _not_found(entity: str) -> GraphQLError:
    message, presentable = f"Entity not found: {entity}", f"Could not find referenced {entity}."
    return _error(message, "invalid input", "INPUT_ERROR", 400, presentable)


def _invalid_argument(presentable: str) -> GraphQLError:
    # Linear validates inputs with class-validator, whose failures read "Argument Validation Error".
    return _error("Argument Validation Error", "invalid input", "INVALID_INPUT", 400, presentable)


def _id_refused() -> GraphQLError:
    # A create naming an id that is taken. Deliberately generic (see the module docstring): no
    # wording a client could match, so a client must read the id back to know it exists.
    return _invalid_argument("id is not valid.")


def _scrub(value: Any, secret: str) -> Any:
    """`value` (decoded JSON) with every occurrence of `secret` in its strings replaced."""
    if isinstance(value, str):
        return value.replace(secret, "***") if secret else value
    if isinstance(value, list):
        return [_scrub(item, secret) for item in value]
    if isinstance(value, dict):
        return {key: _scrub(item, secret) for key, item in value.items()}
    return value


def _operation_of(document: DocumentNode, name: str | None) -> tuple[str, tuple[str, ...]]:
    """The name and root fields of the operation a request runs (by `operationName` if given)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = next(
        (op for op in operations if name is None or (op.name and op.name.value == name)), None
    )
    if chosen is None:
        return name or "", ()
    fields = tuple(
        node.name.value for node in chosen.selection_set.selections if isinstance(node, FieldNode)
    )
    return (chosen.name.value if chosen.name else ""), fields


def _document_error(error: GraphQLError, code: str) -> dict[str, Any]:
    formatted = dict(error.formatted)
    formatted["extensions"] = {"type": "graphql error", "code": code, "userError": True}
    return formatted


@functools.cache
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _connection(nodes: list[Any]) -> dict[str, Any]:
    return {
        "nodes": nodes,
        "edges": [{"node": node, "cursor": node.id} for node in nodes],
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": nodes[0].id if nodes else None,
            "endCursor": nodes[-1].id if nodes else None,
        },
    }


def _resolve(source: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
    # Records keep Python names, so `createdAt` reads `created_at`; a field a record lacks is null.
    if isinstance(source, Mapping):
        value = source.get(info.field_name)
    else:
        value = getattr(source, _snake(info.field_name), None)
    if callable(value):
        return value(info, **args)
    if isinstance(value, list) and get_named_type(info.return_type).name.endswith("Connection"):
        return _connection(value)
    return value


def _slug(title: str) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())
    slug = ""
    for word in words:  # whole words up to about 60 characters, as Linear's issue URLs read
        if slug and len(slug) + len(word) + 1 > 60:
            break
        slug = f"{slug}-{word}" if slug else word
    return slug or "issue"


def _uuid4_or_new(value: object) -> str:
    if value is None:
        return str(uuid.uuid4())
    if not isinstance(value, str) or not _UUID4.fullmatch(value):
        raise _invalid_argument("id must be a UUID (version 4).")
    return value.lower()  # Linear stores ids as Postgres uuids, which ignore case


def _first(team: TeamRecord, state_type: str) -> StateRecord | None:
    """The team's first state of `state_type` by position."""
    matching = [state for state in team.states if state.type == state_type]
    return min(matching, key=lambda state: state.position) if matching else None


def _first_or_fail(team: TeamRecord, state_type: str) -> StateRecord:
    state = _first(team, state_type)
    if state is None:
        raise _invalid_argument(f"The team has no {state_type} state.")
    return state


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a request still sleeping in a "slow" fault must not block stop()

    def __init__(self, standin: LinearStandin) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.standin = standin


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        """Answer one GraphQL request (or close the connection without an answer)."""
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.standin._serve(self.command, self.path, headers, raw)
        if reply is None:
            self.close_connection = True  # nothing written: the client sees the socket close
            return
        data = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a "slow" fault): the work stays done, as at Linear

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the requests are recorded, not logged."""


class LinearStandin:
    """Linear's GraphQL API on 127.0.0.1, in memory, with recorded requests and injected faults."""

    def __init__(
        self,
        *,
        api_key: str = "lin_api_standin",
        team_key: str = "OPS",
        team_id: str = DEFAULT_TEAM_ID,
        team_name: str = "Operations",
        organization: str = "kubetriage",
        requests_limit: int = 5000,
        workflow: Sequence[tuple[str, str]] = DEFAULT_WORKFLOW,
    ) -> None:
        """Prepare the stand-in (building the schema now, so no first request waits for it).

        `workflow` is the default team's states as (name, type) pairs in position order.
        """
        self.schema = linear_schema()
        self.api_key = api_key
        self.organization = organization
        self.requests_limit = requests_limit
        self._lock = threading.RLock()
        self.teams: dict[str, TeamRecord] = {}
        self.team = self.add_team(team_key, team_name, team_id=team_id, workflow=workflow)
        self.viewer = UserRecord(DEFAULT_VIEWER_ID, "kubetriage", "kubetriage@example.com", "kt")
        self.people: dict[str, UserRecord] = {}
        self.requests: list[RecordedRequest] = []
        self.invalid_documents: list[InvalidDocument] = []
        self._issues: dict[str, IssueRecord] = {}
        self._attachments: list[AttachmentRecord] = []
        self._attachment_changes: list[AttachmentChange] = []
        self._comments: dict[str, CommentRecord] = {}
        self._relations: dict[str, RelationRecord] = {}
        self._faults: list[_Fault] = []
        self._outage_until = 0.0  # time.monotonic() before which every request fails (fail_for)
        self._outage_status = 500
        self._key_valid = True
        self._sync_id = 0
        self._window_start = time.time()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._root: dict[str, Any] = {
            "issueCreate": self._issue_create,
            "issue": lambda _info, id: self._find_issue(id),
            "issueUpdate": self._issue_update,
            "issueRelationCreate": self._issue_relation_create,
            "issueRelation": lambda _info, id: self._find_relation(id),
            "attachmentCreate": self._attachment_create,
            "attachmentsForURL": self._attachments_for_url,
            "commentCreate": self._comment_create,
            "comment": self._find_comment,
            "viewer": lambda _info: self.viewer,
            "team": lambda _info, id: self._find_team(id),
            "workflowState": lambda _info, id: self._find_state(id),
        }

    @property
    def states(self) -> dict[str, StateRecord]:
        """The default team's first state of each type (by position), by type."""
        return {kind: state for kind in STATE_TYPES if (state := _first(self.team, kind))}

    def add_team(
        self,
        key: str,
        name: str,
        *,
        team_id: str | None = None,
        workflow: Sequence[tuple[str, str]] = DEFAULT_WORKFLOW,
    ) -> TeamRecord:
        """Add a team whose workflow is `workflow`, (name, type) pairs in position order."""
        unknown = [kind for _, kind in workflow if kind not in STATE_TYPES]
        if unknown:
            raise ValueError(f"unknown state types {unknown}; known: {STATE_TYPES}")
        if not any(kind == "unstarted" for _, kind in workflow):
            raise ValueError("a workflow needs an unstarted state: new issues start there")
        team = TeamRecord(id=(team_id or str(uuid.uuid4())).lower(), key=key, name=name)
        now = _now()
        team.states = [
            StateRecord(str(uuid.uuid4()), state_name, kind, float(position), team, now, now)
            for position, (state_name, kind) in enumerate(workflow)
        ]
        with self._lock:
            if team.id in self.teams:
                raise ValueError(f"a team with id {team.id} exists")
            self.teams[team.id] = team
        return team

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LinearStandin:
        """Listen on a free loopback port and serve from a background thread."""
        if self._server is not None:
            raise RuntimeError("the Linear stand-in is already running")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="linear-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; a request still held by a "slow" fault is dropped unanswered."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> LinearStandin:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The GraphQL endpoint, e.g. http://127.0.0.1:PORT/graphql."""
        if self._server is None:
            raise RuntimeError("the Linear stand-in is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}/graphql"

    # -- control and inspection for tests ----------------------------------------------------

    def fail_next(
        self,
        kind: FaultKind,
        times: int = 1,
        *,
        seconds: float = 1.0,
        retry_after: int | None = None,
        status: int | None = None,
        process_first: bool = False,
        only: str | None = None,
    ) -> None:
        """Apply a fault to each of the next `times` requests (with `only`, to the next ones
        whose body contains that text, e.g. an operation name such as "IssueCreate").

        - "http429": HTTP 429, `retry-after: <retry_after or 1>`, a "ratelimited" error body.
        - "ratelimited": HTTP `status` (default 400) with a "ratelimited" error and requests
          remaining 0; `retry-after` only when `retry_after` is given, so the client must fall
          back on `x-ratelimit-requests-reset` (epoch milliseconds).
        - "http500": HTTP `status` (default 500), an "internal error" body; nothing applied.
        - "slow": wait `seconds`, then apply the request and answer (too late for a client with a
          shorter timeout); with `process_first`, apply it first and answer after the wait.
        - "drop_after_processing": apply the request, then close the connection unanswered.
        """
        if kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {kind!r}; known: {get_args(FaultKind)}")
        fault = _Fault(kind, seconds, retry_after, status, process_first, only)
        with self._lock:
            self._faults.extend([fault] * times)

    def fail_for(self, seconds: float, status: int = 500) -> None:
        """Answer every request with HTTP `status` for the next `seconds`, then serve again.

        An outage, not a count of requests: each request in the window is refused (after
        validation, and applying nothing), however many arrive. A 5xx carries Linear's
        "internal error" body; 429 its "ratelimited" body with `retry-after` set to the seconds
        left. Faults queued by `fail_next` wait for the outage to end. `clear_faults` ends it.
        """
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        with self._lock:
            self._outage_until = time.monotonic() + seconds
            self._outage_status = status

    def clear_faults(self) -> None:
        """Drop every fault not applied yet, and end an outage begun by `fail_for`."""
        with self._lock:
            self._faults.clear()
            self._outage_until = 0.0

    def set_api_key_valid(self, valid: bool) -> None:
        """Make Linear accept (True) or refuse (False, a revoked key) the configured key."""
        with self._lock:
            self._key_valid = valid

    def set_issue_state(
        self, issue_id: str, state_type: str, *, by: str = DEFAULT_PERSON
    ) -> IssueHistoryRecord | None:
        """Move an issue to its team's first state of this type, as the person `by` would.

        Sets `startedAt` / `completedAt` / `canceledAt` as a move through `issueUpdate` does, and
        records the change in the issue's history with `by` as its actor (`state_changes`).
        Returns that record; None when the issue was in that state already (nothing changes).
        """
        with self._lock:
            issue = self._admin_issue(issue_id)
            state = _first(issue.team, state_type)
            if state is None:
                raise KeyError(f"team {issue.team.key} has no {state_type!r} state")
            return self._move(issue, state, self._person(by), by_person=True)

    def complete_issue(
        self, issue_id: str, *, by: str = DEFAULT_PERSON
    ) -> IssueHistoryRecord | None:
        """A person marks the issue done (its team's first `completed` state)."""
        return self.set_issue_state(issue_id, "completed", by=by)

    def cancel_issue(self, issue_id: str, *, by: str = DEFAULT_PERSON) -> IssueHistoryRecord | None:
        """A person cancels the issue (its team's first `canceled` state)."""
        return self.set_issue_state(issue_id, "canceled", by=by)

    def reopen_issue(
        self, issue_id: str, state_type: str = "unstarted", *, by: str = DEFAULT_PERSON
    ) -> IssueHistoryRecord | None:
        """A person reopens the issue (by default into its team's first `unstarted` state)."""
        return self.set_issue_state(issue_id, state_type, by=by)

    def state_changes(self, issue_id: str) -> list[IssueHistoryRecord]:
        """The issue's state changes, oldest first; `by_person` tells a person from the API key."""
        with self._lock:
            issue = self._lookup_issue(issue_id)
            return list(issue.history) if issue else []

    def issue(self, issue_id: str) -> IssueRecord:
        """The issue with this id or identifier (KeyError if there is none)."""
        with self._lock:
            return self._admin_issue(issue_id)

    def relations_of(self, issue_id: str) -> list[RelationRecord]:
        """The relations from or to the issue with this id or identifier, in creation order."""
        with self._lock:
            issue = self._lookup_issue(issue_id)
            if issue is None:
                return []
            return [r for r in self._relations.values() if issue in (r.issue, r.related_issue)]

    def attachment_history(self, issue_id: str) -> list[AttachmentChange]:
        """Every attachmentCreate applied to the issue's attachments (creations and updates)."""
        with self._lock:
            issue = self._lookup_issue(issue_id)
            if issue is None:
                return []
            return [change for change in self._attachment_changes if change.issue_id == issue.id]

    def issues_created(self) -> list[IssueRecord]:
        """Every issue, in creation order."""
        with self._lock:
            return list(self._issues.values())

    def attachments_on(self, issue_id: str) -> list[AttachmentRecord]:
        """The attachments of the issue with this id or identifier (none if it does not exist)."""
        with self._lock:
            issue = self._lookup_issue(issue_id)
            return list(issue.attachments) if issue else []

    def comments_on(self, issue_id: str) -> list[CommentRecord]:
        """The comments on the issue with this id or identifier (none if it does not exist)."""
        with self._lock:
            issue = self._lookup_issue(issue_id)
            return list(issue.comments) if issue else []

    def requests_for(self, name: str) -> list[RecordedRequest]:
        """The recorded requests selecting root field `name` ("commentCreate") or running the
        operation of that name ("KubetriageCommentCreate")."""
        with self._lock:
            return [r for r in self.requests if name in r.fields or r.operation == name]

    def requests_containing(self, text: str) -> list[RecordedRequest]:
        """The recorded requests whose body or a header value contains `text`."""
        with self._lock:
            return [
                request
                for request in self.requests
                if text in request.body or any(text in v for v in request.headers.values())
            ]

    # -- serving -----------------------------------------------------------------------------

    def _serve(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> _Reply | None:
        body = raw.decode("utf-8", errors="replace")
        with self._lock:
            index = len(self.requests)
            self.requests.append(RecordedRequest(method, path, headers, body, at=time.time()))
        reply = self._answer(index, method, path, headers, body)
        with self._lock:
            record = self.requests[index]
            self.requests[index] = replace(record, status=reply.status if reply else None)
        return reply

    def _answer(
        self, index: int, method: str, path: str, headers: dict[str, str], body: str
    ) -> _Reply | None:
        with self._lock:
            if method != "POST" or path.split("?", maxsplit=1)[0] != "/graphql":
                return _Reply(404, {"errors": [{"message": f"Cannot {method} {path}"}]})
            left = self._outage_until - time.monotonic()
            # An outage refuses every request and leaves queued faults for after it.
            fault = _Fault("http500", status=self._outage_status) if left > 0 else None
            if fault is None:
                fault = self._take_fault(body)
            elif self._outage_status == 429:
                fault = _Fault("http429", retry_after=max(1, int(left + 0.999)))
        # Validation comes before any fault, so a document is checked even when it is refused.
        request = self._parse(body)
        if not isinstance(request, _Reply):
            document, variables, name = request
            operation, fields = _operation_of(document, name)
            with self._lock:
                self.requests[index] = replace(
                    self.requests[index],
                    operation=operation,
                    fields=fields,
                    variables=_scrub(variables, self.api_key),
                )
        if fault.kind in ("http429", "ratelimited", "http500"):
            return self._fault_reply(fault)
        slow = fault.kind == "slow"
        # A stop() during the wait drops the request, applied or not, as a server going away would.
        if slow and not fault.process_first and self._stopping.wait(fault.seconds):
            return None
        reply = self._process(headers, request)
        if slow and fault.process_first and self._stopping.wait(fault.seconds):
            return None
        return None if fault.kind == "drop_after_processing" else reply

    def _take_fault(self, body: str) -> _Fault:
        """The first pending fault that applies to this request (callers hold the lock)."""
        for index, fault in enumerate(self._faults):
            if fault.only is None or fault.only in body:
                return self._faults.pop(index)
        return _NO_FAULT

    def _parse(self, body: str) -> tuple[DocumentNode, dict[str, Any], str | None] | _Reply:
        try:
            payload = json.loads(body)
            query, variables = payload["query"], payload.get("variables") or {}
            operation = payload.get("operationName")
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise TypeError("query must be a string and variables an object")
        except (ValueError, KeyError, TypeError) as error:
            return self._refuse(body, [GraphQLError(f"Bad request body: {error}")], "BAD_REQUEST")
        try:
            document = parse(query)
        except GraphQLError as error:
            return self._refuse(query, [error], "GRAPHQL_PARSE_FAILED")
        errors = validate(self.schema, document)
        if errors:
            return self._refuse(query, errors, "GRAPHQL_VALIDATION_FAILED")
        return document, variables, operation

    def _refuse(self, query: str, errors: list[GraphQLError], code: str) -> _Reply:
        with self._lock:
            self.invalid_documents.append(InvalidDocument(query, [e.message for e in errors]))
        return _Reply(400, {"errors": [_document_error(e, code) for e in errors]})

    def _process(
        self,
        headers: dict[str, str],
        request: tuple[DocumentNode, dict[str, Any], str | None] | _Reply,
    ) -> _Reply:
        with self._lock:
            authenticated = self._key_valid and headers.get("authorization") == self.api_key
        if not authenticated:
            # Personal keys go bare; "Bearer <key>" is for OAuth tokens, so Linear refuses it too.
            error = _error(
                "Authentication required, not authenticated",
                "authentication error",
                "AUTHENTICATION_ERROR",
                401,
                "You need to authenticate to access this operation.",
            )
            return _Reply(401, {"errors": [error.formatted]}, self._rate_headers())
        if isinstance(request, _Reply):
            return _Reply(request.status, request.body, self._rate_headers())
        document, variables, operation = request
        with self._lock:  # one mutation at a time, as the counters and the id checks need
            result = execute_sync(
                self.schema,
                document,
                root_value=self._root,
                variable_values=variables,
                operation_name=operation,
                field_resolver=_resolve,
            )
        errors = result.errors or []
        if result.data is None and errors and all(error.path is None for error in errors):
            # Variables or operation name the document does not accept: nothing ran at all.
            query = document.loc.source.body if document.loc else ""
            return self._refuse(query, errors, "BAD_USER_INPUT")
        answer: dict[str, Any] = {"data": result.data}
        if errors:
            answer["errors"] = [error.formatted for error in errors]
        return _Reply(200, answer, self._rate_headers())

    def _fault_reply(self, fault: _Fault) -> _Reply:
        if fault.kind == "http500":
            error = _error(
                "Internal server error",
                "internal error",
                "INTERNAL_SERVER_ERROR",
                500,
                "Something went wrong.",
            )
            return _Reply(fault.status or 500, {"errors": [error.formatted]}, self._rate_headers())
        presentable = "You have exceeded the API rate limit. Please try again later."
        error = _error("Rate limit exceeded", "ratelimited", "RATELIMITED", 429, presentable)
        headers = self._rate_headers(remaining=0)
        retry_after = (fault.retry_after or 1) if fault.kind == "http429" else fault.retry_after
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        status = 429 if fault.kind == "http429" else fault.status or 400
        return _Reply(status, {"errors": [error.formatted]}, headers)

    def _rate_headers(self, remaining: int | None = None) -> dict[str, str]:
        with self._lock:
            used = len(self.requests)
        left = max(self.requests_limit - used, 0) if remaining is None else remaining
        return {
            "x-ratelimit-requests-limit": str(self.requests_limit),
            "x-ratelimit-requests-remaining": str(left),
            # Linear gives the reset as a Unix time in milliseconds.
            "x-ratelimit-requests-reset": str(int((self._window_start + 3600) * 1000)),
        }

    # -- resolvers (called by graphql-core under self._lock) ---------------------------------

    def _sync(self) -> float:
        self._sync_id += 1
        return float(self._sync_id)

    def _lookup_issue(self, key: str) -> IssueRecord | None:
        issue = self._issues.get(key.lower())
        if issue is None:
            issue = next((i for i in self._issues.values() if i.identifier == key.upper()), None)
        return issue

    def _find_issue(self, key: str) -> IssueRecord:
        issue = self._lookup_issue(key)
        if issue is None:
            raise _not_found("Issue")
        return issue

    def _admin_issue(self, key: str) -> IssueRecord:
        issue = self._lookup_issue(key)
        if issue is None:
            raise KeyError(f"no issue {key!r}")
        return issue

    def _find_team(self, team_id: str) -> TeamRecord:
        # By id only: the schema documents `teamId` and `team(id:)` as ids, not team keys.
        team = self.teams.get(team_id.lower())
        if team is None:
            raise _not_found("Team")
        return team

    def _find_state(self, state_id: str) -> StateRecord:
        for team in self.teams.values():
            for state in team.states:
                if state.id == state_id.lower():
                    return state
        raise _not_found("WorkflowState")

    def _find_relation(self, relation_id: str) -> RelationRecord:
        relation = self._relations.get(relation_id.lower())
        if relation is None:
            raise _not_found("IssueRelation")
        return relation

    def _find_comment(
        self, _info: GraphQLResolveInfo[Any], id: str | None = None, hash: str | None = None
    ) -> CommentRecord:
        # `hash` (a comment's URL fragment) is not modelled: only ids find comments here.
        comment = self._comments.get(id.lower()) if id else None
        if comment is None:
            raise _not_found("Comment")
        return comment

    def _person(self, name: str) -> UserRecord:
        """The user `name`, someone other than the API key's user, made up on first mention."""
        person = self.people.get(name)
        if person is None:
            handle = _slug(name).replace("-", ".")
            person = UserRecord(str(uuid.uuid4()), name, f"{handle}@example.com", handle)
            self.people[name] = person
        return person

    def _move(
        self, issue: IssueRecord, state: StateRecord, actor: UserRecord, *, by_person: bool
    ) -> IssueHistoryRecord | None:
        """Put the issue in `state`, with the timestamps Linear keeps, and record who did it."""
        if state is issue.state:
            return None
        now = _now()
        change = IssueHistoryRecord(
            id=str(uuid.uuid4()),
            issue=issue,
            actor=actor,
            from_state=issue.state,
            to_state=state,
            created_at=now,
            updated_at=now,
            by_person=by_person,
        )
        issue.history.append(change)
        issue.state = state
        issue.updated_at = now
        # As Linear: startedAt from the first start on, kept through completion, cleared by a
        # move back before "started"; completedAt / canceledAt only while in such a state (a
        # duplicate is a kind of cancellation).
        if state.type == "started" and issue.started_at is None:
            issue.started_at = now
        elif state.type in ("triage", "backlog", "unstarted"):
            issue.started_at = None
        issue.completed_at = now if state.type == "completed" else None
        issue.canceled_at = now if state.type in ("canceled", "duplicate") else None
        return change

    def _issue_create(
        self, _info: GraphQLResolveInfo[Any], input: dict[str, Any]
    ) -> dict[str, Any]:
        issue_id = _uuid4_or_new(input.get("id"))
        if issue_id in self._issues:
            raise _id_refused()
        team = self._find_team(input["teamId"])
        title = input.get("title") or ""
        if not title.strip():
            raise _invalid_argument("title should not be empty.")
        priority = int(input.get("priority") or 0)
        if not 0 <= priority < len(PRIORITY_LABELS):
            raise _invalid_argument("priority must be between 0 and 4.")
        number = 1 + sum(1 for issue in self._issues.values() if issue.team is team)
        identifier = f"{team.key}-{number}"
        now = _now()
        issue = IssueRecord(
            id=issue_id,
            identifier=identifier,
            number=number,
            title=title,
            description=input.get("description"),
            priority=priority,
            label_ids=list(input.get("labelIds") or []),
            url=f"https://linear.app/{self.organization}/issue/{identifier}/{_slug(title)}",
            team=team,
            state=_first_or_fail(team, "unstarted"),
            created_at=now,
            updated_at=now,
        )
        self._issues[issue_id] = issue
        return {"success": True, "issue": issue, "lastSyncId": self._sync()}

    # What issueUpdate applies; any other field is refused, so that a client never believes the
    # stand-in did something it does not model.
    _UPDATABLE = frozenset({"stateId", "title", "description", "priority", "labelIds"})

    def _issue_update(
        self, _info: GraphQLResolveInfo[Any], id: str, input: dict[str, Any]
    ) -> dict[str, Any]:
        issue = self._find_issue(id)
        unknown = sorted(set(input) - self._UPDATABLE)
        if unknown:
            raise _invalid_argument(f"The stand-in does not model IssueUpdateInput {unknown}.")
        if "title" in input and not (input["title"] or "").strip():
            raise _invalid_argument("title should not be empty.")
        priority = input.get("priority")
        if priority is not None and not 0 <= int(priority) < len(PRIORITY_LABELS):
            raise _invalid_argument("priority must be between 0 and 4.")
        state = None
        if input.get("stateId") is not None:
            state = self._find_state(input["stateId"])
            if state.team is not issue.team:
                raise _invalid_argument("stateId must be a state of the issue's team.")
        if input.get("title") is not None:
            issue.title = input["title"]
        if "description" in input:
            issue.description = input["description"]
        if priority is not None:
            issue.priority = int(priority)
        if input.get("labelIds") is not None:
            issue.label_ids = list(input["labelIds"])
        if state is not None:
            self._move(issue, state, self.viewer, by_person=False)
        issue.updated_at = _now()
        return {"success": True, "issue": issue, "lastSyncId": self._sync()}

    def _issue_relation_create(
        self, _info: GraphQLResolveInfo[Any], input: dict[str, Any]
    ) -> dict[str, Any]:
        relation_id = _uuid4_or_new(input.get("id"))
        if relation_id in self._relations:
            raise _id_refused()
        issue = self._find_issue(input["issueId"])
        related = self._find_issue(input["relatedIssueId"])
        if issue is related:
            raise _invalid_argument("An issue cannot be related to itself.")
        now = _now()
        relation = RelationRecord(relation_id, input["type"], issue, related, now, now)
        self._relations[relation_id] = relation
        issue.relations.append(relation)
        related.inverse_relations.append(relation)
        return {"success": True, "issueRelation": relation, "lastSyncId": self._sync()}

    def _attachment_create(
        self, _info: GraphQLResolveInfo[Any], input: dict[str, Any]
    ) -> dict[str, Any]:
        issue = self._find_issue(input["issueId"])
        now = _now()
        attachment = next((a for a in issue.attachments if a.url == input["url"]), None)
        created = attachment is None
        if attachment is not None:  # Linear upserts by URL within an issue
            # A field left out keeps its value; metadata given replaces the old object whole.
            attachment.title = input["title"]
            attachment.subtitle = input.get("subtitle", attachment.subtitle)
            if "metadata" in input:
                attachment.metadata = dict(input["metadata"] or {})
            attachment.updated_at = now
        else:
            attachment_id = _uuid4_or_new(input.get("id"))
            if any(a.id == attachment_id for a in self._attachments):
                raise _id_refused()
            attachment = AttachmentRecord(
                id=attachment_id,
                url=input["url"],
                title=input["title"],
                subtitle=input.get("subtitle"),
                metadata=dict(input.get("metadata") or {}),
                issue=issue,
                created_at=now,
                updated_at=now,
            )
            issue.attachments.append(attachment)
            self._attachments.append(attachment)
        self._attachment_changes.append(
            AttachmentChange(
                attachment_id=attachment.id,
                issue_id=issue.id,
                url=attachment.url,
                title=attachment.title,
                subtitle=attachment.subtitle,
                metadata=dict(attachment.metadata),
                at=now,
                created=created,
            )
        )
        return {"success": True, "attachment": attachment, "lastSyncId": self._sync()}

    def _attachments_for_url(
        self, _info: GraphQLResolveInfo[Any], url: str, **_paging: Any
    ) -> dict[str, Any]:
        return _connection([a for a in self._attachments if a.url == url])

    def _comment_create(
        self, _info: GraphQLResolveInfo[Any], input: dict[str, Any]
    ) -> dict[str, Any]:
        if not input.get("issueId"):
            raise _invalid_argument("issueId should not be empty.")
        issue = self._find_issue(input["issueId"])
        body = input.get("body") or ""
        if not body.strip():
            raise _invalid_argument("body should not be empty.")
        comment_id = _uuid4_or_new(input.get("id"))
        if comment_id in self._comments:
            raise _id_refused()
        now = _now()
        comment = CommentRecord(
            id=comment_id,
            body=body,
            issue=issue,
            url=f"{issue.url}#comment-{comment_id[:8]}",
            created_at=now,
            updated_at=now,
            user=self.viewer,
        )
        self._comments[comment_id] = comment
        issue.comments.append(comment)
        return {"success": True, "comment": comment, "lastSyncId": self._sync()}


__all__ = [
    "DEFAULT_PERSON",
    "DEFAULT_TEAM_ID",
    "DEFAULT_WORKFLOW",
    "SCHEMA_PATH",
    "STATE_TYPES",
    "AttachmentChange",
    "AttachmentRecord",
    "CommentRecord",
    "FaultKind",
    "InvalidDocument",
    "IssueHistoryRecord",
    "IssueRecord",
    "LinearStandin",
    "RecordedRequest",
    "RelationRecord",
    "StateRecord",
    "TeamRecord",
    "UserRecord",
    "document_errors",
    "linear_schema",
]
