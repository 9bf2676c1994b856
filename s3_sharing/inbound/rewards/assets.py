"""Dagster layer of the rewards: the FI transactions, their reward points and the balances as
three assets of one step (one transaction per file writes all three), a landing sensor, checks.

Partitions: FI x business day of landing (``MultiPartitionsDefinition``). A partition per file
would pass Dagster's advice of fewer than ~100,000 partitions per asset within a few years of
daily files from tens of FIs and say nothing an operator looks for; FI x day stays at 3,650 per FI
per decade, shows each FI's days in the UI, and a backfill of a day reruns exactly that day's files
(each run still processes one file: run key = bucket, key and version).
"""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dagster as dg

from s3_sharing.inbound.database import migrate_inbound
from s3_sharing.inbound.rewards.processor import FileOutcome, Processor, landed_on, open_landing, pending
from s3_sharing.inbound.rewards.registry import FinancialInstitution, FiRegistry
from s3_sharing.platform import crypto
from s3_sharing.platform.keys import Severity, key_findings
from s3_sharing.platform.postgres import Postgres
from s3_sharing.platform.resources import PlatformKeys, WorkDirectory
from s3_sharing.platform.storage import GcsArchive, ObjectVersion, S3Buckets

FI_TRANSACTIONS = dg.AssetKey(["rewards", "fi_transactions"])
REWARD_POINTS = dg.AssetKey(["rewards", "reward_points"])
REWARD_BALANCES = dg.AssetKey(["rewards", "reward_balances"])
REWARDS_JOB = "rewards_job"
FILE_VERIFIED, CONTROL_TOTALS = "file_verified", "control_totals"
NO_DUPLICATES, KEYS_VALID, POINTS_RECONCILE = "no_duplicate_transactions", "fi_keys_valid", "points_reconcile"
KEY_WARNING_DAYS = 30
LANDING_SENSOR_SECONDS = 5
"""A file's points are queryable seconds after it lands: a tick lists each FI folder once (one
``ListObjectVersions`` page per FI) and asks the ledger, cheap enough every 5 s."""


class RewardsRunConfig(dg.Config):
    key: str = ""
    """The file's key in the landing bucket (the sensor sets it); empty: every pending file of the
    partition's FI that landed on the partition's day."""
    version_id: str = ""
    replay: bool = False
    """Process the file again although the ledger has it: its rows and points are recomputed."""


def rewards_partitions(registry: FiRegistry, start: str) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            "fi": dg.StaticPartitionsDefinition([fi.id for fi in registry.fis]),
            "day": dg.DailyPartitionsDefinition(start_date=start[:10], end_offset=1),  # today: files land now
        }
    )


def build_processor(
    registry: FiRegistry,
    s3: S3Buckets,
    postgres: Postgres,
    keys: PlatformKeys,
    workdir: WorkDirectory,
    archive: GcsArchive | None,
    run_id: str,
) -> Processor:
    """The processor a run uses: our keys read now, error files sealed to the FI's newest pinned
    key and the audit key."""
    decryptor, _ = keys.inbound_key()
    signer, _ = keys.signing_key()
    audit = keys.audit_cert()

    def sealer_of(fi: FinancialInstitution) -> crypto.Sealer:
        return crypto.Sealer((fi.certs[-1], audit), signer)

    bucket = open_landing(registry, s3)
    return Processor(registry, bucket, postgres, decryptor, sealer_of, workdir.path, archive, run_id)


def _files(
    processor: Processor, fi: FinancialInstitution, day: str, config: RewardsRunConfig
) -> list[ObjectVersion]:
    listed = processor.listing(fi) if config.key else processor.pending(fi)
    if config.key:
        chosen = [
            v
            for v in listed
            if v.key == config.key and (not config.version_id or v.version_id == config.version_id)
        ]
        if not chosen:
            raise dg.Failure(
                f"{fi.owner}: no current version {config.version_id or ''} of {config.key}"
                " in the landing bucket"
            )
        return chosen
    return [v for v in listed if landed_on(v) == day]


