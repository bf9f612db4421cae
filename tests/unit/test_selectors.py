"""Label selectors as kubectl takes them: one parser, equality- and set-based, never silent.

Given a selector string and a namespace's labels, the selector says whether it selects them;
a string kubectl would refuse is an error that names the offending part.
"""

from __future__ import annotations

import pytest

from kubetriage.k8s.selectors import SelectorError, label_selector, parse_selector

PROD = {"env": "prod", "team": "shop"}
DEV = {"env": "dev", "team": "shop"}
UNLABELLED: dict[str, str] = {"team": "shop"}

SELECTS = [
    # (selector, labels, selected)
    ("env=prod", PROD, True),
    ("env==prod", PROD, True),
    ("env=prod", DEV, False),
    ("env!=dev", PROD, True),
    ("env!=dev", DEV, False),
    ("env!=dev", UNLABELLED, True),
    ("env in (prod,production)", PROD, True),
    ("env in (prod, production)", DEV, False),
    ("env in (prod,production)", UNLABELLED, False),
    ("env notin (dev,test)", PROD, True),
    ("env notin (dev,test)", DEV, False),
    ("env notin (dev,test)", UNLABELLED, True),
    ("env", PROD, True),
    ("env", UNLABELLED, False),
    ("!env", UNLABELLED, True),
    ("!env", PROD, False),
    ("env in (prod),team=shop", PROD, True),
    ("env in (prod),team=billing", PROD, False),
    ("kubetriage.io/environment=production", {"kubetriage.io/environment": "production"}, True),
    ("  env = prod , team = shop ", PROD, True),
    ("tier>2", {"tier": "3"}, True),
    ("tier<2", {"tier": "3"}, False),
    ("tier>2", {"tier": "high"}, False),
    ("", PROD, True),
]


@pytest.mark.parametrize(
    ("text", "labels", "selected"), SELECTS, ids=[s[0] or "empty" for s in SELECTS]
)
def test_a_selector_selects_as_kubectl_does(
    text: str, labels: dict[str, str], selected: bool
) -> None:
    assert parse_selector(text).matches(labels) is selected


INVALID = [
    ("env in prod", "env in prod"),
    ("env in (prod", "unbalanced '('"),
    ("env=prod)", "unbalanced ')'"),
    ("env=prod,,team=shop", "empty requirement"),
    ("env in ()", "needs values"),
    ("-env=prod", "invalid label key '-env'"),
    ("env=pr od", "cannot parse"),
    ("env=prod!", "cannot parse"),
    ("tier>high", "needs an integer"),
    ("env=" + "x" * 64, "invalid label value"),
]


@pytest.mark.parametrize(("text", "named"), INVALID, ids=[i[0][:20] for i in INVALID])
def test_an_invalid_selector_is_an_error_that_names_the_part(text: str, named: str) -> None:
    with pytest.raises(SelectorError) as error:
        parse_selector(text)
    assert named in str(error.value)


def test_a_selector_prints_as_it_parses() -> None:
    text = "env in (prod,production),!legacy,team=shop"
    assert str(parse_selector(text)) == text
    assert str(parse_selector(str(parse_selector(text)))) == text


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({"matchLabels": {"app": "api"}}, {"app": "api", "pod-template-hash": "x"}, True),
        ({"matchLabels": {"app": "api"}}, {"app": "web"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
         {"tier": "b"}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": "b"}, False),
        ({}, {"any": "thing"}, True),
    ],
    ids=["match-labels", "match-labels-miss", "in", "does-not-exist", "empty-selects-all"],
)  # fmt: skip
def test_a_label_selector_object_selects_as_the_apiserver_does(
    selector: dict[str, object], labels: dict[str, str], selected: bool
) -> None:
    parsed = label_selector(selector)
    assert parsed is not None
    assert parsed.matches(labels) is selected


def test_no_label_selector_or_a_broken_one_selects_nothing() -> None:
    assert label_selector(None) is None
    broken = {"matchExpressions": [{"key": "tier", "operator": "Near", "values": ["a"]}]}
    assert label_selector(broken) is None
