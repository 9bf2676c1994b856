"""One writer per business, a linear manifest chain and crash-safe windows, tried for real: writers
in processes of their own against moto's server (whose conditional writes are made as atomic as
S3's: ``devtools/moto_server.py``) and the GCS emulator, faults injected at each crash point, a
delivery process killed with SIGKILL, and S3 answering 503 SlowDown. Each test prints its figures.
"""

import itertools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta

import duckdb
import pytest

from s3_sharing.outbound.certification import Certifier, Status
from s3_sharing.outbound.datasets import SOURCES
from s3_sharing.outbound.delivery import HISTORY, chain_head, journal_key
from s3_sharing.outbound.layout import MANIFEST_FOLDER, manifest_key
from s3_sharing.outbound.manifest import Manifest, sha256_hex
from s3_sharing.outbound.registry import Business, read_registry
from s3_sharing.platform import crypto
from s3_sharing.platform.settings import REPO_ROOT, Settings
from s3_sharing.platform.state import StateStore
from s3_sharing.platform.storage import Bucket, GcsArchive, S3Buckets
from s3_sharing.platform.time import Window, hourly_partitions
from s3_sharing.platform.warehouse import DuckDBWarehouse
from s3_sharing.transform.dbt_assets import dbt_project, load_manifest, model_relation

from . import writers

HOURS = [f"2026-01-01-{hour:02d}:00" for hour in range(4, 8)]


def _environment() -> dict[str, str]:
    prefixes = ("S3_SHARING_", "AWS_", "STORAGE_EMULATOR_HOST")
    return {k: v for k, v in os.environ.items() if k.startswith(prefixes)}


def _window(settings: Settings, partition: str) -> Window:
    return Window.of(hourly_partitions(settings.partition_start), partition)


def _certifier(settings: Settings) -> Certifier:
    manifest = load_manifest(dbt_project(settings))
    _, signing_cert = crypto.load_signer(settings.signing_key_file.read_text(), None)
    return Certifier(
        DuckDBWarehouse(path=str(settings.duckdb_path)),
        {d: model_relation(manifest, s.model) for d, s in SOURCES.items()},
        GcsArchive(bucket=settings.archive_bucket),
        S3Buckets(),
        signing_cert,
        StateStore(bucket=settings.state_bucket),
        grace=timedelta(0),
        deep=True,
    )


def _chain(settings: Settings, business_id: str) -> tuple[int, int, int]:
    """Walking back from the head: (manifests reached, manifests archived, broken links)."""
    archive = GcsArchive(bucket=settings.archive_bucket)
    archived = set(archive.listing(f"{business_id}/{HISTORY}"))
    reached: set[str] = set()
    link = chain_head(StateStore(bucket=settings.state_bucket), business_id)
    while link is not None and link.key not in reached:
        body = archive.read(link.key)
        if body is None or sha256_hex(body) != link.sha256:
            return len(reached), len(archived), 1
        reached.add(link.key)
        link = Manifest.from_bytes(body).previous
    return len(reached), len(archived), 0


def _mixed(bucket: Bucket) -> list[str]:
    """What a reader of the bucket would find wrong: a published manifest whose files are not all
    there with the size and SHA-256 it lists."""
    wrong = []
    sizes = bucket.sizes()
    for name in sorted(k for k in sizes if k.startswith(MANIFEST_FOLDER) and k.endswith(".json")):
        for file in Manifest.from_bytes(bucket.read(name) or b"").files:
            if sizes.get(file.key) != file.cipher_bytes or bucket.sha256(file.key) != file.cipher_sha256:
                wrong.append(f"{name}: {file.key}")
    return wrong


def _orphans(settings: Settings, business: Business) -> list[str]:
    """Objects in the business's prefix or its archive folder that no current manifest lists."""
    bucket = business.open_bucket(S3Buckets())
    archive = GcsArchive(bucket=settings.archive_bucket)
    s3_names = set(bucket.sizes())
    gcs_names = {
        n.removeprefix(f"{business.id}/")
        for n in archive.listing(f"{business.id}/")
        if not n.startswith(f"{business.id}/{HISTORY}")
    }
    manifests = {n for n in s3_names | gcs_names if n.startswith(MANIFEST_FOLDER)}
    listed = set(manifests)
    for name in manifests:
        if name.endswith(".json") and (body := bucket.read(name)) is not None:
            listed |= {f.key for f in Manifest.from_bytes(body).files}
    return sorted(f"s3:{n}" for n in s3_names - listed) + sorted(f"gcs:{n}" for n in gcs_names - listed)


