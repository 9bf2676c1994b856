"""Import a source's files, entity by entity (parents first), file by file, each exactly once.

For each file: stream it to a private temporary directory and hash it; under the entity's
advisory lock (one import of a source's entity at a time), skip it if the ledger has this content
under this key; validate it in Arrow batches; COPY the clean rows into staging; reject what only
the database can judge; apply the rest; write the error file (customer's bucket under the folder's
errors folder, and the GCS archive); record the ledger entry. The data and the ledger entry commit
in one transaction, so a crash anywhere leaves nothing half-done and the rerun imports the file
exactly once.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import psycopg

from s3_sharing.inbound.apply import Applied, apply_rows, reject, stage_rejected, staging, write_error_file
from s3_sharing.inbound.sources import EntityImport, ImportSource
from s3_sharing.inbound.validation import ERROR_COLUMNS, FileRejected, validate
from s3_sharing.platform import crypto
from s3_sharing.platform.postgres import Postgres, advisory_lock_key, sha256_file
from s3_sharing.platform.storage import Bucket, GcsArchive, StorageError
from s3_sharing.platform.workdir import default_root, private_workdir

Status = Literal["imported", "rejected", "skipped"]
ERROR_FILE_TYPE, SEALED_TYPE = "text/csv", "application/pgp-encrypted"
IMPORTED_TAG = "s3-sharing-import"
"""The tag set on an imported file where the source allows it (``tag_imported_files``)."""


@dataclass(frozen=True)
class SourceFile:
    key: str
    size: int
    etag: str


@dataclass
class FileOutcome:
    source: str
    entity: str
    key: str
    status: Status
    size: int = 0
    sha256: str = ""
    rows_read: int = 0
    rows_created: int = 0
    rows_updated: int = 0
    rows_rejected: int = 0
    rows_orphaned: int = 0
    seconds: float = 0.0
    error_file: str | None = None
    message: str | None = None
    extra_headers: list[str] = field(default_factory=list)
    attempt: int = 0
    dry_run: bool = False
    tagging_failed: str | None = None

    def describe(self) -> str:
        counts = (
            f"{self.rows_read} read, {self.rows_created} created, {self.rows_updated} updated, "
            f"{self.rows_rejected} rejected"
        )
        status = f"{self.status} (dry run: nothing loaded)" if self.dry_run else self.status
        tail = f"; errors: {self.error_file}" if self.error_file else ""
        if self.tagging_failed:
            tail += f"; not tagged: {self.tagging_failed}"
        return f"{self.source}/{self.entity} {self.key}: {status} ({self.message or counts}){tail}"

    def metadata(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [])}


def list_files(bucket: Bucket, item: EntityImport) -> list[SourceFile]:
    """The files of the entity's folder that match its pattern (not in subfolders), by key."""
    found = bucket.objects(item.folder)
    files = [SourceFile(key, size, etag) for key, (size, etag) in found.items() if item.takes(key)]
    return sorted(files, key=lambda f: f.key)


def error_file_sealer(source: ImportSource, signer: Any, audit_cert: Any) -> crypto.Sealer:
    """Seals the source's error files to its key and the audit key, signed by the platform."""
    assert source.public_key_armor is not None
    owner = f"import source {source.id!r}"
    cert = crypto.load_cert(source.public_key_armor, owner)
    crypto.require_unexpired(cert, owner)
    return crypto.Sealer((cert, audit_cert), signer)


