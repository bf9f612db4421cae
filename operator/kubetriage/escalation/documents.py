"""Every GraphQL document kubetriage sends to Linear, in one place.

Each is a named operation whose values arrive only through variables, never by string
interpolation: a title or description copied from a cluster can then never change the shape of a
request, and `tests/unit/test_linear_documents.py` can validate every document, as written, against
Linear's published schema (`../shared/linear/schema.graphql`).

The mutations spell their input objects out field by field rather than taking a whole
`IssueCreateInput`, so that validation type-checks each field the operator sets, and a field
Linear renames or retypes fails that test instead of a live escalation.
"""

from __future__ import annotations

from typing import Final

ISSUE_CREATE: Final = """
mutation KubetriageIssueCreate(
  $id: String!
  $teamId: String!
  $title: String!
  $description: String
  $priority: Int
  $labelIds: [String!]
) {
  issueCreate(
    input: {
      id: $id
      teamId: $teamId
      title: $title
      description: $description
      priority: $priority
      labelIds: $labelIds
    }
  ) {
    success
    issue {
      id
      identifier
      url
      title
    }
  }
}
"""

ISSUE_BY_ID: Final = """
query KubetriageIssue($id: String!) {
  issue(id: $id) {
    id
    identifier
    url
    title
    state {
      name
      type
    }
  }
}
"""

ATTACHMENTS_FOR_URL: Final = """
query KubetriageAttachmentsForUrl($url: String!) {
  attachmentsForURL(url: $url) {
    nodes {
      id
      url
      issue {
        id
        identifier
        url
      }
    }
  }
}
"""

ATTACHMENT_CREATE: Final = """
mutation KubetriageAttachmentCreate(
  $issueId: String!
  $url: String!
  $title: String!
  $subtitle: String
) {
  attachmentCreate(input: { issueId: $issueId, url: $url, title: $title, subtitle: $subtitle }) {
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
    ATTACHMENTS_FOR_URL,
    ATTACHMENT_CREATE,
    COMMENT_CREATE,
    VIEWER,
)