def test_concurrent_writers_never_corrupt_a_window_or_fork_the_chain(built, stack):
    """20 trials of two runs of one window at once, then 10 bursts of four windows of one business."""
    business = read_registry(built.registry).get("globex")
    certifier = _certifier(built)
    windows = [_window(built, hour) for hour in HOURS]
    runs = failed = waited = corrupt = 0
    with multiprocessing.get_context("spawn").Pool(4, writers.start, (_environment(),)) as pool:
        pool.starmap(time.sleep, [(1,)] * 4)  # every writer has started
        for trial in range(20):
            at = time.time() + 0.3
            outcomes = pool.starmap(
                writers.deliver, [("globex", HOURS[0], f"pair{trial}-{n}", at) for n in range(2)]
            )
            (verdict,) = certifier.certify(business, windows[:1])
            corrupt += not verdict.ok
            runs, failed = runs + 2, failed + sum(result != "ok" for result, _ in outcomes)
            waited += sum(w for _, w in outcomes)
        for burst in range(10):
            at = time.time() + 0.3
            jobs = [("globex", hour, f"burst{burst}-{n}", at) for n, hour in enumerate(HOURS)]
            outcomes = pool.starmap(writers.deliver, jobs)
            corrupt += sum(not v.ok for v in certifier.certify(business, windows))
            runs, failed = runs + 4, failed + sum(result != "ok" for result, _ in outcomes)
            waited += sum(w for _, w in outcomes)
    reached, archived, broken = _chain(built, "globex")
    print(
        f"\nsingle writer: {runs} runs (20 pairs, 10 bursts of 4), {failed} failed, {waited} waited "
        f"for the lease; corrupt windows {corrupt}; chain: {reached} of {archived} manifests "
        f"reachable, forks {archived - reached}, broken links {broken}"
    )
    assert (failed, corrupt, broken) == (0, 0, 0)
    assert reached == archived == runs
    assert waited >= 20, "the writers did not overlap: the trial proves nothing"
    assert _orphans(built, business) == []


class Crash(Exception):
    """An injected fault: the process dies here."""


