"""``s3-sharing imports run|replay|history``, ``onboard-import`` and ``verify-import-access``:
scheduled imports by hand (through the same Dagster jobs; a dry run outside them, as it records
nothing), the processed-file ledger as a table, and onboarding a source."""

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import dagster as dg

from s3_sharing.cli.runs import QUIET, dagster_instance, run_in_process
from s3_sharing.inbound.assets import MISSING_REPLAY, import_job_name, import_key, sealer_for
from s3_sharing.inbound.database import command_postgres
from s3_sharing.inbound.importer import Importer
from s3_sharing.inbound.location import build_inbound_location
from s3_sharing.inbound.onboarding import import_onboarding_pack, verify_import_access
from s3_sharing.inbound.sources import ImportSource, read_sources
from s3_sharing.platform.postgres import Postgres
from s3_sharing.platform.resources import command_platform_keys
from s3_sharing.platform.settings import Settings
from s3_sharing.platform.storage import S3Buckets

HISTORY_COLUMNS = ("finished", "source", "entity", "key", "status", "read", "created", "updated", "rejected")


def run_source(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    source_id: str,
    entities: Sequence[str] | None = None,
    replay: str | None = None,
) -> tuple[dg.ExecuteInProcessResult, list[dict[str, Any]]]:
    """Run the source's import job (or only these entities; or replay one file of one entity); the
    result and each file's metadata."""
    job = defs.resolve_job_def(import_job_name(source_id))
    selection = [import_key(source_id, e) for e in entities] if entities else None
    run_config: dict[str, Any] = dict(QUIET)
    if replay is not None and entities:
        op = import_key(source_id, entities[0]).to_python_identifier()
        run_config["ops"] = {op: {"config": {"replay": [replay]}}}
    result = run_in_process(
        job, instance=instance, asset_selection=selection, raise_on_error=False, run_config=run_config
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
    source = read_sources(settings.import_sources).get(args.source)
    if args.dry_run:
        return _dry_run(settings, source, args.entity)
    return _run(settings, args.source, args.entity)


def cmd_imports_replay(settings: Settings, args: argparse.Namespace) -> int:
    item = read_sources(settings.import_sources).get(args.source).entity_for(args.key)
    return _run(settings, args.source, [item.entity], replay=args.key)


def _run(settings: Settings, source_id: str, entities: list[str] | None, replay: str | None = None) -> int:
    defs = build_inbound_location(settings)
    result, files = run_source(defs, dagster_instance(), source_id, entities, replay)
    if files:
        print(history_table(history(command_postgres(settings), source_id, run_id=result.run_id)))
    else:
        print(f"{source_id}: no new files")
    failures = [e.step_failure_data for e in result.all_events if e.is_step_failure and e.step_failure_data]
    for failure in failures:
        user_failure = failure.user_failure_data
        if user_failure is not None and MISSING_REPLAY in user_failure.metadata:
            print(f"s3-sharing imports replay: {user_failure.description}", file=sys.stderr)
            return 2
        print(f"{source_id} failed: {failure.error.message.strip() if failure.error else 'see the run'}")
    return 0 if result.success else 1


def _dry_run(settings: Settings, source: ImportSource, entities: list[str] | None) -> int:
    postgres = command_postgres(settings)
    sealer = sealer_for(source, command_platform_keys(settings))
    bucket = source.open_bucket(S3Buckets())
    importer = Importer(source, bucket, postgres, sealer=sealer, work_root=settings.work_dir)
    outcomes = importer.dry_run(entities)
    for outcome in outcomes:
        print(outcome.describe())
    print(f"{source.id}: dry run of {len(outcomes)} files; nothing was loaded or recorded")
    return 0


def cmd_onboard_import(settings: Settings, args: argparse.Namespace) -> int:
    from s3_sharing.cli.main import caller_principal

    source = read_sources(settings.import_sources).get(args.source)
    print(import_onboarding_pack(source, args.platform_principal or caller_principal()))
    return 0


def cmd_verify_import_access(settings: Settings, args: argparse.Namespace) -> int:
    source = read_sources(settings.import_sources).get(args.source)
    steps = verify_import_access(source, S3Buckets())
    for step in steps:
        print(step.line())
    ok = all(step.ok for step in steps)
    print(f"verify-import-access {source.id}: {'connection OK' if ok else 'connection NOT ready'}")
    return 0 if ok else 1


def cmd_imports_history(settings: Settings, args: argparse.Namespace) -> int:
    print(history_table(history(command_postgres(settings), args.source, args.entity, args.status)))
    return 0


def add_import_commands(commands: Any) -> None:
    imports = commands.add_parser("imports", help="scheduled imports from customers' buckets")
    actions = imports.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="import a source's new files now (recorded in Dagster)")
    run.add_argument("source", help="an import source id")
    run.add_argument("--entity", action="append", help="only this entity (repeatable)")
    run.add_argument(
        "--dry-run", action="store_true", help="validate and write the error files; load nothing"
    )
    run.set_defaults(run=cmd_imports_run)
    replay = actions.add_parser("replay", help="import one file again, even if it was imported")
    replay.add_argument("source", help="an import source id")
    replay.add_argument("key", help="the file's key in the source's bucket, e.g. riesgos/2026-11-01.csv")
    replay.set_defaults(run=cmd_imports_replay)
    past = actions.add_parser("history", help="the processed-file ledger, newest first")
    past.add_argument("--source")
    past.add_argument("--entity")
    past.add_argument("--status", choices=["imported", "rejected"])
    past.set_defaults(run=cmd_imports_history)

    onboard = commands.add_parser("onboard-import", help="what to ask an import source's customer for")
    onboard.add_argument("source", help="an import source id")
    onboard.add_argument(
        "--platform-principal", help="the IAM principal that assumes import roles (default: current)"
    )
    onboard.set_defaults(run=cmd_onboard_import)
    access = commands.add_parser(
        "verify-import-access", help="list, read and write a probe in an import source's bucket"
    )
    access.add_argument("source", help="an import source id")
    access.set_defaults(run=cmd_verify_import_access)
