"""Guards on the source layout that Python itself would otherwise break (DESIGN.md section 1)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_operator_dir_is_a_source_root_not_a_package() -> None:
    assert (REPO_ROOT / "operator" / "kubetriage" / "__init__.py").is_file()
    assert not (REPO_ROOT / "operator" / "__init__.py").exists(), (
        "operator/__init__.py would shadow the standard library's operator module"
    )


def test_import_operator_is_the_standard_library_even_from_the_repo_root() -> None:
    # Run from the repository root, where a package named operator would win the import.
    probe = "import operator, sys; print(operator.__file__); print(operator.itemgetter(1)([0, 7]))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    origin, value = result.stdout.split()
    assert Path(origin).parent == Path(sysconfig.get_paths()["stdlib"])
    assert value == "7"


def test_kubetriage_is_imported_from_the_operator_source_root() -> None:
    spec = importlib.util.find_spec("kubetriage")
    assert spec is not None
    assert spec.origin is not None
    assert Path(spec.origin).resolve() == REPO_ROOT / "operator" / "kubetriage" / "__init__.py"
