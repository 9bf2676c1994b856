"""Dagster layer of the scheduled imports: an asset per source and entity (parents upstream of
children), a job and a schedule per source.

Each file imported (or rejected with an error file) is one materialization of its entity's asset,
with the file's metadata; the run's own materialization sums them up. A file that fails for any
other reason (the bucket or the database unreachable) is left for the next run (nothing of it was
committed) and fails the step after the other files were tried, so the run and its alert say so.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from s3_sharing.inbound.database import migrate_inbound
from s3_sharing.inbound.importer import FileOutcome, Importer, error_file_sealer
from s3_sharing.inbound.sources import EntityImport, ImportSource, ImportSources
from s3_sharing.platform.crypto import Sealer
from s3_sharing.platform.postgres import Postgres
from s3_sharing.platform.resources import PlatformKeys, WorkDirectory
from s3_sharing.platform.storage import GcsArchive, S3Buckets, StorageError

TRIGGER_TAG = "s3_sharing/import_source"
FILES_ACCOUNTED, REJECTED_ROWS, FILES_ARRIVING = "files_accounted", "rejected_rows", "files_arriving"
PARENTS_RESOLVED = "parents_resolved"


MISSING_REPLAY = "missing_replay_keys"
"""Failure metadata: the keys asked for a replay that the source's bucket does not have."""


class ImportRunConfig(dg.Config):
    replay: list[str] = Field(default_factory=list)
    """Keys of files to import again even though the ledger has them (and nothing else)."""


def sealer_for(source: ImportSource, keys: PlatformKeys) -> Sealer | None:
    """The source's error file sealer; the platform's keys are read only for a source with a key."""
    if source.public_key_armor is None:
        return None
    return error_file_sealer(source, keys.signing_key()[0], keys.audit_cert())


def import_key(source_id: str, entity: str) -> dg.AssetKey:
    return dg.AssetKey(["imports", source_id, entity])


def import_job_name(source_id: str) -> str:
    return f"import_{source_id}_job"


def _file_metadata(outcome: FileOutcome) -> dict[str, Any]:
    metadata: dict[str, Any] = outcome.metadata()
    if outcome.error_file:
        metadata["error_file"] = dg.MetadataValue.url(outcome.error_file)
    return metadata


def _build_entity_asset(source: ImportSource, item: EntityImport) -> dg.AssetsDefinition:
    parent = item.definition.parent
    deps = [import_key(source.id, parent)] if parent and parent in {i.entity for i in source.entities} else []

    key = import_key(source.id, item.entity)

    @dg.asset(
        key=key,
        check_specs=[
            dg.AssetCheckSpec(
                FILES_ACCOUNTED, asset=key, description="every file of the folder is in the ledger"
            ),
            dg.AssetCheckSpec(
                REJECTED_ROWS, asset=key, description="rejected rows under the source's threshold"
            ),
            dg.AssetCheckSpec(
                FILES_ARRIVING, asset=key, description="a file arrived within the schedule's period"
            ),
            *(
                [
                    dg.AssetCheckSpec(
                        PARENTS_RESOLVED,
                        asset=key,
                        description=f"every row's {parent} exists (rows naming an unknown one are rejected)",
                    )
                ]
                if parent
                else []
            ),
        ],
        deps=deps,
        group_name=f"imports_{source.id}",
        kinds={"s3", "postgres"},
        description=f"{item.entity} of {source.name}, imported from s3://{source.connection.bucket}/"
        f"{item.folder}{item.pattern} ({item.action}, {item.error_policy}).",
    )
    def entity_import(
        context: dg.AssetExecutionContext,
        config: ImportRunConfig,
        postgres: Postgres,
        s3: S3Buckets,
        archive: GcsArchive,
        keys: PlatformKeys,
        workdir: WorkDirectory,
    ) -> Iterator[Any]:
        with postgres.connect() as connection:
            migrate_inbound(connection)
        try:
            bucket = source.open_bucket(s3)
        except StorageError as error:  # wrong or revoked credentials: this source only, said plainly
            raise dg.Failure(str(error)) from None
        sealer = sealer_for(source, keys)
        importer = Importer(source, bucket, postgres, archive, context.run.run_id, sealer, workdir.path)
        if config.replay:
            pending = [f for f in importer.listing(item) if f.key in config.replay]
            absent = sorted(set(config.replay) - {f.key for f in pending})
            if absent:
                raise dg.Failure(
                    f"{source.id}/{item.entity}: no file {', '.join(absent)} to replay",
                    metadata={MISSING_REPLAY: absent},
                )
        else:
            pending = importer.pending(item)
        context.log.info(f"{len(pending)} files to import from s3://{source.connection.bucket}/{item.folder}")
        outcomes, failures = [], []
        for file in pending:
            try:
                outcome = importer.import_file(item, file, replay=bool(config.replay))
            except Exception as error:  # the other files are still tried; nothing of this one committed
                failures.append(f"{file.key}: {type(error).__name__}: {error}")
                context.log.error(f"import of {file.key} failed, left for the next run: {failures[-1]}")
                continue
            context.log.info(outcome.describe())
            outcomes.append(outcome)
            if outcome.status != "skipped":
                context.log_event(
                    dg.AssetMaterialization(
                        context.asset_key, description=outcome.key, metadata=_file_metadata(outcome)
                    )
                )
        if failures:
            raise dg.Failure(
                f"{len(failures)} of {len(pending)} files of {source.id}/{item.entity} failed",
                metadata={"failed": "\n".join(failures)},
            )
        rejected = sum(o.rows_rejected for o in outcomes)
        yield dg.MaterializeResult(
            metadata={
                "files_imported": sum(o.status == "imported" for o in outcomes),
                "files_rejected": sum(o.status == "rejected" for o in outcomes),
                "rows_created": sum(o.rows_created for o in outcomes),
                "rows_updated": sum(o.rows_updated for o in outcomes),
                "rows_rejected": rejected,
            }
        )
        yield from _checks(importer, item, outcomes)

    return entity_import


