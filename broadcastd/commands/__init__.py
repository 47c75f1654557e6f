"""One module per CLI subcommand; each exposes `run(args) -> int` and never exits itself."""
