"""Delivering one window of one business: warehouse → CSV → OpenPGP → GCS archive → S3 → manifest.

Importable and testable without Dagster; the delivery assets call ``Deliverer.deliver``.
One writer per business at a time holds its lease (S3 conditional writes in the platform's state
bucket). Order matters: every file is prepared and sealed on local disk first; a journal records
what the window held and will hold; the window's old manifest is removed (readers treat the window
as not there); files are written (archive first, then the business bucket); the new manifest is
linked into the chain (compare-and-swap of the head) and published, signed, last; only then are
files it no longer lists removed. A crashed run's leftovers are removed by the next run.
"""

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from s3_sharing.outbound.contents import window_query
from s3_sharing.outbound.csvfile import CsvFileWriter, PlainFile, file_digests, runs_of
from s3_sharing.outbound.datasets import SOURCES, Dataset
from s3_sharing.outbound.layout import manifest_key
from s3_sharing.outbound.manifest import ChainLink, FileEntry, Manifest, Restatement, iso, sha256_hex
from s3_sharing.outbound.registry import Business
from s3_sharing.platform import crypto
from s3_sharing.platform.state import Lease, StateStore, Versioned, acquire
from s3_sharing.platform.storage import Bucket, GcsArchive, S3Buckets
from s3_sharing.platform.time import Window
from s3_sharing.platform.warehouse import DEFAULT_BATCH_ROWS, Relation, Warehouse
from s3_sharing.platform.workdir import default_root, private_workdir

HISTORY = "_manifests/history/"
"""Every manifest ever published, under the business's folder of the archive."""
RESTATEMENT_TAG = "s3_sharing/restatement_reason"
"""A run tag (UI launchpad, backfill, ``s3-sharing deliver --reason``): why windows are delivered again."""
RESTATED = "re-delivered a window already delivered"
"""The restatement reason when the run gives none."""
Log = Callable[[str], None]


def _quiet(message: str) -> None:
    """Where a caller does not log."""


class ChainConflict(RuntimeError):
    """The chain head moved under this writer (it lost its lease): nothing was published."""


class TenantIsolationError(RuntimeError):
    """The warehouse returned a row of another business: nothing of it is written."""


@dataclass(frozen=True)
class PreparedFile:
    """A sealed file on local disk, ready to upload."""

    entry: FileEntry
    cipher: Path


@dataclass
class DeliveryReport:
    business_id: str
    window: Window
    manifest: Manifest
    manifest_sha256: str
    s3_manifest_uri: str
    gcs_manifest_uri: str
    removed_stale: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.manifest.rows.values())

    @property
    def plain_bytes(self) -> int:
        return sum(f.plain_bytes for f in self.manifest.files)

    def metadata(self) -> dict[str, Any]:
        """Materialization metadata: small, and free of secrets."""
        files = self.manifest.files
        per_dataset = {
            dataset: {
                "rows": rows,
                "files": sum(1 for f in files if f.dataset == dataset),
                "bytes": sum(f.cipher_bytes for f in files if f.dataset == dataset),
            }
            for dataset, rows in self.manifest.rows.items()
        }
        seconds = max(self.seconds, 1e-9)
        return {
            "dagster/row_count": self.rows,
            "empty": self.manifest.empty,
            "window": f"{iso(self.window.start)} → {iso(self.window.end)}",
            "datasets": per_dataset,
            "files": len(files),
            "plain_bytes": self.plain_bytes,
            "cipher_bytes": sum(f.cipher_bytes for f in files),
            "manifest_s3": self.s3_manifest_uri,
            "manifest_gcs": self.gcs_manifest_uri,
            "manifest_sha256": self.manifest_sha256,
            "stale_files_removed": len(self.removed_stale),
            "duration_seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / seconds),
            "mb_per_second": round(self.plain_bytes / seconds / 1e6, 2),
        }


