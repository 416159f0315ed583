"""The CI smoke recipe: the workflow, docker-compose.yml, the Dockerfile and .ci/run agree and parse.

These tests read files only; they run neither Docker nor the smoke command (.ci/run runs that).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
import yaml

ROOT = Path(__file__).parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "mcpool-smoke.yml"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CI_RUN = ROOT / ".ci" / "run"

SMOKE_COMMAND = "mcpool run ci-smoke --junit mcpool-junit.xml --json mcpool-results.json --html mcpool-report.html"
SMOKE_LINE = re.compile(r"(?:^|\s)(mcpool run ci-smoke\b[^`\n]*)")

DOCKERFILE_INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})


# --- helpers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


class DockerfileError(ValueError):
    """A Dockerfile line this parser cannot accept."""


def parse_dockerfile(text: str) -> list[Instruction]:
    """Logical lines of a Dockerfile: comments dropped, backslash continuations joined, keywords checked."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # Docker drops comment lines, also inside a continuation
        start = start or number
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        instructions.append(_instruction(pending + stripped, start))
        pending, start = "", 0
    if pending:
        raise DockerfileError(f"line {start}: the file ends inside a backslash continuation")
    return _checked_order(instructions)


def _instruction(logical_line: str, line: int) -> Instruction:
    keyword, _, arguments = logical_line.partition(" ")
    if keyword.upper() not in DOCKERFILE_INSTRUCTIONS:
        raise DockerfileError(f"line {line}: unknown instruction {keyword!r}")
    instruction = Instruction(keyword.upper(), arguments.strip(), line)
    if instruction.keyword in {"CMD", "ENTRYPOINT", "SHELL"} and instruction.arguments.startswith("["):
        exec_form(instruction)  # JSON form must parse; shell form is any text
    return instruction


def _checked_order(instructions: list[Instruction]) -> list[Instruction]:
    """Docker's rule: only ARG may come before the first FROM."""
    first = next((i for i in instructions if i.keyword != "ARG"), None)
    if first is None or first.keyword != "FROM":
        raise DockerfileError("the first instruction (after any ARG) must be FROM")
    return instructions


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON list of a CMD/ENTRYPOINT/SHELL in exec form."""
    try:
        value = json.loads(instruction.arguments)
    except json.JSONDecodeError as exc:
        raise DockerfileError(f"line {instruction.line}: {instruction.keyword} is not valid JSON ({exc})") from exc
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DockerfileError(f"line {instruction.line}: {instruction.keyword} must be a JSON list of strings")
    return value


def load_yaml(path: Path) -> dict:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path.name} is not a YAML mapping"
    return document


def workflow_triggers(workflow: dict) -> dict:
    """The `on:` mapping; YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True."""
    triggers = workflow.get("on", workflow.get(True))
    if isinstance(triggers, str):
        return {triggers: None}
    if isinstance(triggers, list):
        return dict.fromkeys(triggers)
    return triggers or {}


def the_job(workflow: dict) -> dict:
    jobs = workflow["jobs"]
    assert len(jobs) == 1, f"expected one job, found {sorted(jobs)}"
    return next(iter(jobs.values()))


def step_using(steps: list[dict], action: str) -> dict:
    found = [step for step in steps if str(step.get("uses", "")).split("@")[0] == action]
    assert len(found) == 1, f"expected one step using {action}, found {len(found)}"
    return found[0]


def smoke_step(steps: list[dict]) -> dict:
    found = [step for step in steps if SMOKE_LINE.search(str(step.get("run", "")))]
    assert len(found) == 1, f"expected one step running the smoke command, found {len(found)}"
    return found[0]


def canonical(command: str | list[str]) -> str:
    """One spelling of a command: shell words re-joined with single spaces."""
    words = shlex.split(command) if isinstance(command, str) else list(command)
    return shlex.join(words)


def lines_with_smoke_command(text: str) -> list[str]:
    return [match.group(1).strip() for match in map(SMOKE_LINE.search, text.splitlines()) if match]


def compose_environment(service: dict) -> dict[str, str]:
    """A service's `environment:` as a mapping, from either of compose's two spellings."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's patterns leave `path` out of the build context (close to Docker's matching)."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if _pattern_matches(pattern, PurePosixPath(path)):
            ignored = not negated
    return ignored


