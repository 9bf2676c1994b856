"""What the long runbook commands share: quiet in-process runs, stopping on the first SIGINT or
SIGTERM, and one progress line per window or file."""

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""The commands print one line per window or file (and per failure) themselves; the runs' own logs
are in ``DAGSTER_HOME``, for the UI."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """A SIGINT or SIGTERM asked the command to stop; the message names the signal."""


def _interrupted(signal_number: int) -> Interrupted:
    for stop_signal in STOP_SIGNALS:  # a second signal must not interrupt the cleanup
        signal.signal(stop_signal, signal.SIG_IGN)
    return Interrupted(f"stopped by {signal.Signals(signal_number).name}")


class Stopper:
    """Notices a stop signal whichever Python handler received it.

    During ``execute_in_process`` Dagster installs its own handler, which interrupts the run's step
    and marks the run failed; the signal still reaches the wakeup pipe, so ``check()`` after the
    run raises ``Interrupted``. Outside runs the handler raises at once, except while ``deferring``
    (``run_in_process``): raising in Dagster's bookkeeping around a run could break it (a database
    connection being closed), so the ``check()`` after the run raises instead."""

    def __init__(self) -> None:
        self.read_fd, self.wakeup_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.wakeup_fd, False)
        self.deferring = 0

    def handle(self, signal_number: int, _: object) -> None:
        if not self.deferring:
            raise _interrupted(signal_number)

    def check(self) -> None:
        try:
            received = os.read(self.read_fd, 64)
        except BlockingIOError:
            return
        for signal_number in received:
            if signal_number in STOP_SIGNALS:
                raise _interrupted(signal_number)

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.wakeup_fd)


_active: list[Stopper] = []


@contextmanager
def stopping() -> Iterator[None]:
    """Within the block, the first SIGINT or SIGTERM stops the command (``Interrupted``), so the
    context managers around it stop the servers they started."""
    stopper = Stopper()
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    previous_fd = signal.set_wakeup_fd(stopper.wakeup_fd, warn_on_full_buffer=False)
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, stopper.handle)
    _active.append(stopper)
    try:
        yield
    finally:
        _active.pop()
        signal.set_wakeup_fd(previous_fd)
        for stop_signal, handled in previous.items():
            signal.signal(stop_signal, handled)
        stopper.close()


def run_in_process(job: Any, **execution: Any) -> dg.ExecuteInProcessResult:
    """``job.execute_in_process(**execution)`` as the long commands run it: not started after a
    stop signal, interrupted by one (Dagster records the run failed), and stopped after it. A
    signal in Dagster's bookkeeping around the run only marks the wakeup pipe (``Stopper``)."""
    stopper = _active[-1] if _active else None
    if stopper is None:
        return job.execute_in_process(**execution)
    stopper.deferring += 1
    try:
        stopper.check()
        result = job.execute_in_process(**execution)
        stopper.check()
    finally:
        stopper.deferring -= 1
    return result


class Progress:
    """``line(text)``: the text with how many of ``total`` are done, the time so far and what is left."""

    def __init__(self, total: int, what: str = "windows") -> None:
        self.total, self.what, self.done = total, what, 0
        self.started = time.monotonic()

    def line(self, text: str) -> str:
        self.done += 1
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        return (
            f"{text}  [{self.done}/{self.total} {self.what}, {elapsed:.1f}s elapsed, "
            f"{self.total - self.done} left, ~{left:.0f}s]"
        )


def dagster_instance() -> dg.DagsterInstance:
    """The persistent instance when DAGSTER_HOME is set (runs then show in the UI)."""
    if home := os.environ.get("DAGSTER_HOME"):
        Path(home).mkdir(parents=True, exist_ok=True)
        return dg.DagsterInstance.get()
    print("DAGSTER_HOME is not set: runs are not recorded (set it to see them in the UI)")
    return dg.DagsterInstance.ephemeral()
