"""Real dbt on a DuckDB file in tmp_path, driven through Dagster."""

import json
import re
import subprocess

import dagster as dg
import duckdb
import pytest

from s3_sharing import cli
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.platform.settings import REPO_ROOT, SettingsError
from s3_sharing.transform.dbt_assets import HOURLY_MARTS_JOB, REFERENCE_MODELS_JOB

from ..conftest import query

pytestmark = pytest.mark.dbt  # runs dbt builds: left out of make test-fast

MART_KEYS = {  # a row per version: the key with its version timestamp (ANALYTICS: one per window)
    "fi_data": "transaction_id || updated_at",
    "transactions": "transaction_id || updated_at",
    "analytics": "analytics_id",
    "identity": "user_id || updated_at",
    "payments": "payment_id || updated_at",
    "beneficiaries": "beneficiary_id || updated_at",
}


def _run(settings, instance, partition_key=None, partition_range=None) -> dg.ExecuteInProcessResult:
    defs = build_outbound_location(settings)
    defs.resolve_job_def(REFERENCE_MODELS_JOB).execute_in_process(instance=instance)
    tags = {}
    if partition_range:
        first, last = partition_range
        tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return defs.resolve_job_def(HOURLY_MARTS_JOB).execute_in_process(
        instance=instance, partition_key=partition_key, tags=tags
    )


def _mart_counts(settings) -> dict[str, tuple[int, int]]:
    return {
        mart: query(settings, f"select count(*), count(distinct {key}) from main_marts.{mart}")[0]
        for mart, key in MART_KEYS.items()
    }


def test_rerunning_a_partition_gives_the_same_rows_without_duplicates(settings):
    instance = dg.DagsterInstance.ephemeral()
    assert _run(settings, instance, partition_key="2026-01-01-05:00").success
    first = _mart_counts(settings)
    assert first["fi_data"][0] > 0
    assert _run(settings, instance, partition_key="2026-01-01-05:00").success
    assert _mart_counts(settings) == first
    assert all(rows == distinct for rows, distinct in first.values())
    # Only that window was built.
    (outside,) = query(
        settings,
        "select count(*) from main_marts.fi_data where loaded_at not between "
        "timestamp '2026-01-01 05:00:00' and timestamp '2026-01-01 05:59:59.999999'",
    )[0]
    assert outside == 0


def test_a_late_update_lands_in_the_window_that_received_it_and_the_old_window_keeps_its_version(settings):
    instance = dg.DagsterInstance.ephemeral()
    assert _run(settings, instance, partition_key="2026-01-01-02:00").success
    (txn,) = query(
        settings,
        "select transaction_id from main_marts.fi_data where transaction_id in "
        "(select transaction_id from raw.transactions group by 1 having count(*) = 1) order by 1 limit 1",
    )[0]
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute(
            """insert into raw.transactions
               select * replace ('reversed' as status, timestamp '2026-01-01 07:15:00' as updated_at,
                                 timestamp '2026-01-01 07:16:00' as loaded_at)
               from raw.transactions where transaction_id = ? order by updated_at desc limit 1""",
            [txn],
        )
    assert _run(settings, instance, partition_key="2026-01-01-07:00").success
    versions = (
        "select hour(loaded_at), status, change_type from main_marts.fi_data where transaction_id = ? "
        "order by loaded_at"
    )
    before = query(settings, versions, txn)
    assert before[-1] == (7, "reversed", "update") and before[0][0] == 2 and before[0][2] == "insert"

    # Rebuilding the old window gives it the same rows: the late version stays where it was received.
    assert _run(settings, instance, partition_key="2026-01-01-02:00").success
    assert query(settings, versions, txn) == before


def test_a_six_hour_range_runs_dbt_once_and_materializes_six_partitions(settings):
    instance = dg.DagsterInstance.ephemeral()
    result = _run(settings, instance, partition_range=("2026-01-01-03:00", "2026-01-01-08:00"))
    assert result.success
    partitions_by_mart: dict[str, set[str]] = {}
    for event in result.get_asset_materialization_events():
        key = event.asset_key.path
        partitions_by_mart.setdefault(key[-1], set()).add(event.partition)
    expected = {f"2026-01-01-{h:02d}:00" for h in range(3, 9)}
    assert partitions_by_mart == {mart: expected for mart in MART_KEYS}
    dbt_commands = [
        record.user_message
        for record in instance.all_logs(result.run_id)
        if record.user_message.startswith("Finished dbt command")
    ]
    assert len(dbt_commands) == 1
    assert '"window_start": "2026-01-01 03:00:00"' in dbt_commands[0]
    assert '"window_end": "2026-01-01 09:00:00"' in dbt_commands[0]
    (rows,) = query(
        settings,
        "select count(*) from raw.transactions where loaded_at >= timestamp '2026-01-01 03:00:00' "
        "and loaded_at < timestamp '2026-01-01 09:00:00'",
    )[0]
    (built,) = query(settings, "select count(*) from main_marts.fi_data")[0]
    assert 0 < built <= rows


