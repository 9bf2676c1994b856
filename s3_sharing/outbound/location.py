"""The outbound code location: dbt's marts (transform), the deliveries and their certification,
and the platform's alerts on them. Nothing is read from the environment at import; ``defs`` reads
it when Dagster loads the location."""

import dagster as dg

from s3_sharing.outbound.definitions import build_outbound_definitions
from s3_sharing.platform.alerts import alert_definitions
from s3_sharing.platform.resources import build_resources
from s3_sharing.platform.settings import Settings
from s3_sharing.platform.time import hourly_partitions
from s3_sharing.transform.dbt_assets import DbtAssets


def build_outbound_location(settings: Settings) -> dg.Definitions:
    dbt = DbtAssets(settings, hourly_partitions(settings.partition_start))
    return dg.Definitions.merge(
        dbt.definitions(),
        build_outbound_definitions(settings, dbt),
        alert_definitions(),
        dg.Definitions(resources=build_resources(settings)),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Built when Dagster loads the location, so the environment is read then, not at import."""
    return build_outbound_location(Settings.from_env())
