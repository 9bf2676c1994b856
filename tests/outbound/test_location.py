import dagster as dg
import pytest

from s3_sharing.outbound.location import defs
from s3_sharing.transform.dbt_assets import HOURLY_MARTS_JOB

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


@pytest.mark.parametrize(
    ("business", "partitions_type", "marts"),
    [
        ("acme", dg.HourlyPartitionsDefinition, {"fi_data", "analytics"}),
        ("globex", dg.HourlyPartitionsDefinition, {"identity", "payments", "transactions", "beneficiaries"}),
        ("initech", dg.DailyPartitionsDefinition, {"fi_data"}),
    ],
)
def test_each_business_is_a_delivery_asset_partitioned_by_its_cadence(
    definitions, business, partitions_type, marts
):
    key = dg.AssetKey(["deliveries", business])
    assets = definitions.resolve_assets_def(key)
    assert isinstance(assets.partitions_def, partitions_type)
    graph = definitions.resolve_asset_graph()
    assert {parent.path[-1] for parent in graph.get(key).parent_keys} == marts
    assert assets.group_names_by_key[key] == "deliveries"


def test_businesses_of_one_cadence_share_one_subsettable_step(definitions):
    hourly = definitions.resolve_assets_def(dg.AssetKey(["deliveries", "acme"]))
    assert hourly.node_def.name == "hourly_deliveries"
    assert hourly.can_subset
    assert {k.path[-1] for k in hourly.keys} == {"acme", "globex", "umbrella"}
    assert definitions.resolve_job_def("hourly_deliveries_job")
    assert definitions.resolve_job_def("daily_deliveries_job")


def test_a_daily_delivery_depends_on_the_24_hours_of_its_day(definitions):
    assets = definitions.resolve_assets_def(dg.AssetKey(["deliveries", "initech"]))
    mapping = assets.get_partition_mapping(dg.AssetKey(["marts", "fi_data"]))
    hourly = definitions.resolve_assets_def(dg.AssetKey(["marts", "fi_data"])).partitions_def
    subset = mapping.get_upstream_mapped_partitions_result_for_partitions(
        assets.partitions_def.subset_with_partition_keys(["2026-01-05"]), assets.partitions_def, hourly
    ).partitions_subset
    keys = sorted(subset.get_partition_keys())
    assert keys[0] == "2026-01-05-00:00" and keys[-1] == "2026-01-05-23:00" and len(keys) == 24
