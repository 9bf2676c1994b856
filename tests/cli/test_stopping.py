"""Long commands stop when asked: the first SIGINT (or a SIGTERM) ends a real ``s3-sharing``
process within 5 s, every server it started is gone (checked by pid), and no run it launched is
left "Started" in ``DAGSTER_HOME``."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from s3_sharing.platform.settings import LOCAL_DIR

from ..conftest import with_worker_dbt


def descendants(pid: int) -> set[int]:
    """Every process under ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass(frozen=True)
class Stopped:
    returncode: int
    seconds: float
    """From the signal to the process's exit."""
    printed: str
    servers: set[int]
    """The processes it had started when the signal came."""


def interrupt(command: list[str], environment: dict[str, str], output: Path, sig: signal.Signals) -> Stopped:
    """Run ``command``; at its first window's progress line, send ``sig``; how it stopped."""
    with output.open("wb") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 600
            while "windows, " not in output.read_text():
                assert process.poll() is None and time.monotonic() < deadline, output.read_text()[-3000:]
                time.sleep(0.2)
            servers = descendants(process.pid)
            process.send_signal(sig)
            sent = time.monotonic()
            process.wait(timeout=60)
            seconds = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
    return Stopped(process.returncode, seconds, output.read_text(), servers)


def assert_stopped(stopped: Stopped, command: str, sig: signal.Signals) -> None:
    assert stopped.returncode == 130, stopped.printed[-3000:]
    assert stopped.seconds < 5, f"stopped {stopped.seconds:.1f}s after {sig.name}"
    assert f"s3-sharing {command}: stopped by {sig.name}" in stopped.printed, stopped.printed[-3000:]
    assert "Traceback" not in stopped.printed, stopped.printed
    deadline = time.monotonic() + 5  # a helper (multiprocessing's resource tracker) sees its parent go
    while [pid for pid in stopped.servers if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in stopped.servers if alive(pid)], "every process it started is gone"


def no_run_started(dagster_home: Path) -> list[dg.DagsterRunStatus]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        statuses = [record.dagster_run.status for record in instance.get_run_records()]
    assert statuses, "the command launched runs before it was interrupted"
    assert dg.DagsterRunStatus.STARTED not in statuses, statuses
    return statuses


def command_environment(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return with_worker_dbt(dict(os.environ) | {"DAGSTER_HOME": str(home)})


@pytest.mark.e2e
@pytest.mark.xdist_group("dagster_dev")  # with the UI tests: the demos share .local/keys and .local/demo-fi
@pytest.mark.timeout(900)
def test_the_demo_stops_on_the_first_sigint_with_its_servers_and_runs(tmp_path: Path) -> None:
    environment = {k: v for k, v in command_environment(tmp_path).items() if not k.startswith("S3_SHARING_")}
    environment |= {
        "S3_SHARING_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "S3_SHARING_AUDIT_SECRET_KEY_FILE": str(LOCAL_DIR / "keys" / "audit.sec"),
    }
    command = [sys.executable, "-m", "s3_sharing.cli", "demo", "--hours", "3"]
    command += ["--env-file", str(tmp_path / "endpoints.env")]
    stopped = interrupt(command, environment, tmp_path / "demo.log", signal.SIGINT)
    assert len(stopped.servers) >= 3, "moto, the GCS emulator and PostgreSQL ran under the demo"
    assert_stopped(stopped, "demo", signal.SIGINT)
    no_run_started(Path(environment["DAGSTER_HOME"]))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_deliver_over_a_range_stops_on_the_first_signal(built, stack, tmp_path, sig) -> None:
    environment = command_environment(tmp_path)
    command = [sys.executable, "-m", "s3_sharing.cli", "deliver"]
    command += ["--from", "2026-01-01-00:00", "--to", "2026-01-01-23:00"]
    stopped = interrupt(command, environment, tmp_path / "deliver.log", sig)
    assert_stopped(stopped, "deliver", sig)
    assert sum("windows, " in line for line in stopped.printed.splitlines()) < 24, "it did not go on"
    no_run_started(Path(environment["DAGSTER_HOME"]))
