"""Alerts to people: Slack when a token is configured, a JSON webhook when a URL is, else the log."""

import json
import logging
import urllib.request
from dataclasses import asdict, dataclass

import dagster as dg

LOG = logging.getLogger("s3_sharing.alerts")


@dataclass(frozen=True)
class Alert:
    """What went wrong, for whom: never secrets, only names, partitions and descriptions."""

    kind: str  # "check_failed", "run_failed", "window_missed"
    title: str
    text: str
    business_id: str | None = None
    partition: str | None = None

    def payload(self) -> dict[str, str | None]:
        return asdict(self)


class Notifier(dg.ConfigurableResource):
    """Where alerts go. Configure ``slack_token`` or ``webhook_url`` with ``dg.EnvVar``."""

    slack_token: str | None = None
    slack_channel: str = "#data-sharing-alerts"
    webhook_url: str | None = None
    timeout_seconds: float = 10.0

    def send(self, alert: Alert) -> str:
        """Deliver the alert; returns the channel used."""
        if self.slack_token:
            from dagster_slack import SlackResource

            client = SlackResource(token=self.slack_token).get_client()
            client.chat_postMessage(channel=self.slack_channel, text=f"*{alert.title}*\n{alert.text}")
            return "slack"
        if self.webhook_url:
            request = urllib.request.Request(
                self.webhook_url,
                data=json.dumps(alert.payload()).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            urllib.request.urlopen(request, timeout=self.timeout_seconds).close()
            return "webhook"
        LOG.warning("%s: %s", alert.title, alert.text)
        return "log"