@dataclass
class Deliverer:
    """Everything a delivery needs, shared by all businesses of a run."""

    warehouse: Warehouse
    relations: Mapping[Dataset, Relation]
    archive: GcsArchive
    s3: S3Buckets
    signer: Any
    audit_cert: Any
    state: StateStore
    batch_rows: int = DEFAULT_BATCH_ROWS
    upload_concurrency: int = 8
    lease_ttl: timedelta = timedelta(minutes=2)
    lease_wait: timedelta = timedelta(minutes=15)
    work_root: Path = field(default_factory=default_root)

    def deliver(
        self,
        business: Business,
        public_key: str,
        window: Window,
        run_id: str,
        log: Log = _quiet,
        reason: str = RESTATED,
    ) -> DeliveryReport:
        """One writer per business at a time (a lease in the state bucket); every file is prepared
        and checked before anything is touched; the chain head advances by compare-and-swap.
        ``reason``: why, if the window was delivered before (the new manifest is a restatement)."""
        started = time.perf_counter()
        cert = crypto.load_cert(public_key, f"business {business.id!r}")
        crypto.require_unexpired(cert, f"business {business.id!r}")
        sealer = crypto.Sealer((cert, self.audit_cert), self.signer)
        what = f"business {business.id!r} window {iso(window.start)}"
        lease = acquire(
            self.state,
            lease_key(business.id),
            run_id,
            ttl=self.lease_ttl,
            wait=self.lease_wait,
            log=log,
            what=what,
        )
        with lease, private_workdir(self.work_root, f"deliver-{business.id}") as workdir:
            prepared = self._prepare(business, window, sealer, workdir)
            bucket = business.open_bucket(self.s3)
            recover(self.state, self.archive, bucket, business.id)
            return self._publish(business, window, run_id, prepared, sealer, bucket, lease, started, reason)

    def _publish(
        self,
        business: Business,
        window: Window,
        run_id: str,
        prepared: list[PreparedFile],
        sealer: crypto.Sealer,
        bucket: Bucket,
        lease: Lease,
        started: float,
        reason: str,
    ) -> DeliveryReport:
        """Journal first (what the window held and will hold), then hide the old manifest, upload,
        link the new manifest into the chain, publish it, and remove what it no longer lists."""
        window_manifest = manifest_key(window.start)
        files = [p.entry for p in prepared]
        replaced = self._published(business.id, window_manifest)
        previous_files: list[str] = []
        restatement: Restatement | None = None
        if replaced is not None:
            previous = Manifest.from_bytes(replaced)
            previous_files = [f.key for f in previous.files]
            restatement = Restatement(history_key(business.id, previous), sha256_hex(replaced), reason)
        journal = Journal(window_manifest, run_id, sorted({*previous_files, *(f.key for f in files)}))
        self.state.write(journal_key(business.id, window_manifest), journal.to_bytes())
        if replaced is not None:  # readers treat the window as absent until its new manifest
            _remove_manifest(self.archive, bucket, business.id, window_manifest)

        with ThreadPoolExecutor(max_workers=self.upload_concurrency) as pool:
            list(pool.map(lambda p: self._upload(business.id, p, bucket), prepared))

        head_key = chain_head_key(business.id)
        head = self.state.read(head_key)
        manifest = Manifest(
            business_id=business.id,
            cadence=str(business.cadence),
            window_start=iso(window.start),
            window_end=iso(window.end),
            run_id=run_id,
            created_at=iso(datetime.now(UTC)),
            rows={str(d): sum(f.rows for f in files if f.dataset == d) for d in business.datasets},
            schema_versions={str(d): SOURCES[d].schema_version for d in business.datasets},
            files=files,
            previous=_chain_link(head),
            contents=str(business.contents),
            lookback_days=business.lookback_days,
            restatement=restatement,
        )
        body = manifest.to_bytes()
        digest = sha256_hex(body)
        signature = sealer.sign_detached(body)
        history = history_key(business.id, manifest)
        self.archive.upload_bytes(history, body, "application/json")
        lease.check()
        link = _link_bytes(ChainLink(history, digest))
        moved = (
            self.state.create(head_key, link)
            if head is None
            else self.state.replace(head_key, link, head.etag)
        )
        if moved is None:
            raise ChainConflict(
                f"business {business.id!r}: another writer advanced the chain; nothing published"
            )
        self.archive.upload_bytes(
            f"{business.id}/{window_manifest}.sig", signature, "application/pgp-signature"
        )
        gcs_uri = self.archive.upload_bytes(f"{business.id}/{window_manifest}", body, "application/json")
        bucket.upload_bytes(window_manifest + ".sig", signature, "application/pgp-signature")
        s3_uri = bucket.upload_bytes(window_manifest, body, "application/json")

        stale = sorted(set(journal.keys) - {f.key for f in files})
        for key in stale:
            bucket.delete(key)
            self.archive.delete(f"{business.id}/{key}")
        self.state.delete(journal_key(business.id, window_manifest))
        return DeliveryReport(
            business.id, window, manifest, digest, s3_uri, gcs_uri, stale, time.perf_counter() - started
        )

    def _published(self, business_id: str, window_manifest: str) -> bytes | None:
        """The window's manifest as published before, if it was."""
        return self.archive.read(f"{business_id}/{window_manifest}")

    def _batches(
        self, business: Business, dataset: Dataset, window: Window, per_user: bool
    ) -> Iterator[pa.RecordBatch]:
        # Only a per-user layout needs the rows grouped by user; sorting costs time and memory.
        order_by = ("user_id", SOURCES[dataset].key_column) if per_user else ()
        query = window_query(business, dataset, window, self.relations, order_by)
        for batch in self.warehouse.stream(query, batch_rows=self.batch_rows):
            if batch.num_rows and not pc.all(pc.equal(batch.column("business_id"), business.id)).as_py():
                raise TenantIsolationError(
                    f"business {business.id!r}: {dataset} has another business's rows; none sent"
                )
            yield batch

    def _prepare(
        self, business: Business, window: Window, sealer: crypto.Sealer, workdir: Path
    ) -> list[PreparedFile]:
        """Every file of the window, written, named and sealed on local disk: a bad row, an unusable
        key or a layout error fails here, before anything is touched. Files are sealed as soon as they
        are complete, a bounded few at a time."""
        layout = business.object_layout()
        sealing: list[Future[PreparedFile]] = []
        in_flight = threading.BoundedSemaphore(self.upload_concurrency)
        numbers = itertools.count()

        def seal(dataset: Dataset, plain: PlainFile, user: str | None) -> PreparedFile:
            try:
                key = layout.key(
                    dataset=str(dataset), start=window.start, business_id=business.id, user_id=user
                )
                return self._seal(business, dataset, key, plain, user, sealer)
            finally:
                in_flight.release()

        with ThreadPoolExecutor(max_workers=self.upload_concurrency) as pool:

            def finish(dataset: Dataset, writer: CsvFileWriter | None, user: str | None) -> None:
                if writer is not None:
                    in_flight.acquire()  # waits while too many files are being sealed
                    sealing.append(pool.submit(seal, dataset, writer.close(), user))

            for dataset in business.datasets:
                writer: CsvFileWriter | None = None
                current_user: str | None = None
                for batch in self._batches(business, dataset, window, layout.per_user):
                    pieces = runs_of(batch, "user_id") if layout.per_user else [(None, batch)]
                    for user, piece in pieces:
                        if writer is None or (layout.per_user and user != current_user):
                            finish(dataset, writer, current_user)
                            current_user = user
                            writer = CsvFileWriter(
                                workdir / f"{dataset}-{next(numbers)}.csv",
                                batch.schema,
                                business.spreadsheet_safe,
                            )
                        writer.write(piece)
                finish(dataset, writer, current_user)
        return [future.result() for future in sealing]

    def _seal(
        self,
        business: Business,
        dataset: Dataset,
        key: str,
        plain: PlainFile,
        user_id: str | None,
        sealer: crypto.Sealer,
    ) -> PreparedFile:
        cipher = plain.path.with_suffix(".pgp")
        sealer.seal_file(plain.path, cipher, f"business {business.id!r}")
        plain.path.unlink()
        cipher_sha256, cipher_md5 = file_digests(cipher)
        entry = FileEntry(
            key=key,
            dataset=str(dataset),
            rows=plain.rows,
            plain_bytes=plain.size,
            plain_sha256=plain.sha256,
            cipher_bytes=cipher.stat().st_size,
            cipher_sha256=cipher_sha256,
            cipher_md5=cipher_md5,
            user_id=user_id,
        )
        return PreparedFile(entry, cipher)

    def _upload(self, business_id: str, prepared: PreparedFile, bucket: Bucket) -> None:
        """The archive first: what a business holds, the platform can always show."""
        self.archive.upload_file(f"{business_id}/{prepared.entry.key}", prepared.cipher)
        bucket.upload_file(prepared.entry.key, prepared.cipher)
        prepared.cipher.unlink()