def build_rewards_definitions(registry: FiRegistry, start: str) -> dg.Definitions:
    """The FI transactions asset (partitioned by FI and day), its job and the landing sensor."""
    partitions = rewards_partitions(registry, start)
    checks = [
        dg.AssetCheckSpec(
            FILE_VERIFIED, asset=FI_TRANSACTIONS, description="every file was signed by a pinned FI key"
        ),
        dg.AssetCheckSpec(
            CONTROL_TOTALS,
            asset=FI_TRANSACTIONS,
            description="rows and amount read = loaded + duplicates + rejected",
        ),
        dg.AssetCheckSpec(
            NO_DUPLICATES,
            asset=FI_TRANSACTIONS,
            description="each (FI, transaction id) once",
        ),
        dg.AssetCheckSpec(
            KEYS_VALID, asset=FI_TRANSACTIONS, description="pinned FI keys and our inbound key usable"
        ),
        dg.AssetCheckSpec(
            POINTS_RECONCILE, asset=REWARD_BALANCES, description="balances = the sum of the reward rows"
        ),
    ]

    @dg.multi_asset(
        name="fi_rewards",
        specs=[
            dg.AssetSpec(
                FI_TRANSACTIONS,
                group_name="rewards",
                kinds={"s3", "postgres"},
                description="Debit card transactions from FI files: verified, decrypted, normalised.",
            ),
            dg.AssetSpec(
                REWARD_POINTS,
                deps=[FI_TRANSACTIONS],
                group_name="rewards",
                kinds={"postgres"},
                description="One reward row per transaction, by the rules version in effect at landing.",
            ),
            dg.AssetSpec(
                REWARD_BALANCES,
                deps=[REWARD_POINTS],
                group_name="rewards",
                kinds={"postgres"},
                description="Each user's points per program, moved in the same transaction as the rows.",
            ),
        ],
        check_specs=checks,
        partitions_def=partitions,
    )
    def fi_rewards(
        context: dg.AssetExecutionContext,
        config: RewardsRunConfig,
        postgres: Postgres,
        s3: S3Buckets,
        archive: GcsArchive,
        keys: PlatformKeys,
        workdir: WorkDirectory,
    ) -> Iterator[Any]:
        with postgres.connect() as connection:
            migrate_inbound(connection)
        partition = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
        fi = registry.fi(partition["fi"])
        processor = build_processor(registry, s3, postgres, keys, workdir, archive, context.run.run_id)
        files = _files(processor, fi, partition["day"], config)
        outcomes = []
        for version in files:
            outcome = processor.process(fi, version, replay=config.replay)
            context.log.info(outcome.describe())
            outcomes.append(outcome)
        yield from _results(outcomes)
        yield from _checks(processor, fi, keys, outcomes)

    job = dg.define_asset_job(
        REWARDS_JOB,
        selection=dg.AssetSelection.assets(fi_rewards),
        partitions_def=partitions,
        executor_def=dg.in_process_executor,  # one step: no second process to start (seconds of latency)
        description="FI transaction files to reward points (one file per run, from the landing sensor).",
    )
    return dg.Definitions(assets=[fi_rewards], jobs=[job], sensors=[build_landing_sensor(registry, job)])


def _results(outcomes: list[FileOutcome]) -> Iterator[dg.MaterializeResult]:
    done = [o for o in outcomes if o.status != "skipped"]
    files = [o.metadata() for o in done]
    yield dg.MaterializeResult(
        asset_key=FI_TRANSACTIONS,
        metadata={
            "files": dg.MetadataValue.json(files),
            "rows_loaded": sum(o.rows_loaded for o in done),
            "rows_rejected": sum(o.rows_rejected for o in done),
            "rows_duplicate": sum(o.rows_duplicate for o in done),
            "files_rejected": sum(o.status == "rejected" for o in done),
            "error_files": [o.error_file for o in done if o.error_file],
        },
    )
    yield dg.MaterializeResult(asset_key=REWARD_POINTS, metadata={"points": sum(o.points for o in done)})
    yield dg.MaterializeResult(
        asset_key=REWARD_BALANCES, metadata={"users_moved_by": sum(o.points for o in done)}
    )


