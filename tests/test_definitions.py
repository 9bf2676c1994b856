import dagster as dg
import pytest

from s3_sharing.definitions import defs
from s3_sharing.location import HOURLY_MARTS_JOB

MARTS = ["fi_data", "analytics", "identity", "payments", "transactions", "beneficiaries"]


@pytest.fixture
def definitions(settings) -> dg.Definitions:
    return defs()


def test_definitions_load_and_validate(definitions):
    dg.Definitions.validate_loadable(definitions)
    assert definitions.resolve_job_def(HOURLY_MARTS_JOB)


@pytest.mark.parametrize("mart", MARTS)
def test_every_mart_is_an_hourly_partitioned_asset_with_single_run_backfills(definitions, mart):
    assets = definitions.resolve_assets_def(dg.AssetKey(["marts", mart]))
    assert isinstance(assets.partitions_def, dg.HourlyPartitionsDefinition)
    assert assets.partitions_def.timezone == "UTC"
    assert assets.backfill_policy == dg.BackfillPolicy.single_run()
    assert assets.group_names_by_key[dg.AssetKey(["marts", mart])] == "marts"


@pytest.mark.parametrize("mart", MARTS)
def test_dbt_tests_of_each_mart_are_asset_checks(definitions, mart):
    key = dg.AssetKey(["marts", mart])
    checks = {c.name for c in definitions.resolve_asset_graph().asset_check_keys if c.asset_key == key}
    assert any(name.startswith("unique_") for name in checks)
    assert any(name.startswith("not_null_") and "business_id" in name for name in checks)
    assert any(name.startswith("relationships_") for name in checks)


def test_staging_is_unpartitioned_and_raw_tables_are_sources(definitions):
    graph = definitions.resolve_asset_graph()
    staging = definitions.resolve_assets_def(dg.AssetKey(["staging", "stg_users"]))
    assert staging.partitions_def is None
    assert dg.AssetKey(["raw", "transactions"]) in graph.get_all_asset_keys()
    upstream = graph.get(dg.AssetKey(["staging", "stg_transactions"])).parent_keys
    assert upstream == {dg.AssetKey(["raw", "transactions"])}