@dataclass(frozen=True)
class Journal:
    """Written before a window is touched: every key it held or will hold, so whatever a crash
    leaves behind can be told from what a manifest lists."""

    window_manifest: str
    run_id: str
    keys: list[str]

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Journal":
        return cls(**json.loads(data))


def lease_key(business_id: str) -> str:
    return f"leases/{business_id}.json"


def chain_head_key(business_id: str) -> str:
    return f"chains/{business_id}/HEAD"


def journal_key(business_id: str, window_manifest: str) -> str:
    return f"journals/{business_id}/{window_manifest.removeprefix('_manifests/')}"


def _remove_manifest(archive: GcsArchive, bucket: Bucket, business_id: str, window_manifest: str) -> None:
    """The partner's copy first; the manifest before its signature (a manifest is never unsigned)."""
    for name in (window_manifest, window_manifest + ".sig"):
        bucket.delete(name)
    for name in (window_manifest, window_manifest + ".sig"):
        archive.delete(f"{business_id}/{name}")


def recover(state: StateStore, archive: GcsArchive, bucket: Bucket, business_id: str) -> list[str]:
    """Finish what crashed runs of the business left (called holding its lease): each journaled key
    that its window's manifest in S3 does not list is removed from S3 and the archive. A window
    without a manifest in S3 loses its archived manifest too, so both stores agree it is absent (the
    watchdog requests it again). The removed keys."""
    removed: list[str] = []
    for name in state.names(f"journals/{business_id}/"):
        found = state.read(name)
        if found is None:
            continue
        journal = Journal.from_bytes(found.body)
        published = bucket.read(journal.window_manifest)
        if published is None:
            _remove_manifest(archive, bucket, business_id, journal.window_manifest)
        listed = set() if published is None else {f.key for f in Manifest.from_bytes(published).files}
        for key in sorted(set(journal.keys) - listed):
            bucket.delete(key)
            archive.delete(f"{business_id}/{key}")
            removed.append(key)
        state.delete(name)
    return removed


