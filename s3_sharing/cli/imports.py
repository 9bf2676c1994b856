"""``s3-sharing imports run|history``: scheduled imports by hand, through the same Dagster jobs, and
the processed-file ledger as a table."""

import argparse
from collections.abc import Sequence
from typing import Any

import dagster as dg

from s3_sharing.inbound.assets import import_job_name, import_key
from s3_sharing.inbound.sources import read_sources
from s3_sharing.platform.postgres import Postgres
from s3_sharing.platform.settings import Settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
HISTORY_COLUMNS = ("finished", "source", "entity", "key", "status", "read", "created", "updated", "rejected")


def run_source(
    defs: dg.Definitions, instance: dg.DagsterInstance, source_id: str, entities: Sequence[str] | None = None
) -> tuple[dg.ExecuteInProcessResult, list[dict[str, Any]]]:
    """Run the source's import job (or only these entities); the result and each file's metadata."""
    job = defs.resolve_job_def(import_job_name(source_id))
    selection = [import_key(source_id, e) for e in entities] if entities else None
    result = job.execute_in_process(
        instance=instance, asset_selection=selection, raise_on_error=False, run_config=QUIET
    )
    files = []
    for event in result.get_asset_materialization_events():
        metadata = {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}
        if "key" in metadata:
            files.append(metadata)
    return result, files


def history(
    postgres: Postgres,
    source: str | None = None,
    entity: str | None = None,
    status: str | None = None,
    run_id: str | None = None,
) -> list[tuple[Any, ...]]:
    """The ledger, newest first, optionally filtered."""
    with postgres.connect() as connection:
        return connection.execute(
            "SELECT to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), source, entity, key,"
            " status, rows_read, rows_created, rows_updated, rows_rejected, error_file FROM import_ledger"
            " WHERE (%(source)s::text IS NULL OR source = %(source)s)"
            " AND (%(entity)s::text IS NULL OR entity = %(entity)s)"
            " AND (%(status)s::text IS NULL OR status = %(status)s)"
            " AND (%(run_id)s::text IS NULL OR run_id = %(run_id)s)"
            " ORDER BY finished_at DESC, id DESC",
            {"source": source, "entity": entity, "status": status, "run_id": run_id},
        ).fetchall()


def history_table(records: Sequence[tuple[Any, ...]]) -> str:
    if not records:
        return "no imports recorded"
    lines = [HISTORY_COLUMNS, *(tuple(str(v) for v in r[:9]) for r in records)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HISTORY_COLUMNS))]
    table = ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    errors = [f"  errors of {r[3]}: {r[9]}" for r in records if r[9]]
    return "\n".join(table + (["", *errors] if errors else []))


def cmd_imports_run(settings: Settings, args: argparse.Namespace) -> int:
    from s3_sharing.cli.runbook import dagster_instance
    from s3_sharing.definitions import build_definitions

    read_sources(settings.import_sources).get(args.source)  # a clear error for an unknown source
    result, files = run_source(build_definitions(settings), dagster_instance(), args.source, args.entity)
    if files:
        print(history_table(history(_postgres(settings), args.source, run_id=result.run_id)))
    else:
        print(f"{args.source}: no new files")
    if not result.success:
        for event in result.all_events:
            if event.event_type_value == "STEP_FAILURE" and event.step_failure_data:
                print(f"{event.step_key} failed: {event.step_failure_data.error.message.strip()}")
    return 0 if result.success else 1


def cmd_imports_history(settings: Settings, args: argparse.Namespace) -> int:
    print(history_table(history(_postgres(settings), args.source, args.entity, args.status)))
    return 0


def _postgres(settings: Settings) -> Postgres:
    password = settings.pg_password.get_secret_value() if settings.pg_password else None
    return Postgres(dsn=settings.pg_dsn, password=password)


def add_import_commands(commands: Any) -> None:
    imports = commands.add_parser("imports", help="scheduled imports from customers' buckets")
    actions = imports.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="import a source's new files now (recorded in Dagster)")
    run.add_argument("source", help="an import source id")
    run.add_argument("--entity", action="append", help="only this entity (repeatable)")
    run.set_defaults(run=cmd_imports_run)
    past = actions.add_parser("history", help="the processed-file ledger, newest first")
    past.add_argument("--source")
    past.add_argument("--entity")
    past.add_argument("--status", choices=["imported", "rejected"])
    past.set_defaults(run=cmd_imports_history)
