"""Both code locations load as Dagster loads them (``dagster definitions validate`` on the real
``workspace.yaml``, each location in its own code server process), and they are two fault
domains: a delivery registry that does not parse fails the outbound location only."""

import os
import subprocess
import sys
from pathlib import Path

from s3_sharing.platform.settings import REPO_ROOT

from .conftest import with_worker_dbt


def validate() -> tuple[int, str]:
    """``dagster definitions validate -w workspace.yaml``: its exit status and what it printed."""
    command = [str(Path(sys.executable).parent / "dagster"), "definitions", "validate"]
    validated = subprocess.run(
        [*command, "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=with_worker_dbt(dict(os.environ)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    return validated.returncode, validated.stdout


def test_both_code_locations_load_in_their_own_processes(settings):
    status, printed = validate()
    assert status == 0, printed[-3000:]
    assert "All code locations passed validation" in printed


def test_a_broken_delivery_registry_fails_the_outbound_location_only(settings, tmp_path, monkeypatch):
    broken = tmp_path / "broken.yaml"
    broken.write_text("businesses:\n  - id: acme\n    cadence: hourly\n    cadence: daily\n")
    monkeypatch.setenv("S3_SHARING_REGISTRY", str(broken))
    status, printed = validate()
    assert status != 0
    assert "Validation failed for code location outbound" in printed
    assert "Validation failed for code location inbound" not in printed
    assert "business 'acme': key 'cadence' appears twice" in printed
