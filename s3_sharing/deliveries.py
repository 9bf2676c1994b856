"""Delivery assets: ``deliveries/<business_id>``, one per business, partitioned by its cadence.

The businesses of one cadence are one subsettable multi-asset, so a run delivers all of them in
one step with bounded concurrency (never a process or a job per business). One business failing
fails only its own asset: the others are materialized, then the step reports the failures.
"""

from collections.abc import Iterator, Mapping
from datetime import datetime

import dagster as dg

from s3_sharing.datasets import Dataset
from s3_sharing.delivery import Deliverer, Window, deliver_many
from s3_sharing.destinations import GcsArchive, S3Deliveries
from s3_sharing.layout import Cadence
from s3_sharing.partitions import hourly_partitions
from s3_sharing.registry import Business, Registry
from s3_sharing.resources import PlatformKeys
from s3_sharing.warehouse import Relation, Warehouse

DELIVERIES_GROUP = "deliveries"


def delivery_key(business_id: str) -> dg.AssetKey:
    return dg.AssetKey([DELIVERIES_GROUP, business_id])


def cadence_partitions(cadence: Cadence, partition_start: str) -> dg.TimeWindowPartitionsDefinition:
    """Windows of a cadence, in UTC, starting with the marts' first partition."""
    day = datetime.strptime(partition_start, "%Y-%m-%d-%H:%M").strftime("%Y-%m-%d")
    if cadence is Cadence.HOURLY:
        return hourly_partitions(partition_start)
    if cadence is Cadence.DAILY:
        return dg.DailyPartitionsDefinition(start_date=day, timezone="UTC")
    return dg.WeeklyPartitionsDefinition(start_date=day, timezone="UTC", day_offset=1)  # weeks start Monday


class DeliveryConfig(dg.Config):
    max_concurrency: int = 8
    """How many businesses are delivered at the same time within the step."""


def _spec(business: Business, mart_keys: Mapping[Dataset, dg.AssetKey]) -> dg.AssetSpec:
    destination = business.destination
    return dg.AssetSpec(
        key=delivery_key(business.id),
        group_name=DELIVERIES_GROUP,
        description=f"{business.name}: {', '.join(business.datasets)} every {business.cadence} window, "
        f"encrypted and signed, to {destination.bucket_arn}/{destination.prefix}",
        deps=[
            dg.AssetDep(mart_keys[d], partition_mapping=dg.TimeWindowPartitionMapping())
            for d in business.datasets
        ],
        kinds={"s3", "gcs"},
        tags={"cadence": str(business.cadence), "active": str(business.active).lower()},
        metadata={
            "bucket": destination.bucket_arn,
            "prefix": destination.prefix,
            "role": destination.role_arn,
            "layout": business.object_layout().template,
            "server_side_encryption": destination.sse.mode,
        },
        skippable=True,
    )


def _cadence_assets(
    cadence: Cadence,
    businesses: list[Business],
    public_keys: Mapping[str, str],
    relations: Mapping[Dataset, Relation],
    partitions: dg.PartitionsDefinition,
    mart_keys: Mapping[Dataset, dg.AssetKey],
) -> dg.AssetsDefinition:
    by_key = {delivery_key(b.id): b for b in businesses}

    @dg.multi_asset(
        name=f"{cadence}_deliveries",
        specs=[_spec(b, mart_keys) for b in businesses],
        partitions_def=partitions,
        can_subset=True,
    )
    def deliver(
        context: dg.AssetExecutionContext,
        config: DeliveryConfig,
        warehouse: dg.ResourceParam[Warehouse],
        archive: GcsArchive,
        s3: S3Deliveries,
        keys: PlatformKeys,
    ) -> Iterator[dg.MaterializeResult]:
        time_window = context.partition_time_window
        window = Window(time_window.start, time_window.end)
        signer, _ = keys.signing_key()
        deliverer = Deliverer(warehouse, relations, archive, s3, signer, keys.audit_cert())
        selected = [by_key[key] for key in sorted(context.selected_asset_keys)]
        failures: dict[str, str] = {}
        outcomes = deliver_many(
            deliverer, selected, public_keys, window, context.run_id, config.max_concurrency
        )
        for business, outcome in outcomes:
            if isinstance(outcome, Exception):
                failures[business.id] = f"{type(outcome).__name__}: {outcome}"
                context.log.error(f"delivery to {business.id} failed: {failures[business.id]}")
                continue
            context.log.info(
                f"delivered {outcome.rows} rows in {len(outcome.manifest.files)} files to {business.id}"
            )
            yield dg.MaterializeResult(asset_key=delivery_key(business.id), metadata=outcome.metadata())
        if failures:
            raise dg.Failure(
                description=f"{len(failures)} of {len(selected)} deliveries failed: "
                + "; ".join(failures.values()),
                metadata={"failed_businesses": sorted(failures)},
            )

    return deliver


def build_delivery_assets(
    registry: Registry,
    public_keys: Mapping[str, str],
    relations: Mapping[Dataset, Relation],
    partition_start: str,
    mart_keys: Mapping[Dataset, dg.AssetKey],
) -> list[dg.AssetsDefinition]:
    return [
        _cadence_assets(
            cadence,
            businesses,
            public_keys,
            relations,
            cadence_partitions(cadence, partition_start),
            mart_keys,
        )
        for cadence in Cadence
        if (businesses := registry.by_cadence(cadence))
    ]
