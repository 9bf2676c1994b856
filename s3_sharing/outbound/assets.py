"""The Dagster side of delivery: ``deliveries/<business_id>``, one asset per business, by cadence.

The businesses of one cadence are one subsettable multi-asset, so a run delivers all of them in
one step with bounded concurrency (never a process or a job per business). One business failing
fails only its own asset: the others are materialized, then the step reports the failures.
"""

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import botocore.exceptions
import dagster as dg
from google.api_core.exceptions import GoogleAPICallError

from s3_sharing.outbound.asset_keys import DELIVERIES_GROUP, delivery_key
from s3_sharing.outbound.checks import CertificationConfig, dagster_severity
from s3_sharing.outbound.datasets import Dataset
from s3_sharing.outbound.delivery import (
    RESTATED,
    RESTATEMENT_TAG,
    ChainConflict,
    Deliverer,
    deliver_many,
    delivered_by,
)
from s3_sharing.outbound.evaluation import DeliveryCheck, Evaluation
from s3_sharing.outbound.registry import Business, Registry
from s3_sharing.platform.resources import PlatformKeys, WorkDirectory
from s3_sharing.platform.state import LeaseBusy, LeaseLost, StateStore
from s3_sharing.platform.storage import GcsArchive, S3Buckets, StorageError
from s3_sharing.platform.time import Cadence, Window, cadence_partitions
from s3_sharing.platform.warehouse import Relation, Warehouse


class DeliveryConfig(dg.Config):
    max_concurrency: int = 8
    """How many businesses are delivered at the same time within the step."""
    lease_wait_seconds: int = 900
    """How long a delivery waits for another run delivering the same business to finish."""
    lease_ttl_seconds: int = 120
    """A lease its holder stops renewing (a killed process) is taken over after this long."""


DELIVERY_RETRIES = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
"""A step with a failed delivery is retried (transport trouble, a busy lease); a retry skips the
businesses this run already delivered."""
TRANSIENT_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}
    | {"500", "502", "503", "504"}
)


def transient(error: Exception) -> bool:
    """Worth another attempt later: a busy or lost lease, a moved chain head, or transport trouble
    that outlasted the clients' own retries. Not an error of data, keys or configuration, nor a
    refusal (access denied, no such bucket, unknown credentials, a disabled key): those fail the same
    way again, at once."""
    waiting_or_transport = (
        LeaseBusy,
        LeaseLost,
        ChainConflict,
        ConnectionError,
        TimeoutError,
        botocore.exceptions.ConnectionError,
    )
    if isinstance(error, waiting_or_transport):
        return True
    if isinstance(error, GoogleAPICallError):
        return error.code in (408, 429) or (error.code or 0) >= 500
    return isinstance(error, StorageError) and error.code in TRANSIENT_CODES


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
    users: Relation,
    partitions: dg.TimeWindowPartitionsDefinition,
    mart_keys: Mapping[Dataset, dg.AssetKey],
) -> dg.AssetsDefinition:
    by_key = {delivery_key(b.id): b for b in businesses}

    @dg.multi_asset(
        name=f"{cadence}_deliveries",
        specs=[_spec(b, mart_keys) for b in businesses],
        partitions_def=partitions,
        can_subset=True,
        retry_policy=DELIVERY_RETRIES,
    )
    def deliver(
        context: dg.AssetExecutionContext,
        config: DeliveryConfig,
        warehouse: dg.ResourceParam[Warehouse],
        archive: GcsArchive,
        s3: S3Buckets,
        keys: PlatformKeys,
        state: StateStore,
        workdir: WorkDirectory,
    ) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
        window = Window.of(partitions, context.partition_key)
        signer, _ = keys.signing_key()
        deliverer = Deliverer(
            warehouse,
            relations,
            archive,
            s3,
            signer,
            keys.audit_cert(),
            state,
            lease_ttl=timedelta(seconds=config.lease_ttl_seconds),
            lease_wait=timedelta(seconds=config.lease_wait_seconds),
            work_root=workdir.path,
        )
        selected = [by_key[key] for key in sorted(context.selected_asset_keys)]
        if context.retry_number:
            done = [b for b in selected if delivered_by(archive, b.id, window, context.run.run_id)]
            context.log.info(f"retry {context.retry_number}: already delivered {[b.id for b in done]}")
            selected = [b for b in selected if b not in done]
        failures: dict[str, str] = {}
        worth_retrying: set[str] = set()
        outcomes = deliver_many(
            deliverer,
            selected,
            public_keys,
            window,
            context.run.run_id,
            config.max_concurrency,
            context.log.info,
            context.run.tags.get(RESTATEMENT_TAG, RESTATED),
        )
        for business, outcome in outcomes:
            if isinstance(outcome, Exception):
                failures[business.id] = f"{type(outcome).__name__}: {outcome}"
                if transient(outcome):
                    worth_retrying.add(business.id)
                context.log.error(f"delivery to {business.id} failed: {failures[business.id]}")
                continue
            context.log.info(
                f"delivered {outcome.rows} rows in {len(outcome.manifest.files)} files to {business.id}"
            )
            yield dg.MaterializeResult(asset_key=delivery_key(business.id), metadata=outcome.metadata())
        if failures:
            retryable = bool(worth_retrying)
            if not retryable or context.retry_number >= DELIVERY_RETRIES.max_retries:
                evaluation = Evaluation(warehouse, archive, s3, keys, relations, users, state)
                for event in _checks_skipped_by_the_failure(context, evaluation, by_key, public_keys, window):
                    context.log_event(event)
            for business_id, failure in sorted(failures.items()):  # also flushes the logged evaluations
                yield dg.AssetObservation(
                    asset_key=delivery_key(business_id),
                    partition=context.partition_key,
                    metadata={
                        "delivery_failed": failure,
                        "retryable": business_id in worth_retrying,
                        "run_id": context.run.run_id,
                    },
                )
            raise dg.Failure(
                description=f"{len(failures)} of {len(selected)} deliveries failed: "
                + "; ".join(failures.values()),
                metadata={"failed_businesses": sorted(failures)},
                allow_retries=retryable,  # a bad row or an unusable key fails the same way again
            )

    return deliver


