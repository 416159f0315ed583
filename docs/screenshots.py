"""Make the README's screenshots of HTML reports: run each command as the README shows it, open the page it
wrote in headless Chromium (Debian's chromium package) and keep the top of the page, through its first chart.

    python docs/screenshots.py            # from the repository's root, with mcpool installed
    python docs/screenshots.py failover   # only the pictures named

Each picture is docs/img/<name>.png; the commands are the ones printed under the pictures in the README.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import Browser, chromium_path  # noqa: E402

RUNS = {  # name: the mcpool command, without its --html
    "bench": "bench --strategy all --threads 12 --duration 5s",
    "sweep": "bench --strategy fifo --strategy per-thread --threads 8 --rate 5k,10k,20k,30k --duration 3s "
             "--budget p99<2ms",
    "races": "check-races --strategy shared --strategy per-thread",
    "leaks": "check-leaks --strategy fifo --strategy thread-mapped --no-relinquish",
    "stale": "check-stale --fault restart --strategy per-thread --strategy fifo",
    "failover": "check-failover --config ketama-eject-2s --outage 1.5s --before 1s --after 3s",
    "compare": "compare pool4.json pool12.json",  # after the two runs below
}
BEFORE = {"compare": ("bench --strategy fifo --threads 12 --pool-size 4 --duration 4s --json pool4.json",
                      "bench --strategy fifo --threads 12 --pool-size 12 --duration 4s --json pool12.json")}
THROUGH_FIRST_CHART = "[0, document.querySelector('figure').getBoundingClientRect().bottom + window.scrollY + 8]"
ONLY_CHART = ("(function (f) {{ var r = f.getBoundingClientRect(); return [r.top + window.scrollY - 8, "
              "r.bottom + window.scrollY + 8]; }})(Array.from(document.querySelectorAll('figure'))"
              ".find(function (f) {{ return f.querySelector('h3').textContent.indexOf({title!r}) === 0; }}))")
CLIPS = {"sweep": ONLY_CHART.format(title="Sweep"), "failover": ONLY_CHART.format(title="ketama-eject-2s:")}


def mcpool(command: str, folder: str) -> None:
    """Run `mcpool COMMAND` in FOLDER, as the installed package (the same as the `mcpool` script)."""
    quiet = [] if command.startswith("compare") else ["--quiet"]
    subprocess.run([sys.executable, "-m", "mcpool_cli", *command.split(), *quiet], cwd=folder,
                   stdout=subprocess.DEVNULL)


def chosen(names: list[str]) -> dict[str, str]:
    """The runs of the pictures named on the command line; all of them when none is."""
    unknown = [name for name in names if name not in RUNS]
    if unknown:
        sys.exit(f"docs/screenshots.py: no picture named {', '.join(unknown)} (there are {', '.join(RUNS)})")
    return {name: command for name, command in RUNS.items() if not names or name in names}


def main() -> None:
    runs = chosen(sys.argv[1:])
    executable = chromium_path()
    if executable is None:
        sys.exit("docs/screenshots.py needs chromium (apt-get install chromium)")
    out = ROOT / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    browser = Browser(executable)
    try:
        with tempfile.TemporaryDirectory() as folder:
            for name, command in runs.items():
                page = Path(folder) / f"{name}.html"
                for first in BEFORE.get(name, ()):
                    mcpool(first, folder)
                mcpool(f"{command} --html {page}", folder)
                seen = browser.open(page, screenshot=out / f"{name}.png", clip_js=CLIPS.get(name, THROUGH_FIRST_CHART))
                print(f"docs/img/{name}.png  mcpool {command} --html {name}.html  problems: {seen.problems or 'none'}")
    finally:
        browser.close()


if __name__ == "__main__":
    main()
