"""The s3_sharing code location (``dagster dev -w workspace.yaml``)."""

import dagster as dg

from s3_sharing.location import build_definitions
from s3_sharing.settings import Settings


@dg.definitions
def defs() -> dg.Definitions:
    """Built when Dagster loads the location, so the environment is read then, not at import."""
    return build_definitions(Settings.from_env())