def _inject(monkeypatch: pytest.MonkeyPatch, owner: type, method: str, fail_at: int) -> None:
    """The ``fail_at``-th call (from 0) of ``owner.method`` raises ``Crash``."""
    original, calls = getattr(owner, method), itertools.count()

    def failing(self, *args, **kwargs):
        if next(calls) == fail_at:
            raise Crash(f"{owner.__name__}.{method} call {fail_at}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, method, failing)


def _drop_users(settings: Settings, business_id: str, window: Window, count: int) -> None:
    """Rows of ``count`` users leave the window, so a rerun has stale files to remove."""
    with duckdb.connect(str(settings.duckdb_path)) as con:
        users = con.execute(
            "select distinct user_id from main_marts.fi_data where business_id = ? "
            "and loaded_at >= ? and loaded_at < ? order by 1 limit ?",
            [business_id, window.start, window.end, count],
        ).fetchall()
        for table in ("fi_data", "analytics"):
            con.execute(
                f"delete from main_marts.{table} where business_id = ? and user_id in (select unnest(?))",
                [business_id, [u for (u,) in users]],
            )


CRASH_POINTS = {
    # Bucket.delete: calls 0 and 1 hide the old manifest and its signature; 2, 3 remove stale files.
    "after 1 of n files": (Bucket, "upload_file", 1),
    "between archive and S3": (Bucket, "upload_file", 0),
    "before the manifest": (GcsArchive, "upload_bytes", 0),
    "after the manifest": (Bucket, "delete", 2),
    "during stale-file removal": (Bucket, "delete", 3),
    "before anything is touched": (StateStore, "write", 0),
}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_never_shows_a_mixed_window_and_the_rerun_leaves_no_orphans(built, stack, monkeypatch, point):
    business = read_registry(built.registry).get("acme")  # one file per user: stale files on rerun
    bucket = business.open_bucket(S3Buckets())
    window = _window(built, HOURS[1])
    writers.start(_environment())
    assert writers.deliver("acme", HOURS[1], "first") == ("ok", False)
    _drop_users(built, "acme", window, 2)

    with monkeypatch.context() as patch:
        _inject(patch, *CRASH_POINTS[point])
        result, _ = writers.deliver("acme", HOURS[1], "crashing")
    assert result.startswith("Crash"), result
    assert _mixed(bucket) == [], "a reader sees a manifest whose files are not all there"
    (between,) = _certifier(built).certify(business, [window])
    print(f"\n{point}: between crash and rerun {between.describe()}")
    assert between.status in (Status.MISSING, Status.MISMATCHED), between.describe()

    assert writers.deliver("acme", HOURS[1], "rerun") == ("ok", False)
    (after,) = _certifier(built).certify(business, [window])
    assert after.status is Status.DELIVERED, after.describe()
    assert _orphans(built, business) == []
    assert StateStore(bucket=built.state_bucket).names("journals/") == []


def test_a_killed_delivery_process_is_taken_over_and_cleaned_up(built, stack, tmp_path, monkeypatch):
    work = tmp_path / "work"
    monkeypatch.setenv("S3_SHARING_WORK_DIR", str(work))
    business = read_registry(built.registry).get("acme")
    window = _window(built, HOURS[2])
    state = StateStore(bucket=built.state_bucket)
    script = (
        "import sys, json; from tests.outbound import writers; "
        "writers.start(json.loads(sys.argv[1]), lease_ttl_seconds=3); "
        "print(writers.deliver('acme', sys.argv[2], 'killed'))"
    )
    # The archive refuses every upload until the kill, so the writer is held after its journal and
    # before its first upload: its sealed files are still on disk (it deletes each once uploaded).
    faults = f"{stack.gcs_url}/_faults/unavailable"
    _arm(f"{faults}?count=100000")
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", script, json.dumps(_environment()), HOURS[2]], cwd=REPO_ROOT
        )
        deadline = time.monotonic() + 120
        while state.read(journal_key("acme", manifest_key(window.start))) is None:  # it has begun
            assert process.poll() is None and time.monotonic() < deadline, "the writer ended before writing"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
    finally:
        _arm(f"{faults}?count=0")
    (left,) = work.iterdir()  # the killed writer's files, in its private directory
    assert left.name.startswith(f"deliver-acme.{process.pid}.") and any(left.iterdir())
    assert oct(work.stat().st_mode & 0o777) == "0o700" and oct(left.stat().st_mode & 0o777) == "0o700"
    bucket = business.open_bucket(S3Buckets())
    assert _mixed(bucket) == []
    (between,) = _certifier(built).certify(business, [window])
    assert not between.ok, between.describe()

    writers.start(_environment())
    started = time.monotonic()
    assert writers.deliver("acme", HOURS[2], "after-kill") == ("ok", True)  # waited for the dead lease
    (after,) = _certifier(built).certify(business, [window])
    print(f"\nSIGKILL: between {between.describe()}; rerun took {time.monotonic() - started:.1f}s")
    assert after.status is Status.DELIVERED, after.describe()
    assert _orphans(built, business) == []
    assert list(work.iterdir()) == [], "the killed writer's plaintext was swept"


def test_a_burst_of_503_slowdown_is_absorbed(built, stack):
    faults = f"{stack.aws_url}/_faults/slowdown"
    _arm(f"{faults}?count=6")
    writers.start(_environment())
    assert writers.deliver("globex", HOURS[3], "throttled") == ("ok", False)
    with urllib.request.urlopen(faults, timeout=10) as left:
        assert left.read() == b"0", "every injected 503 was answered"
    business = read_registry(built.registry).get("globex")
    (verdict,) = _certifier(built).certify(business, [_window(built, HOURS[3])])
    assert verdict.status is Status.DELIVERED, verdict.describe()


@pytest.mark.parametrize("status", [429, 503])
def test_a_burst_of_gcs_errors_is_absorbed(built, stack, status):
    """The archive answers 429 (rate limit) or 503 to the next uploads; google-cloud-storage's
    retry (3.x retries uploads by default) carries the delivery through."""
    faults = f"{stack.gcs_url}/_faults/unavailable"
    _arm(f"{faults}?count=4&status={status}")
    writers.start(_environment())
    assert writers.deliver("globex", HOURS[3], f"gcs-{status}") == ("ok", False)
    with urllib.request.urlopen(faults, timeout=10) as left:
        assert left.read() == b"0", "every injected GCS error was answered"
    business = read_registry(built.registry).get("globex")
    (verdict,) = _certifier(built).certify(business, [_window(built, HOURS[3])])
    assert verdict.status is Status.DELIVERED, verdict.describe()


def _arm(fault_url: str) -> None:
    """Tell a stand-in server how many of its next uploads to refuse."""
    urllib.request.urlopen(urllib.request.Request(fault_url, method="POST"), timeout=10).close()
