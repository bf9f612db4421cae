"""docs/playbooks.md is exactly what `kubetriage playbooks` prints, and documents every category."""

from __future__ import annotations

import pytest

from helpers import REPO_ROOT
from kubetriage.cli import main
from kubetriage.models import Category
from kubetriage.playbooks import PLAYBOOKS

DOC = REPO_ROOT / "docs" / "playbooks.md"


def test_docs_playbooks_md_is_the_cli_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbooks"]) == 0
    printed = capsys.readouterr().out
    assert DOC.read_text() == printed, "regenerate with: make docs"


def test_every_category_is_named_by_exactly_one_playbook() -> None:
    named = [c for playbook in PLAYBOOKS for c in playbook.categories]
    assert sorted(named) == sorted(Category)


def test_every_playbook_documents_its_steps() -> None:
    for playbook in PLAYBOOKS:
        assert len(playbook.steps) >= 3, playbook.title
        assert len({s.name for s in playbook.steps}) == len(playbook.steps), playbook.title
        assert playbook.description.strip()
