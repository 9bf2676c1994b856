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
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import dagster as dg
from pydantic import Field

from s3_sharing.outbound.asset_keys import delivery_key
from s3_sharing.outbound.audits import DeliverySample, sample_latest_delivery
from s3_sharing.outbound.certification import Certifier, Status
from s3_sharing.outbound.datasets import Dataset
from s3_sharing.outbound.registry import Business
from s3_sharing.platform import crypto
from s3_sharing.platform.keys import Severity, key_findings
from s3_sharing.platform.resources import PlatformKeys
from s3_sharing.platform.state import StateStore
from s3_sharing.platform.storage import GcsArchive, S3Buckets
from s3_sharing.platform.time import Cadence, Window, last_windows
from s3_sharing.platform.warehouse import Relation, Warehouse, WindowQuery

DEFAULT_LOOKBACK = {Cadence.HOURLY: 48, Cadence.DAILY: 14, Cadence.WEEKLY: 8}
ALL_TIME = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))


class DeliveryCheck(StrEnum):
    DELIVERED = "delivered"
    KEYS_VALID = "keys_valid"
    TENANT_ISOLATION = "tenant_isolation"


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


def _failed(check: DeliveryCheck, business: Business, error: Exception) -> dg.AssetCheckResult:
    return _result(
        check, business, False, dg.AssetCheckSeverity.ERROR, error=f"{type(error).__name__}: {error}"
    )


def _result(
    check: DeliveryCheck, business: Business, passed: bool, severity: dg.AssetCheckSeverity, **metadata: Any
):
    return dg.AssetCheckResult(
        asset_key=delivery_key(business.id),
        check_name=check.value,  # Dagster serializes plain strings only
        passed=passed,
        severity=severity,
        metadata=metadata,
    )


