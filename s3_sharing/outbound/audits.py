"""Audits of a business's deliveries that need no Dagster: its keys, and tenant isolation.

The checks turn each result into an asset check evaluation; the logic lives here.
"""

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pysequoia

from s3_sharing.outbound.csvfile import restore_neutralised
from s3_sharing.outbound.delivery import chain_head
from s3_sharing.outbound.manifest import Manifest
from s3_sharing.outbound.registry import Business
from s3_sharing.platform import crypto
from s3_sharing.platform.state import StateStore
from s3_sharing.platform.storage import GcsArchive

ISOLATION_SAMPLE_FILES = 3


class Severity(StrEnum):
    ERROR = "error"
    WARN = "warn"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    message: str


def key_findings(
    keys: Sequence[tuple[str, Any, bool]], warning_days: int, now: datetime | None = None
) -> list[Finding]:
    """Problems of (owner, certificate, must encrypt) keys: expired, revoked or unusable keys are
    errors; a key that expires within ``warning_days`` is a warning."""
    moment = now or datetime.now(UTC)
    findings = []
    for owner, cert, must_encrypt in keys:
        try:
            crypto.require_unexpired(cert, owner, moment)
        except crypto.KeyProblem as problem:
            findings.append(Finding(Severity.ERROR, str(problem)))
            continue
        if must_encrypt:
            try:
                pysequoia.encrypt(b"probe", recipients=[cert])
            except Exception as error:
                findings.append(Finding(Severity.ERROR, f"{owner}: cannot encrypt to key ({error})"))
                continue
        expires = crypto.expiry(cert)
        if expires is not None and expires - moment < timedelta(days=warning_days):
            days = (expires - moment).days
            findings.append(
                Finding(Severity.WARN, f"{owner}: key expires in {days} days ({expires:%Y-%m-%d})")
            )
    return findings


@dataclass(frozen=True)
class IsolationSample:
    """What a sample of the latest delivery held, in counts only: user ids are personal data and
    never enter metadata or alerts (the window and the audit key let an auditor look closer)."""

    manifest_window: str
    sampled_files: int
    foreign_rows: int
    files_with_foreign_rows: int


def sample_latest_delivery(
    archive: GcsArchive, state: StateStore, business: Business, decryptor: Any, users: set[str]
) -> IsolationSample | None:
    """Open the first files of the business's latest archived delivery with the audit key; every
    row must be of this business and of one of its users. None when nothing was delivered yet."""
    business_id = business.id
    read = restore_neutralised if business.spreadsheet_safe else str
    head = chain_head(state, business_id)
    if head is None:
        return None
    manifest = Manifest.from_bytes(archive.read(head.key) or b"")
    sampled = manifest.files[:ISOLATION_SAMPLE_FILES]
    foreign_rows, foreign_files = 0, 0
    for file in sampled:
        body = archive.read(f"{business_id}/{file.key}")
        plain = pysequoia.decrypt(body, decryptor=decryptor).bytes if body else b""
        foreign = sum(
            read(row.get("business_id") or "") != business_id or read(row.get("user_id") or "") not in users
            for row in csv.DictReader(io.StringIO(plain.decode(), newline=""))
        )
        foreign_rows += foreign
        foreign_files += foreign > 0
    return IsolationSample(manifest.window_start, len(sampled), foreign_rows, foreign_files)
