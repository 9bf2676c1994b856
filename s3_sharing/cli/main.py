"""``s3-sharing``: argument parsing and the runbook commands, usable from any terminal."""

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import boto3
import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError

from s3_sharing.cli import runbook
from s3_sharing.cli.demo import DEMO_HOURS, cmd_demo, cmd_endpoints
from s3_sharing.cli.imports import add_import_commands
from s3_sharing.cli.rewards import add_rewards_commands
from s3_sharing.cli.runs import Interrupted, dagster_instance, stopping
from s3_sharing.devtools import datagen
from s3_sharing.devtools.dagster_dev import GraphQLError
from s3_sharing.outbound.dictionary import data_dictionary
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.outbound.onboarding import onboarding_pack, verify_access
from s3_sharing.outbound.registry import Business, read_registry
from s3_sharing.platform.postgres import PostgresNotConfigured
from s3_sharing.platform.resources import command_platform_keys
from s3_sharing.platform.settings import LOCAL_DIR, Settings, SettingsError
from s3_sharing.platform.storage import S3Buckets, StorageError
from s3_sharing.platform.time import (
    Cadence,
    PartitionKeyError,
    cadence_partitions,
    hourly_partitions,
    parse_hourly_key,
    require_partition,
    windows_inside,
)
from s3_sharing.platform.yaml_registry import RegistryError
from s3_sharing.transform.dbt_assets import (
    dbt_project,
    load_manifest,
    prepare,
)


def cmd_prepare(settings: Settings, _: argparse.Namespace) -> int:
    print(f"dbt manifest: {prepare(dbt_project(settings))}")
    return 0


def cmd_generate(settings: Settings, args: argparse.Namespace) -> int:
    end = parse_hourly_key(args.end).replace(tzinfo=None) if args.end else datagen.current_hour()
    scale = datagen.Scale(
        end=end,
        businesses=args.businesses,
        users_per_business=args.users_per_business,
        events_per_hour=args.events_per_hour,
        hours=args.hours,
        seed=args.seed,
    )
    started = time.perf_counter()
    counts = datagen.generate(settings.duckdb_path, scale)
    print(f"generated {scale.hours} hours ending {end:%Y-%m-%d %H:00} UTC into {settings.duckdb_path}")
    for table, rows in counts.items():
        print(f"  raw.{table:<14} {rows:>10,} rows")
    print(f"  in {time.perf_counter() - started:.1f}s")
    return 0


def _window_keys(args: argparse.Namespace, partitions: dg.TimeWindowPartitionsDefinition) -> tuple[str, str]:
    if args.partition_from or args.partition_to:
        first, last = args.partition_from, args.partition_to or args.partition_from
        if not first:
            raise PartitionKeyError("--to needs --from")
    else:
        if args.last_hours < 1:
            raise PartitionKeyError(f"--last-hours {args.last_hours}: give at least 1 hour")
        keys = partitions.get_partition_keys()
        if not keys:
            raise PartitionKeyError("no complete hourly partition yet: check S3_SHARING_PARTITION_START")
        first, last = keys[-min(args.last_hours, len(keys))], keys[-1]
    for key in (first, last):
        require_partition(partitions, key)
    if parse_hourly_key(last) < parse_hourly_key(first):
        raise PartitionKeyError(f"--to {last} is before --from {first}")
    return first, last


def cmd_materialize(settings: Settings, args: argparse.Namespace) -> int:
    first, last = _window_keys(args, hourly_partitions(settings.partition_start))
    runbook.materialize(settings, first, last)
    return 0


def _hour_range(args: argparse.Namespace, settings: Settings) -> tuple[datetime, datetime]:
    """[start, end) of the hours --from .. --to (inclusive keys), or of the last --last-hours."""
    first, last = _window_keys(args, hourly_partitions(settings.partition_start))
    return parse_hourly_key(first), parse_hourly_key(last) + timedelta(hours=1)


