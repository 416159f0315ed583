"""Import a custom strategy in a child process, to check it before any load: user code never runs in mcpool.

Run as `python -m mcpool_cli.engine.probe MODULE:CALLABLE [IMPORT_PATH...]`. It imports the module, checks that
the attribute is callable, and writes one JSON line on a private copy of fd 1 (`{"ok": true}` or
`{"problem": "..."}`); whatever the module prints goes to stderr, which the parent keeps to itself. The parent
(`check_importable`) turns a death (exit status, signal) or a hang (past the command's --hang-timeout) into one
UsageProblem line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from mcpool_cli.errors import UsageProblem

LAST_OUTPUT_CHARS = 200


def check_importable(spec: str, import_path: tuple[str, ...], timeout_s: float) -> None:
    """Load `spec` in a child under a watchdog; every failure becomes one UsageProblem line."""
    from mcpool_cli.engine.children import child_env, die_with_parent_hook

    env = child_env()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcpool_cli.engine.probe", spec, *import_path], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env,
            preexec_fn=die_with_parent_hook())
    except OSError as exc:
        raise UsageProblem(f"custom strategy {spec!r}: cannot start a process to import it "
                           f"({exc.strerror or exc})") from exc
    hung = False
    try:
        try:
            out, err = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            hung = process.poll() is None  # else it has exited, and a child it left holds its output open
            _kill_group(process)
            out, err = process.communicate()
    finally:
        _kill_group(process)  # the probe, and anything the module started in its session
        process.wait()
    prefix = f"custom strategy {spec!r}"
    if hung:
        raise UsageProblem(f"{prefix}: did not finish importing within {timeout_s:g}s (--hang-timeout)")
    answer = _answer(out)
    if answer.get("ok"):
        return
    if "problem" in answer:
        raise UsageProblem(str(answer["problem"]))
    tail = _last_line(err)
    said = f"; its last output: {tail!r}" if tail else ""
    code = process.returncode
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        raise UsageProblem(f"{prefix}: importing it killed the process ({name}){said}")
    raise UsageProblem(f"{prefix}: exited with status {code} while importing{said}")


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _answer(out: bytes) -> dict:
    for line in out.splitlines():
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if isinstance(answer, dict):
            return answer
    return {}


def _last_line(err: bytes) -> str:
    lines = [line.strip() for line in err.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:LAST_OUTPUT_CHARS] if lines else ""


def main() -> None:
    from mcpool_cli.engine.children import exit_if_orphaned

    exit_if_orphaned()
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the module's prints land on stderr, which the parent keeps to itself
    spec, import_path = sys.argv[1], tuple(sys.argv[2:])
    from mcpool_cli.engine.strategies import load_factory

    try:
        load_factory(spec, import_path)
        answer: dict = {"ok": True}
    except UsageProblem as exc:
        answer = {"problem": str(exc)}
    protocol.write(json.dumps(answer) + "\n")
    protocol.flush()
    os._exit(0)  # threads or atexit hooks the module left must not keep the probe alive


if __name__ == "__main__":
    main()
