"""Resources of the code location, chosen by the dbt target; secrets only through ``dg.EnvVar``."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtProject

from s3_sharing.dbt_models import dbt_cli
from s3_sharing.settings import Settings
from s3_sharing.warehouse import BigQueryWarehouse, DuckDBWarehouse


def warehouse_resource(settings: Settings) -> DuckDBWarehouse | BigQueryWarehouse:
    if settings.dbt_target == "prod":
        return BigQueryWarehouse(
            project=dg.EnvVar("S3_SHARING_BQ_PROJECT"),
            location=dg.EnvVar("S3_SHARING_BQ_LOCATION"),
        )
    return DuckDBWarehouse(path=str(settings.duckdb_path))


def build_resources(settings: Settings, project: DbtProject) -> dict[str, object]:
    return {
        "dbt": dbt_cli(project),
        "warehouse": warehouse_resource(settings),
    }
