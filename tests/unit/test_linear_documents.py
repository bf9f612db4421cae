"""Every GraphQL document kubetriage sends is valid against Linear's real, published schema.

The schema (`../shared/linear/schema.graphql`, 1.2 MB) is built once for the module. Beyond
graphql-core's validation (types, nullability, unused or undefined variables), each mutation's
input object is checked field by field against its input type, so a variable that is declared
looser than the field it feeds, or a field Linear dropped, fails here with a readable message.
"""

from __future__ import annotations

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLInputObjectType,
    GraphQLNonNull,
    GraphQLSchema,
    GraphQLType,
    ObjectFieldNode,
    ObjectValueNode,
    OperationDefinitionNode,
    VariableNode,
    build_schema,
    is_non_null_type,
    parse,
    print_ast,
    type_from_ast,
    validate,
)

from helpers import SHARED_DIR
from kubetriage.escalation import documents as docs
from kubetriage.escalation.linear import root_field

SCHEMA_PATH = SHARED_DIR / "linear" / "schema.graphql"

NAMED = {
    "ISSUE_CREATE": docs.ISSUE_CREATE,
    "ISSUE_BY_ID": docs.ISSUE_BY_ID,
    "ISSUE_UPDATE_STATE": docs.ISSUE_UPDATE_STATE,
    "WORKFLOW_STATES": docs.WORKFLOW_STATES,
    "ATTACHMENTS_FOR_URL": docs.ATTACHMENTS_FOR_URL,
    "ATTACHMENT_CREATE": docs.ATTACHMENT_CREATE,
    "COMMENT_CREATE": docs.COMMENT_CREATE,
    "COMMENT_BY_ID": docs.COMMENT_BY_ID,
    "ISSUE_RELATION_CREATE": docs.ISSUE_RELATION_CREATE,
    "ISSUE_RELATION_BY_ID": docs.ISSUE_RELATION_BY_ID,
    "VIEWER": docs.VIEWER,
}

# The root field each document selects: what `LinearError.operation` names when it fails.
ROOT_FIELDS = {
    "ISSUE_CREATE": "issueCreate",
    "ISSUE_BY_ID": "issue",
    "ISSUE_UPDATE_STATE": "issueUpdate",
    "WORKFLOW_STATES": "team",
    "ATTACHMENTS_FOR_URL": "attachmentsForURL",
    "ATTACHMENT_CREATE": "attachmentCreate",
    "COMMENT_CREATE": "commentCreate",
    "COMMENT_BY_ID": "comment",
    "ISSUE_RELATION_CREATE": "issueRelationCreate",
    "ISSUE_RELATION_BY_ID": "issueRelation",
    "VIEWER": "viewer",
}

# What each document declares: the contract linear.py fills in.
VARIABLES = {
    "ISSUE_CREATE": {
        "id": "String!",
        "teamId": "String!",
        "title": "String!",
        "description": "String",
        "priority": "Int",
        "labelIds": "[String!]",
    },
    "ISSUE_BY_ID": {"id": "String!"},
    "ISSUE_UPDATE_STATE": {"id": "String!", "stateId": "String!"},
    "WORKFLOW_STATES": {"teamId": "String!", "after": "String"},
    "ATTACHMENTS_FOR_URL": {"url": "String!"},
    "ATTACHMENT_CREATE": {
        "issueId": "String!",
        "url": "String!",
        "title": "String!",
        "subtitle": "String",
        "metadata": "JSONObject",
    },
    "COMMENT_CREATE": {"issueId": "String!", "body": "String!", "id": "String"},
    "COMMENT_BY_ID": {"id": "String!"},
    "ISSUE_RELATION_CREATE": {
        "id": "String",
        "issueId": "String!",
        "relatedIssueId": "String!",
        "type": "IssueRelationType!",
    },
    "ISSUE_RELATION_BY_ID": {"id": "String!"},
    "VIEWER": {},
}

# Mutation -> (input type, the input fields each document sets).
INPUTS = {
    "ISSUE_CREATE": (
        "issueCreate",
        "IssueCreateInput",
        {"id", "teamId", "title", "description", "priority", "labelIds"},
    ),
    "ISSUE_UPDATE_STATE": ("issueUpdate", "IssueUpdateInput", {"stateId"}),
    "ATTACHMENT_CREATE": (
        "attachmentCreate",
        "AttachmentCreateInput",
        {"issueId", "url", "title", "subtitle", "metadata"},
    ),
    "COMMENT_CREATE": ("commentCreate", "CommentCreateInput", {"issueId", "body", "id"}),
    "ISSUE_RELATION_CREATE": (
        "issueRelationCreate",
        "IssueRelationCreateInput",
        {"id", "issueId", "relatedIssueId", "type"},
    ),
}


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    assert SCHEMA_PATH.is_file(), f"Linear's schema is missing at {SCHEMA_PATH}"
    return build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))


def nullable(graphql_type: GraphQLType) -> GraphQLType:
    """`String` for `String!`, anything else unchanged."""
    if isinstance(graphql_type, GraphQLNonNull):
        inner: GraphQLType = graphql_type.of_type
        return inner
    return graphql_type


def operation(document: DocumentNode) -> OperationDefinitionNode:
    [definition] = document.definitions
    assert isinstance(definition, OperationDefinitionNode)
    return definition