def _checks_skipped_by_the_failure(
    context: dg.AssetExecutionContext,
    evaluation: Evaluation,
    by_key: Mapping[dg.AssetKey, Business],
    public_keys: Mapping[str, str],
    window: Window,
) -> Iterator[dg.AssetCheckEvaluation]:
    """Dagster skips the check step after a failed step, so the businesses this step delivered
    would go uncertified: evaluate the run's checks of every business of the step here instead."""
    selection = context.run.asset_check_selection
    keys = sorted(context.selected_asset_keys)
    chosen = {
        check: [k for k in keys if selection is None or dg.AssetCheckKey(k, check.value) in selection]
        for check in DeliveryCheck
    }
    with ThreadPoolExecutor(max_workers=CertificationConfig().concurrency) as pool:
        isolated = [by_key[k] for k in chosen[DeliveryCheck.TENANT_ISOLATION]]
        isolation = evaluation.tenant_isolation(isolated, pool)
    for key in keys:
        business = by_key[key]
        for check in (c for c in DeliveryCheck if key in chosen[c]):
            if check is DeliveryCheck.TENANT_ISOLATION:
                result = isolation[business.id]
            else:
                result = evaluation.evaluate(check, business, [window], public_keys[business.id])
            yield dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=check.value,
                passed=result.passed,
                metadata=result.metadata,
                severity=dagster_severity(result),
            )


def build_delivery_assets(
    registry: Registry,
    public_keys: Mapping[str, str],
    relations: Mapping[Dataset, Relation],
    users: Relation,
    partition_start: str,
    mart_keys: Mapping[Dataset, dg.AssetKey],
) -> dict[Cadence, dg.AssetsDefinition]:
    """One multi-asset per cadence that has businesses."""
    return {
        cadence: _cadence_assets(
            cadence,
            businesses,
            public_keys,
            relations,
            users,
            cadence_partitions(cadence, partition_start),
            mart_keys,
        )
        for cadence in Cadence
        if (businesses := registry.by_cadence(cadence))
    }
