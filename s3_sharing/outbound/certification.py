"""Certification: if the warehouse has rows for a business and window, they were delivered.

For each window: when the warehouse has rows for it, a manifest must exist in both S3 and the GCS
archive, be identical in both, carry a valid platform signature, list row counts equal to the
warehouse's counts for what the window holds (the changes received in it, or the snapshot as of its
end: both fixed once the window has closed, so a mismatch is a real fault), and every file it lists
must exist in both places with the listed size and checksum (S3's own SHA-256 with ``deep``, GCS's
own MD5). The manifest must be the one of this business and window (a copy under another window's
name is caught), and every data object whose name places it in the window must be listed by it (a
crashed or overlapping run leaves objects no manifest lists). A window without rows needs no files.
A window that ended within the grace period and has no manifest yet is ``pending``.
"""

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from s3_sharing.outbound.contents import window_query
from s3_sharing.outbound.datasets import SOURCES, Contents, Dataset
from s3_sharing.outbound.delivery import HISTORY, chain_head
from s3_sharing.outbound.layout import Layout, manifest_key
from s3_sharing.outbound.manifest import FileEntry, Manifest, iso, sha256_hex
from s3_sharing.outbound.registry import Business
from s3_sharing.platform import crypto
from s3_sharing.platform.state import StateStore
from s3_sharing.platform.storage import Bucket, GcsArchive, S3Buckets
from s3_sharing.platform.time import Window
from s3_sharing.platform.warehouse import Relation, Warehouse, WindowCountsQuery

BUSINESSES_PER_COUNT = 200
"""Businesses counted by one grouped query, each a bound value of it (a check op's businesses)."""
CLOCK_SKEW = timedelta(hours=1)
"""Margin for clocks of different hosts when the chain walk decides how far back to go."""


class Status(StrEnum):
    """What the certification found for one window of one business."""

    DELIVERED = "delivered"
    EMPTY = "empty"
    """No rows in the warehouse: nothing to deliver (a manifest, if any, must list no rows)."""
    MISSING = "missing"
    MISMATCHED = "mismatched"
    PENDING = "pending"
    """Not delivered yet, within the grace period after the window closed."""

    @property
    def ok(self) -> bool:
        return self in (Status.DELIVERED, Status.EMPTY)

    @property
    def failing(self) -> bool:
        return not self.ok and self is not Status.PENDING


@dataclass(frozen=True)
class Verdict:
    business_id: str
    partition: str
    status: Status
    expected_rows: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status.ok

    def describe(self) -> str:
        detail = "; ".join(self.problems)
        return f"{self.business_id} {self.partition}: {self.status}" + (f" ({detail})" if detail else "")


WINDOWS_PER_COUNT = 48
"""Windows counted by one grouped query (a look-back's 48 hours in one, the whole history in a
few): each is a ``case`` branch of it."""


def counts_by_window(
    warehouse: Warehouse,
    relation: Relation,
    column: str,
    business_ids: Sequence[str],
    windows: Sequence[Window],
) -> dict[str, list[int]]:
    """Rows per business and window, counted by the warehouse: one grouped query for every
    ``WINDOWS_PER_COUNT`` windows, whatever the number of businesses."""
    counts = {business_id: [0] * len(windows) for business_id in business_ids}
    if not business_ids:
        return counts
    for first in range(0, len(windows), WINDOWS_PER_COUNT):
        chunk = windows[first : first + WINDOWS_PER_COUNT]
        query = WindowCountsQuery(
            relation, column, tuple((w.start, w.end) for w in chunk), "business_id", tuple(business_ids)
        )
        for batch in warehouse.stream(query):
            found = zip(*(batch.column(n).to_pylist() for n in range(3)), strict=True)
            for business_id, index, rows in found:
                if index is not None:  # between two windows that are not adjacent
                    counts[business_id][first + index] = rows
    return counts


