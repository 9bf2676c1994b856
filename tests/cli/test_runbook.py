"""The runbook from a terminal: materialize, deliver, verify and status over a range of hours."""

import dagster as dg

from s3_sharing import cli
from s3_sharing.outbound.manifest import Manifest

from ..outbound.runs import role


def test_a_six_hour_range_is_delivered_and_verified_from_the_runbook(settings, stack, capsys):
    hours = ["--from", "2026-01-01-02:00", "--to", "2026-01-01-07:00"]
    assert cli.main(["materialize", *hours]) == 0  # dbt runs once for the six hours
    capsys.readouterr()
    assert cli.main(["deliver", *hours]) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("hourly 2026-01-01-0") for line in out.splitlines()) == 6, out[-3000:]
    assert cli.main(["verify", *hours]) == 0
    assert "verify: 18 of 18 windows certified" in capsys.readouterr().out  # 3 hourly businesses x 6
    bucket = role(settings, "acme")
    bucket.delete(next(k for k in bucket.sizes() if k.startswith("2026-01-01/03/")))
    assert cli.main(["verify", *hours]) == 1
    assert cli.main(["status", *hours]) == 0
    out = capsys.readouterr().out
    assert "acme 2026-01-01-03:00: mismatched" in out and "verify: 17 of 18 windows certified" in out

    # The repair: deliver the window again, saying why; its new manifest is a restatement.
    repair = ["--from", "2026-01-01-03:00", "--to", "2026-01-01-03:00", "--business", "acme"]
    assert cli.main(["deliver", *repair, "--reason", "object deleted by mistake"]) == 0
    manifest = Manifest.from_bytes(bucket.read("_manifests/20260101T0300Z.json"))
    assert manifest.restatement is not None and manifest.restatement.reason == "object deleted by mistake"
    assert cli.main(["verify", *hours]) == 0


def test_a_refused_window_fails_once_naming_bucket_key_and_action_and_later_windows_wait(
    built, stack, monkeypatch, capsys
):
    """A permanent error (here the state bucket refuses the platform: AccessDenied) is not retried,
    neither by the step's RetryPolicy nor by the loop over windows: one failed window, one line."""
    monkeypatch.setenv("S3_SHARING_STATE_BUCKET", "someone-elses-state")
    monkeypatch.setenv("DAGSTER_HOME", str(built.duckdb_path.parent / "dagster_home"))
    hours = ["--from", "2026-01-01-02:00", "--to", "2026-01-01-04:00", "--business", "acme"]
    assert cli.main(["deliver", *hours]) == 1
    out = capsys.readouterr().out
    refusal = "acme: StateError: writing s3://someone-elses-state/leases/acme.json: AccessDenied"
    assert out.count(refusal) == 1, out
    assert "acme: refused, not retried; 2 later windows not attempted" in out
    assert "Traceback" not in out
    runs = dg.DagsterInstance.get().get_run_records()
    assert len(runs) == 1 and runs[0].dagster_run.status == dg.DagsterRunStatus.FAILURE
    retries = dg.DagsterInstance.get().get_records_for_run(
        runs[0].dagster_run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY
    )
    assert not retries.records


def test_a_range_of_no_hours_is_refused_in_one_line(settings, capsys):
    for command in ("status", "verify", "deliver"):
        assert cli.main([command, "--last-hours", "0"]) == 2
        assert capsys.readouterr().err == f"s3-sharing {command}: --last-hours 0: give at least 1 hour\n"
