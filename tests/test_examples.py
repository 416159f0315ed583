"""The example Django site and Flask app (examples/), measured through their own cache configuration as the
README says: from their folder, with DJANGO_SETTINGS_MODULE or FLASK_APP naming them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
PROJECTS = {"django-settings": (EXAMPLES / "django_site", {"DJANGO_SETTINGS_MODULE": "mysite.settings"}),
            "flask-app": (EXAMPLES / "flask_app", {"FLASK_APP": "app"})}


def mcpool_in(strategy: str, *args: str) -> subprocess.CompletedProcess:
    """mcpool run from the project's folder with the variable that names the project, as a user runs it."""
    folder, variables = PROJECTS[strategy]
    return subprocess.run([sys.executable, "-m", "mcpool_cli", *args, "--strategy", strategy], cwd=folder,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **variables})


@pytest.mark.parametrize("strategy", list(PROJECTS))
def test_example_project_is_measured_clean_and_safe(memcached, strategy):
    bench = mcpool_in(strategy, "bench", "-s", memcached.spec, "--threads", "4", "--duration", "600ms",
                      "--warmup", "100ms", "--keys", "300", "--quiet", "--json", "-")
    assert bench.returncode == 0, bench.stderr
    (run,) = json.loads(bench.stdout)["runs"]
    assert run["ops"] > 100 and run["error_count"] == 0 and run["wrong_values"] == 0 and run["misses"] == 0, run
    races = mcpool_in(strategy, "check-races", "-s", memcached.spec, "--threads", "8", "--trials", "1",
                      "--duration", "700ms", "--quiet", "--json", "-")
    (row,) = json.loads(races.stdout)["results"]
    assert row["verdict"] == "safe", row


def test_example_django_site_opens_a_connection_per_request(memcached):
    """The site's PyMemcacheCache is closed on every request_finished: check-leaks sees one connection a thread."""
    leaks = mcpool_in("django-settings", "check-leaks", "-s", memcached.spec, "--churn", "40", "--concurrency", "8",
                      "--quiet", "--json", "-")
    (row,) = json.loads(leaks.stdout)["results"]
    assert row["verdict"] == "churn" and row["connections_per_thread"] >= 0.9, row


def test_project_strategies_need_their_variable():
    folder, _ = PROJECTS["django-settings"]
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-m", "mcpool_cli", "bench", "--strategy", "django-settings"],
                            cwd=folder, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert "set DJANGO_SETTINGS_MODULE" in result.stderr and len(result.stderr.strip().splitlines()) == 1
