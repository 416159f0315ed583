from mcpool_cli.cli import main

main()
