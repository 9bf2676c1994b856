"""Onboarding an import source: what to ask the customer for, and checking the connection the way
a "Connect" button would.

The customer owns the bucket and grants us a role in its account (with an external id), or, where it
cannot, an access key pair of a user with the same policy; we give it our principal and the policy.
"""

import csv
import io
import json
import uuid
from collections.abc import Callable

from s3_sharing.inbound.catalog import PARENT_REFERENCE_CODE
from s3_sharing.inbound.iam import import_role_policy
from s3_sharing.inbound.importer import list_files
from s3_sharing.inbound.sources import EntityImport, ImportSource
from s3_sharing.platform.iam import role_trust_policy
from s3_sharing.platform.storage import Bucket, S3Buckets, Step, StorageError, connect_step, denied

PROBE_NAME = "_s3_sharing_probe_{}.txt"
HEADER_BYTES = 64 * 1024
"""Enough of a file to read its header line, whatever its size."""


def sample_header(item: EntityImport) -> str:
    """The header line a file of this entity carries: the mapped columns, in catalog order."""
    order = [*item.definition.field_names()]
    columns = [item.mapping[name] for name in order if name in item.mapping]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(columns)
    return buffer.getvalue()


def _columns(item: EntityImport) -> list[str]:
    """One line per mapped column: header → field (type, required or optional)."""
    required = set(item.required_fields())
    lines = []
    for name in item.definition.field_names():
        if name not in item.mapping:
            continue
        kind = "text" if name == PARENT_REFERENCE_CODE else item.definition.field(name).type.value
        if name != PARENT_REFERENCE_CODE and item.definition.field(name).choices:
            kind += f": {' | '.join(item.definition.field(name).choices)}"
        need = "required" if name in required else "optional"
        lines.append(f"    {item.mapping[name]!r} → {name} ({kind}, {need})")
    return lines


def import_onboarding_pack(source: ImportSource, platform_principal: str) -> str:
    """The text to hand the customer and follow: what we ask for, the policies, the files."""
    connection = source.connection
    schedule = source.schedule
    when = f"{schedule.frequency}{f' on {schedule.day}' if schedule.day else ''} at {schedule.time} "
    sections = [
        f"Onboarding import source {source.name} ({source.id}): "
        f"{', '.join(i.entity for i in source.entities)} from s3://{connection.bucket} "
        f"({connection.region}), {when}{schedule.timezone}",
        "",
        "== What we ask the customer for ==",
        f"- the bucket and its region: {connection.bucket} ({connection.region})",
    ]
    policy = json.dumps(import_role_policy(source), indent=2)
    if connection.role_arn:
        sections += [
            f"- a role in their account that we assume: {connection.role_arn}",
            "  trust policy (our principal, with the external id we agreed):",
            json.dumps(role_trust_policy(platform_principal, connection.external_id), indent=2),
            "  permission policy (list and read the folders, write the error files"
            + (", tag imported files" if source.tag_imported_files else "")
            + "):",
            policy,
        ]
    else:
        sections += [
            "- an access key pair of an IAM user with this policy (a role is preferred: no long-lived "
            f"secret); we keep it in the environment as {connection.access_key_id_env} and "
            f"{connection.secret_access_key_env}, never in the registry:",
            policy,
        ]
    sections.append(
        "- error files quote the rejected values: they are encrypted to the OpenPGP key you gave us "
        "and signed by us (.errors.csv.gpg)"
        if source.public_key is not None
        else "- optionally, an OpenPGP public key: error files quote the rejected values, and are then "
        "encrypted to it and signed by us (.errors.csv.gpg) instead of plain CSV"
    )
    sections += ["", "== The files we import (CSV, UTF-8, a header line) =="]
    for item in source.in_order():
        sections += [
            f"{item.entity}: s3://{connection.bucket}/{item.folder}{item.pattern} ({item.action}"
            + (f", after {item.definition.parent}" if item.definition.parent else "")
            + f"; errors in {item.folder}{source.errors_folder})",
            f"  header: {sample_header(item)}",
            *_columns(item),
        ]
    sections += [
        "",
        "== Checklist ==",
        "[ ] the customer creates the "
        + ("role" if connection.role_arn else "user and its key pair")
        + " with the policy above",
        f"[ ] we add {source.id} to the import sources registry",
        f"[ ] `s3-sharing verify-import-access {source.id}` reports every step OK",
        f"[ ] the customer drops its first files; `s3-sharing imports run {source.id} --dry-run` shows "
        "what would load and writes the error files, loading nothing",
        f"[ ] active: true; the schedule runs {when}{schedule.timezone}",
    ]
    return "\n".join(sections)


