"""Each of `make demo`'s workloads is a faithful picture of one cause (issue 15): what its
simulated container exits with agrees with what its log says, and the README's example shows
the category the demo's report names."""

from __future__ import annotations

import re

import demo
from helpers import REPO_ROOT

LOGS = REPO_ROOT / "hack" / "kwok" / "logs"
# The category each demo report must name (tests/integration/test_demo.py checks it live).
API_CATEGORY = "CrashLoop.DependencyUnavailable"


def _api() -> dict[str, object]:
    (api,) = [o for o in demo.kwok_demo().objects if o["metadata"]["name"] == "api"]
    return api


def test_the_api_exits_with_the_status_its_log_says() -> None:
    annotations = _api()["spec"]["template"]["metadata"]["annotations"]  # type: ignore[index]
    code = int(annotations["kwok.kubetriage.io/exit-code"])
    log = (LOGS / "previous.log").read_text()
    said = re.search(r"exiting with status (\d+)", log)
    assert said is not None, log
    assert int(said[1]) == code == 1
    assert "failed to connect to database at db:5432: connection refused" in log


def test_the_readmes_example_row_is_the_demos_api_report() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if "deployment-api-crashloopbackoff" in line)
    assert row.split()[1:5] == [
        "deployment-api-crashloopbackoff",
        "api",
        "CrashLoopBackOff",
        API_CATEGORY,
    ]