class Importer:
    """Imports the files of one source; ``run_id`` is recorded with each ledger entry."""

    def __init__(
        self,
        source: ImportSource,
        bucket: Bucket,
        postgres: Postgres,
        archive: GcsArchive | None = None,
        run_id: str = "",
        sealer: crypto.Sealer | None = None,
        work_root: Path | None = None,
    ) -> None:
        self.source = source
        self.bucket = bucket
        self.postgres = postgres
        self.archive = archive
        self.run_id = run_id
        self.sealer = sealer
        self.work_root = work_root or default_root()
        """Seals error files (see ``error_file_sealer``); None: they are plain CSV."""

    def listing(self, item: EntityImport) -> list[SourceFile]:
        return list_files(self.bucket, item)

    def pending(self, item: EntityImport) -> list[SourceFile]:
        """Listed files the ledger has not seen under this key and ETag."""
        files = self.listing(item)
        with self.postgres.connect() as connection:
            seen = {
                (key, etag)
                for key, etag in connection.execute(
                    "SELECT key, etag FROM import_ledger WHERE source = %s AND entity = %s AND bucket = %s",
                    (self.source.id, item.entity, self.bucket.location.bucket),
                )
            }
        return [f for f in files if (f.key, f.etag) not in seen]

    def run(self, only: list[str] | None = None) -> Iterator[FileOutcome]:
        """Every pending file of every entity, parents first, each in key order."""
        for item in self.source.in_order(only):
            for file in self.pending(item):
                yield self.import_file(item, file)

    def import_file(self, item: EntityImport, file: SourceFile, *, replay: bool = False) -> FileOutcome:
        """Import one file in its own transaction. ``replay`` imports it again even if the ledger
        has it (a new attempt; idempotent for create, update and upsert alike)."""
        with self.postgres.connect() as connection:
            return self._import_file(connection, item, file, replay=replay)

    def dry_run(self, only: list[str] | None = None) -> list[FileOutcome]:
        """Every pending file checked and applied as a run would (parents before children, so a
        child sees this run's parents), in one transaction that is then rolled back: nothing is
        loaded or recorded; the error files are published as ``<name>.dry-run.errors.csv``."""
        outcomes = []
        with self.postgres.connect() as connection, connection.transaction() as everything:
            for item in self.source.in_order(only):
                for file in self.pending(item):
                    outcomes.append(self._import_file(connection, item, file, dry_run=True))
            raise psycopg.Rollback(everything)
        return outcomes

    def _import_file(
        self,
        connection: psycopg.Connection,
        item: EntityImport,
        file: SourceFile,
        *,
        replay: bool = False,
        dry_run: bool = False,
    ) -> FileOutcome:
        started = time.monotonic()
        started_at = datetime.now(UTC)
        with private_workdir(self.work_root, f"import-{self.source.id}") as work:
            original = work / "original.csv"
            self.bucket.download_file(file.key, original, file.size)
            outcome = FileOutcome(
                self.source.id,
                item.entity,
                file.key,
                "imported",
                original.stat().st_size,
                sha256_file(original),
            )
            outcome.dry_run = dry_run
            with connection.transaction():  # a savepoint inside a dry run's transaction
                # one import of an entity at a time: each sees the keys the one before it added
                connection.execute(
                    "SELECT pg_advisory_xact_lock(%s)", (advisory_lock_key(self.source.id, item.entity),)
                )
                outcome.attempt = self._attempt(connection, item, file, outcome)
                if outcome.attempt and not replay:
                    outcome.status = "skipped"
                    outcome.message = "this content under this key was imported before"
                    self._remember_etag(connection, item, file, outcome)
                else:
                    self._import(connection, item, file, outcome, work, started_at)
        if self.source.tag_imported_files and outcome.status != "skipped" and not dry_run:
            self._tag(file, outcome)
        outcome.seconds = round(time.monotonic() - started, 3)
        return outcome

    def _tag(self, file: SourceFile, outcome: FileOutcome) -> None:
        """Best effort: the ledger, not the tag, is the truth; a refusal is reported, not raised."""
        try:
            self.bucket.tag(file.key, {IMPORTED_TAG: f"{outcome.status} {outcome.sha256[:16]}"})
        except StorageError as error:
            outcome.tagging_failed = str(error)

    def _attempt(
        self, connection: psycopg.Connection, item: EntityImport, file: SourceFile, outcome: FileOutcome
    ) -> int:
        """How many times the ledger has this content under this key (the next attempt's number)."""
        row = connection.execute(
            "SELECT count(*) FROM import_ledger WHERE source = %s AND entity = %s AND bucket = %s"
            " AND key = %s AND sha256 = %s",
            (self.source.id, item.entity, self.bucket.location.bucket, file.key, outcome.sha256),
        ).fetchone()
        return int(row[0]) if row else 0

    def _import(
        self,
        connection: psycopg.Connection,
        item: EntityImport,
        file: SourceFile,
        outcome: FileOutcome,
        work: Path,
        started_at: datetime,
    ) -> None:
        import_id = self._ledger_entry(connection, item, file, outcome, started_at)
        errors, error_file = work / "errors.csv", work / "report.csv"
        try:  # a savepoint: a file found unreadable halfway leaves no staging behind
            with (
                errors.open("w", newline="", encoding="utf-8") as error_stream,
                connection.transaction(),
                staging(connection, item) as clean,
            ):
                validated = validate(work / "original.csv", item, clean, error_stream)
        except FileRejected as rejected:
            outcome.status, outcome.message = "rejected", str(rejected)
            error_file.write_text(_file_error(str(rejected)), encoding="utf-8")
            outcome.error_file = self._publish_error_file(item, file, outcome, error_file)
            self._record(connection, import_id, outcome)
            return
        outcome.rows_read, outcome.extra_headers = validated.rows_read, validated.extra_headers
        stage_rejected(connection, errors)
        judged = reject(connection, self.source.id, item, validated.repeated_keys)
        rejected_rows, outcome.rows_orphaned = validated.rows_rejected + judged.rows, judged.orphaned
        applied = Applied(0, 0)
        if rejected_rows and item.error_policy == "reject_file":
            outcome.status = "rejected"
            outcome.message = (
                f"{rejected_rows} of {validated.rows_read} rows rejected; error_policy reject_file"
            )
        else:
            applied = apply_rows(
                connection, self.source.id, item, import_id, validated.rows_read - rejected_rows
            )
        outcome.rows_created, outcome.rows_updated = applied.created, applied.updated
        outcome.rows_rejected = rejected_rows
        if rejected_rows:
            with error_file.open("wb") as target:
                write_error_file(connection, target)
            outcome.error_file = self._publish_error_file(item, file, outcome, error_file)
        self._record(connection, import_id, outcome)

    def _remember_etag(
        self, connection: psycopg.Connection, item: EntityImport, file: SourceFile, outcome: FileOutcome
    ) -> None:
        """The same content uploaded again gets a new ETag (multipart, or a tool that rewrites it):
        the ledger keeps the latest, so the next listing does not fetch the file again."""
        connection.execute(
            "UPDATE import_ledger SET etag = %s WHERE source = %s AND entity = %s AND bucket = %s"
            " AND key = %s AND sha256 = %s",
            (file.etag, self.source.id, item.entity, self.bucket.location.bucket, file.key, outcome.sha256),
        )

    def unaccounted(self, item: EntityImport) -> list[str]:
        """Files of the folder that the ledger has no entry for (as listed now)."""
        return [f.key for f in self.pending(item)]

    def days_since_last_file(self, item: EntityImport) -> float | None:
        """Days since the entity's latest file was recorded; None if it never had one."""
        with self.postgres.connect() as connection:
            row = connection.execute(
                "SELECT extract(epoch FROM now() - max(finished_at)) / 86400 FROM import_ledger"
                " WHERE source = %s AND entity = %s",
                (self.source.id, item.entity),
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _ledger_entry(
        self,
        connection: psycopg.Connection,
        item: EntityImport,
        file: SourceFile,
        outcome: FileOutcome,
        started_at: datetime,
    ) -> int:
        row = connection.execute(
            "INSERT INTO import_ledger (source, entity, bucket, key, etag, size, sha256, attempt, status,"
            " run_id, started_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'imported', %s, %s) RETURNING id",
            (
                self.source.id,
                item.entity,
                self.bucket.location.bucket,
                file.key,
                file.etag,
                outcome.size,
                outcome.sha256,
                outcome.attempt,
                self.run_id,
                started_at,
            ),
        ).fetchone()
        assert row is not None
        return int(row[0])

    @staticmethod
    def _record(connection: psycopg.Connection, import_id: int, outcome: FileOutcome) -> None:
        connection.execute(
            "UPDATE import_ledger SET status = %s, rows_read = %s, rows_created = %s, rows_updated = %s,"
            " rows_rejected = %s, rows_orphaned = %s, error_file = %s, message = %s, finished_at = now()"
            " WHERE id = %s",
            (
                outcome.status,
                outcome.rows_read,
                outcome.rows_created,
                outcome.rows_updated,
                outcome.rows_rejected,
                outcome.rows_orphaned,
                outcome.error_file,
                outcome.message,
                import_id,
            ),
        )

    def _publish_error_file(
        self, item: EntityImport, file: SourceFile, outcome: FileOutcome, path: Path
    ) -> str:
        """``<folder><errors folder><name>.errors.csv`` in the customer's bucket, and in the archive
        under the file's SHA-256 (a changed file's errors never overwrite the earlier ones there)."""
        name = PurePosixPath(file.key).name
        suffix = ".dry-run.errors.csv" if outcome.dry_run else ".errors.csv"
        content_type = ERROR_FILE_TYPE
        if self.sealer is not None:
            sealed = path.with_name(path.name + ".gpg")
            self.sealer.seal_file(path, sealed, f"import source {self.source.id!r}")
            path, suffix, content_type = sealed, suffix + ".gpg", SEALED_TYPE
        key = f"{item.folder}{self.source.errors_folder}{name}{suffix}"
        uri = self.bucket.upload_file(key, path, content_type=content_type)
        if self.archive is not None and not outcome.dry_run:
            replay = f"/replay-{outcome.attempt}" if outcome.attempt else ""
            self.archive.upload_file(
                f"imports/{self.source.id}/{item.entity}/{outcome.sha256[:16]}{replay}/{name}{suffix}",
                path,
                content_type=content_type,
            )
        return uri


def _file_error(message: str) -> str:
    """An error file for a file rejected whole: one line, no row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(ERROR_COLUMNS)
    writer.writerow(("", "", "", "", message))
    return buffer.getvalue()
