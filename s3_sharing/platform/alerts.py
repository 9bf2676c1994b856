"""The alert sensors every code location has: one alert per failed run of the location's jobs,
and one per failed asset check evaluation (open-source Dagster has no built-in alert on a check)."""

import dagster as dg

from s3_sharing.platform.notify import Alert, Notifier


def _check_alert(evaluation: dg.AssetCheckEvaluation) -> Alert:
    asset = evaluation.asset_key.to_user_string()
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    details = [
        f"{name}: {metadata[name]}"
        for name in (
            *("missing", "mismatched", "findings", "foreign_rows", "reason", "error"),  # deliveries
            *("unaccounted", "rows_rejected", "rows_orphaned", "days_since_last_file"),  # imports
        )
        if metadata.get(name)
    ]
    return Alert(
        kind="check_failed",
        title=f"{asset}: check {evaluation.check_name} failed ({evaluation.severity.value})",
        text="\n".join(details) or "see the check's metadata in the Dagster UI",
        business_id=evaluation.asset_key.path[-1],
    )


def _alert_failed_checks(instance: dg.DagsterInstance, run_id: str, notifier: Notifier) -> None:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    for record in records.records:
        event = record.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event else None
        if isinstance(evaluation, dg.AssetCheckEvaluation) and not evaluation.passed:
            notifier.send(_check_alert(evaluation))


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="check_failure_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One alert per failed asset check evaluation of a run that succeeded.",
)
def check_failure_alerts(context: dg.RunStatusSensorContext, notifier: Notifier) -> None:
    _alert_failed_checks(context.instance, context.dagster_run.run_id, notifier)


@dg.run_failure_sensor(
    name="run_failure_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One alert per failed run, and one per failed check evaluation in it.",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, notifier: Notifier) -> None:
    run = context.dagster_run
    notifier.send(
        Alert(
            kind="run_failed",
            title=f"run {run.run_id[:8]} of {run.job_name} failed",
            text=context.failure_event.message or "see the run in the Dagster UI",
            partition=run.tags.get("dagster/partition"),
        )
    )
    _alert_failed_checks(context.instance, run.run_id, notifier)


def alert_definitions() -> dg.Definitions:
    """Both alert sensors, for a location to merge: each watches that location's own runs."""
    return dg.Definitions(sensors=[check_failure_alerts, run_failure_alerts])
