"""``s3-sharing``: the runbook commands, usable from any terminal."""

from s3_sharing.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
