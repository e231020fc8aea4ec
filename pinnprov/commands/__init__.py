"""One module per subcommand; each defines `register(subparsers)` (see pinnprov.cli)."""
