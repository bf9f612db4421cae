"""The operator's image, without Docker: the Dockerfile's own steps, run on this machine.

There is no Docker engine here, so this test reads the Dockerfile and carries out what each stage
does: COPY the files it names (and only those) out of the repository, run its RUN commands with
every container path moved under a temporary root, and finally run the ENTRYPOINT's program from
the resulting virtual environment. The image's build and install steps are therefore the ones
exercised here (a COPY that misses a file, or an install that needs a compiler, fails), and
the rules the image must keep are checked on the Dockerfile itself: a base image pinned to a
patch release, a non-root numeric USER, `ENTRYPOINT ["kubetriage", "run"]`, no build tools in
the final stage. hadolint lints the Dockerfile; bash -n and shellcheck check hack/kind-e2e.sh.

The install step downloads the project's dependencies from PyPI (about a minute). Without PyPI
this test skips locally and fails under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from helpers import REPO_ROOT, unavailable

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
KIND_E2E = REPO_ROOT / "hack" / "kind-e2e.sh"
CHART_VALUES = REPO_ROOT / "deploy" / "helm" / "kubetriage" / "values.yaml"
PINNED_BASE = re.compile(r"python:3\.11\.\d+-slim-bookworm")
NETWORK_TROUBLE = ("NewConnectionError", "Temporary failure in name resolution",
                   "No matching distribution found", "Could not fetch URL", "ConnectTimeout",
                   "Network is unreachable")  # fmt: skip


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> str:
        (found,) = self.all(keyword)
        return found.arguments


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile: continuation lines joined, comments dropped."""
    stages: list[Stage] = []
    logical, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        start = start or number
        logical += " " + stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        keyword, _, arguments = logical.strip().partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip(), start)
        logical, start = "", 0
        if instruction.keyword == "FROM":
            image, _, name = instruction.arguments.partition(" AS ")
            stages.append(Stage(image.strip(), name.strip() or None))
        else:
            assert stages, f"line {instruction.line}: {instruction.keyword} before FROM"
            stages[-1].instructions.append(instruction)
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def key_values(arguments: str) -> dict[str, str]:
    """`ENV`/`LABEL`/`ARG` arguments: key=value pairs, values quoted as a shell quotes them."""
    pairs: dict[str, str] = {}
    for word in shlex.split(arguments):
        key, _, value = word.partition("=")
        pairs[key] = value
    return pairs


# --- the rules of the image --------------------------------------------------------------------


def test_two_stages_on_the_same_base_pinned_to_a_patch_release(stages: list[Stage]) -> None:
    assert len(stages) == 2, "a build stage and the final stage"
    for stage in stages:
        assert PINNED_BASE.fullmatch(stage.image), f"{stage.image}: pin python:3.11.N-slim-bookworm"
    assert stages[0].image == stages[1].image, "build and run on the same Python"
    assert sys.version_info[:2] == (3, 11), "the image runs CPython 3.11: test with 3.11"


