"""The inbound code location: scheduled imports from customers' buckets and reward points from FI
files, both into PostgreSQL, and the platform's alerts on them. No dbt and no warehouse client: a
run here loads only what inbound needs, and a delivery registry that does not parse cannot stop
it. ``defs`` reads the environment when Dagster loads the location."""

import dagster as dg

from s3_sharing.inbound.assets import build_import_definitions
from s3_sharing.inbound.rewards.assets import build_rewards_definitions
from s3_sharing.inbound.rewards.registry import read_fi_registry
from s3_sharing.inbound.sources import read_sources
from s3_sharing.platform.alerts import alert_definitions
from s3_sharing.platform.resources import build_resources, postgres_resource
from s3_sharing.platform.settings import Settings


def build_inbound_location(settings: Settings) -> dg.Definitions:
    fi_registry = read_fi_registry(settings.fi_registry) if settings.fi_registry else None
    return dg.Definitions.merge(
        build_import_definitions(read_sources(settings.import_sources)),
        *([build_rewards_definitions(fi_registry, settings.partition_start)] if fi_registry else []),
        alert_definitions(),
        dg.Definitions(resources=build_resources(settings) | {"postgres": postgres_resource(settings)}),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Built when Dagster loads the location, so the environment is read then, not at import."""
    return build_inbound_location(Settings.from_env())
