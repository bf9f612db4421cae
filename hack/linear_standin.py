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
- an issueCreate with an id already used: 200 with data null, "Entity already exists: Issue",
  "invalid input";
- an id that is not a UUID v4, an empty title: 200, "Argument Validation Error", "invalid input";
- fail_next("http429"): 429 with `retry-after`, "Rate limit exceeded", "ratelimited";
- fail_next("ratelimited"): 400 (as third-party captures show), the same body, requests remaining 0;
- fail_next("http500"): 500, "Internal server error", "internal error".

No public capture shows the duplicate-id answer, so its wording is this stand-in's choice, on the
pattern of the verified "Entity not found: Issue": a client should match the type "invalid input"
and "already exists" in the message, not the whole sentence.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, get_args

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
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
# A new team's workflow in Linear, by state type; issues start in "unstarted".
STATE_NAMES = {
    "triage": "Triage",
    "backlog": "Backlog",
    "unstarted": "Todo",
    "started": "In Progress",
    "completed": "Done",
    "canceled": "Canceled",
    "duplicate": "Duplicate",
}
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
    """The stand-in's one team."""

    id: str
    key: str
    name: str


@dataclass(eq=False)
class StateRecord:
    """A workflow state of the team (`Issue.state`)."""

    id: str
    name: str
    type: str
    team: TeamRecord
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
    attachments: list[AttachmentRecord] = field(default_factory=list)
    comments: list[CommentRecord] = field(default_factory=list)

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
    """A comment on an issue."""

    id: str
    body: str
    issue: IssueRecord
    url: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it reached the stand-in: header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: str


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


def _already_exists(entity: str) -> GraphQLError:
    message, presentable = f"Entity already exists: {entity}", f"This {entity} already exists."
    return _error(message, "invalid input", "INPUT_ERROR", 400, presentable)


def _invalid_argument(presentable: str) -> GraphQLError:
    # Linear validates inputs with class-validator, whose failures read "Argument Validation Error".
    return _error("Argument Validation Error", "invalid input", "INVALID_INPUT", 400, presentable)


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
    ) -> None:
        """Prepare the stand-in (building the schema now, so no first request waits for it)."""
        self.schema = linear_schema()
        self.api_key = api_key
        self.organization = organization
        self.requests_limit = requests_limit
        self.team = TeamRecord(id=team_id, key=team_key, name=team_name)
        self.states = {
            kind: StateRecord(str(uuid.uuid4()), name, kind, self.team)
            for kind, name in STATE_NAMES.items()
        }
        self.viewer = UserRecord(DEFAULT_VIEWER_ID, "kubetriage", "kubetriage@example.com", "kt")
        self.requests: list[RecordedRequest] = []
        self.invalid_documents: list[InvalidDocument] = []
        self._issues: dict[str, IssueRecord] = {}
        self._attachments: list[AttachmentRecord] = []
        self._comments: dict[str, CommentRecord] = {}
        self._faults: list[_Fault] = []
        self._key_valid = True
        self._sync_id = 0
        self._window_start = time.time()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._root: dict[str, Any] = {
            "issueCreate": self._issue_create,
            "issue": lambda _info, id: self._find_issue(id),
            "attachmentCreate": self._attachment_create,
            "attachmentsForURL": self._attachments_for_url,
            "commentCreate": self._comment_create,
            "viewer": lambda _info: self.viewer,
            "team": lambda _info, id: self._find_team(id),
        }

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

    def clear_faults(self) -> None:
        """Drop every fault not applied yet."""
        with self._lock:
            self._faults.clear()

    def set_api_key_valid(self, valid: bool) -> None:
        """Make Linear accept (True) or refuse (False, a revoked key) the configured key."""
        with self._lock:
            self._key_valid = valid

    def set_issue_state(self, issue_id: str, state_type: str) -> None:
        """Move an issue to the team's state of this type, as a person in Linear would."""
        with self._lock:
            issue = self._lookup_issue(issue_id)
            if issue is None:
                raise KeyError(f"no issue {issue_id!r}")
            issue.state = self.states[state_type]
            issue.updated_at = _now()

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
            self.requests.append(RecordedRequest(method, path, headers, body))
            if method != "POST" or path.split("?", maxsplit=1)[0] != "/graphql":
                return _Reply(404, {"errors": [{"message": f"Cannot {method} {path}"}]})
            fault = self._take_fault(body)
        # Validation comes before any fault, so a document is checked even when it is refused.
        request = self._parse(body)
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

    def _find_team(self, team_id: str) -> TeamRecord:
        # By id only: the schema documents `teamId` and `team(id:)` as ids, not team keys.
        if team_id.lower() != self.team.id.lower():
            raise _not_found("Team")
        return self.team

    def _issue_create(
        self, _info: GraphQLResolveInfo[Any], input: dict[str, Any]
    ) -> dict[str, Any]:
        issue_id = _uuid4_or_new(input.get("id"))
        if issue_id in self._issues:
            raise _already_exists("Issue")
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
            state=self.states["unstarted"],
            created_at=now,
            updated_at=now,
        )
        self._issues[issue_id] = issue
        return {"success": True, "issue": issue, "lastSyncId": self._sync()}

    def _attachment_create(
        self, _info: GraphQLResolveInfo[Any], input: dict[str, Any]
    ) -> dict[str, Any]:
        issue = self._find_issue(input["issueId"])
        now = _now()
        attachment = next((a for a in issue.attachments if a.url == input["url"]), None)
        if attachment is not None:  # Linear upserts by URL within an issue
            attachment.title = input["title"]
            attachment.subtitle = input.get("subtitle", attachment.subtitle)
            attachment.metadata = input.get("metadata") or attachment.metadata
            attachment.updated_at = now
        else:
            attachment_id = _uuid4_or_new(input.get("id"))
            if any(a.id == attachment_id for a in self._attachments):
                raise _already_exists("Attachment")
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
            raise _already_exists("Comment")
        now = _now()
        comment = CommentRecord(
            id=comment_id,
            body=body,
            issue=issue,
            url=f"{issue.url}#comment-{comment_id[:8]}",
            created_at=now,
            updated_at=now,
        )
        self._comments[comment_id] = comment
        issue.comments.append(comment)
        return {"success": True, "comment": comment, "lastSyncId": self._sync()}


__all__ = [
    "DEFAULT_TEAM_ID",
    "SCHEMA_PATH",
    "AttachmentRecord",
    "CommentRecord",
    "FaultKind",
    "InvalidDocument",
    "IssueRecord",
    "LinearStandin",
    "RecordedRequest",
    "TeamRecord",
    "UserRecord",
    "document_errors",
    "linear_schema",
]
