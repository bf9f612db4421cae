"""The pydantic models and the CRD describe the same API.

The CRD is the source of truth; this walks the models' JSON schema beside the CRD's OpenAPI
schema and compares, object by object: property names, required fields, enums and bounds. A
field added to one and not the other fails here, long before the apiserver would drop it.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from helpers import CRD_PATH
from kubetriage import models

BOUNDS = ("maxLength", "minLength", "maxItems", "minimum", "maximum")


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_PATH.read_text())
    versions = crd["spec"]["versions"]
    assert [v["name"] for v in versions] == [models.API_VERSION]
    schema: dict[str, Any] = versions[0]["schema"]["openAPIV3Schema"]
    return schema


def resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Follow $ref and drop the `null` branch pydantic adds for optional fields."""
    if "$ref" in node:
        return resolve(defs[node["$ref"].split("/")[-1]], defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        assert len(branches) == 1, node
        merged = {k: v for k, v in node.items() if k != "anyOf"}
        return {**resolve(branches[0], defs), **merged}
    return node


def compare(model: dict[str, Any], crd: dict[str, Any], defs: dict[str, Any], path: str) -> None:
    model = resolve(model, defs)
    if "enum" in crd or "enum" in model:
        assert sorted(map(str, model.get("enum", []))) == sorted(map(str, crd.get("enum", []))), (
            path
        )
    for bound in BOUNDS:
        assert model.get(bound) == crd.get(bound), f"{path}: {bound}"
    if model.get("format") == "date-time":
        assert crd.get("format") == "date-time", path
    if crd.get("type") == "object" and "properties" in crd:
        model_props = model.get("properties", {})
        assert set(model_props) == set(crd["properties"]), path
        assert set(model.get("required", [])) == set(crd.get("required", [])), f"{path}: required"
        for name, sub in crd["properties"].items():
            compare(model_props[name], sub, defs, f"{path}.{name}")
    if crd.get("type") == "array":
        compare(model["items"], crd["items"], defs, f"{path}[]")


@pytest.mark.parametrize("part", ["spec", "status"])
def test_models_mirror_the_crd(part: str) -> None:
    model_schema = models.DiagnosisReport.model_json_schema(by_alias=True)
    defs = model_schema["$defs"]
    compare(model_schema["properties"][part], crd_schema()["properties"][part], defs, part)


def test_every_category_is_in_the_crd_enum() -> None:
    status = crd_schema()["properties"]["status"]["properties"]
    assert status["rootCause"]["properties"]["category"]["enum"] == [
        c.value for c in models.Category
    ]
    assert status["alternatives"]["items"]["properties"] == status["rootCause"]["properties"]


def test_the_comparison_catches_a_field_missing_from_the_models() -> None:
    model_schema = models.DiagnosisReport.model_json_schema(by_alias=True)
    status = crd_schema()["properties"]["status"]
    status["properties"]["newField"] = {"type": "string"}
    with pytest.raises(AssertionError, match="status"):
        compare(model_schema["properties"]["status"], status, model_schema["$defs"], "status")


def test_categories_belong_to_their_symptom_family() -> None:
    families = {
        "CrashLoop", "OOMKilled", "ImagePull", "Pending", "Rollout", "ContainerConfig", "NotReady",
        "Eviction", "Job",
    }  # fmt: skip
    assert {c.value.split(".")[0] for c in models.Category} == families