def _pattern_matches(pattern: str, path: PurePosixPath) -> bool:
    """`*` and `?` stay within one path segment, `**` spans any; a pattern that matches a folder takes its files."""
    regex = re.compile(_glob_to_regex(pattern))
    return any(regex.fullmatch(str(candidate)) for candidate in (path, *path.parents) if str(candidate) != ".")


def _glob_to_regex(pattern: str) -> str:
    parts = re.split(r"(\*\*/|\*\*|\*|\?|\[[^\]]*\])", pattern)
    glob = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return "".join(glob.get(part) or (part if part.startswith("[") else re.escape(part)) for part in parts)


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


# --- the same command everywhere -----------------------------------------------------------------------------


def test_the_workflow_runs_the_smoke_command() -> None:
    step = smoke_step(the_job(load_yaml(WORKFLOW))["steps"])
    assert canonical(step["run"]) == SMOKE_COMMAND
    assert step["run"].strip() == SMOKE_COMMAND


def test_compose_runs_the_smoke_command_through_the_images_entrypoint() -> None:
    service = load_yaml(COMPOSE)["services"]["mcpool"]
    entrypoint = service.get("entrypoint") or exec_form(dockerfile_instruction("ENTRYPOINT"))
    command = service["command"]
    words = [*entrypoint, *(shlex.split(command) if isinstance(command, str) else command)]
    assert canonical(words) == SMOKE_COMMAND


def test_ci_run_runs_the_smoke_command_against_loopback_11211() -> None:
    lines = [line for line in CI_RUN.read_text().splitlines() if SMOKE_LINE.search(line)]
    assert len(lines) == 1, f".ci/run should run the smoke command once, found {lines}"
    assert lines_with_smoke_command(lines[0]) == [SMOKE_COMMAND]
    assert lines[0].strip() == f"MCPOOL_SERVERS=127.0.0.1:11211 {SMOKE_COMMAND}"


def test_workflow_uploads_and_publishes_the_files_the_command_writes() -> None:
    words = shlex.split(SMOKE_COMMAND)
    junit, results, page = (words[words.index(option) + 1] for option in ("--junit", "--json", "--html"))
    steps = the_job(load_yaml(WORKFLOW))["steps"]
    upload = step_using(steps, "actions/upload-artifact")
    assert set(upload["with"]["path"].split()) == {junit, results, page}
    report = step_using(steps, "mikepenz/action-junit-report")
    assert report["with"]["report_paths"] == junit


# --- the workflow --------------------------------------------------------------------------------------------


def test_workflow_runs_on_push_and_pull_request() -> None:
    workflow = load_yaml(WORKFLOW)
    assert {"push", "pull_request"} <= set(workflow_triggers(workflow))
    assert "runs-on" in the_job(workflow)


def test_workflow_memcached_service_is_mapped_and_health_checked() -> None:
    service = the_job(load_yaml(WORKFLOW))["services"]["memcached"]
    assert service["image"] == "memcached:1.6"
    assert "11211:11211" in [str(port) for port in service["ports"]]
    options = service["options"]
    assert "--health-cmd" in options and "11211" in options
    assert all(flag in options for flag in ("--health-interval", "--health-timeout", "--health-retries"))


def test_workflow_steps_in_order() -> None:
    steps = the_job(load_yaml(WORKFLOW))["steps"]
    setup = step_using(steps, "actions/setup-python")
    assert setup["with"]["python-version"] == "3.11", "quote the version: YAML reads 3.10 as 3.1"
    install = next(step for step in steps if re.search(r"\bpip install \.$", str(step.get("run", "")).strip()))
    order = [steps.index(step) for step in (step_using(steps, "actions/checkout"), setup, install, smoke_step(steps))]
    assert order == sorted(order)


