"""dbt CLI arguments, built by small pure functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

WINDOW_VAR_FORMAT = "%Y-%m-%d %H:%M:%S"


def window_vars(start: datetime, end: datetime) -> dict[str, str]:
    """The ``--vars`` for the half-open UTC window [start, end) the incremental marts filter."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("window bounds must be timezone-aware")
    if end <= start:
        raise ValueError(f"empty window: end {end.isoformat()} is not after start {start.isoformat()}")
    return {
        "window_start": start.astimezone(UTC).strftime(WINDOW_VAR_FORMAT),
        "window_end": end.astimezone(UTC).strftime(WINDOW_VAR_FORMAT),
    }


def build_args(window: tuple[datetime, datetime] | None = None) -> list[str]:
    """``dbt build`` for one window of the marts, or for everything when ``window`` is None."""
    args = ["build"]
    if window is not None:
        args += ["--vars", json.dumps(window_vars(*window), sort_keys=True)]
    return args


def parse_args(target_path: str) -> list[str]:
    """``dbt parse`` into ``target_path`` (the resource adds ``--target``)."""
    return ["parse", "--target-path", target_path]
