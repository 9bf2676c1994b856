"""``s3-sharing rewards run|replay|balance``: the landing sensor's work by hand (each file a run
of the rewards job, recorded in Dagster), one file processed again, and a user's points."""

import argparse
from collections.abc import Callable
from typing import Any

import dagster as dg

from s3_sharing.cli.runs import QUIET, Progress, dagster_instance, run_in_process
from s3_sharing.inbound.database import command_postgres
from s3_sharing.inbound.location import build_inbound_location
from s3_sharing.inbound.rewards.assets import REWARDS_JOB, RewardsRunConfig
from s3_sharing.inbound.rewards.processor import (
    balance,
    landed_on,
    listing,
    open_landing,
    pending,
)
from s3_sharing.inbound.rewards.registry import FinancialInstitution, FiRegistry, read_fi_registry
from s3_sharing.platform.settings import Settings, SettingsError
from s3_sharing.platform.storage import ObjectVersion, S3Buckets


def _registry(settings: Settings) -> FiRegistry:
    if settings.fi_registry is None:
        raise SettingsError("S3_SHARING_FI_REGISTRY: no FI registry configured")
    return read_fi_registry(settings.fi_registry)


def process_files(
    settings: Settings,
    files: list[tuple[FinancialInstitution, ObjectVersion]],
    replay: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Each file through the rewards job, one run per file as the sensor requests them; the
    metadata of each file processed."""
    job = build_inbound_location(settings).resolve_job_def(REWARDS_JOB)
    instance, processed = dagster_instance(), []
    counter = Progress(len(files), "files")
    for fi, version in files:
        config = RewardsRunConfig(key=version.key, version_id=version.version_id, replay=replay)
        result = run_in_process(
            job,
            run_config=dg.RunConfig(ops={"fi_rewards": config}, loggers=QUIET["loggers"]),
            partition_key=dg.MultiPartitionKey({"fi": fi.id, "day": landed_on(version)}),
            instance=instance,
            raise_on_error=False,
        )
        for event in result.get_asset_materialization_events():
            metadata = event.step_materialization_data.materialization.metadata
            if "files" in metadata:
                processed += list(metadata["files"].value)  # type: ignore[arg-type]
        if progress is not None:
            progress(counter.line(f"{fi.id} {version.key}: run {result.run_id[:8]}"))
        if not result.success:
            raise SystemExit(f"{fi.owner}: {version.key}: the rewards run failed (see run {result.run_id})")
    return processed


def describe(file: dict[str, Any]) -> str:
    if file["status"] != "loaded":
        return f"{file['fi']} {file['key']}: {file['status']}: {file.get('reason', '')}"
    return (
        f"{file['fi']} {file['key']}: {file['rows_loaded']} loaded, {file['rows_duplicate']} duplicates,"
        f" {file['rows_rejected']} rejected, {file['points']} points (rules v{file['rules_version']})"
        + (f"; errors: {file['error_file']}" if file.get("error_file") else "")
    )


def cmd_rewards_run(settings: Settings, args: argparse.Namespace) -> int:
    registry = _registry(settings)
    landing, postgres = open_landing(registry, S3Buckets()), command_postgres(settings)
    chosen = [registry.fi(args.fi)] if args.fi else registry.fis
    files = [(fi, version) for fi in chosen for version in pending(landing, postgres, fi)]
    for file in process_files(settings, files, progress=print):
        print(describe(file))
    if not files:
        print("no new FI files")
    return 0


def cmd_rewards_replay(settings: Settings, args: argparse.Namespace) -> int:
    registry = _registry(settings)
    fi = registry.fi_for(args.key)
    if fi is None:
        raise SettingsError(f"{args.key}: in no FI's folder of the landing bucket")
    versions = [v for v in listing(open_landing(registry, S3Buckets()), fi) if v.key == args.key]
    if not versions:
        raise SettingsError(f"{args.key}: not in the landing bucket")
    for file in process_files(settings, [(fi, versions[0])], replay=True):
        print(describe(file))
    return 0


def cmd_rewards_balance(settings: Settings, args: argparse.Namespace) -> int:
    balances = balance(command_postgres(settings), args.user, args.program)
    for program, points in balances:
        print(f"{args.user}  {program}  {points} points")
    if not balances:
        print(f"{args.user}: no points yet")
    return 0


def add_rewards_commands(commands: Any) -> None:
    rewards = commands.add_parser("rewards", help="FI transaction files to reward points")
    actions = rewards.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="process every new FI file now (what the landing sensor does)")
    run.add_argument("--fi", help="only this FI")
    run.set_defaults(run=cmd_rewards_run)
    replay = actions.add_parser("replay", help="process one file again: its rows and points recomputed")
    replay.add_argument(
        "key", help="the file's key in the landing bucket, e.g. banco_andes/2026-11-30.csv.pgp"
    )
    replay.set_defaults(run=cmd_rewards_replay)
    points = actions.add_parser("balance", help="a user's points, per program")
    points.add_argument("user", help="the user id the FI sends")
    points.add_argument("--program")
    points.set_defaults(run=cmd_rewards_balance)