class Evaluation:
    """The resources and settings one check evaluation shares across businesses."""

    def __init__(
        self,
        config: CertificationConfig,
        warehouse: Warehouse,
        archive: GcsArchive,
        s3: S3Buckets,
        keys: PlatformKeys,
        relations: Mapping[Dataset, Relation],
        users: Relation,
        state: StateStore,
    ) -> None:
        self.state = state
        self.config, self.warehouse, self.archive, self.keys, self.users = (
            config,
            warehouse,
            archive,
            keys,
            users,
        )
        self.signer, self.signing_cert = keys.signing_key()
        self.audit_cert = keys.audit_cert()
        self.certifier = Certifier(
            warehouse, relations, archive, s3, self.signing_cert, state, deep=config.deep
        )

    def evaluate(
        self, check: DeliveryCheck, business: Business, windows: list[Window], public_key: str
    ) -> dg.AssetCheckResult:
        """One check of one business: its own trouble fails this check only, not the others'.
        ``tenant_isolation`` is evaluated for many businesses at once instead."""
        if check is DeliveryCheck.TENANT_ISOLATION:
            raise ValueError("tenant_isolation is evaluated by Evaluation.tenant_isolation")
        try:
            if check is DeliveryCheck.DELIVERED:
                return self.delivered(business, windows)
            return self.keys_valid(business, public_key)
        except Exception as error:
            return _failed(check, business, error)

    def delivered(self, business: Business, windows: list[Window]) -> dg.AssetCheckResult:
        certified = [w for w in windows if business.certifies(w)]
        verdicts = self.certifier.certify(business, certified)
        failing = [v for v in verdicts if v.status.failing]
        listed = {status: [v.partition for v in verdicts if v.status is status] for status in Status}
        inactive = {}
        if len(certified) < len(windows):
            since = business.inactive_since.isoformat() if business.inactive_since else "its registration"
            inactive = {"not_certified": f"{len(windows) - len(certified)} windows: inactive since {since}"}
        return _result(
            DeliveryCheck.DELIVERED,
            business,
            passed=not failing,
            severity=dg.AssetCheckSeverity.ERROR,
            windows=len(verdicts),
            first=windows[0].key if windows else "",
            last=windows[-1].key if windows else "",
            delivered=len(listed[Status.DELIVERED]),
            empty=len(listed[Status.EMPTY]),
            pending=listed[Status.PENDING],
            missing=listed[Status.MISSING],
            mismatched=listed[Status.MISMATCHED],
            problems=[v.describe() for v in failing][:50],
            **inactive,
        )

    def keys_valid(self, business: Business, public_key: str) -> dg.AssetCheckResult:
        business_cert = crypto.load_cert(public_key, f"business {business.id!r}")
        findings = key_findings(
            [
                (f"business {business.id!r}", business_cert, True),
                ("platform signing key", self.signing_cert, False),
                ("audit key", self.audit_cert, True),
            ],
            self.config.key_warning_days,
        )
        errors = [f for f in findings if f.severity is Severity.ERROR]
        expiry = crypto.expiry(business_cert)
        return _result(
            DeliveryCheck.KEYS_VALID,
            business,
            passed=not findings,
            severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
            business_key=business_cert.fingerprint,
            business_key_expires=f"{expiry:%Y-%m-%d}" if expiry else "never",
            findings=[f.message for f in findings],
        )

    def tenant_isolation(
        self, businesses: Sequence[Business], pool: Executor
    ) -> dict[str, dg.AssetCheckResult]:
        """Each business's latest delivery sampled (in ``pool``), then whose users the sampled user
        ids are asked of the warehouse for all of them at once."""
        check = DeliveryCheck.TENANT_ISOLATION
        decryptor = self.keys.audit_decryptor()
        if decryptor is None:
            reason = "no audit secret key configured (S3_SHARING_AUDIT_SECRET_KEY_FILE): nothing sampled"
            return {
                b.id: _result(check, b, False, dg.AssetCheckSeverity.WARN, reason=reason) for b in businesses
            }

        def sample(business: Business) -> DeliverySample | Exception | None:
            try:
                return sample_latest_delivery(self.archive, self.state, business, decryptor)
            except Exception as error:  # this business's check fails with it, not the others'
                return error

        results, samples = {}, {}
        for business, taken in zip(businesses, pool.map(sample, businesses), strict=True):
            if isinstance(taken, Exception):
                results[business.id] = _failed(check, business, taken)
            elif taken is None:
                results[business.id] = _result(
                    check,
                    business,
                    True,
                    dg.AssetCheckSeverity.ERROR,
                    sampled_files=0,
                    reason="no delivery yet",
                )
            else:
                samples[business.id] = (business, taken)
        try:
            own = self._own_users({b: sample.user_ids for b, (_, sample) in samples.items()})
        except Exception as error:
            return results | {b: _failed(check, business, error) for b, (business, _) in samples.items()}
        for business_id, (business, taken) in samples.items():
            found = taken.isolation(own[business_id])
            results[business_id] = _result(
                check,
                business,
                passed=not found.foreign_rows,
                severity=dg.AssetCheckSeverity.ERROR,
                manifest_window=found.manifest_window,
                sampled_files=found.sampled_files,
                foreign_rows=found.foreign_rows,
                files_with_foreign_rows=found.files_with_foreign_rows,
            )
        return results

    def _own_users(self, sampled: Mapping[str, set[str]]) -> dict[str, set[str]]:
        """Which of each business's sampled user ids are its users: one stream of the users of the
        sampled businesses (a check op's, up to 200), keeping only the sampled ids."""
        own: dict[str, set[str]] = {business_id: set() for business_id in sampled}
        if not sampled:
            return own
        query = WindowQuery(
            self.users,
            "updated_at",
            *ALL_TIME,
            columns=("business_id", "user_id"),
            among=("business_id", tuple(sampled)),
        )
        for batch in self.warehouse.stream(query):
            for business_id, user_id in zip(*(batch.column(n).to_pylist() for n in range(2)), strict=True):
                if user_id in sampled[business_id]:
                    own[business_id].add(user_id)
        return own


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
            evaluation = Evaluation(config, warehouse, archive, s3, keys, relations, users, state)
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
                        return isolation[business.id]
                    key = public_keys[business.id]
                    return evaluation.evaluate(DeliveryCheck(check.name), business, windows, key)

                yield from pool.map(evaluate, selected)

        return certify

    return [
        check_op(check_op_name(cadence, n // CHECK_OP_BUSINESSES), businesses[n : n + CHECK_OP_BUSINESSES])
        for n in range(0, len(businesses), CHECK_OP_BUSINESSES)
    ]
