import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from s3_sharing.transform.dbt_args import build_args, parse_args, window_vars

START = datetime(2026, 1, 1, 5, tzinfo=UTC)


def test_window_vars_are_utc_and_half_open_bounds():
    assert window_vars(START, START + timedelta(hours=1)) == {
        "window_start": "2026-01-01 05:00:00",
        "window_end": "2026-01-01 06:00:00",
    }


def test_window_vars_convert_other_zones_to_utc():
    madrid = timezone(timedelta(hours=1))
    assert window_vars(datetime(2026, 1, 1, 6, tzinfo=madrid), datetime(2026, 1, 1, 7, tzinfo=madrid)) == {
        "window_start": "2026-01-01 05:00:00",
        "window_end": "2026-01-01 06:00:00",
    }


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (START, START, "empty window"),
        (START, START - timedelta(hours=1), "empty window"),
        (START.replace(tzinfo=None), START + timedelta(hours=1), "timezone-aware"),
    ],
)
def test_window_vars_reject_bad_windows(start, end, message):
    with pytest.raises(ValueError, match=message):
        window_vars(start, end)


def test_build_args_for_a_window_pass_vars_as_json():
    args = build_args((START, START + timedelta(hours=6)))
    assert args[:2] == ["build", "--vars"]
    assert json.loads(args[2]) == {"window_start": "2026-01-01 05:00:00", "window_end": "2026-01-01 11:00:00"}


def test_build_args_without_window_build_everything():
    assert build_args() == ["build"]


def test_parse_args_write_to_the_given_target_path():
    assert parse_args("/tmp/t") == ["parse", "--target-path", "/tmp/t"]
