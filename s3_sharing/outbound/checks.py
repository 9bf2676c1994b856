"""Asset checks on each business's delivery asset: ``delivered``, ``keys_valid``, ``tenant_isolation``.

Partitioned asset checks are a preview in Dagster 1.13, and a single-run backfill records a check
evaluation without a partition. So ``delivered`` is not partitioned: each evaluation certifies a
set of windows and names every missing or mismatched partition in its metadata.

- In a delivery run, the windows that run delivered (its partition, or its range). Not the ones
  before it: during a backfill those are being delivered by sibling runs at the same moment, and
  a check that failed on them would raise false alarms.
- In ``certify_deliveries_job`` (scheduled every hour, or launched with config), a look-back of
  48 hourly, 14 daily or 8 weekly windows ending at the latest complete window; the whole history
  on demand. This is what catches a gap, a deleted object or a late row in an earlier window.

Under ``dagster dev``, Dagster 1.13 also records a *planned* evaluation for the run's partition,
which it shows as skipped beside the real (unpartitioned) one.
"""

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
from pydantic import Field

from s3_sharing.outbound.asset_keys import delivery_key
from s3_sharing.outbound.datasets import Dataset
from s3_sharing.outbound.evaluation import CheckOutcome, DeliveryCheck, Evaluation
from s3_sharing.outbound.registry import Business
from s3_sharing.platform.keys import Severity
from s3_sharing.platform.resources import PlatformKeys
from s3_sharing.platform.state import StateStore
from s3_sharing.platform.storage import GcsArchive, S3Buckets
from s3_sharing.platform.time import Cadence, Window, last_windows
from s3_sharing.platform.warehouse import Relation, Warehouse

DEFAULT_LOOKBACK = {Cadence.HOURLY: 48, Cadence.DAILY: 14, Cadence.WEEKLY: 8}


class CertificationConfig(dg.Config):
    lookback: int | None = None
    """Windows to certify, ending at ``last``; default 48 hourly, 14 daily, 8 weekly."""
    last: str | None = None
    """Last partition to certify; default the latest complete one."""
    full_history: bool = False
    deep: bool = False
    """Also compare each S3 object's SHA-256 (one HEAD per file) instead of its size only."""
    key_warning_days: int = 30
    concurrency: int = Field(default=8, ge=1)
    """Businesses checked at a time: each check waits mostly on S3 and GCS requests."""


def dagster_severity(outcome: CheckOutcome) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if outcome.severity is Severity.ERROR else dg.AssetCheckSeverity.WARN


def check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=delivery_key(outcome.business_id),
        check_name=outcome.check.value,  # Dagster serializes plain strings only
        passed=outcome.passed,
        severity=dagster_severity(outcome),
        metadata=outcome.metadata,
    )


def run_windows(
    tags: Mapping[str, str], partitions: dg.TimeWindowPartitionsDefinition
) -> list[Window] | None:
    """The windows a partitioned run delivered (its partition or its range); None when unpartitioned."""
    first = tags.get("dagster/partition") or tags.get("dagster/asset_partition_range_start")
    last = tags.get("dagster/partition") or tags.get("dagster/asset_partition_range_end")
    if not first or not last:
        return None
    keys = partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
    return [Window.of(partitions, k) for k in keys]


CHECK_OP_BUSINESSES = 200
"""Businesses per check op. Dagster's job build compares each input of an op with each of its
check keys, so one op checking N businesses costs O(N²): 24 s at 5,000 businesses."""


def check_op_name(cadence: Cadence, chunk: int) -> str:
    """``hourly_delivery_checks`` for the first 200 businesses, then ``hourly_delivery_checks_2`` …"""
    return f"{cadence}_delivery_checks" + (f"_{chunk + 1}" if chunk else "")


def build_delivery_checks(
    cadence: Cadence,
    businesses: Sequence[Business],
    public_keys: Mapping[str, str],
    relations: Mapping[Dataset, Relation],
    users: Relation,
    partitions: dg.TimeWindowPartitionsDefinition,
) -> list[dg.AssetChecksDefinition]:
    """The cadence's check ops, each for up to ``CHECK_OP_BUSINESSES`` businesses (in registry order,
    so a business keeps its op while businesses are added after it)."""

    def check_op(name: str, businesses: Sequence[Business]) -> dg.AssetChecksDefinition:
        by_id = {b.id: b for b in businesses}
        specs = [
            spec
            for b in businesses
            for spec in (
                dg.AssetCheckSpec(
                    DeliveryCheck.DELIVERED.value,
                    asset=delivery_key(b.id),
                    description="Every window with rows in the warehouse has a signed manifest in S3 and GCS "
                    "whose files and row counts match.",
                ),
                dg.AssetCheckSpec(
                    DeliveryCheck.KEYS_VALID.value,
                    asset=delivery_key(b.id),
                    description="The business's key and the platform's signing and audit keys are usable and "
                    "do not expire within the warning horizon.",
                ),
                dg.AssetCheckSpec(
                    DeliveryCheck.TENANT_ISOLATION.value,
                    asset=delivery_key(b.id),
                    description="A sample of the latest delivery, opened with the audit key, holds only this "
                    "business's users.",
                ),
            )
        ]

        @dg.multi_asset_check(specs=specs, can_subset=True, name=name)
        def certify(
            context: dg.AssetCheckExecutionContext,
            config: CertificationConfig,
            warehouse: dg.ResourceParam[Warehouse],
            archive: GcsArchive,
            s3: S3Buckets,
            keys: PlatformKeys,
            state: StateStore,
        ) -> Iterator[dg.AssetCheckResult]:
            evaluation = Evaluation(
                warehouse, archive, s3, keys, relations, users, state, config.deep, config.key_warning_days
            )
            delivered = run_windows(context.run.tags, partitions)
            if delivered and not (config.lookback or config.last or config.full_history):
                windows = delivered  # a delivery run: the windows it delivered
            else:
                lookback = config.lookback or DEFAULT_LOOKBACK[cadence]
                windows = last_windows(partitions, config.last, lookback, config.full_history)

            selected = sorted(context.selected_asset_check_keys, key=lambda k: (k.asset_key.path, k.name))

            def checked(check: DeliveryCheck) -> list[Business]:
                return [by_id[k.asset_key.path[-1]] for k in selected if k.name == check]

            try:
                evaluation.certifier.count_rows(checked(DeliveryCheck.DELIVERED), windows)
            except Exception as error:  # each business's own count then fails its own check with it
                context.log.warning(f"rows not counted for all businesses at once: {error}")
            with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
                isolation = evaluation.tenant_isolation(checked(DeliveryCheck.TENANT_ISOLATION), pool)

                def evaluate(check: dg.AssetCheckKey) -> dg.AssetCheckResult:
                    business = by_id[check.asset_key.path[-1]]
                    if check.name == DeliveryCheck.TENANT_ISOLATION:
                        return check_result(isolation[business.id])
                    key = public_keys[business.id]
                    return check_result(
                        evaluation.evaluate(DeliveryCheck(check.name), business, windows, key)
                    )

                yield from pool.map(evaluate, selected)

        return certify

    return [
        check_op(check_op_name(cadence, n // CHECK_OP_BUSINESSES), businesses[n : n + CHECK_OP_BUSINESSES])
        for n in range(0, len(businesses), CHECK_OP_BUSINESSES)
    ]