def test_the_final_stage_runs_kubetriage_as_an_unprivileged_numeric_user(
    stages: list[Stage],
) -> None:
    final = stages[-1]
    assert json.loads(final.one("ENTRYPOINT")) == ["kubetriage", "run"]
    assert not final.all("CMD"), "arguments come from the pod spec, not from the image"
    user, _, group = final.one("USER").partition(":")
    assert user.isdigit(), "a numeric USER lets the kubelet verify runAsNonRoot"
    assert group.isdigit()
    assert int(user) > 0
    assert int(group) > 0
    security = yaml.safe_load(CHART_VALUES.read_text())["podSecurityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (int(user), int(group))


def test_the_final_stage_environment_labels_and_ports(stages: list[Stage]) -> None:
    from kubetriage import __version__  # noqa: PLC0415

    final = stages[-1]
    env: dict[str, str] = {}
    for instruction in final.all("ENV"):
        env |= key_values(instruction.arguments)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/kubetriage/bin:")
    labels: dict[str, str] = {}
    for instruction in final.all("LABEL"):
        labels |= key_values(instruction.arguments)
    assert key_values(final.one("ARG")) == {"VERSION": __version__}
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    for key in ("title", "description", "licenses", "source", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.base.name"].endswith(final.image)
    values = yaml.safe_load(CHART_VALUES.read_text())
    exposed = {int(port) for port in final.one("EXPOSE").split()}
    assert exposed == {values["health"]["port"], values["metrics"]["port"]}


def test_the_final_stage_holds_the_wheel_only_and_no_build_tools(stages: list[Stage]) -> None:
    final = stages[-1]
    for copy in final.all("COPY"):
        assert copy.arguments.startswith("--from="), f"line {copy.line}: sources stay in stage 1"
    commands = " ".join(run.arguments for run in final.all("RUN"))
    for tool in ("apt-get", "apk ", "gcc", "build-essential", "git ", "curl", "wget"):
        assert tool not in commands, f"{tool.strip()} in the final stage"
    assert "--without-pip" in commands, "the runtime venv gets no installer of its own"
    assert "--no-cache-dir" in commands


def test_the_build_context_leaves_local_state_out() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".git", ".venv", "**/__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
            "*.kubeconfig", "tests"} <= ignored  # fmt: skip


def tool(name: str) -> Path:
    """A linter installed with the dev dependencies (beside this interpreter), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = beside if beside.is_file() else shutil.which(name)
    if not found:
        unavailable(f"{name} is not installed: pip install -e '.[dev]' (make venv) installs it")
    return Path(str(found))


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = subprocess.run(
        [str(tool("hadolint")), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kind_e2e_script_is_valid_shell() -> None:
    syntax = subprocess.run(
        ["bash", "-n", str(KIND_E2E)], capture_output=True, text=True, check=False
    )
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run(
        [str(tool("shellcheck")), str(KIND_E2E)], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "set -euo pipefail" in KIND_E2E.read_text()


# --- the build and install steps, carried out --------------------------------------------------


class ImageBuild:
    """Runs a Dockerfile's stages under a temporary directory, one root per stage."""

    def __init__(self, workdir: Path, stages: list[Stage]) -> None:
        self.workdir = workdir
        self.stages = stages
        self.roots: dict[str, Path] = {}
        self.shims = workdir / "base-image-bin"
        self.shims.mkdir()
        # The base image's `python` and `pip`: this interpreter (CPython 3.11, as the image's).
        (self.shims / "python").symlink_to(sys.executable)
        (self.shims / "pip").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pip "$@"\n')
        (self.shims / "pip").chmod(0o755)

    def inside(self, root: Path, path: str, cwd: str) -> Path:
        absolute = path if path.startswith("/") else f"{cwd.rstrip('/')}/{path}"
        return root / absolute.lstrip("/")

    def translate(self, root: Path, text: str) -> str:
        """Every absolute container path in a command or value, moved under the stage's root."""
        return re.sub(r"(?<=[\s=:])/(?=[A-Za-z])|^/(?=[A-Za-z])", f"{root}/", text)

    def base_env(self) -> dict[str, str]:
        ours = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_USER"}
        env = {key: value for key, value in os.environ.items() if key not in ours}
        env["PATH"] = f"{self.shims}:/usr/bin:/bin"
        return env

    def run_stage(self, index: int, stage: Stage) -> tuple[Path, dict[str, str], str]:
        root = self.workdir / f"stage-{index}"
        root.mkdir()
        self.roots[stage.name or str(index)] = root
        env, cwd = self.base_env(), "/"
        for step in stage.instructions:
            if step.keyword == "WORKDIR":
                cwd = (
                    step.arguments if step.arguments.startswith("/") else f"{cwd}/{step.arguments}"
                )
                self.inside(root, cwd, "/").mkdir(parents=True, exist_ok=True)
            elif step.keyword == "ENV":
                for key, value in key_values(step.arguments).items():
                    # Container paths move under the root; then $VARIABLES expand, as Docker does.
                    moved = self.translate(root, value)
                    env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1], ""), moved)
            elif step.keyword == "COPY":
                self.copy(root, step.arguments, cwd)
            elif step.keyword == "RUN":
                self.run(root, step, env, cwd)
        return root, env, cwd

    def copy(self, root: Path, arguments: str, cwd: str) -> None:
        words = arguments.split()
        source_root = REPO_ROOT
        if words[0].startswith("--from="):
            source_root = self.roots[words.pop(0).removeprefix("--from=")]
        *sources, destination = words
        for source in sources:
            origin = source_root / source.lstrip("/")
            assert origin.exists(), f"COPY {source}: not found"
            target = self.inside(root, destination, cwd)
            if origin.is_dir():
                # As Docker does: a directory's contents go into the destination; what
                # .dockerignore leaves out of the context stays out.
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
                shutil.copytree(origin, target, ignore=ignore, dirs_exist_ok=True)
                continue
            if destination.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                target = target / origin.name
            shutil.copy2(origin, target)

    def run(self, root: Path, step: Instruction, env: dict[str, str], cwd: str) -> None:
        command = self.translate(root, step.arguments)
        paths = re.findall(r"(?:^|[\s=:])(/[^\s;&|]*)", command)
        outside = [path for path in paths if not path.startswith(str(root))]
        assert not outside, f"line {step.line}: container paths left untranslated: {outside}"
        result = subprocess.run(
            ["/bin/sh", "-c", command], cwd=self.inside(root, cwd, "/"), env=env,
            capture_output=True, text=True, check=False, timeout=900,
        )  # fmt: skip
        if result.returncode != 0:
            output = result.stdout + result.stderr
            if any(sign in output for sign in NETWORK_TROUBLE):
                unavailable(f"PyPI is not reachable for the image's install:\n{output[-2000:]}")
            pytest.fail(f"Dockerfile line {step.line} failed: RUN {step.arguments}\n{output}")


