"""Command line: the parser, logging set-up and one module per command group."""