def cmd_deliver(settings: Settings, args: argparse.Namespace) -> int:
    """Deliver every window inside the hour range, through the delivery jobs (recorded in Dagster)."""
    start, end = _hour_range(args, settings)
    registry = read_registry(settings.registry)
    unknown = set(args.business or ()) - {b.id for b in registry.businesses}
    if unknown:
        raise RegistryError(f"{settings.registry}: no business {sorted(unknown)[0]!r}")
    defs, instance = build_outbound_location(settings), dagster_instance()
    outcomes = []
    for cadence in Cadence:
        keys = [
            w.key for w in windows_inside(cadence_partitions(cadence, settings.partition_start), start, end)
        ]
        found = runbook.deliver(
            defs, instance, registry, cadence, keys, args.business, progress=print, reason=args.reason
        )
        outcomes += found.values()
    print(runbook.summary_table(outcomes))
    return 1 if any(o.failed for o in outcomes) else 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    """Per business, the partitions missing, mismatched or pending in the recent windows."""
    start, end = _hour_range(args, settings)
    runbook.print_verdicts(runbook.verify(settings, start, end, args.business))
    return 0


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    """Re-run the certification for the range; non-zero when any window is not certified."""
    start, end = _hour_range(args, settings)
    verdicts = runbook.verify(settings, start, end, args.business, deep=args.deep, progress=print)
    runbook.print_verdicts(verdicts)
    failing = [v for v in verdicts if not v.ok]
    print(f"verify: {len(verdicts) - len(failing)} of {len(verdicts)} windows certified")
    return 1 if failing else 0


def cmd_onboard(settings: Settings, args: argparse.Namespace) -> int:
    """What to give the business and what it must give: role ARN, policies, checklist."""
    business = _business(settings, args.business)
    _, certificate = command_platform_keys(settings).signing_key()
    dictionary = data_dictionary(load_manifest(dbt_project(settings)), business.datasets)
    principal = args.platform_principal or caller_principal()
    print(onboarding_pack(business, principal, str(certificate), dictionary))
    return 0


def cmd_data_dictionary(settings: Settings, args: argparse.Namespace) -> int:
    """Every data set's columns, types and meaning, as Markdown (docs/data-dictionary.md)."""
    print(data_dictionary(load_manifest(dbt_project(settings))), end="")
    return 0


def caller_principal() -> str:
    """The IAM principal of the platform's current credentials (an assumed role's role ARN)."""
    try:
        arn = boto3.session.Session().client("sts").get_caller_identity()["Arn"]
    except (BotoCoreError, ClientError) as error:
        raise SettingsError(
            f"cannot find the platform's AWS identity ({error}): pass --platform-principal ARN"
        ) from None
    if ":assumed-role/" in arn:  # arn:aws:sts::<account>:assumed-role/<role>/<session>
        account, role = arn.split(":")[4], arn.split("/")[1]
        return f"arn:aws:iam::{account}:role/{role}"
    return arn


def cmd_verify_access(settings: Settings, args: argparse.Namespace) -> int:
    """Check the connection as a delivery uses it; each failure says what is missing, on what."""
    business = _business(settings, args.business)
    steps = verify_access(business, S3Buckets())
    for step in steps:
        print(step.line())
    ok = all(step.ok for step in steps)
    print(f"verify-access {business.id}: {'connection OK' if ok else 'connection NOT ready'}")
    return 0 if ok else 1


def _business(settings: Settings, business_id: str) -> Business:
    registry = read_registry(settings.registry)
    try:
        return registry.get(business_id)
    except KeyError:
        raise RegistryError(f"{settings.registry}: no business {business_id!r}") from None