@pytest.fixture(scope="module")
def image(
    stages: list[Stage], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str], Path]:
    """The final stage's root, environment and working directory after every step ran."""
    build = ImageBuild(tmp_path_factory.mktemp("image"), stages)
    for index, stage in enumerate(stages):
        root, env, cwd = build.run_stage(index, stage)
    return root, env, build.inside(root, cwd, "/")


def entrypoint(image: tuple[Path, dict[str, str], Path], *arguments: str) -> str:
    root, env, cwd = image
    program = shutil.which("kubetriage", path=env["PATH"])
    assert program, "kubetriage is not on the image's PATH"
    assert Path(program).is_relative_to(root / "opt" / "kubetriage")
    result = subprocess.run(
        [program, *arguments], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_installed_cli_reports_its_version(image: tuple[Path, dict[str, str], Path]) -> None:
    from kubetriage import __version__  # noqa: PLC0415

    assert entrypoint(image, "--version").strip() == f"kubetriage {__version__}"


def test_the_entrypoint_is_the_operator(
    image: tuple[Path, dict[str, str], Path], stages: list[Stage]
) -> None:
    program, *arguments = json.loads(stages[-1].one("ENTRYPOINT"))
    assert program == "kubetriage"
    output = entrypoint(image, *arguments, "--help")
    assert output.startswith("usage: kubetriage run")
    for variable in ("KUBETRIAGE_NAMESPACES", "KUBETRIAGE_LINEAR_API_KEY", "KUBETRIAGE_HEALTH_PORT",
                     "KUBETRIAGE_METRICS_PORT", "KUBETRIAGE_DRY_RUN"):  # fmt: skip
        assert variable in output, variable


def test_the_venv_holds_the_wheel_not_the_source_tree(
    image: tuple[Path, dict[str, str], Path],
) -> None:
    root, env, cwd = image
    venv = root / "opt" / "kubetriage"
    config = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in config
    assert not (venv / "bin" / "pip").exists(), "no installer in the runtime environment"
    probe = "import kubetriage, kopf; print(kubetriage.__file__)"
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], cwd=cwd, env=env, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    location = Path(result.stdout.strip())
    assert location.is_relative_to(venv / "lib"), f"imported from {location}, not the venv"
    assert (location.parent / "py.typed").is_file()
    assert not (root / "wheels").exists(), "the wheel is removed after the install"
