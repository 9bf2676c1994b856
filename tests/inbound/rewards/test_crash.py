"""A rewards run killed with SIGKILL in the middle of a file's transaction: nothing of the file is
committed, its plaintext is swept, and the rerun gives exactly the totals of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import pytest

from s3_sharing.devtools import fi_files
from s3_sharing.platform.postgres import Postgres
from s3_sharing.platform.settings import REPO_ROOT

from ..conftest import new_database
from .conftest import FI, make_processor
from .test_processor import totals

pytestmark = pytest.mark.e2e
ROWS = 150_000


def _in_transaction(postgres: Postgres) -> bool:
    """Whether another session holds a file's advisory lock and is loading (COPY or INSERT)."""
    with postgres.connect() as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active'"
            " AND (query LIKE 'COPY staging%%' OR query LIKE '%%INSERT INTO fi_transactions%%'"
            " OR query LIKE '%%INSERT INTO reward_points%%')"
        ).fetchone()
    return bool(row and row[0])


def test_a_killed_run_commits_nothing_and_the_rerun_gives_identical_totals(
    fi, fi_registry, fi_registry_file, fi_keys, postgres, postgres_server, tmp_path
):
    fi.drop("big", list(fi_files.purchases(ROWS, users=20_000)))
    work = tmp_path / "work"
    keys_dir = fi_keys["fi"].public.parent
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.inbound.rewards.worker",
            str(fi_registry_file),
            str(keys_dir),
            str(postgres.dsn),
            str(work),
        ],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not _in_transaction(postgres):
        assert worker.poll() is None, "the worker finished before it could be killed"
        assert time.monotonic() < deadline, "the worker never started loading"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    assert worker.wait() == -signal.SIGKILL
    time.sleep(0.5)  # PostgreSQL notices the closed connection and rolls its transaction back

    assert totals(postgres) == (0, 0, 0, 0), "nothing of the killed run committed"
    (left,) = work.iterdir()
    assert left.name.startswith(f"rewards-{FI}.{worker.pid}.")

    (rerun,) = list(make_processor(fi_registry, postgres, fi_keys, work).run(fi_registry.fi(FI)))
    assert rerun.status == "loaded" and rerun.rows_loaded == ROWS
    assert list(work.iterdir()) == [], "the killed run's plaintext was swept"

    clean = new_database(postgres_server)  # the same file, never interrupted
    (reference,) = list(
        make_processor(fi_registry, clean, fi_keys, tmp_path / "clean").run(fi_registry.fi(FI))
    )
    assert reference.points == rerun.points
    assert totals(postgres) == totals(clean)
    query = "SELECT transaction_id, points, reason FROM reward_points ORDER BY 1"
    with postgres.connect() as a, clean.connect() as b:
        assert a.execute(query).fetchall() == b.execute(query).fetchall()
    print(
        f"\nSIGKILL mid-load of {ROWS:,} rows: 0 committed; rerun {rerun.rows_loaded:,} rows,"
        f" {rerun.points:,} points, identical to an uninterrupted run"
    )
