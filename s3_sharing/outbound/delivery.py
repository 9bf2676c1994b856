"""Delivering one window of one business: warehouse → CSV → OpenPGP → GCS archive → S3 → manifest.

Importable and testable without Dagster; the delivery assets call ``Deliverer.deliver``.
Order matters: the window's old manifest is removed first (readers treat the window as not
there), files are written (archive first, then the business bucket), the signed manifest is
written last, and only then are files of the previous run that the new one no longer has removed.
"""

import itertools
import json
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from s3_sharing.outbound.csvfile import CsvFileWriter, PlainFile, file_digests, runs_of
from s3_sharing.outbound.datasets import SOURCES, Dataset
from s3_sharing.outbound.layout import Layout, manifest_key
from s3_sharing.outbound.manifest import ChainLink, FileEntry, Manifest, iso, sha256_hex
from s3_sharing.outbound.registry import Business
from s3_sharing.platform import crypto
from s3_sharing.platform.storage import Bucket, GcsArchive, S3Buckets
from s3_sharing.platform.time import Window
from s3_sharing.platform.warehouse import Relation, Warehouse, WindowQuery

CHAIN_HEAD = "_manifests/HEAD"


class TenantIsolationError(RuntimeError):
    """The warehouse returned a row of another business: nothing of it is written."""


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
            "sample_objects": [f.key for f in files[:5]],
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
    batch_rows: int = 64 * 1024
    upload_concurrency: int = 8

    def deliver(self, business: Business, public_key: str, window: Window, run_id: str) -> DeliveryReport:
        started = time.perf_counter()
        cert = crypto.load_cert(public_key, f"business {business.id!r}")
        crypto.require_unexpired(cert, f"business {business.id!r}")
        sealer = crypto.Sealer((cert, self.audit_cert), self.signer)
        bucket = business.open_bucket(self.s3)
        layout = business.object_layout()
        window_manifest = manifest_key(window.start)

        previous_files = self._previous_files(business.id, window_manifest)
        if previous_files is not None:  # the window is rewritten: hide it until its new manifest exists
            for name in (window_manifest, window_manifest + ".sig"):
                bucket.delete(name)
                self.archive.delete(f"{business.id}/{name}")

        files: list[FileEntry] = []
        rows: dict[str, int] = {}
        with tempfile.TemporaryDirectory(prefix=f"s3-sharing-{business.id}-") as workdir:
            for dataset in business.datasets:
                written = self._deliver_dataset(
                    business, dataset, layout, window, sealer, bucket, Path(workdir)
                )
                files += written
                rows[str(dataset)] = sum(f.rows for f in written)

        manifest = Manifest(
            business_id=business.id,
            cadence=str(business.cadence),
            window_start=iso(window.start),
            window_end=iso(window.end),
            run_id=run_id,
            created_at=iso(datetime.now(UTC)),
            rows=rows,
            schema_versions={str(d): SOURCES[d].schema_version for d in business.datasets},
            files=files,
            previous=chain_head(self.archive, business.id),
        )
        body = manifest.to_bytes()
        digest = sha256_hex(body)
        signature = sealer.sign_detached(body)
        history = f"{business.id}/_manifests/history/{manifest.created_at}-{run_id}.json"
        self.archive.upload_bytes(history, body, "application/json")
        self.archive.upload_bytes(
            f"{business.id}/{window_manifest}.sig", signature, "application/pgp-signature"
        )
        gcs_uri = self.archive.upload_bytes(f"{business.id}/{window_manifest}", body, "application/json")
        bucket.upload_bytes(window_manifest + ".sig", signature, "application/pgp-signature")
        s3_uri = bucket.upload_bytes(window_manifest, body, "application/json")
        head = ChainLink(history, digest)
        self.archive.upload_bytes(f"{business.id}/{CHAIN_HEAD}", _link_bytes(head), "application/json")

        stale = sorted(set(previous_files or ()) - {f.key for f in files})
        for key in stale:
            bucket.delete(key)
            self.archive.delete(f"{business.id}/{key}")
        return DeliveryReport(
            business.id, window, manifest, digest, s3_uri, gcs_uri, stale, time.perf_counter() - started
        )

    def _previous_files(self, business_id: str, window_manifest: str) -> list[str] | None:
        body = self.archive.read(f"{business_id}/{window_manifest}")
        return None if body is None else [f.key for f in Manifest.from_bytes(body).files]

    def _batches(
        self, business: Business, dataset: Dataset, window: Window, per_user: bool
    ) -> Iterator[pa.RecordBatch]:
        source = SOURCES[dataset]
        query = WindowQuery(
            relation=self.relations[dataset],
            window_column=source.window_column,
            start=window.start,
            end=window.end,
            equals=(("business_id", business.id),),
            # Only a per-user layout needs the rows grouped by user; sorting costs time and memory.
            order_by=("user_id", source.key_column) if per_user else (),
        )
        for batch in self.warehouse.stream(query, batch_rows=self.batch_rows):
            if batch.num_rows and not pc.all(pc.equal(batch.column("business_id"), business.id)).as_py():
                raise TenantIsolationError(
                    f"business {business.id!r}: {dataset} has another business's rows; none sent"
                )
            yield batch

    def _deliver_dataset(
        self,
        business: Business,
        dataset: Dataset,
        layout: Layout,
        window: Window,
        sealer: crypto.Sealer,
        bucket: Bucket,
        workdir: Path,
    ) -> list[FileEntry]:
        """Each file is sealed and uploaded as soon as it is complete, a bounded few at a time."""
        shipping: list[Future[FileEntry]] = []
        in_flight = threading.BoundedSemaphore(self.upload_concurrency)
        numbers = itertools.count()
        writer: CsvFileWriter | None = None
        current_user: str | None = None

        def ship(plain: PlainFile, user: str | None) -> FileEntry:
            try:
                key = layout.key(
                    dataset=str(dataset), start=window.start, business_id=business.id, user_id=user
                )
                return self._ship(business, dataset, key, plain, user, sealer, bucket)
            finally:
                in_flight.release()

        def finish(pool: ThreadPoolExecutor) -> None:
            if writer is not None:
                plain = writer.close()
                in_flight.acquire()  # waits while too many files are being shipped
                shipping.append(pool.submit(ship, plain, current_user))

        with ThreadPoolExecutor(max_workers=self.upload_concurrency) as pool:
            for batch in self._batches(business, dataset, window, layout.per_user):
                pieces = runs_of(batch, "user_id") if layout.per_user else [(None, batch)]
                for user, piece in pieces:
                    if writer is None or (layout.per_user and user != current_user):
                        finish(pool)
                        current_user = user
                        writer = CsvFileWriter(workdir / f"{dataset}-{next(numbers)}.csv", batch.schema)
                    writer.write(piece)
            finish(pool)
        return [future.result() for future in shipping]

    def _ship(
        self,
        business: Business,
        dataset: Dataset,
        key: str,
        plain: PlainFile,
        user_id: str | None,
        sealer: crypto.Sealer,
        bucket: Bucket,
    ) -> FileEntry:
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
        self.archive.upload_file(f"{business.id}/{key}", cipher)
        bucket.upload_file(key, cipher)
        cipher.unlink()
        return entry


def chain_head(archive: GcsArchive, business_id: str) -> ChainLink | None:
    """The business's latest archived manifest (where it is, and its hash)."""
    body = archive.read(f"{business_id}/{CHAIN_HEAD}")
    return None if body is None else ChainLink(**json.loads(body))


def deliver_many(
    deliverer: Deliverer,
    businesses: Sequence[Business],
    public_keys: Mapping[str, str],
    window: Window,
    run_id: str,
    max_concurrency: int,
) -> Iterator[tuple[Business, DeliveryReport | Exception]]:
    """Deliver several businesses, at most ``max_concurrency`` at a time, each as it completes.

    One business failing yields its exception and does not stop the others.
    """
    with ThreadPoolExecutor(max_workers=max(1, max_concurrency)) as pool:
        futures = {
            pool.submit(deliverer.deliver, b, public_keys[b.id], window, run_id): b for b in businesses
        }
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as error:
                yield futures[future], error


def _link_bytes(link: ChainLink) -> bytes:
    return json.dumps({"key": link.key, "sha256": link.sha256}, sort_keys=True).encode()