def _checks(
    processor: Processor, fi: FinancialInstitution, keys: PlatformKeys, outcomes: list[FileOutcome]
) -> Iterator[dg.AssetCheckResult]:
    done = [o for o in outcomes if o.status != "skipped"]
    refused = {o.key: o.reason for o in done if o.status == "rejected" and o.signed_by is None}
    yield dg.AssetCheckResult(
        check_name=FILE_VERIFIED,
        asset_key=FI_TRANSACTIONS,
        passed=not refused,
        metadata={
            "files_refused": dg.MetadataValue.json(refused),
            "quarantined": [o.quarantined_as for o in done if o.quarantined_as],
        },
    )
    off = [
        o.key
        for o in done
        if o.status == "loaded"
        and (
            o.rows_read != o.rows_loaded + o.rows_duplicate + o.rows_rejected
            or o.amount_read_minor
            != o.amount_loaded_minor + o.amount_duplicate_minor + o.amount_rejected_minor
        )
    ]
    yield dg.AssetCheckResult(
        check_name=CONTROL_TOTALS,
        asset_key=FI_TRANSACTIONS,
        passed=not off,
        metadata={
            "files_off": off,
            "rows_read": sum(o.rows_read for o in done),
            "amount_read_minor": sum(o.amount_read_minor for o in done),
        },
    )
    with processor.postgres.connect() as connection:
        (duplicated,) = connection.execute(
            "SELECT count(*) FROM (SELECT 1 FROM fi_transactions WHERE fi = %s"
            " GROUP BY transaction_id HAVING count(*) > 1) d",
            (fi.id,),
        ).fetchone() or (0,)
        mismatched = connection.execute(
            "SELECT count(*) FROM (SELECT program, user_id, sum(points) AS points FROM reward_points"
            " GROUP BY 1, 2) r FULL JOIN reward_balances b USING (program, user_id)"
            " WHERE coalesce(r.points, 0) <> coalesce(b.points, 0)"
        ).fetchone() or (0,)
    yield dg.AssetCheckResult(
        check_name=NO_DUPLICATES,
        asset_key=FI_TRANSACTIONS,
        passed=duplicated == 0,
        metadata={"duplicated_ids": duplicated},
    )
    _, inbound = keys.inbound_key()
    findings = key_findings(
        [
            *((f"{fi.owner} signing key", cert, False) for cert in fi.certs),
            ("our inbound key", inbound, True),
        ],
        KEY_WARNING_DAYS,
    )
    errors = [f for f in findings if f.severity is Severity.ERROR]
    yield dg.AssetCheckResult(
        check_name=KEYS_VALID,
        asset_key=FI_TRANSACTIONS,
        passed=not findings,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        metadata={"findings": [f.message for f in findings]},
    )
    yield dg.AssetCheckResult(
        check_name=POINTS_RECONCILE,
        asset_key=REWARD_BALANCES,
        passed=mismatched[0] == 0,
        metadata={"users_whose_balance_differs": int(mismatched[0])},
    )


def build_landing_sensor(registry: FiRegistry, job: Any) -> dg.SensorDefinition:
    @dg.sensor(
        name="fi_landing_sensor",
        job=job,
        minimum_interval_seconds=LANDING_SENSOR_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Every {LANDING_SENSOR_SECONDS} s: one run per FI file version the ledger has not seen"
        " (never by timestamp).",
    )
    def fi_landing_sensor(
        context: dg.SensorEvaluationContext, postgres: Postgres, s3: S3Buckets
    ) -> Iterator[dg.RunRequest | dg.SkipReason]:
        with postgres.connect() as connection:
            migrate_inbound(connection)
        landing, bucket = registry.landing, open_landing(registry, s3)
        requested = 0
        for fi in registry.fis:
            for version in pending(bucket, postgres, fi):
                requested += 1
                yield dg.RunRequest(
                    run_key=f"{landing.bucket}/{version.key}@{version.version_id}",
                    partition_key=dg.MultiPartitionKey({"fi": fi.id, "day": landed_on(version)}),
                    run_config=dg.RunConfig(
                        ops={"fi_rewards": RewardsRunConfig(key=version.key, version_id=version.version_id)}
                    ),
                    tags={"s3_sharing/fi": fi.id, "s3_sharing/landed_at": _iso(version.last_modified)},
                )
        if not requested:
            yield dg.SkipReason("no new FI file in the landing bucket")

    return fi_landing_sensor


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
