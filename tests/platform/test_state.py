"""Leases over the in-memory state store (S3's conditional-write semantics; the real S3 enforcement
across processes is exercised in tests/outbound/test_integrity.py)."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from s3_sharing.platform.state import LeaseBusy, LeaseLost, acquire
from tests.fakes import MemoryState

KEY = "leases/acme.json"
TTL = timedelta(seconds=60)


def _take(state: MemoryState, run_id: str, log: list[str], wait: float = 0) -> object:
    return acquire(state, KEY, run_id, ttl=TTL, wait=timedelta(seconds=wait), log=log.append, what="acme")


def test_a_second_writer_is_refused_with_the_holder_named_and_nothing_written() -> None:
    state, log = MemoryState(), []
    with _take(state, "run-1", log):
        before = dict(state.objects)
        with pytest.raises(LeaseBusy, match=r"acme: run run-1 on .* holds the lease.*nothing was written"):
            _take(state, "run-2", log)
        assert state.objects == before
    assert KEY not in state.objects, "release removes the lease"


def test_a_waiting_writer_says_so_once_and_gets_the_lease_when_released() -> None:
    state, log = MemoryState(), []
    first = _take(state, "run-1", log)
    threading.Timer(1.2, first.release).start()
    with _take(state, "run-2", log, wait=10):
        assert json.loads(state.objects[KEY].body)["run_id"] == "run-2"
    waits = [line for line in log if "waiting" in line]
    assert len(waits) == 1 and "waiting for run run-1" in waits[0]


def test_a_lease_whose_holder_died_is_taken_over_and_the_old_holder_cannot_commit() -> None:
    state, log = MemoryState(), []
    dead = _take(state, "run-1", log)
    dead._stop.set()  # the holder's process is gone: nobody renews
    expired = json.loads(state.objects[KEY].body) | {
        "expires_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    }
    state.write(KEY, json.dumps(expired).encode())
    with _take(state, "run-2", log):
        assert log == ["acme: took over the lease of run run-1, which stopped renewing it"]
        with pytest.raises(LeaseLost, match="was taken over"):
            dead.check()
        dead.release()
        assert json.loads(state.objects[KEY].body)["run_id"] == "run-2", "release leaves others' lease"
