from mcpool_cli.entry import main  # its first lines note a Ctrl-C, before anything else is imported

main()
