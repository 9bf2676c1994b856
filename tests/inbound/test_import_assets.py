"""The Dagster side of scheduled imports: assets per source and entity, a job and a schedule per
source; run in process against moto (IAM enforced), the GCS emulator and a real PostgreSQL."""

import dagster as dg
import pytest

from s3_sharing.inbound.assets import import_job_name, import_key
from s3_sharing.inbound.location import build_inbound_location
from s3_sharing.platform.settings import Settings

from .conftest import source_entry, write_sources
from .test_importer import EVENT_HEADER, RISK_HEADER, drop, rows

pytestmark = pytest.mark.e2e

KEY_PAIR = {
    "bucket": "pirani-exports",
    "region": "eu-west-1",
    "access_key_id_env": "KEYS_ONLY_AWS_ACCESS_KEY_ID",
    "secret_access_key_env": "KEYS_ONLY_AWS_SECRET_ACCESS_KEY",
}
SOURCES = [
    source_entry(),
    source_entry("keys_only", connection=KEY_PAIR, active=False),
]


def definitions(settings, sources_file, postgres, monkeypatch) -> dg.Definitions:
    monkeypatch.setenv("S3_SHARING_IMPORT_SOURCES", str(sources_file))
    monkeypatch.setenv("S3_SHARING_PG_DSN", postgres.dsn)
    return build_inbound_location(Settings.from_env())


@pytest.mark.parametrize("sources_file", [SOURCES], indirect=True)
def test_a_source_job_imports_parents_first_and_records_each_file_as_a_materialization(
    settings, sources_file, customer, postgres, monkeypatch
):
    defs = definitions(settings, sources_file, postgres, monkeypatch)
    drop(customer, "riesgos/1.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "3", ""]])
    drop(
        customer,
        "riesgos/2.csv",
        RISK_HEADER,
        [["R-2", "Crédito", "credit", "", ""], ["R-3", "", "", "", ""]],
    )
    drop(customer, "eventos/1.csv", EVENT_HEADER, [["E-1", "R-2", "Impago", "2026-01-05", "99.90"]])

    result = defs.resolve_job_def(import_job_name("pirani")).execute_in_process()

    assert result.success
    materialized = result.get_asset_materialization_events()
    by_asset: dict[str, list[dict]] = {}
    for event in materialized:
        entity = event.asset_key.path[-1]
        by_asset.setdefault(entity, []).append(
            {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}
        )
    files = [m for m in by_asset["risks"] if "key" in m]
    assert [(m["key"], m["status"], m.get("rows_rejected", 0)) for m in files] == [
        ("riesgos/1.csv", "imported", 0),
        ("riesgos/2.csv", "imported", 1),
    ]
    assert files[1]["error_file"] == "s3://pirani-exports/riesgos/_errors/2.csv.errors.csv"
    assert len(files[1]["sha256"]) == 64
    summary = by_asset["risks"][-1]
    assert (summary["files_imported"], summary["rows_created"], summary["rows_rejected"]) == (2, 2, 1)
    steps = [e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]
    assert steps.index("imports__pirani__risks") < steps.index("imports__pirani__events")
    assert rows(
        postgres, "SELECT e.reference_code, r.reference_code FROM events e JOIN risks r ON r.id = e.parent_id"
    ) == [("E-1", "R-2")]

    checks = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
    assert checks[("risks", "files_accounted")].passed and checks[("events", "files_accounted")].passed
    rejected = checks[("risks", "rejected_rows")]  # 1 of 3 rows: over the default 5%
    assert not rejected.passed and rejected.severity == dg.AssetCheckSeverity.WARN
    assert rejected.metadata["share"].value == round(1 / 3, 4)
    assert checks[("events", "rejected_rows")].passed and checks[("events", "files_arriving")].passed

    again = defs.resolve_job_def(import_job_name("pirani")).execute_in_process()
    summaries = [
        e.step_materialization_data.materialization.metadata["files_imported"].value
        for e in again.get_asset_materialization_events()
    ]
    assert summaries == [0, 0], "nothing new: nothing imported twice"


@pytest.mark.parametrize("sources_file", [SOURCES], indirect=True)
def test_a_source_with_a_key_pair_imports_into_its_own_rows_and_its_inactive_schedule_is_stopped(
    settings, sources_file, customer, postgres, monkeypatch
):
    defs = definitions(settings, sources_file, postgres, monkeypatch)
    drop(customer, "riesgos/1.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "3", ""]])

    assert defs.resolve_job_def(import_job_name("keys_only")).execute_in_process().success
    assert defs.resolve_job_def(import_job_name("pirani")).execute_in_process().success

    # The same referenceCode from two customers: two rows, each its own source's.
    assert rows(postgres, "SELECT source, reference_code FROM risks ORDER BY 1") == [
        ("keys_only", "R-1"),
        ("pirani", "R-1"),
    ]
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["import_keys_only_schedule"].default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedules["import_pirani_schedule"].default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedules["import_pirani_schedule"].cron_schedule == "0 2 * * *"
    assert schedules["import_pirani_schedule"].execution_timezone == "America/Bogota"
    assert import_key("pirani", "risks") in defs.resolve_asset_graph().get_all_asset_keys()


@pytest.mark.parametrize("sources_file", [SOURCES], indirect=True)
def test_wrong_credentials_fail_only_that_source_with_a_clear_message(
    settings, sources_file, customer, postgres, monkeypatch, tmp_path
):
    drop(customer, "riesgos/1.csv", RISK_HEADER, [["R-1", "Fraude", "operational", "3", ""]])
    broken = source_entry()
    broken["connection"] = {**broken["connection"], "external_id": "not-the-agreed-one"}
    wrong = write_sources(tmp_path / "wrong.yaml", [broken, SOURCES[1]])
    defs = definitions(settings, wrong, postgres, monkeypatch)

    failed = defs.resolve_job_def(import_job_name("pirani")).execute_in_process(raise_on_error=False)

    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "import source 'pirani'" in message and "AccessDenied" in message, message
    assert defs.resolve_job_def(import_job_name("keys_only")).execute_in_process().success
    assert rows(postgres, "SELECT source FROM risks") == [("keys_only",)]