def _checks(
    importer: Importer, item: EntityImport, outcomes: list[FileOutcome]
) -> Iterator[dg.AssetCheckResult]:
    read, rejected = sum(o.rows_read for o in outcomes), sum(o.rows_rejected for o in outcomes)
    unaccounted = importer.unaccounted(item)
    yield dg.AssetCheckResult(
        check_name=FILES_ACCOUNTED,
        passed=not unaccounted,
        metadata={"unaccounted": unaccounted[:50], "count": len(unaccounted)},
    )
    share = rejected / read if read else 0.0
    yield dg.AssetCheckResult(
        check_name=REJECTED_ROWS,
        passed=share <= item.warn_rejected_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rows_read": read, "rows_rejected": rejected, "share": round(share, 4)},
    )
    period = importer.source.schedule.period_days()
    days = importer.days_since_last_file(item)
    yield dg.AssetCheckResult(
        check_name=FILES_ARRIVING,
        passed=days is not None and days <= period * 1.5,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "days_since_last_file": round(days, 2) if days is not None else "never",
            "period_days": period,
        },
    )
    if item.definition.parent:
        orphans = {o.key: o.rows_orphaned for o in outcomes if o.rows_orphaned}
        yield dg.AssetCheckResult(
            check_name=PARENTS_RESOLVED,
            passed=not orphans,
            metadata={"rows_orphaned": sum(orphans.values()), "files": list(orphans)[:50]},
        )


def build_import_definitions(sources: ImportSources) -> dg.Definitions:
    """The import assets, jobs and schedules: a job per source that imports its entities parents first, and a
    schedule per source from its frequency, running while the source is active."""
    assets, jobs, schedules = [], [], []
    for source in sources.sources:
        entity_assets = [_build_entity_asset(source, item) for item in source.entities]
        job = dg.define_asset_job(
            import_job_name(source.id),
            selection=dg.AssetSelection.assets(*entity_assets),
            description=f"Import every new file of {source.name}, parents first.",
            tags={TRIGGER_TAG: source.id},
        )
        schedule = source.schedule
        schedules.append(
            dg.ScheduleDefinition(
                name=f"import_{source.id}_schedule",
                job=job,
                cron_schedule=schedule.cron(),
                execution_timezone=schedule.timezone,
                default_status=dg.DefaultScheduleStatus.RUNNING
                if source.active
                else dg.DefaultScheduleStatus.STOPPED,
                description=f"{schedule.frequency} at {schedule.time} {schedule.timezone}"
                + ("" if source.active else " (source inactive: stopped, configuration kept)"),
            )
        )
        assets += entity_assets
        jobs.append(job)
    return dg.Definitions(assets=assets, jobs=jobs, schedules=schedules)
