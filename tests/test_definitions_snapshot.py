"""Each code location's shape for the demo registries, compared with its committed snapshot
(``tests/snapshots/<location>.json``).

Every asset (group, partitions, upstream), check, job (with its selection), schedule and sensor.
A change to any of them fails here until the snapshot is updated on purpose:
``UPDATE_SNAPSHOT=1 pytest tests/test_definitions_snapshot.py``.
"""

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from s3_sharing.inbound.location import build_inbound_location
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.platform.settings import REPO_ROOT, Settings
from tests.conftest import with_worker_dbt

SNAPSHOTS = Path(__file__).parent / "snapshots"
LOCATIONS = {"outbound": build_outbound_location, "inbound": build_inbound_location}


def _demo_registry(tmp_path: Path, public_key: Path) -> Path:
    """The demo registry as shipped, with every business's key file pointing at a test key."""
    document = yaml.safe_load((REPO_ROOT / "registry" / "demo.yaml").read_text())
    for business in document["businesses"]:
        business["public_key"] = {"file": str(public_key)}
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    return path


def _partitions(definition: dg.PartitionsDefinition | None) -> str | None:
    return None if definition is None else f"{type(definition).__name__}: {definition}"


def _check_names(keys) -> list[str]:
    return sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in keys)


def describe(defs: dg.Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets = {
        key.to_user_string(): {
            "group": node.group_name,
            "partitions": _partitions(node.partitions_def),
            "upstream": sorted(parent.to_user_string() for parent in node.parent_keys),
            "executable": node.is_executable,
        }
        for key in sorted(graph.get_all_asset_keys())
        for node in [graph.get(key)]
    }
    checks = _check_names(graph.asset_check_keys)
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name == "__ASSET_JOB":
            continue
        jobs[job.name] = {
            "partitions": _partitions(job.partitions_def),
            "assets": sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys),
            "checks": sorted(
                f"{c.asset_key.to_user_string()}:{c.name}"
                for c in job.asset_layer.asset_graph.asset_check_keys
            ),
        }
    schedules = {
        s.name: {
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "job": s.job_name,
            "status": str(s.default_status),
        }
        for s in map(defs.resolve_schedule_def, sorted(s.name for s in defs.schedules or ()))
    }
    sensors = {
        s.name: {
            "jobs": sorted(j.name for j in s.jobs) if s.has_jobs else [],
            "interval": s.minimum_interval_seconds,
            "type": str(s.sensor_type),
            "status": str(s.default_status),
        }
        for s in map(defs.resolve_sensor_def, sorted(s.name for s in defs.sensors or ()))
    }
    return {"assets": assets, "checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors}


@pytest.mark.parametrize("location", sorted(LOCATIONS))
def test_each_location_matches_its_committed_snapshot(location, tmp_path, monkeypatch, keys, dbt_manifest):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = Settings.from_env(
        with_worker_dbt(
            {
                "S3_SHARING_REGISTRY": str(_demo_registry(tmp_path, keys["acme"].public)),
                "S3_SHARING_PARTITION_START": "2026-01-01-00:00",
                "S3_SHARING_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
            }
        )
    )
    found = describe(LOCATIONS[location](settings))
    snapshot = SNAPSHOTS / f"{location}.json"
    if os.environ.get("UPDATE_SNAPSHOT"):
        snapshot.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    expected = json.loads(snapshot.read_text())
    for part in ("assets", "checks", "jobs", "schedules", "sensors"):
        assert found[part] == expected[part], f"{part} differ from {snapshot.name}"