def test_dbt_tests_run_as_asset_checks(settings):
    result = _run(settings, dg.DagsterInstance.ephemeral(), partition_key="2026-01-01-04:00")
    evaluations = result.get_asset_check_evaluations()
    assert evaluations
    assert all(e.passed for e in evaluations)
    assert {e.asset_key.path[-1] for e in evaluations} >= set(MART_KEYS)


def test_a_missing_warehouse_file_fails_before_dbt_runs(settings):
    settings.duckdb_path.unlink()
    defs = build_outbound_location(settings)
    with pytest.raises(SettingsError, match=r"warehouse\.duckdb does not exist"):
        defs.resolve_job_def(HOURLY_MARTS_JOB).execute_in_process(partition_key="2026-01-01-04:00")
    assert not settings.duckdb_path.exists()


def test_cli_rejects_an_invalid_partition_key(settings, capsys):
    assert cli.main(["materialize", "--from", "2026-13-01-00:00"]) == 2
    assert "partition key '2026-13-01-00:00' is not an hourly key" in capsys.readouterr().err
    assert cli.main(["materialize", "--from", "2025-06-01-00:00"]) == 2
    assert "outside the partitions 2026-01-01-00:00 to" in capsys.readouterr().err


def test_cli_rejects_an_unknown_target(settings, monkeypatch, capsys):
    monkeypatch.setenv("S3_SHARING_DBT_TARGET", "qa")
    assert cli.main(["materialize"]) == 2
    assert "unknown dbt target 'qa'" in capsys.readouterr().err


def test_cli_materializes_a_range_records_the_runs_and_prints_window_counts(
    settings, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert cli.main(["materialize", "--from", "2026-01-01-09:00", "--to", "2026-01-01-10:00"]) == 0
    out = capsys.readouterr().out
    assert "materialized 2 hours 2026-01-01-09:00 .. 2026-01-01-10:00" in out
    (rows,) = query(settings, "select count(*) from main_marts.fi_data")[0]
    assert re.search(rf"marts\.fi_data +{rows:,} rows in window", out)
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_run_records()
        assert {r.dagster_run.job_name for r in runs} == {HOURLY_MARTS_JOB, REFERENCE_MODELS_JOB}
        materialized = instance.get_materialized_partitions(dg.AssetKey(["marts", "fi_data"]))
        assert materialized == {"2026-01-01-09:00", "2026-01-01-10:00"}


def test_dbt_parse_for_the_prod_bigquery_target_succeeds_offline(tmp_path):
    target = tmp_path / "prod"
    dbt = REPO_ROOT / ".venv" / "bin" / "dbt"
    executable = str(dbt) if dbt.exists() else "dbt"
    completed = subprocess.run(
        [executable, "parse", "--target", "prod", "--target-path", str(target)],
        cwd=REPO_ROOT / "dbt_project",
        env={"PATH": f"{REPO_ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["metadata"]["adapter_type"] == "bigquery"
    fi_data = manifest["nodes"]["model.s3_sharing.fi_data"]["config"]
    assert fi_data["incremental_strategy"] == "merge"
    assert fi_data["partition_by"] == {"field": "loaded_at", "data_type": "timestamp", "granularity": "day"}
    assert fi_data["unique_key"] == ["transaction_id", "updated_at"]
    assert fi_data["cluster_by"] == ["business_id", "user_id"]


def test_cli_creates_a_missing_dagster_home(settings, tmp_path, monkeypatch):
    home = tmp_path / "fresh" / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert cli.main(["materialize", "--from", "2026-01-01-09:00"]) == 0
    assert home.is_dir()
    with dg.DagsterInstance.get() as instance:
        assert instance.get_materialized_partitions(dg.AssetKey(["marts", "fi_data"])) == {"2026-01-01-09:00"}