@dataclass
class Certifier:
    warehouse: Warehouse
    relations: Mapping[Dataset, Relation]
    archive: GcsArchive
    s3: S3Buckets
    signing_cert: Any
    state: StateStore
    grace: timedelta = timedelta(minutes=90)
    deep: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    counted: dict[tuple[str, Dataset], dict[datetime, int]] = field(default_factory=dict)
    """Rows per window already counted for a business and data set, by window start."""

    def count_rows(self, businesses: Sequence[Business], windows: Sequence[Window]) -> None:
        """Count the rows of the windows for every business with change contents at once, before
        they are certified one by one (a business's own count is then not queried again)."""
        changes = [b for b in businesses if b.contents is Contents.CHANGES]
        for dataset in sorted({d for b in changes for d in b.datasets}):
            ids = [b.id for b in changes if dataset in b.datasets]
            for first in range(0, len(ids), BUSINESSES_PER_COUNT):
                chunk = ids[first : first + BUSINESSES_PER_COUNT]
                counts = counts_by_window(
                    self.warehouse, self.relations[dataset], SOURCES[dataset].window_column, chunk, windows
                )
                for business_id, rows in counts.items():
                    by_start = {w.start: n for w, n in zip(windows, rows, strict=True)}
                    self.counted[(business_id, dataset)] = by_start

    def certify(self, business: Business, windows: Sequence[Window]) -> list[Verdict]:
        expected = {str(d): self._expected_rows(business, d, windows) for d in business.datasets}
        bucket = business.open_bucket(self.s3)
        s3_objects = bucket.objects()
        archived = self.archive.listing(f"{business.id}/")
        layout = business.object_layout()
        stored = {
            "S3": by_window(layout, s3_objects),
            "GCS": by_window(layout, (name.removeprefix(f"{business.id}/") for name in archived)),
        }
        chain, read = self._chain_problems(business.id, windows, archived) if windows else ({}, {})
        stores = _Stores(
            bucket,
            {key: size for key, (size, _) in s3_objects.items()},
            {key: etag for key, (_, etag) in s3_objects.items()},
            archived,
            read,
            etag_is_md5=business.destination.sse.mode != "aws:kms",
        )
        return [
            self._verdict(
                business,
                window,
                {d: counts[n] for d, counts in expected.items()},
                stores,
                {store: objects.get(window.start, set()) for store, objects in stored.items()},
                chain.get(iso(window.start), []),
            )
            for n, window in enumerate(windows)
        ]

    def _expected_rows(self, business: Business, dataset: Dataset, windows: Sequence[Window]) -> list[int]:
        """What each window must hold: a change window's rows were all received in it (counted by
        ``count_rows`` for many businesses at once, else by the same grouped query for this one); a
        snapshot's are counted as of each window's end, by the query its delivery ran."""
        if business.contents is Contents.CHANGES:
            counted = self.counted.get((business.id, dataset), {})
            if all(w.start in counted for w in windows):
                return [counted[w.start] for w in windows]
            column = SOURCES[dataset].window_column
            relation = self.relations[dataset]
            return counts_by_window(self.warehouse, relation, column, [business.id], windows)[business.id]
        return [self.warehouse.count(window_query(business, dataset, w, self.relations)) for w in windows]

    def _chain_problems(
        self,
        business_id: str,
        windows: Sequence[Window],
        archived: Mapping[str, object],
    ) -> tuple[dict[str, list[str]], dict[str, bytes]]:
        """Walk the business's manifest chain from its head back past the first window's start (no
        manifest of these windows can be older): every link's digest must match, and every archived
        manifest created since must be reachable (else two writers forked the chain). Problems by the
        ``window_start`` of the manifest they concern, and the manifests read, by MD5."""
        since = iso(windows[0].start - CLOCK_SKEW)
        history = f"{business_id}/{HISTORY}"
        problems: dict[str, list[str]] = {}
        read: dict[str, bytes] = {}
        reached: set[str] = set()
        link, child = chain_head(self.state, business_id), iso(windows[-1].start)
        while link is not None and link.key not in reached:
            body = self.archive.read(link.key)
            if body is not None:
                read[md5_base64(body)] = body
            if body is None or sha256_hex(body) != link.sha256:
                what = "is not in the archive" if body is None else "does not match the digest linking to it"
                problems.setdefault(child, []).append(f"manifest chain broken: {link.key} {what}")
                break
            reached.add(link.key)
            manifest = Manifest.from_bytes(body)
            if manifest.created_at < since:
                break
            link, child = manifest.previous, manifest.window_start
        for name in sorted(n for n in archived if n.startswith(history) and n.removeprefix(history) >= since):
            if name not in reached and (body := self.archive.read(name)) is not None:
                start = Manifest.from_bytes(body).window_start
                problems.setdefault(start, []).append(
                    f"manifest chain forked: {name} is not reachable from the chain head"
                )
        return problems, read

    def _verdict(
        self,
        business: Business,
        window: Window,
        expected: dict[str, int],
        stores: "_Stores",
        stored: dict[str, set[str]],
        chain: list[str],
    ) -> Verdict:
        """``stored``: the data objects of this window found in each store, listed or not;
        ``chain``: what the chain walk found wrong with manifests of this window."""
        total = sum(expected.values())
        key = manifest_key(window.start)
        bucket, s3_sizes, archived = stores.bucket, stores.s3_sizes, stores.archived
        s3_body, gcs_body = self._manifests(business.id, key, stores)

        def verdict(status: Status, *problems: str) -> Verdict:
            return Verdict(business.id, window.key, status, total, tuple(problems))

        if s3_body is None and gcs_body is None:
            unlisted = [*_unlisted(stored, set()), *chain]
            if not total:
                return verdict(Status.MISMATCHED, *unlisted) if unlisted else verdict(Status.EMPTY)
            if window.end > self.now - self.grace:
                return verdict(Status.PENDING, f"{total} rows, not delivered yet", *unlisted)
            missing = f"{total} rows in the warehouse, no manifest in S3 or GCS"
            return verdict(Status.MISSING, missing, *unlisted)
        problems = list(chain)
        if s3_body is None:
            problems.append("manifest missing in S3")
        if gcs_body is None:
            problems.append("manifest missing in GCS")
        if s3_body is not None and gcs_body is not None and s3_body != gcs_body:
            problems.append("S3 and GCS manifests differ")
        body = s3_body if s3_body is not None else gcs_body
        assert body is not None
        signature = (
            bucket.read(key + ".sig")
            if s3_body is not None
            else self.archive.read(f"{business.id}/{key}.sig")
        )
        if signature is None or not crypto.verify_detached(body, signature, self.signing_cert):
            problems.append("manifest signature does not verify")
        try:
            manifest = Manifest.from_bytes(body)
        except (ValueError, TypeError, KeyError) as error:
            return verdict(Status.MISMATCHED, *problems, f"manifest unreadable ({error})")
        claimed = (manifest.business_id, manifest.window_start, manifest.window_end)
        if claimed != (business.id, iso(window.start), iso(window.end)):
            problems.append(
                f"manifest under {key} is for business {manifest.business_id!r}, window "
                f"{manifest.window_start} → {manifest.window_end}"
            )
        problems += _unlisted(stored, {f.key for f in manifest.files})
        for dataset, rows in expected.items():
            listed = manifest.rows.get(dataset, 0)
            if listed != rows:
                problems.append(f"{dataset}: manifest has {listed} rows, warehouse now {rows}")
        problems += self._file_problems(business, manifest, bucket, s3_sizes, archived)
        if problems:
            return verdict(Status.MISMATCHED, *problems)
        return verdict(Status.DELIVERED if total else Status.EMPTY)

    def _manifests(self, business_id: str, key: str, stores: "_Stores") -> tuple[bytes | None, bytes | None]:
        """The window's manifest as S3 and as GCS hold it (None where missing). A copy whose checksum
        in its store's listing is the MD5 of a manifest the chain walk has read is that manifest, and is
        not downloaded again: GCS lists every object's MD5, and S3's ETag is the MD5 of an object
        uploaded in one part and not encrypted with KMS. ``deep`` downloads both."""
        gcs_name = f"{business_id}/{key}"
        gcs_body = None
        if gcs_name in stores.archived:
            gcs_body = stores.known(stores.archived[gcs_name][1], self.deep) or self.archive.read(gcs_name)
        s3_body = None
        if key in stores.s3_sizes:
            s3_body = stores.known(stores.s3_md5(key), self.deep) or stores.bucket.read(key)
        return s3_body, gcs_body

    def _file_problems(
        self,
        business: Business,
        manifest: Manifest,
        bucket: Bucket,
        s3_sizes: dict[str, int],
        archived: dict[str, tuple[int, str]],
    ) -> list[str]:
        problems = []
        for file in manifest.files:
            size = s3_sizes.get(file.key)
            if size is None:
                problems.append(f"{file.key} missing in S3")
            elif size != file.cipher_bytes:
                problems.append(f"{file.key} is {size} bytes in S3, manifest says {file.cipher_bytes}")
            elif self.deep:
                problems += self._deep_problems(business, bucket, file)
            stored = archived.get(f"{business.id}/{file.key}")
            if stored is None:
                problems.append(f"{file.key} missing in GCS")
            elif stored != (file.cipher_bytes, file.cipher_md5):
                problems.append(f"{file.key} in GCS differs from the manifest (size or MD5)")
        return problems

    @staticmethod
    def _deep_problems(business: Business, bucket: Bucket, file: FileEntry) -> list[str]:
        """S3's own SHA-256 of the object, and how it is encrypted at rest."""
        problems = []
        if bucket.sha256(file.key) not in (None, file.cipher_sha256):
            problems.append(f"{file.key} SHA-256 in S3 differs from the manifest")
        sse = business.destination.sse
        mode, kms_key = bucket.encryption(file.key)
        if mode != sse.mode or (sse.kms_key_arn and not kms_key):
            problems.append(f"{file.key} is encrypted at rest with {mode}, the registry says {sse.mode}")
        return problems


