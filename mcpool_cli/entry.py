"""The `mcpool` command's first lines: a Ctrl-C is noted from here on, before click and the rest are imported.

`_signal` is built in and already loaded, so the stop-gap handler is in place within microseconds of the
interpreter starting this module; `main` hands what it noted to `engine.interrupts.install`, which takes over.
"""

import _signal

_early: list[int] = []
for _signum in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
    _signal.signal(_signum, lambda signum, frame: _early.append(signum))


def main() -> None:
    from mcpool_cli.engine.interrupts import install

    install(_early)  # a Ctrl-C from the first moment is noted, and acted on where it is safe
    from mcpool_cli.cli import main as cli_main

    cli_main()
