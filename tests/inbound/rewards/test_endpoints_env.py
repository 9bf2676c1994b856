"""``s3-sharing endpoints`` publishes everything a runbook command needs in another shell: a fresh
shell with nothing but ``PATH`` that sources ``endpoints.env`` delivers, imports and processes FI
files (the FI landing side provisioned because an FI registry is configured)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ...conftest import with_worker_dbt


def test_a_fresh_shell_sourcing_endpoints_env_runs_deliver_imports_and_rewards(
    built, fi_registry_file: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("S3_SHARING_FI_REGISTRY", str(fi_registry_file))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    env_file = tmp_path / "endpoints.env"
    command = [sys.executable, "-m", "s3_sharing.cli", "endpoints", "--env-file", str(env_file)]
    server = subprocess.Popen(command, env=with_worker_dbt(dict(os.environ)), stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not env_file.exists():
            assert server.poll() is None and time.monotonic() < deadline, "endpoints did not start"
            time.sleep(0.2)
        runbook = (
            f"source {env_file} && cd {tmp_path}"
            " && s3-sharing deliver --from 2026-01-01-02:00 --to 2026-01-01-02:00 --business acme"
            " && s3-sharing imports run pirani_demo && s3-sharing rewards run"
        )
        fresh = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
        shell = subprocess.run(
            ["bash", "-c", runbook], env=fresh, capture_output=True, text=True, timeout=600, check=False
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    out = shell.stdout + shell.stderr
    assert shell.returncode == 0, out[-3000:]
    assert "hourly 2026-01-01-02:00: 1 delivered, 0 failed" in out
    assert "pirani_demo: no new files" in out
    assert "no new FI files" in out
    assert "not recorded" not in out  # DAGSTER_HOME came with the file
    assert list((tmp_path / "dagster_home").glob("history/runs/*.db")), "runs recorded in DAGSTER_HOME"