def delivered_by(archive: GcsArchive, business_id: str, window: Window, run_id: str) -> bool:
    """Whether the window's archived manifest is the one ``run_id`` published."""
    body = archive.read(f"{business_id}/{manifest_key(window.start)}")
    return body is not None and Manifest.from_bytes(body).run_id == run_id


def chain_head(state: StateStore, business_id: str) -> ChainLink | None:
    """The business's latest archived manifest (where it is, and its hash)."""
    return _chain_link(state.read(chain_head_key(business_id)))


def _chain_link(head: Versioned | None) -> ChainLink | None:
    return None if head is None else ChainLink(**json.loads(head.body))


def deliver_many(
    deliverer: Deliverer,
    businesses: Sequence[Business],
    public_keys: Mapping[str, str],
    window: Window,
    run_id: str,
    max_concurrency: int,
    log: Log = _quiet,
    reason: str = RESTATED,
) -> Iterator[tuple[Business, DeliveryReport | Exception]]:
    """Deliver several businesses, at most ``max_concurrency`` at a time, each as it completes.

    One business failing yields its exception and does not stop the others.
    """
    with ThreadPoolExecutor(max_workers=max(1, max_concurrency)) as pool:
        futures = {
            pool.submit(deliverer.deliver, b, public_keys[b.id], window, run_id, log, reason): b
            for b in businesses
        }
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as error:
                yield futures[future], error


def history_key(business_id: str, manifest: Manifest) -> str:
    """Where the archive keeps every manifest ever published, named by creation time and run."""
    return f"{business_id}/{HISTORY}{manifest.created_at}-{manifest.run_id}.json"


def _link_bytes(link: ChainLink) -> bytes:
    return json.dumps({"key": link.key, "sha256": link.sha256}, sort_keys=True).encode()
