"""Audits of a business's deliveries that need no Dagster: tenant isolation (its keys: platform/keys.py).

The checks turn each result into an asset check evaluation; the logic lives here.
"""

import csv
import io
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pysequoia

from s3_sharing.outbound.csvfile import restore_neutralised
from s3_sharing.outbound.delivery import chain_head
from s3_sharing.outbound.manifest import Manifest
from s3_sharing.outbound.registry import Business
from s3_sharing.platform.state import StateStore
from s3_sharing.platform.storage import GcsArchive

ISOLATION_SAMPLE_FILES = 3


@dataclass(frozen=True)
class IsolationSample:
    """What a sample of the latest delivery held, in counts only: user ids are personal data and
    never enter metadata or alerts (the window and the audit key let an auditor look closer)."""

    manifest_window: str
    sampled_files: int
    foreign_rows: int
    files_with_foreign_rows: int


@dataclass(frozen=True)
class SampledFile:
    other_business_rows: int
    rows_by_user: Counter[str]
    """Rows of this business per user id: whether each user is the business's is asked of the
    warehouse for all sampled businesses at once, and user ids stay in memory."""


@dataclass(frozen=True)
class DeliverySample:
    manifest_window: str
    files: tuple[SampledFile, ...]

    @property
    def user_ids(self) -> set[str]:
        return {user for file in self.files for user in file.rows_by_user}

    def isolation(self, own_users: set[str]) -> IsolationSample:
        """Counted against the ids among ``user_ids`` that are the business's users."""
        foreign = [
            file.other_business_rows
            + sum(n for user, n in file.rows_by_user.items() if user not in own_users)
            for file in self.files
        ]
        return IsolationSample(
            self.manifest_window, len(self.files), sum(foreign), sum(n > 0 for n in foreign)
        )


def sample_latest_delivery(
    archive: GcsArchive, state: StateStore, business: Business, decryptor: Any
) -> DeliverySample | None:
    """Open the first files of the business's latest archived delivery with the audit key: every
    row must be of this business and of one of its users. None when nothing was delivered yet."""
    business_id = business.id
    read = restore_neutralised if business.spreadsheet_safe else str
    head = chain_head(state, business_id)
    if head is None:
        return None
    manifest = Manifest.from_bytes(archive.read(head.key) or b"")
    files = []
    for file in manifest.files[:ISOLATION_SAMPLE_FILES]:
        body = archive.read(f"{business_id}/{file.key}")
        plain = pysequoia.decrypt(body, decryptor=decryptor).bytes if body else b""
        other, by_user = 0, Counter[str]()
        for row in csv.DictReader(io.StringIO(plain.decode(), newline="")):
            if read(row.get("business_id") or "") != business_id:
                other += 1
            else:
                by_user[read(row.get("user_id") or "")] += 1
        files.append(SampledFile(other, by_user))
    return DeliverySample(manifest.window_start, tuple(files))
