from mcpool_cli.engine.interrupts import install

install()  # before the imports: a Ctrl-C from the first moment is noted, and acted on where it is safe

from mcpool_cli.cli import main  # noqa: E402

main()