def test_workflow_smoke_step_points_at_the_service_port() -> None:
    job = the_job(load_yaml(WORKFLOW))
    host_port = str(job["services"]["memcached"]["ports"][0]).split(":")[0]
    assert smoke_step(job["steps"])["env"]["MCPOOL_SERVERS"] == f"127.0.0.1:{host_port}"


def test_workflow_reports_survive_a_failed_smoke_run() -> None:
    steps = the_job(load_yaml(WORKFLOW))["steps"]
    smoke_index = steps.index(smoke_step(steps))
    for action in ("actions/upload-artifact", "mikepenz/action-junit-report"):
        step = step_using(steps, action)
        assert step.get("if") == "always()", f"{action} must run when the smoke run fails"
        assert steps.index(step) > smoke_index
    assert step_using(steps, "mikepenz/action-junit-report")["uses"].endswith("@v4")


def test_workflow_may_create_check_runs() -> None:
    workflow = load_yaml(WORKFLOW)
    permissions = {**workflow.get("permissions", {}), **the_job(workflow).get("permissions", {})}
    assert permissions.get("checks") == "write"


def test_workflow_shell_steps_parse_as_bash() -> None:
    for step in the_job(load_yaml(WORKFLOW))["steps"]:
        if "run" in step:
            result = subprocess.run(["bash", "-n"], input=step["run"], capture_output=True, text=True)
            assert result.returncode == 0, f"{step.get('name')}: {result.stderr}"


# --- docker-compose.yml --------------------------------------------------------------------------------------


def test_compose_memcached_has_a_healthcheck() -> None:
    service = load_yaml(COMPOSE)["services"]["memcached"]
    assert service["image"] == "memcached:1.6"
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"}
    assert "11211" in " ".join(test)


def test_compose_mcpool_waits_for_a_healthy_memcached() -> None:
    service = load_yaml(COMPOSE)["services"]["mcpool"]
    assert service["depends_on"]["memcached"]["condition"] == "service_healthy"
    assert compose_environment(service)["MCPOOL_SERVERS"] == "memcached:11211"
    build = service["build"]
    assert (build if isinstance(build, str) else build.get("context", ".")) == "."


