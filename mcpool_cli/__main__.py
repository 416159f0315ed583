import _signal  # built in and already loaded: a Ctrl-C is noted from this first line, before any import

_early: list[int] = []
for _signum in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):  # until install() takes over
    _signal.signal(_signum, lambda signum, frame: _early.append(signum))

from mcpool_cli.engine.interrupts import install  # noqa: E402

install(_early)  # before the imports: a Ctrl-C from the first moment is noted, and acted on where it is safe

from mcpool_cli.cli import main  # noqa: E402

main()
