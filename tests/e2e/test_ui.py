"""The real UI stack end to end: ``dagster dev`` (webserver, daemon, code server, run workers)
against the local endpoints; a partition backfill launched through GraphQL as the UI launches it,
run by the daemon; then the delivery asset's page in headless Chromium.

Nothing is mocked. Screenshots are saved to ``test-artifacts/``.
"""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from s3_sharing.cli.runbook import verify
from s3_sharing.devtools.dagster_dev import LOCAL_INSTANCE, DagsterDev, dagster_dev
from s3_sharing.devtools.ports import free_port
from s3_sharing.outbound.datasets import SOURCES
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.platform.settings import LOCAL_DIR, REPO_ROOT, Settings
from s3_sharing.platform.storage import GcsArchive
from s3_sharing.transform.dbt_assets import REFERENCE_MODELS_JOB
from tests.conftest import ARCHIVE

pytestmark = [pytest.mark.e2e, pytest.mark.ui, pytest.mark.xdist_group("dagster_dev")]  # one at a time

ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
HOURS = [f"2026-01-01-{hour:02d}:00" for hour in range(3)]  # a backfill of several windows
BUSINESSES = ("acme", "globex")
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""
BACKFILL_STATUS = """
query ($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
    ... on PartitionBackfill { status
        runs(limit: 100) { runId status assetSelection { path } tags { key value } } } } }
"""
CHECK_EXECUTIONS = """
query ($key: AssetKeyInput!, $check: String!) {
    assetCheckExecutions(assetKey: $key, checkName: $check, limit: 100) { runId status } }
"""
CHECKS = ("delivered", "keys_valid", "tenant_isolation")
LAUNCH_RUN = """
mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
    ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } } } }
"""
RUN_STATUS = """
query ($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }
"""
SENSOR_TICKS = """
query { sensorsOrError(repositorySelector: {repositoryLocationName: "outbound",
                                            repositoryName: "__repository__"}) {
    ... on Sensors { results { name sensorState { ticks(limit: 50) { status error { message } } } } } } }
"""


def _poll(read, done, timeout: float, what: str):
    """``read()`` every few seconds until ``done(value)``; the last value."""
    deadline = time.monotonic() + timeout
    while not done(value := read()):
        assert time.monotonic() < deadline, f"{what} not finished after {timeout:.0f}s: {value}"
        time.sleep(3)
    return value


def _wait_for_backfill(ui: DagsterDev, backfill_id: str, timeout: float = 600) -> dict:
    return _poll(
        lambda: ui.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"],
        lambda backfill: backfill["status"] in FINISHED,
        timeout,
        f"backfill {backfill_id}",
    )


def _run_to_completion(ui: DagsterDev, params: dict, timeout: float = 300) -> str:
    launched = ui.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    status = _poll(
        lambda: ui.graphql(RUN_STATUS, {"id": run_id})["runOrError"]["status"],
        lambda value: value in ("SUCCESS", "FAILURE"),
        timeout,
        f"run {run_id}",
    )
    assert status == "SUCCESS", run_id
    return run_id


def _selected(run: dict) -> list[list[str]]:
    return [key["path"] for key in run["assetSelection"]]


def _runs_delivering(runs: list[dict], business_id: str) -> dict[str, str]:
    """Run id → partition, for the runs that materialized the business's delivery asset."""
    return {
        run["runId"]: {tag["key"]: tag["value"] for tag in run["tags"]}["dagster/partition"]
        for run in runs
        if ["deliveries", business_id] in _selected(run)
    }


def _check_statuses(ui: DagsterDev, business_id: str, check: str) -> dict[str, set[str]]:
    """Run id → statuses of the check's execution records on the business's delivery asset.

    A daemon-launched partitioned run also records a *planned* execution for the run's partition,
    which Dagster 1.13 reports as SKIPPED beside the (unpartitioned) evaluation: see checks.py.
    """
    key = {"path": ["deliveries", business_id]}
    statuses: dict[str, set[str]] = {}
    for execution in ui.graphql(CHECK_EXECUTIONS, {"key": key, "check": check})["assetCheckExecutions"]:
        statuses.setdefault(execution["runId"], set()).add(execution["status"])
    return statuses