def _explain(error: StorageError, source: ImportSource, action: str, resource: str) -> str:
    connection = source.connection
    if error.code == "NoSuchBucket":
        return f"bucket {connection.bucket} does not exist (or is not in {connection.region})"
    if error.code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return (
            f"the access key pair in {connection.access_key_id_env} / {connection.secret_access_key_env} "
            "is not valid (wrong, deleted or mistyped)"
        )
    if denied(error):
        grantee = connection.role_arn or "the customer's user"
        return (
            f"permission missing: {action} on {resource} is not allowed to {grantee} "
            f"(see the policy in `s3-sharing onboard-import {source.id}`)"
        )
    return str(error)


def verify_import_access(source: ImportSource, s3: S3Buckets) -> list[Step]:
    """Connect, then for each entity list its folder, read the start of a file (its header against
    the mapping), and write and remove a probe under its errors folder. Stops at the first failure."""
    connection = source.connection
    bucket, connected = connect_step(
        lambda: source.open_bucket(s3),
        "connect",
        f"we may not assume {connection.role_arn}: its trust policy must name our principal with the "
        "agreed external id",
        connection.role_arn or f"key pair from {connection.access_key_id_env}",
    )
    steps = [connected]
    if bucket is None:
        return steps

    def attempt(name: str, action: str, resource: str, run: Callable[[], str]) -> bool:
        try:
            steps.append(Step(name, True, run()))
        except StorageError as error:
            steps.append(Step(name, False, _explain(error, source, action, resource)))
        except ValueError as error:  # what we read does not fit the mapping
            steps.append(Step(name, False, str(error)))
        return steps[-1].ok

    def entity_steps(item: EntityImport) -> bool:
        files = []
        folder_uri = f"s3://{connection.bucket}/{item.folder}"

        def listing() -> str:
            files.extend(list_files(bucket, item))
            return f"{len(files)} files match {item.pattern}"

        def header() -> str:
            if not files:
                return "no file yet: the header is checked when one arrives"
            return _check_header(bucket, item, files[0].key)

        def probe() -> str:
            key = f"{item.folder}{source.errors_folder}{PROBE_NAME.format(uuid.uuid4().hex)}"
            bucket.upload_bytes(key, b"s3_sharing connection probe\n", "text/plain")
            bucket.delete(key)
            return f"wrote and removed {key}"

        errors_arn = f"arn:aws:s3:::{connection.bucket}/{item.folder}{source.errors_folder}*"
        return (
            attempt(f"list {folder_uri}", "s3:ListBucket", f"arn:aws:s3:::{connection.bucket}", listing)
            and attempt(f"read a file of {item.folder}", "s3:GetObject", f"{folder_uri}*", header)
            and attempt(f"write {item.folder}{source.errors_folder}", "s3:PutObject", errors_arn, probe)
        )

    all(entity_steps(item) for item in source.in_order())  # stops at the first failure
    return steps


def _check_header(bucket: Bucket, item: EntityImport, key: str) -> str:
    start = bucket.read_start(key, HEADER_BYTES).decode("utf-8-sig", errors="replace")
    names = next(csv.reader(io.StringIO(start.splitlines()[0] if start else "")), [])
    missing = [item.mapping[f] for f in item.required_fields() if item.mapping.get(f) not in names]
    if missing:
        raise ValueError(
            f"{key}: the header lacks the mapped column {', '.join(map(repr, missing))} "
            f"(it has {', '.join(map(repr, names))})"
        )
    return f"{key}: the header has every required column"
