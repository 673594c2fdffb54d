"""CLI command groups (each: add_parser(subparsers), run(args))."""