def _screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.mark.timeout(1200)
def test_a_backfill_launched_through_graphql_is_delivered_certified_and_shown_in_the_ui(
    settings: Settings, stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The staging views are unpartitioned: built once, recorded in the instance the UI reads.
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(LOCAL_INSTANCE)
    with monkeypatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(dagster_home))
        with dg.DagsterInstance.get() as instance:
            job = build_outbound_location(settings).resolve_job_def(REFERENCE_MODELS_JOB)
            job.execute_in_process(instance=instance)

    # The daemon runs the schedules too: keep their ticks half an hour away from this test's runs.
    quiet_minute = str((datetime.now(UTC).minute + 30) % 60)
    environment = {**stack.environment(), "S3_SHARING_SCHEDULE_MINUTE": quiet_minute}
    log = tmp_path / "dagster_dev.log"
    with log.open("wb") as output, dagster_dev(dagster_home, environment, output=output) as ui:
        ui.wait_until_loaded()
        marts = [{"path": ["marts", source.model]} for source in SOURCES.values()]
        deliveries = [{"path": ["deliveries", b]} for b in BUSINESSES]
        launched = ui.graphql(
            LAUNCH_BACKFILL,
            {"params": {"assetSelection": marts + deliveries, "partitionNames": HOURS, "title": "e2e"}},
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched

        backfill = _wait_for_backfill(ui, launched["backfillId"])
        failed = [r for r in backfill["runs"] if r["status"] != "SUCCESS"]
        assert backfill["status"] == "COMPLETED_SUCCESS" and not failed, (backfill, log.read_text()[-5000:])
        # dbt ran once for all the hours (single-run backfill policy); each business's delivery ran
        # once per hour. The daemon may start two businesses' deliveries of an hour in one run or in
        # two (it launches them as their marts' materializations arrive), so that is not counted.
        dbt_runs = [r for r in backfill["runs"] if any(path[0] == "marts" for path in _selected(r))]
        assert len(dbt_runs) == 1, backfill["runs"]
        delivery_runs = {b: _runs_delivering(backfill["runs"], b) for b in BUSINESSES}
        for business_id, runs in delivery_runs.items():
            assert sorted(runs.values()) == HOURS, (business_id, runs)

        # Objects and manifests are in S3 and GCS and match the warehouse, window by window.
        start = datetime(2026, 1, 1, 0, tzinfo=UTC)
        end = start + timedelta(hours=len(HOURS))
        verdicts = verify(settings, start, end, BUSINESSES)
        assert {(v.business_id, v.partition) for v in verdicts} == {(b, h) for b in BUSINESSES for h in HOURS}
        assert all(v.ok for v in verdicts), [v.describe() for v in verdicts if not v.ok]
        assert sum(v.status == "delivered" for v in verdicts) >= len(HOURS)
        expected = {f"_manifests/20260101T{hour:02d}00Z.json" for hour in range(len(HOURS))}
        for business_id in BUSINESSES:
            archived = GcsArchive(bucket=ARCHIVE).listing(f"{business_id}/")
            assert {n.rsplit("/", 2)[-2] + "/" + n.rsplit("/", 1)[-1] for n in archived} >= expected

        # Every check ran in every delivery run of the backfill, and passed.
        for business_id in BUSINESSES:
            for check in CHECKS:
                statuses = _check_statuses(ui, business_id, check)
                assert set(statuses) == set(delivery_runs[business_id]), (business_id, check)
                for found in statuses.values():
                    assert "SUCCEEDED" in found and not found & {"FAILED", "EXECUTION_FAILED"}, found

        # As the hourly certification_schedule does (launched here through GraphQL, for the
        # backfill's windows): it certifies after all concurrent delivery runs, so the UI shows the checks'
        # status for the latest materialization (a delivery run's check may finish before another
        # run's materialization, and Dagster then shows "not evaluated" until this run).
        certification = _run_to_completion(
            ui,
            {
                "selector": {
                    "repositoryLocationName": "outbound",
                    "repositoryName": "__repository__",
                    "jobName": "certify_deliveries_job",
                    "assetCheckSelection": [
                        {"assetKey": {"path": ["deliveries", b]}, "name": c}
                        for b in BUSINESSES
                        for c in CHECKS
                    ],
                },
                "runConfigData": {
                    "ops": {"hourly_delivery_checks": {"config": {"last": HOURS[-1], "lookback": len(HOURS)}}}
                },
            },
        )
        for business_id in BUSINESSES:
            for check in CHECKS:
                assert _check_statuses(ui, business_id, check)[certification] == {"SUCCEEDED"}

        # The daemon ran every sensor meanwhile (before the marts existed, and after), and no tick failed.
        sensors = ui.graphql(SENSOR_TICKS)["sensorsOrError"]["results"]
        ticks = {sensor["name"]: sensor["sensorState"]["ticks"] for sensor in sensors}
        assert set(ticks) == {
            "delivery_watchdog",
            "daily_sharing_sensor",  # initech is daily; no business is weekly
            "check_failure_alerts",
            "run_failure_alerts",
        }
        for name, found in ticks.items():
            assert found, f"{name} never ticked"
            assert not [t for t in found if t["status"] == "FAILURE"], (name, found)

        ui.skip_welcome()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            try:
                _look_at_the_delivery_in_the_ui(page, ui.url)
            finally:
                _screenshot(page, "last-page.png")
                browser.close()


def _look_at_the_delivery_in_the_ui(page: Page, url: str) -> None:
    """The partitions tab: each backfilled hour materialized, none failed; the last one's metadata;
    then the checks tab: the three checks, passed."""
    page.goto(f"{url}/assets/deliveries/acme?view=partitions")
    expect(page.get_by_text(f"Materialized ({len(HOURS)})")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Failed (0)")).to_be_visible()
    page.get_by_text("Missing (").click()  # hide the thousands of later, never-run hours
    listed = page.get_by_title(re.compile(r"^\d{4}-\d\d-\d\d-\d\d:00$"))  # the partition list's entries
    expect(listed).to_have_count(len(HOURS))
    assert sorted(entry.get_attribute("title") for entry in listed.all()) == HOURS
    page.get_by_title(HOURS[-1], exact=True).click()
    manifest = f"_manifests/20260101T{len(HOURS) - 1:02d}00Z.json"
    expect(page.get_by_text(f"s3://acme-bucket/shared/{manifest}")).to_be_visible()
    expect(page.get_by_text(f"gs://{ARCHIVE}/acme/{manifest}")).to_be_visible()
    _screenshot(page, "deliveries-acme-partitions.png")

    page.goto(f"{url}/assets/deliveries/acme?view=checks")
    expect(page.get_by_text(f"Checks ({len(CHECKS)})")).to_be_visible(timeout=60_000)
    for check in CHECKS:
        expect(page.get_by_text(check, exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded")).to_have_count(len(CHECKS))
    expect(page.get_by_text("Passed", exact=True)).to_be_visible()
    _screenshot(page, "deliveries-acme-checks.png")


LATEST_DELIVERY = """
query ($key: AssetKeyInput!) { assetOrError(assetKey: $key) {
    ... on Asset { assetMaterializations(limit: 1) { partition runId } } } }
"""


@pytest.mark.timeout(900)
def test_make_dev_runs_the_demo_then_serves_it_in_the_ui_until_interrupted(tmp_path: Path) -> None:
    """``make dev`` is ``s3-sharing demo --ui``: the demo day, then the UI on those runs with the
    endpoints still up; Ctrl-C stops the UI, the endpoints and removes the environment file.
    Three hours of demo data are enough here: ``make demo`` in CI runs the whole day."""
    port, env_file, output = free_port(), tmp_path / "endpoints.env", tmp_path / "dev.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("S3_SHARING_")}
    environment |= {
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "S3_SHARING_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "S3_SHARING_AUDIT_SECRET_KEY_FILE": str(LOCAL_DIR / "keys" / "audit.sec"),
    }
    command = [sys.executable, "-m", "s3_sharing.cli", "demo", "--hours", "3", "--ui", "--port", str(port)]
    with output.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--env-file", str(env_file)], env=environment, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 600
            while f"Dagster UI: http://127.0.0.1:{port}" not in output.read_text():
                assert process.poll() is None and time.monotonic() < deadline, output.read_text()[-3000:]
                time.sleep(2)
            printed = output.read_text()
            assert re.search(r"verify: (\d+) of \1 windows certified", printed), printed[-3000:]
            assert "AWS_ENDPOINT_URL=http://127.0.0.1:" in env_file.read_text()

            ui = DagsterDev(f"http://127.0.0.1:{port}", process)
            latest = ui.graphql(LATEST_DELIVERY, {"key": {"path": ["deliveries", "acme"]}})["assetOrError"]
            assert latest["assetMaterializations"], "the demo's deliveries are in the UI's instance"
        finally:
            process.send_signal(signal.SIGINT)  # Ctrl-C
            assert process.wait(timeout=90) == 0, output.read_text()[-3000:]
    assert not env_file.exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