def _range_arguments(parser: argparse.ArgumentParser, last_hours: int) -> None:
    parser.add_argument("--last-hours", type=int, default=last_hours, help="the most recent complete hours")
    parser.add_argument("--from", dest="partition_from", help="first hour, e.g. 2026-01-01-00:00")
    parser.add_argument("--to", dest="partition_to", help="last hour (inclusive)")
    parser.add_argument("--business", action="append", help="a business id (repeatable; default: all active)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3-sharing", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("prepare", help="parse the dbt project into its manifest").set_defaults(
        run=cmd_prepare
    )

    generate = commands.add_parser("generate", help="write deterministic synthetic raw data")
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--businesses", type=int, default=4)
    generate.add_argument("--users-per-business", type=int, default=20)
    generate.add_argument("--events-per-hour", type=int, default=40, help="per business, on average")
    generate.add_argument("--hours", type=int, default=24)
    generate.add_argument("--end", help="exclusive end hour, e.g. 2026-01-02-00:00 (default: this hour)")
    generate.set_defaults(run=cmd_generate)

    mat = commands.add_parser("materialize", help="build the marts for a range of hourly partitions")
    mat.add_argument("--last-hours", type=int, default=24, help="the most recent complete hours")
    mat.add_argument("--from", dest="partition_from", help="first partition key, e.g. 2026-01-01-00:00")
    mat.add_argument("--to", dest="partition_to", help="last partition key (inclusive)")
    mat.set_defaults(run=cmd_materialize)

    deliver = commands.add_parser("deliver", help="deliver the windows inside a range of hours")
    _range_arguments(deliver, last_hours=1)
    deliver.add_argument(
        "--reason", help="why windows already delivered are delivered again (in each restated manifest)"
    )
    deliver.set_defaults(run=cmd_deliver)

    status = commands.add_parser("status", help="missing, mismatched and pending windows per business")
    _range_arguments(status, last_hours=48)
    status.set_defaults(run=cmd_status)

    verify = commands.add_parser("verify", help="certify a range; exits 1 when any window is not certified")
    _range_arguments(verify, last_hours=48)
    verify.add_argument("--deep", action="store_true", help="also compare each S3 object's SHA-256")
    verify.set_defaults(run=cmd_verify)

    endpoints = commands.add_parser("endpoints", help="run local S3/STS/IAM/KMS and GCS until interrupted")
    endpoints.add_argument("--env-file", default=str(LOCAL_DIR / "endpoints.env"))
    endpoints.set_defaults(run=cmd_endpoints)

    demo = commands.add_parser("demo", help="a demo day end to end, with a summary")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--hours", type=int, default=DEMO_HOURS, help="hours of data, ending this hour")
    demo.add_argument("--ui", action="store_true", help="then keep it open in the Dagster UI until Ctrl-C")
    demo.add_argument("--port", type=int, default=3000, help="the Dagster UI's port (with --ui)")
    demo.add_argument("--env-file", default=str(LOCAL_DIR / "endpoints.env"))
    demo.set_defaults(run=cmd_demo)

    onboard = commands.add_parser("onboard", help="what to exchange with a business, and a checklist")
    onboard.add_argument("business", help="a business id of the registry")
    onboard.add_argument(
        "--platform-principal", help="the IAM principal that assumes delivery roles (default: current)"
    )
    onboard.set_defaults(run=cmd_onboard)

    commands.add_parser(
        "data-dictionary", help="each data set's columns, types and meaning (Markdown, for partners)"
    ).set_defaults(run=cmd_data_dictionary)

    access = commands.add_parser("verify-access", help="check a business's bucket, role and encryption")
    access.add_argument("business", help="a business id of the registry")
    access.set_defaults(run=cmd_verify_access)
    add_import_commands(commands)
    add_rewards_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with stopping():
            return args.run(Settings.from_env(), args)
    except Interrupted as stop:
        print(f"s3-sharing {args.command}: {stop}; the servers it started are stopped", file=sys.stderr)
        # Everything it opened is closed and its runs are recorded: skip the interpreter's teardown
        # of dagster, dbt and the clients (1.5-3 s here), so a stop takes what it says.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except (
        SettingsError,
        PartitionKeyError,
        RegistryError,
        ValueError,
        GraphQLError,
        PostgresNotConfigured,
        StorageError,
    ) as error:
        print(f"s3-sharing {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
