"""The Dagster side of the rewards: the landing sensor requests one run per new file version, the
run materializes transactions, points and balances with their checks; in process against moto
(IAM enforced), the GCS emulator and a real PostgreSQL."""

import subprocess
import sys

import dagster as dg
import pytest

from s3_sharing.inbound.location import build_inbound_location
from s3_sharing.inbound.rewards.assets import FI_TRANSACTIONS, REWARD_BALANCES, REWARD_POINTS, REWARDS_JOB
from s3_sharing.inbound.rewards.processor import balance
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.platform.settings import Settings
from s3_sharing.platform.storage import S3Buckets
from s3_sharing.platform.yaml_registry import RegistryError

from .conftest import FI
from .test_processor import tx

pytestmark = pytest.mark.e2e


@pytest.fixture
def defs(settings, fi_registry_file, fi_keys, postgres, landing, monkeypatch) -> dg.Definitions:
    monkeypatch.setenv("S3_SHARING_FI_REGISTRY", str(fi_registry_file))
    monkeypatch.setenv("S3_SHARING_INBOUND_KEY_FILE", str(fi_keys["inbound"].secret))
    monkeypatch.setenv("S3_SHARING_PG_DSN", str(postgres.dsn))
    monkeypatch.setenv("S3_SHARING_WORK_DIR", str(settings.duckdb_path.parent / "work"))
    return build_inbound_location(Settings.from_env())


def tick(defs: dg.Definitions, postgres, instance) -> list[dg.RunRequest]:
    sensor = defs.get_sensor_def("fi_landing_sensor")
    context = dg.build_sensor_context(instance=instance, resources={"postgres": postgres, "s3": S3Buckets()})
    return [r for r in sensor(context) if isinstance(r, dg.RunRequest)]


def run(defs: dg.Definitions, request: dg.RunRequest, instance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(REWARDS_JOB).execute_in_process(
        run_config=request.run_config,
        partition_key=request.partition_key,
        instance=instance,
        raise_on_error=False,
    )


def test_the_graph_shows_transactions_then_points_then_balances(defs):
    graph = defs.resolve_asset_graph()
    assert graph.get(REWARD_POINTS).parent_keys == {FI_TRANSACTIONS}
    assert graph.get(REWARD_BALANCES).parent_keys == {REWARD_POINTS}
    partitions = graph.get(FI_TRANSACTIONS).partitions_def
    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    assert {d.name for d in partitions.partitions_defs} == {"fi", "day"}


def test_the_sensor_requests_one_run_per_new_file_and_the_run_makes_points_with_passing_checks(
    defs, fi, postgres
):
    instance = dg.DagsterInstance.ephemeral()
    key = fi.drop("day1", [tx(1), tx(2, user="u2", mcc="5411")])

    (request,) = tick(defs, postgres, instance)
    assert request.run_key.startswith(f"s3-sharing-landing/{key}@")
    assert request.partition_key.keys_by_dimension["fi"] == FI

    result = run(defs, request, instance)

    assert result.success
    assert {e.asset_key for e in result.get_asset_materialization_events()} == {
        FI_TRANSACTIONS,
        REWARD_POINTS,
        REWARD_BALANCES,
    }
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {
        "file_verified",
        "control_totals",
        "no_duplicate_transactions",
        "fi_keys_valid",
        "points_reconcile",
    }
    assert all(c.passed for c in checks.values()), {n: c.metadata for n, c in checks.items() if not c.passed}
    assert balance(postgres, "u2") == [("debit_rewards", 200)]
    assert tick(defs, postgres, instance) == [], "the ledger has it now"


def test_a_file_from_a_stranger_fails_file_verified_and_loads_nothing(defs, fi, postgres):
    instance = dg.DagsterInstance.ephemeral()
    fi.drop("forged", [tx(1)], signer="stranger")
    (request,) = tick(defs, postgres, instance)
    result = run(defs, request, instance)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["file_verified"].passed
    assert "not decrypted and verified" in str(checks["file_verified"].metadata["files_refused"].value)
    assert balance(postgres, "u1") == []


def test_with_a_broken_delivery_registry_the_inbound_location_loads_and_its_sensor_ticks(
    settings, fi_registry_file, fi_keys, postgres, fi, monkeypatch, tmp_path
):
    """Two fault domains: a delivery registry that does not parse stops the outbound location only."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("businesses:\n  - id: acme\n    cadence: hourly\n    cadence: daily\n")
    for name, value in {
        "S3_SHARING_REGISTRY": str(broken),
        "S3_SHARING_FI_REGISTRY": str(fi_registry_file),
        "S3_SHARING_INBOUND_KEY_FILE": str(fi_keys["inbound"].secret),
        "S3_SHARING_PG_DSN": str(postgres.dsn),
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RegistryError, match="business 'acme': key 'cadence' appears twice"):
        build_outbound_location(Settings.from_env())
    inbound = build_inbound_location(Settings.from_env())
    dg.Definitions.validate_loadable(inbound)
    key = fi.drop("day1", [tx(1)])
    (request,) = tick(inbound, postgres, dg.DagsterInstance.ephemeral())
    assert request.run_key.startswith(f"s3-sharing-landing/{key}@")


def test_the_inbound_location_loads_no_dbt_no_bigquery_client_and_nothing_of_outbound(settings) -> None:
    probe = (
        "import sys; from s3_sharing.inbound.location import build_inbound_location; "
        "from s3_sharing.platform.settings import Settings; "
        "build_inbound_location(Settings.from_env()).resolve_all_job_defs(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dbt', 'dagster_dbt') "
        "or m.startswith(('google.cloud.bigquery', 's3_sharing.outbound', 's3_sharing.transform'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
