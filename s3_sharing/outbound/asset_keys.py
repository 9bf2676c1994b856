"""The asset key of each business's delivery, ``deliveries/<business_id>``: what assets, checks,
jobs, sensors and the runbook all name."""

import dagster as dg

DELIVERIES_GROUP = "deliveries"


def delivery_key(business_id: str) -> dg.AssetKey:
    return dg.AssetKey([DELIVERIES_GROUP, business_id])
