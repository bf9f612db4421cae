"""Real scenarios, mutated, never break `kubetriage diagnose` (issue 15).

Every scenario of ../shared/scenarios and ../shared/scenarios-beyond is mutated as a fuzzer
would: keys deleted, values of the wrong type, huge strings, binary logs, bad timestamps and
quantities, lone UTF-16 surrogates, nesting deeper than any API object, numbers no apiserver
writes. Each mutated snapshot goes through the whole command, file to output: the snapshot
reader, detection, every playbook, the report and its rendering. The only outcomes allowed are
reports (exit 0, output that is valid UTF-8, at most one line on stderr) or a refusal (exit 2,
nothing on stdout, one line on stderr). A playbook that fails (exit 1) or anything that raises
fails the test.

The test runs once per playbook, on the scenarios whose expected reports are that playbook's,
so that each playbook meets mutated input; a sixth run takes the rest (healthy workloads,
completed Jobs, and the symptoms of scenarios-beyond). At the end it prints one line: examples
run, time, outcomes and the largest input tried.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from helpers import SCENARIOS_DIR, SHARED_DIR
from kubetriage.cli import main
from kubetriage.models import Symptom

SCENARIO_DIRS = (SCENARIOS_DIR, SHARED_DIR / "scenarios-beyond")
PLAYBOOK_SYMPTOMS = [symptom.value for symptom in Symptom]
OTHERS = "others"  # healthy, completed, and scenarios-beyond symptoms no playbook has yet
# One group per symptom and one for the rest, 90 examples each: about 20 s here;
# KUBETRIAGE_MUTATION_EXAMPLES asks for a longer search.
EXAMPLES_PER_GROUP = int(os.environ.get("KUBETRIAGE_MUTATION_EXAMPLES", "90"))

TIME_KEYS = frozenset(
    {
        "creationTimestamp",
        "deletionTimestamp",
        "lastTimestamp",
        "firstTimestamp",
        "eventTime",
        "lastObservedTime",
        "startedAt",
        "finishedAt",
        "lastTransitionTime",
        "lastHeartbeatTime",
        "lastProbeTime",
        "lastUpdateTime",
        "capturedAt",
        "startTime",
    }
)
# Keys whose values are quantities (in requests, limits, allocatable, capacity, quotas).
QUANTITY_KEYS = frozenset({"cpu", "memory", "pods", "ephemeral-storage", "nvidia.com/gpu"})
BAD_TIMES: list[Any] = [
    "",
    "yesterday",
    "2024-13-45T99:99:99Z",
    "2024-02-30T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-14:00",
    "2024-01-01T00:00:00.1234567891234Z",
    "2024-01-01",
    "1700000000",
    "\ud800",
    1e30,
    -1,
    None,
    [],
]
BAD_QUANTITIES: list[Any] = [
    "",
    "-1",
    "-512Mi",
    "1.5.5Gi",
    "1e309",
    "1e-400",
    "99999999999999999999Ei",
    "9223372036854775807Ki",
    "NaN",
    "Infinity",
    "1Gix",
    "0.000000001m",
    "1" + "0" * 400,
    "١٢٣",
    "+-1",
    "1E",
    "0x10",
    "1_000",
    0,
    -3,
    1.5,
    None,
    {},
]
WRONG_TYPES: list[Any] = [None, True, 0, -1, 2**63 - 1, 1.5, "", "x", [], {}, [None], {"": None}]
# Seeds of huge strings: words a playbook looks for, secrets redaction must find, control bytes.
HUGE_SEEDS = [
    "x",
    "ERROR connection refused to db:5432 ",
    "password=hunter2 token: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc ",
    "0/3 nodes are available: 3 Insufficient memory. ",
    "\x1b[31m\r\x00",
    "😀\u202e",
    "\n",
]


@cache
def scenario(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def expected_symptoms(path: Path) -> set[str]:
    expected = json.loads((path.parent / "expected.json").read_text())
    return {report["symptom"] for report in expected.get(path.name) or []}


def scenarios_of(group: str) -> list[Path]:
    paths = sorted(p for d in SCENARIO_DIRS for p in d.glob("*-*.json"))
    if group == OTHERS:
        return [p for p in paths if not expected_symptoms(p) & set(PLAYBOOK_SYMPTOMS)]
    return [p for p in paths if group in expected_symptoms(p)]


# --- where to mutate ---------------------------------------------------------------------------


def slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) under `node`: each place a value can be replaced."""
    found: list[tuple[Any, Any]] = []
    stack = [node]
    while stack:
        current = stack.pop()
        pairs = current.items() if isinstance(current, dict) else enumerate(current)
        for key, value in pairs:
            found.append((current, key))
            if isinstance(value, dict | list):
                stack.append(value)
    return found


