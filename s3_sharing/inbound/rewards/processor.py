"""Turn one FI transaction file into transactions, reward points and balances, exactly once.

For each file version: stream it to a private work directory and hash it; under a per-file
advisory lock, skip it if the ledger has it; decrypt it with one of the FI's pinned signing keys
required (anything else is rejected before a byte of it is parsed, recorded, quarantined); normalise
it with DuckDB; load it set-based; write the FI's error file; record the ledger entry. Data and
ledger entry commit in one transaction, so a crash anywhere leaves nothing half-done and the rerun
gives the same totals.
"""

import csv
import heapq
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import psycopg

from s3_sharing.inbound.rewards.load import forget_file, load, staging
from s3_sharing.inbound.rewards.normalise import ERROR_COLUMNS, FileRejected, normalise, read_header
from s3_sharing.inbound.rewards.registry import FinancialInstitution, FiRegistry
from s3_sharing.platform.gnupg import NotVerified, PinnedDecryptor
from s3_sharing.platform.postgres import Postgres, advisory_lock_key, sha256_file
from s3_sharing.platform.storage import Bucket, BucketLocation, GcsArchive, ObjectVersion, S3Buckets
from s3_sharing.platform.workdir import private_workdir

Status = Literal["loaded", "rejected", "skipped"]
UNKNOWN_ORIGINAL = "original transaction not found in this or an earlier file (send this row again after it)"


@dataclass
class FileOutcome:
    fi: str
    key: str
    version_id: str
    status: Status
    size: int = 0
    sha256: str = ""
    reason: str | None = None
    signed_by: str | None = None
    rules_version: int | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_rejected: int = 0
    amount_read_minor: int = 0
    amount_loaded_minor: int = 0
    amount_duplicate_minor: int = 0
    amount_rejected_minor: int = 0
    points: int = 0
    error_file: str | None = None
    quarantined_as: str | None = None
    attempt: int = 0
    seconds: float = 0.0
    extra_headers: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.status == "loaded":
            detail = (
                f"{self.rows_read} read, {self.rows_loaded} loaded, {self.rows_duplicate} duplicates, "
                f"{self.rows_rejected} rejected, {self.points} points (rules v{self.rules_version})"
            )
        else:
            detail = self.reason or ""
        tail = f"; errors: {self.error_file}" if self.error_file else ""
        tail += f"; quarantined as {self.quarantined_as}" if self.quarantined_as else ""
        return f"{self.fi} {self.key}: {self.status} ({detail}){tail}"

    def metadata(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [])}


def landed_on(version: ObjectVersion) -> str:
    """The UTC date a file landed: its run's partition of the day dimension."""
    return version.last_modified.astimezone(UTC).strftime("%Y-%m-%d")


def open_landing(registry: FiRegistry, s3: S3Buckets) -> Bucket:
    """The platform's own landing bucket, with its own credentials (SSE-KMS by the bucket's key)."""
    landing = registry.landing
    return s3.own(BucketLocation(landing.bucket, landing.region, sse_mode="aws:kms"), owner="landing bucket")


def listing(landing: Bucket, fi: FinancialInstitution) -> list[ObjectVersion]:
    """The current version of each of the FI's files (its folder, not below; its pattern)."""
    return [v for v in landing.versions(fi.prefix) if fi.takes(v.key)]


def pending(landing: Bucket, postgres: Postgres, fi: FinancialInstitution) -> list[ObjectVersion]:
    """The FI's files whose current version the ledger has not seen (never a timestamp)."""
    listed = listing(landing, fi)
    with postgres.connect() as connection:
        seen = set(
            connection.execute(
                "SELECT key, version_id FROM fi_file_ledger WHERE bucket = %s AND fi = %s",
                (landing.location.bucket, fi.id),
            ).fetchall()
        )
    return [v for v in listed if (v.key, v.version_id) not in seen]


