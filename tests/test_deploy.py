"""deploy/: the Kubernetes manifests parse and say what the tests run, and the Dockerfile installs what they use."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mcpool_cli.cli import cli

DEPLOY = Path(__file__).parent.parent / "deploy"
VALUES = {"PODS": "4", "IMAGE": "registry.example.com/mcpool:1", "RUN_ID": "r42", "STRATEGY": "fifo",
          "THREADS": "12", "DURATION": "60s", "START_AT": "2026-11-29T22:00:00Z"}


def filled(name: str, values: dict[str, str] = VALUES) -> list[dict]:
    """A manifest with its ${...} filled in as envsubst would, parsed."""
    text = (DEPLOY / name).read_text()
    found = set(re.findall(r"\$\{([A-Z_]+)\}", text))
    assert found <= set(values), f"{name} uses {found - set(values)}, which the README does not set"
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def bench_args(index: int = 0, values: dict[str, str] = VALUES) -> list[str]:
    """The bench pod's arguments, as Kubernetes expands them for the pod with this index."""
    (job,) = filled("bench-job.yaml", values)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return [arg.replace("$(JOB_COMPLETION_INDEX)", str(index)) for arg in container["args"]]


def test_every_manifest_parses_with_its_kind():
    kinds = {name: [doc["kind"] for doc in filled(name)] for name in
             ("memcached.yaml", "results-pvc.yaml", "bench-job.yaml", "merge-job.yaml")}
    assert kinds == {"memcached.yaml": ["Deployment", "Service"], "results-pvc.yaml": ["PersistentVolumeClaim"],
                     "bench-job.yaml": ["Job"], "merge-job.yaml": ["Job"]}


def test_the_bench_job_is_an_indexed_job_of_n_pods_on_one_volume():
    (job,) = filled("bench-job.yaml")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 4
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["containers"][0]["image"] == VALUES["IMAGE"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == filled("results-pvc.yaml")[0]["metadata"]["name"]
    (service,) = [doc for doc in filled("memcached.yaml") if doc["kind"] == "Service"]
    assert bench_args()[1:3] == ["-s", f"{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"]


def test_each_pod_writes_its_own_file_and_shares_the_window_and_run_id():
    first, second = bench_args(0), bench_args(1)
    assert first[0] == "bench" and first.index("--json") and first[first.index("--json") + 1] == "/results/r42/0.json"
    assert second[second.index("--json") + 1] == "/results/r42/1.json"
    for option, value in (("--start-at", VALUES["START_AT"]), ("--run-id", "r42"), ("--metrics-port", "0.0.0.0:9464")):
        assert first[first.index(option) + 1] == value


def test_the_bench_arguments_are_ones_mcpool_accepts():
    """Parsed by mcpool's own click command (no run): a renamed or dropped option fails here."""
    args = bench_args()
    context = cli.make_context("mcpool", list(args), resilient_parsing=True)
    command = cli.get_command(context, args[0])
    parsed = command.make_context(args[0], args[1:])
    assert parsed.params["run_id"] == "r42" and parsed.params["metrics_port"] == "0.0.0.0:9464"


def test_the_merge_job_merges_that_runs_files():
    (job,) = filled("merge-job.yaml")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    script = container["args"][0]
    assert "cd /results/r42" in script and "mcpool merge [0-9]*.json -o merged.json" in script


def test_the_image_installs_the_metrics_extra():
    assert "pip install --no-cache-dir '.[metrics]'" in (DEPLOY.parent / "Dockerfile").read_text()


def test_the_manifests_commands_run_here_and_merge(memcached, tmp_path):
    """The bench pods' arguments and the merge Job's script, run as they are on this machine: two pods at once
    against the test memcached (for memcached:11211), the volume a temporary folder."""
    import datetime
    import os
    import subprocess
    import sys

    start = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=5)
    values = {**VALUES, "THREADS": "2", "DURATION": "1s", "START_AT": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
    (tmp_path / "r42").mkdir()
    pods = []
    for index in range(2):
        args = [arg.replace("memcached:11211", memcached.spec).replace("/results", str(tmp_path))
                .replace("0.0.0.0:9464", f"127.0.0.1:{free_port()}") for arg in bench_args(index, values)]
        pods.append(subprocess.Popen([sys.executable, "-m", "mcpool_cli", *args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True))
    for pod in pods:
        assert pod.wait(timeout=60) == 0, pod.stderr.read()
    (job,) = filled("merge-job.yaml", values)
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0].replace("/results", str(tmp_path))
    merged = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert merged.returncode == 0, merged.stderr
    for name in ("merged.json", "merged.html", "merged.xml"):
        assert (tmp_path / "r42" / name).stat().st_size > 0
    import json

    document = json.loads((tmp_path / "r42" / "merged.json").read_text())
    assert document["run_id"] == "r42" and len(document["merged_from"]) == 2


def free_port() -> int:
    from mcpool_cli.engine.server import free_loopback_port

    return free_loopback_port()