def test_compose_reports_land_in_the_mounted_reports_folder() -> None:
    service = load_yaml(COMPOSE)["services"]["mcpool"]
    mounts = dict(volume.rsplit(":", 1) for volume in service["volumes"])
    assert "./reports" in mounts
    words = shlex.split(SMOKE_COMMAND)
    for option in ("--junit", "--json"):
        written = PurePosixPath(service["working_dir"]) / words[words.index(option) + 1]
        assert written.parent == PurePosixPath(mounts["./reports"])


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker is not on PATH")
def test_docker_compose_config_accepts_the_file() -> None:
    """`config` only parses and needs no engine; skipped only where the compose plugin itself is missing."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    if result.returncode != 0 and "Cannot connect to the Docker daemon" in result.stderr:
        pytest.skip("this docker compose wants an engine even for config")
    assert result.returncode == 0, result.stderr


# --- Dockerfile and .dockerignore ----------------------------------------------------------------------------


def dockerfile_instruction(keyword: str) -> Instruction:
    """The last instruction with this keyword: the one that takes effect."""
    found = [i for i in parse_dockerfile(DOCKERFILE.read_text()) if i.keyword == keyword]
    assert found, f"the Dockerfile has no {keyword}"
    return found[-1]


def test_dockerfile_parses() -> None:
    instructions = parse_dockerfile(DOCKERFILE.read_text())
    assert instructions[0] == Instruction("FROM", "python:3.11-slim", instructions[0].line)


def test_dockerfile_installs_memcached_and_the_project() -> None:
    runs = [i.arguments for i in parse_dockerfile(DOCKERFILE.read_text()) if i.keyword == "RUN"]
    assert any(re.search(r"apt-get install .*\bmemcached\b", run) for run in runs)
    assert any(re.search(r"\bpip install --no-cache-dir '\.\[metrics\]'(\s|$)", run) for run in runs)  # --metrics-port
    assert dockerfile_instruction("COPY").line < next(
        i.line for i in parse_dockerfile(DOCKERFILE.read_text()) if "pip install" in i.arguments)


def test_dockerfile_runs_mcpool_as_a_non_root_user() -> None:
    user = dockerfile_instruction("USER").arguments.split(":")[0]
    assert user not in {"root", "0"}
    assert exec_form(dockerfile_instruction("ENTRYPOINT")) == ["mcpool"]
    assert exec_form(dockerfile_instruction("CMD")) == ["--help"]


@pytest.mark.parametrize(("text", "problem"), [
    ("RUN true\nFROM python:3.11-slim\n", "must be FROM"),
    ("FROM python:3.11-slim\nRUNN true\n", "unknown instruction 'RUNN'"),
    ("FROM python:3.11-slim\nRUN a \\\n", "ends inside a backslash continuation"),
    ("FROM python:3.11-slim\nCMD [\"--help\",]\n", "not valid JSON"),
    ("FROM python:3.11-slim\nENTRYPOINT [\"mcpool\", 1]\n", "JSON list of strings"),
])
def test_dockerfile_parser_rejects(text: str, problem: str) -> None:
    with pytest.raises(DockerfileError, match=re.escape(problem)):
        parse_dockerfile(text)


def test_dockerfile_parser_joins_continuations_and_skips_comments() -> None:
    text = "# syntax=docker/dockerfile:1\nARG V=1\nFROM python:3.11-slim\nRUN a \\\n  # note\n  && b\n"
    assert [(i.keyword, i.arguments, i.line) for i in parse_dockerfile(text)] == [
        ("ARG", "V=1", 2), ("FROM", "python:3.11-slim", 3), ("RUN", "a && b", 4)]


def test_dockerignore_keeps_what_pip_install_needs() -> None:
    patterns = dockerignore_patterns()
    needed = ["pyproject.toml", "README.md", *(str(p.relative_to(ROOT)) for p in (ROOT / "mcpool_cli").rglob("*")
                                              if p.is_file() and "__pycache__" not in p.parts)]
    assert [path for path in needed if dockerignored(path, patterns)] == []


def test_dockerignore_leaves_out_local_state() -> None:
    patterns = dockerignore_patterns()
    for path in (".git/HEAD", ".venv/bin/python", "mcpool_cli/__pycache__/cli.cpython-311.pyc", "reports/x.xml"):
        assert dockerignored(path, patterns), path


# --- .ci/run -------------------------------------------------------------------------------------------------


def test_ci_run_is_strict_bash() -> None:
    text = CI_RUN.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    result = subprocess.run(["bash", "-n", str(CI_RUN)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_ci_run_keeps_its_steps() -> None:
    text = CI_RUN.read_text()
    for step in ("apt-get install -y memcached", "python3 -m venv .venv", "pip install --quiet '.[test]'",
                 "\npython -m pytest -q\n", "\nmcpool bench --strategy fifo --threads 12 --duration 2s\n"):
        assert step in text, step
    assert text.index("python -m pytest -q") < text.index(SMOKE_COMMAND)


def test_ci_run_stops_the_memcached_it_starts() -> None:
    text = CI_RUN.read_text()
    assert "-l 127.0.0.1 -p 11211" in text
    assert re.search(r"^trap \w+ EXIT$", text, re.MULTILINE), "a trap on EXIT must stop memcached on every exit"
    assert re.search(r"^\s+kill \"\$memcached_pid\"", text, re.MULTILINE)