@dataclass
class Processor:
    registry: FiRegistry
    landing: Bucket
    postgres: Postgres
    decryptor: PinnedDecryptor
    """Our inbound decryption key."""
    sealer_of: Any
    """FI → ``crypto.Sealer`` for its error files (its key and the audit key, signed by us)."""
    work_root: Path
    archive: GcsArchive | None = None
    run_id: str = ""

    @property
    def bucket(self) -> str:
        return self.landing.location.bucket

    def listing(self, fi: FinancialInstitution) -> list[ObjectVersion]:
        return listing(self.landing, fi)

    def pending(self, fi: FinancialInstitution) -> list[ObjectVersion]:
        return pending(self.landing, self.postgres, fi)

    def run(self, fi: FinancialInstitution) -> Iterator[FileOutcome]:
        for version in self.pending(fi):
            yield self.process(fi, version)

    def process(
        self, fi: FinancialInstitution, version: ObjectVersion, *, replay: bool = False
    ) -> FileOutcome:
        started = time.monotonic()
        with private_workdir(self.work_root, f"rewards-{fi.id}") as work:
            cipher = work / "file.pgp"
            self.landing.download_version(version, cipher)
            outcome = FileOutcome(fi.id, version.key, version.version_id, "loaded", cipher.stat().st_size)
            outcome.sha256 = sha256_file(cipher)
            with self.postgres.connect() as connection, connection.transaction():
                connection.execute(
                    "SELECT pg_advisory_xact_lock(%s)",
                    (advisory_lock_key(self.bucket, version.key, version.version_id),),
                )
                earlier = [
                    row[0]
                    for row in connection.execute(
                        "SELECT id FROM fi_file_ledger WHERE bucket = %s AND key = %s AND version_id = %s",
                        (self.bucket, version.key, version.version_id),
                    )
                ]
                outcome.attempt = len(earlier)
                if earlier and not replay:
                    outcome.status, outcome.reason = "skipped", "this version was processed before"
                else:
                    self._process(connection, fi, version, outcome, work, earlier)
        if outcome.status == "rejected" and outcome.signed_by is None:  # not verified: never parsed
            self._quarantine(version, outcome)
        outcome.seconds = round(time.monotonic() - started, 3)
        return outcome

    def _process(
        self,
        connection: psycopg.Connection,
        fi: FinancialInstitution,
        version: ObjectVersion,
        outcome: FileOutcome,
        work: Path,
        earlier: list[int],
    ) -> None:
        file_id = self._ledger_entry(connection, fi, version, outcome)
        plain = work / "plain.csv"
        try:
            outcome.signed_by = self.decryptor.decrypt_verified(
                work / "file.pgp", plain, fi.certs, f"{fi.owner}: {version.key}"
            )
        except NotVerified as rejected:
            outcome.status, outcome.reason = "rejected", str(rejected)
            self._record(connection, file_id, outcome)
            return
        program = self.registry.program(fi.program)
        rules = program.rules_at(version.last_modified)
        outcome.rules_version = rules.version
        try:
            header = read_header(plain, fi)
            # A savepoint: a file that breaks halfway has sent rows into the staging COPY, and a
            # rejected replay leaves what the earlier attempts loaded.
            with connection.transaction():
                forget_file(connection, earlier)
                with staging(connection) as clean:
                    normalised = normalise(plain, fi, header, clean, work)
        except FileRejected as rejected:
            outcome.status, outcome.reason = "rejected", str(rejected)
            outcome.error_file = self._publish_errors(
                fi, version, outcome, work, [(0, "", "", "", str(rejected))]
            )
            self._record(connection, file_id, outcome)
            return
        finally:
            plain.unlink()
        loaded = load(connection, fi.id, program.id, rules, file_id, normalised.repeated_ids)
        outcome.extra_headers = normalised.extra_headers
        outcome.rows_read = normalised.rows_read
        outcome.rows_duplicate = loaded.rows_duplicate
        outcome.rows_loaded = loaded.rows_loaded
        outcome.rows_rejected = normalised.rows_rejected + len(loaded.unknown_originals)
        outcome.amount_read_minor = normalised.amount_read_minor
        outcome.amount_duplicate_minor = loaded.amount_duplicate_minor
        outcome.amount_loaded_minor = loaded.amount_loaded_minor
        outcome.amount_rejected_minor = normalised.amount_rejected_minor + sum(
            amount for *_, amount in loaded.unknown_originals
        )
        outcome.points = loaded.points
        late = [
            (line, transaction, "original_transaction_id", original, UNKNOWN_ORIGINAL)
            for line, transaction, original, _ in loaded.unknown_originals
        ]
        if outcome.rows_rejected:
            outcome.error_file = self._publish_errors(fi, version, outcome, work, late, normalised.errors)
        self._record(connection, file_id, outcome)

    def _ledger_entry(
        self,
        connection: psycopg.Connection,
        fi: FinancialInstitution,
        version: ObjectVersion,
        outcome: FileOutcome,
    ) -> int:
        row = connection.execute(
            "INSERT INTO fi_file_ledger (fi, bucket, key, version_id, etag, size, sha256, landed_at, status,"
            " attempt, run_id, started_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'loaded', %s, %s, %s)"
            " RETURNING id",
            (
                fi.id,
                self.bucket,
                version.key,
                version.version_id,
                version.etag,
                outcome.size,
                outcome.sha256,
                version.last_modified,
                outcome.attempt,
                self.run_id,
                datetime.now(UTC),
            ),
        ).fetchone()
        assert row is not None
        return int(row[0])

    @staticmethod
    def _record(connection: psycopg.Connection, file_id: int, outcome: FileOutcome) -> None:
        connection.execute(
            "UPDATE fi_file_ledger SET status = %s, reason = %s, signed_by = %s, rules_version = %s,"
            " rows_read = %s, rows_loaded = %s, rows_duplicate = %s, rows_rejected = %s,"
            " amount_read_minor = %s, amount_loaded_minor = %s, amount_duplicate_minor = %s,"
            " amount_rejected_minor = %s, points = %s,"
            " error_file = %s, finished_at = now() WHERE id = %s",
            (
                outcome.status,
                outcome.reason,
                outcome.signed_by,
                outcome.rules_version,
                outcome.rows_read,
                outcome.rows_loaded,
                outcome.rows_duplicate,
                outcome.rows_rejected,
                outcome.amount_read_minor,
                outcome.amount_loaded_minor,
                outcome.amount_duplicate_minor,
                outcome.amount_rejected_minor,
                outcome.points,
                outcome.error_file,
                file_id,
            ),
        )

    def _publish_errors(
        self,
        fi: FinancialInstitution,
        version: ObjectVersion,
        outcome: FileOutcome,
        work: Path,
        late: list[tuple[int, str, str, str, str]],
        errors: Path | None = None,
    ) -> str:
        """``<prefix>_errors/<name>.errors.csv.gpg`` in the landing bucket (the FI reads it over SFTP),
        sealed to the FI's key and the audit key and signed by us, and a copy in the archive. Rows in
        line order; values that look like card numbers were masked when normalised."""
        report = work / "errors.report.csv"
        with report.open("w", newline="", encoding="utf-8") as target:
            writer = csv.writer(target)
            writer.writerow(ERROR_COLUMNS)
            normalised: list[tuple[int, str, str, str, str]] = []
            if errors is not None:
                with errors.open(newline="", encoding="utf-8") as source:
                    reader = csv.reader(source)
                    next(reader)
                    normalised = [(int(r[0]), r[1], r[2], r[3], r[4]) for r in reader]
            writer.writerows(heapq.merge(normalised, sorted(late)))
        sealed = work / "errors.report.csv.gpg"
        self.sealer_of(fi).seal_file(report, sealed, fi.owner)
        name = PurePosixPath(version.key).name.removesuffix(".pgp").removesuffix(".gpg")
        key = f"{fi.prefix}{self.registry.landing.errors_folder}{name}.errors.csv.gpg"
        uri = self.landing.upload_file(key, sealed, content_type="application/pgp-encrypted")
        if self.archive is not None:
            replay = f"/replay-{outcome.attempt}" if outcome.attempt else ""
            self.archive.upload_file(
                f"rewards/{fi.id}/{outcome.sha256[:16]}{replay}/{name}.errors.csv.gpg", sealed
            )
        return uri

    def _quarantine(self, version: ObjectVersion, outcome: FileOutcome) -> None:
        """A file not signed by a pinned key leaves the FI's folder for the quarantine folder."""
        target = f"{self.registry.landing.quarantine_prefix}{version.key}.{version.version_id}"
        outcome.quarantined_as = self.landing.move(version, target)
        with self.postgres.connect() as connection:
            connection.execute(
                "UPDATE fi_file_ledger SET quarantined_as = %s WHERE bucket = %s AND key = %s"
                " AND version_id = %s AND attempt = %s",
                (outcome.quarantined_as, self.bucket, version.key, version.version_id, outcome.attempt),
            )


def balance(postgres: Postgres, user_id: str, program: str | None = None) -> list[tuple[str, int]]:
    """(program, points) of a user, as committed."""
    with postgres.connect() as connection:
        rows = connection.execute(
            "SELECT program, points FROM reward_balances WHERE user_id = %s"
            " AND (%s::text IS NULL OR program = %s) ORDER BY program",
            (user_id, program, program),
        ).fetchall()
    return [(str(p), int(n)) for p, n in rows]