@dataclass(frozen=True)
class _Stores:
    """What one certification listed in each store, and the manifests it has read, by MD5."""

    bucket: Bucket
    s3_sizes: dict[str, int]
    s3_etags: dict[str, str]
    archived: dict[str, tuple[int, str]]
    """Name → (size, MD5 base64)."""
    read: dict[str, bytes]
    etag_is_md5: bool

    def s3_md5(self, key: str) -> str | None:
        etag = self.s3_etags[key]
        if not self.etag_is_md5 or len(etag) != 32:  # a multipart ETag ends in -<parts>
            return None
        return base64.b64encode(bytes.fromhex(etag)).decode()

    def known(self, md5: str | None, deep: bool) -> bytes | None:
        return None if deep or md5 is None else self.read.get(md5)


def md5_base64(data: bytes) -> str:
    """The MD5 of ``data`` as GCS lists it (base64)."""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def by_window(layout: Layout, keys: Iterable[str]) -> dict[datetime, set[str]]:
    """The data objects among ``keys``, grouped by the window their name says they belong to."""
    found: dict[datetime, set[str]] = {}
    for key in keys:
        start = layout.window_start(key)
        if start is not None:
            found.setdefault(start, set()).add(key)
    return found


def _unlisted(stored: dict[str, set[str]], listed: set[str]) -> list[str]:
    """Objects of the window that no manifest lists: left by a crashed or concurrent run."""
    return [
        f"{key} in {store} is listed by no manifest"
        for store, keys in stored.items()
        for key in sorted(keys - listed)
    ]