def test_all_documents_lists_each_document_once() -> None:
    assert len(docs.ALL_DOCUMENTS) == len(set(docs.ALL_DOCUMENTS)) == len(NAMED)
    assert set(docs.ALL_DOCUMENTS) == set(NAMED.values())


def test_every_document_is_one_uniquely_named_operation() -> None:
    names = []
    for name, text in NAMED.items():
        document = parse(text)
        assert len(document.definitions) == 1, f"{name} must hold exactly one operation"
        op = operation(document)
        assert op.name is not None, f"{name} is anonymous"
        names.append(op.name.value)
    assert len(names) == len(set(names)), names


@pytest.mark.parametrize("name", list(NAMED))
def test_document_is_valid_against_linears_schema(schema: GraphQLSchema, name: str) -> None:
    errors = validate(schema, parse(NAMED[name]))
    assert not errors, f"{name}: " + "; ".join(error.message for error in errors)


@pytest.mark.parametrize("name", list(NAMED))
def test_document_declares_exactly_the_variables_the_client_sends(name: str) -> None:
    op = operation(parse(NAMED[name]))
    declared = {
        definition.variable.name.value: print_ast(definition.type)
        for definition in op.variable_definitions or ()
    }
    assert declared == VARIABLES[name]


@pytest.mark.parametrize("name", list(INPUTS))
def test_mutation_input_fields_match_the_input_type(schema: GraphQLSchema, name: str) -> None:
    field_name, type_name, expected_fields = INPUTS[name]
    input_type = schema.get_type(type_name)
    assert isinstance(input_type, GraphQLInputObjectType)
    op = operation(parse(NAMED[name]))
    variable_types = {
        definition.variable.name.value: type_from_ast(schema, definition.type)
        for definition in op.variable_definitions or ()
    }
    [selection] = op.selection_set.selections
    assert isinstance(selection, FieldNode)
    assert selection.name.value == field_name
    # The input object; a mutation may take other arguments beside it (issueUpdate's `id`).
    [argument] = [a for a in selection.arguments or () if a.name.value == "input"]
    others = [a.value for a in selection.arguments or () if a.name.value != "input"]
    assert all(isinstance(value, VariableNode) for value in others), f"{name}: a literal argument"
    assert isinstance(argument.value, ObjectValueNode), f"{name} spells its input out"

    fields: dict[str, ObjectFieldNode] = {f.name.value: f for f in argument.value.fields}
    assert set(fields) == expected_fields
    for field, node in fields.items():
        assert field in input_type.fields, f"{type_name} has no field {field}"
        assert isinstance(node.value, VariableNode), f"{name}.{field} must come from a variable"
        wanted = input_type.fields[field].type
        declared = variable_types[node.value.name.value]
        assert declared is not None
        # A variable may be stricter (non-null) than the field it feeds, never looser.
        assert str(nullable(declared)) == str(nullable(wanted)), (
            f"{name}.{field}: variable {declared} does not fit {type_name}.{field}: {wanted}"
        )
        if is_non_null_type(wanted):
            assert is_non_null_type(declared), f"{name}.{field} is required by {type_name}"


@pytest.mark.parametrize("name", list(NAMED))
def test_the_client_names_each_documents_root_field(name: str) -> None:
    [selection] = operation(parse(NAMED[name])).selection_set.selections
    assert isinstance(selection, FieldNode)
    assert selection.name.value == ROOT_FIELDS[name]
    assert root_field(NAMED[name]) == ROOT_FIELDS[name]


def test_the_issue_documents_read_every_field_an_issue_ref_carries() -> None:
    # create_issue, get_issue, find_issue_by_url and move_issue all fill the whole IssueRef.
    for name in ("ISSUE_CREATE", "ISSUE_BY_ID", "ISSUE_UPDATE_STATE", "ATTACHMENTS_FOR_URL"):
        text = NAMED[name]
        for field in ("identifier", "completedAt", "canceledAt", "state {", "team {"):
            assert field in text, f"{name} does not read {field}"


@pytest.mark.parametrize("name", ["ISSUE_CREATE", "COMMENT_CREATE", "ISSUE_RELATION_CREATE"])
def test_the_creates_the_client_reads_back_accept_a_client_supplied_id(
    schema: GraphQLSchema, name: str
) -> None:
    # Idempotency of issues, comments and relations rests on naming them before Linear does.
    _, type_name, _ = INPUTS[name]
    input_type = schema.get_type(type_name)
    assert isinstance(input_type, GraphQLInputObjectType)
    assert "id" in input_type.fields


def test_issue_create_input_takes_a_client_supplied_id(schema: GraphQLSchema) -> None:
    # Idempotency rests on this: the operator names the issue before Linear creates it.
    input_type = schema.get_type("IssueCreateInput")
    assert isinstance(input_type, GraphQLInputObjectType)
    assert str(input_type.fields["id"].type) == "String"
    assert "UUID v4" in (input_type.fields["id"].description or "")


def test_validation_rejects_a_document_linear_would_refuse(schema: GraphQLSchema) -> None:
    # A negative control: the schema fixture really validates, it does not wave documents through.
    bad = parse('query Bad { issue(id: "x") { id noSuchField } }')
    assert [error.message for error in validate(schema, bad)] == [
        "Cannot query field 'noSuchField' on type 'Issue'."
    ]
