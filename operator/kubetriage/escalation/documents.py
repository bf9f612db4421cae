"""Every GraphQL document kubetriage sends to Linear, in one place.

Each is a named operation whose values arrive only through variables, never by string
interpolation: a title or description copied from a cluster can then never change the shape of a
request, and `tests/unit/test_linear_documents.py` can validate every document, as written, against
Linear's published schema (`../shared/linear/schema.graphql`).

The mutations spell their input objects out field by field rather than taking a whole
`IssueCreateInput`, so that validation type-checks each field the operator sets, and a field
Linear renames or retypes fails that test instead of a live escalation.

Every document that answers with an issue selects the same fields (`_ISSUE_FIELDS`, a constant
spliced in when this module is loaded, never a value), so that every `IssueRef` the client
returns carries the issue's state, team and completion times, whichever call produced it.
"""

from __future__ import annotations

import textwrap
from typing import Final

# What `linear.IssueRef` is read from. `completedAt` / `canceledAt` are set by Linear when the
# issue enters a state of type completed / canceled and cleared when it leaves it.
_ISSUE_FIELDS: Final = """\
id
identifier
url
title
completedAt
canceledAt
state {
  id
  name
  type
}
team {
  id
}"""


def _issue_fields(indent: int) -> str:
    """`_ISSUE_FIELDS` indented to sit inside a selection `indent` spaces deep."""
    return textwrap.indent(_ISSUE_FIELDS, " " * indent).lstrip()


ISSUE_CREATE: Final = f"""
mutation KubetriageIssueCreate(
  $id: String!
  $teamId: String!
  $title: String!
  $description: String
  $priority: Int
  $labelIds: [String!]
) {{
  issueCreate(
    input: {{
      id: $id
      teamId: $teamId
      title: $title
      description: $description
      priority: $priority
      labelIds: $labelIds
    }}
  ) {{
    success
    issue {{
      {_issue_fields(6)}
    }}
  }}
}}
"""

ISSUE_BY_ID: Final = f"""
query KubetriageIssue($id: String!) {{
  issue(id: $id) {{
    {_issue_fields(4)}
  }}
}}
"""

# Moves an issue to a workflow state (reopening a completed one, or the configured resolved
# state). Linear sets or clears `completedAt` / `canceledAt` itself from the state's type.
ISSUE_UPDATE_STATE: Final = f"""
mutation KubetriageIssueMove($id: String!, $stateId: String!) {{
  issueUpdate(id: $id, input: {{ stateId: $stateId }}) {{
    success
    issue {{
      {_issue_fields(6)}
    }}
  }}
}}
"""

# A team's workflow states, a page at a time (Linear's default page is 50; a team rarely has a
# dozen states, so one page of 100 is the norm and `after` only a safeguard).
WORKFLOW_STATES: Final = """
query KubetriageWorkflowStates($teamId: String!, $after: String) {
  team(id: $teamId) {
    id
    states(first: 100, after: $after) {
      nodes {
        id
        name
        type
        position
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
}
"""

ATTACHMENTS_FOR_URL: Final = f"""
query KubetriageAttachmentsForUrl($url: String!) {{
  attachmentsForURL(url: $url) {{
    nodes {{
      id
      url
      issue {{
        {_issue_fields(8)}
      }}
    }}
  }}
}}
"""

# Linear's attachmentCreate updates the attachment that already links the same url to the same
# issue (title, subtitle, metadata) instead of adding a second one: the report's live status.
ATTACHMENT_CREATE: Final = """
mutation KubetriageAttachmentCreate(
  $issueId: String!
  $url: String!
  $title: String!
  $subtitle: String
  $metadata: JSONObject
) {
  attachmentCreate(
    input: {
      issueId: $issueId
      url: $url
      title: $title
      subtitle: $subtitle
      metadata: $metadata
    }
  ) {
    success
    attachment {
      id
    }
  }
}
"""

# `id` is optional, as in Linear's CommentCreateInput: a caller that passes one (derived like an
# issue id) makes a retried comment land once, the same way a retried issueCreate does.
COMMENT_CREATE: Final = """
mutation KubetriageCommentCreate($issueId: String!, $body: String!, $id: String) {
  commentCreate(input: { issueId: $issueId, body: $body, id: $id }) {
    success
    comment {
      id
    }
  }
}
"""

# How a refused commentCreate with a client-chosen id is checked: does that comment exist?
COMMENT_BY_ID: Final = """
query KubetriageComment($id: String!) {
  comment(id: $id) {
    id
    issue {
      id
    }
  }
}
"""

ISSUE_RELATION_CREATE: Final = """
mutation KubetriageIssueRelationCreate(
  $id: String
  $issueId: String!
  $relatedIssueId: String!
  $type: IssueRelationType!
) {
  issueRelationCreate(
    input: { id: $id, issueId: $issueId, relatedIssueId: $relatedIssueId, type: $type }
  ) {
    success
    issueRelation {
      id
      type
    }
  }
}
"""

# How a refused issueRelationCreate with a client-chosen id is checked, as for comments.
ISSUE_RELATION_BY_ID: Final = """
query KubetriageIssueRelation($id: String!) {
  issueRelation(id: $id) {
    id
    type
    issue {
      id
    }
    relatedIssue {
      id
    }
  }
}
"""

VIEWER: Final = """
query KubetriageViewer {
  viewer {
    id
    name
  }
}
"""

ALL_DOCUMENTS: Final = (
    ISSUE_CREATE,
    ISSUE_BY_ID,
    ISSUE_UPDATE_STATE,
    WORKFLOW_STATES,
    ATTACHMENTS_FOR_URL,
    ATTACHMENT_CREATE,
    COMMENT_CREATE,
    COMMENT_BY_ID,
    ISSUE_RELATION_CREATE,
    ISSUE_RELATION_BY_ID,
    VIEWER,
)