def draw_slot(data: st.DataObject, item: dict[str, Any], keep: Any = None) -> tuple[Any, Any]:
    """One place in `item`, among those `keep(container, key)` accepts (all by default); the
    item's own `metadata.annotations` slot when none is accepted."""
    candidates = [s for s in slots(item) if keep is None or keep(*s)]
    if not candidates:
        metadata = item.get("metadata")
        if not isinstance(metadata, dict):
            item["metadata"] = metadata = {}
        metadata.setdefault("annotations", "")
        return metadata, "annotations"
    slot: tuple[Any, Any] = data.draw(st.sampled_from(candidates), label="slot")
    return slot


# Raw JSON text put in place of a marker after the document is dumped: what json.dumps cannot
# write (nesting deeper than Python recurses, numbers beyond float and the 4,300-digit limit).
MARKER = "@@RAW{}@@"


def raw_json(data: st.DataObject) -> str:
    """JSON text of a value to put in place of a marker: deep nesting (past MAX_ITEM_DEPTH, past
    what the JSON reader follows), long integers (past int64, past 4,300 digits), floats JSON
    from Go never holds, or a short string."""
    kind = data.draw(st.sampled_from(["deep-list", "deep-object", "digits", "float", "name"]))
    if kind in {"deep-list", "deep-object"}:
        depth = data.draw(st.sampled_from([50, 99, 101, 200, 900, 1200, 5000, 20000]))
        event(f"nesting {depth}")
        return (
            "[" * depth + "]" * depth
            if kind == "deep-list"
            else '{"a":' * depth + "1" + "}" * depth
        )
    if kind == "digits":
        digits = data.draw(st.sampled_from([19, 20, 309, 4300, 4301, 100_000]))
        return "-" * data.draw(st.booleans()) + "9" * digits
    if kind == "float":
        return data.draw(st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", "1e-999", "-0.0"]))
    return json.dumps(data.draw(st.text(max_size=8)))


def mutate(data: st.DataObject, document: dict[str, Any], raws: list[str]) -> None:
    """Apply one mutation, drawn from every kind this test knows, to a random item."""
    items = document["items"]
    item = items[data.draw(st.integers(0, len(items) - 1), label="item")]
    how = data.draw(
        st.sampled_from(
            [
                "delete",
                "retype",
                "huge",
                "binary-log",
                "time",
                "quantity",
                "surrogate",
                "raw",
                "drop-item",
            ]
        )
    )
    event(f"mutation: {how}")
    if how == "delete":
        container, key = draw_slot(data, item, lambda c, _k: isinstance(c, dict))
        container.pop(key, None)
    elif how == "retype":
        container, key = draw_slot(data, item)
        value = container[key]
        choices = [v for v in WRONG_TYPES if type(v) is not type(value)]
        container[key] = copy.deepcopy(data.draw(st.sampled_from(choices)))
    elif how == "huge":
        container, key = draw_slot(data, item, lambda c, k: isinstance(c[k], str))
        seed = data.draw(st.sampled_from(HUGE_SEEDS))
        size = data.draw(st.sampled_from([1_000, 65_536, 300_000, 1_500_000]))
        container[key] = (seed * (size // len(seed) + 1))[:size]
    elif how == "binary-log":
        logs = [i for i in items if isinstance(i, dict) and i.get("kind") == "ContainerLog"]
        target = data.draw(st.sampled_from(logs)) if logs else item
        chunk = data.draw(st.binary(min_size=1, max_size=64)).decode("latin-1")
        target["text"] = chunk * data.draw(st.sampled_from([1, 100, 20_000]))
    elif how == "time":
        container, key = draw_slot(data, item, lambda c, k: isinstance(c, dict) and k in TIME_KEYS)
        container[key] = copy.deepcopy(data.draw(st.sampled_from(BAD_TIMES)))
    elif how == "quantity":
        container, key = draw_slot(
            data,
            item,
            lambda c, k: isinstance(c, dict) and k in QUANTITY_KEYS,
        )
        container[key] = copy.deepcopy(data.draw(st.sampled_from(BAD_QUANTITIES)))
    elif how == "surrogate":
        container, key = draw_slot(data, item, lambda c, k: isinstance(c[k], str))
        text = container[key]
        at = data.draw(st.integers(0, len(text)))
        lone = data.draw(st.sampled_from(["\ud800", "\udfff", "\udbff\udbff", "\udc00\ud800"]))
        container[key] = text[:at] + lone + text[at:]
    elif how == "raw":
        container, key = draw_slot(data, item)
        container[key] = MARKER.format(len(raws))
        raws.append(raw_json(data))
    else:
        items.remove(item)
        if not items:
            items.append({})


# --- running it --------------------------------------------------------------------------------

STATS: Counter[str] = Counter()
LARGEST = {"bytes": 0}


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """One line after the module: what the property tests tried."""
    started = time.monotonic()
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None or not STATS["examples"]:
        return
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(STATS.items()) if k != "examples")
    with capture.global_and_fixture_disabled():
        reporter.write_line(
            f"\nsnapshot mutations: {STATS['examples']} examples in "
            f"{time.monotonic() - started:.1f}s ({outcomes}); largest input "
            f"{LARGEST['bytes'] / 1e6:.1f} MB"
        )


def run_diagnose(path: Path, output: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["diagnose", "--snapshot", str(path), "-o", output])
    return code, out.getvalue(), err.getvalue()


_SKIPPED = re.compile(r"kubetriage diagnose: skipped \d+ malformed item\(s\) in .+")


@pytest.mark.parametrize("group", [*PLAYBOOK_SYMPTOMS, OTHERS])
@settings(
    max_examples=EXAMPLES_PER_GROUP,
    deadline=None,
    # Explaining a failure reruns it hundreds of times; the shrunk example says enough.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_mutated_real_scenario_gives_reports_or_one_line(group: str, data: st.DataObject) -> None:
    paths = scenarios_of(group)
    path = data.draw(st.sampled_from(paths), label="scenario")
    document = copy.deepcopy(scenario(path))
    raws: list[str] = []
    for _ in range(data.draw(st.integers(1, 8), label="mutations")):
        mutate(data, document, raws)
    text = json.dumps(document)
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(MARKER.format(index)), raw)
    output = data.draw(st.sampled_from(["json", "table", "yaml"]), label="output")
    with tempfile.TemporaryDirectory() as directory:
        snapshot = Path(directory) / path.name
        snapshot.write_text(text, encoding="utf-8")
        LARGEST["bytes"] = max(LARGEST["bytes"], snapshot.stat().st_size)
        code, out, err = run_diagnose(snapshot, output)
    STATS["examples"] += 1
    lines = err.strip().splitlines()
    if code == 2:
        STATS["refused"] += 1
        event("outcome: refused (exit 2)")
        assert out == ""
        assert len(lines) == 1, err
        assert lines[0].startswith("kubetriage diagnose: ")
        return
    assert code == 0, err
    STATS["reports" if out.strip() else "empty"] += 1
    event("outcome: reports (exit 0)")
    out.encode("utf-8")  # strict: a lone surrogate in the output would raise here
    assert len(lines) <= 1, err
    assert all(_SKIPPED.fullmatch(line) for line in lines), err
    if output == "json":
        reports = json.loads(out)["items"]
        for report in reports:
            assert report["spec"]["symptom"] in PLAYBOOK_SYMPTOMS
            assert report["status"]["rootCause"]["category"]
        event(f"reports: {len(reports)}")


def test_every_playbook_meets_mutated_input() -> None:
    assert all(scenarios_of(group) for group in PLAYBOOK_SYMPTOMS)
    assert scenarios_of(OTHERS)
