"""The delivery watchdog's decisions, without Dagster: for the watched window of a cadence, whom to
redeliver, when to wait for the hourly marts instead, what to alert and what to remember so that
each missed window is requested and alerted once. The sensor (``outbound/sensors.py``) gathers
the verdicts and the unbuilt hours, and turns these decisions into run requests and alerts."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from s3_sharing.outbound.certification import Verdict
from s3_sharing.platform.notify import Alert
from s3_sharing.platform.time import Cadence

MEMORY = 500
"""How many remembered entries (``business@window``, ``waiting:cadence@window``) the cursor keeps."""


def first_few(descriptions: Sequence[str], limit: int = 5) -> str:
    """A short account for a log line or an alert: the first few, and how many more."""
    shown = "; ".join(descriptions[:limit])
    return shown + (f"; and {len(descriptions) - limit} more" if len(descriptions) > limit else "")


@dataclass(frozen=True)
class Redelivery:
    """Deliver ``business_ids`` again for ``window``; ``reason`` goes into each restated manifest."""

    cadence: Cadence
    window: str
    business_ids: list[str]
    reason: str

    @property
    def run_key(self) -> str:
        return f"watchdog:{self.cadence}:{self.window}:{','.join(self.business_ids)}"


@dataclass
class Watch:
    """One tick's decisions, built window by window from what the sensor read."""

    remembered: list[str]
    redeliveries: list[Redelivery] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    def unwatched(self, business_ids: Sequence[str], window: str) -> list[str]:
        """The businesses not already redelivered for ``window`` by an earlier tick."""
        return [b for b in business_ids if f"{b}@{window}" not in self.remembered]

    def window(
        self, cadence: Cadence, window: str, verdicts: Sequence[Verdict], unbuilt: Sequence[str]
    ) -> None:
        """Decide for one watched window: ``verdicts`` of its unwatched businesses, ``unbuilt`` the
        hourly mart partitions it still waits for (described; empty when all are built)."""
        missed = sorted((v for v in verdicts if v.status.failing), key=lambda v: v.business_id)
        if not missed:
            return
        if unbuilt:  # redelivering now would cut the window short
            waiting = f"waiting:{cadence}@{window}"
            if waiting not in self.remembered:
                self.alerts.append(
                    Alert(
                        kind="window_waiting",
                        title=f"{cadence} window {window} is late: {len(unbuilt)} hourly mart partitions "
                        "of it are not built",
                        text=first_few(unbuilt, limit=20),
                        partition=window,
                    )
                )
                self.remembered.append(waiting)
            return
        ids = [v.business_id for v in missed]
        reason = "delivery_watchdog: " + "; ".join(f"{v.business_id} {v.status}" for v in missed)
        self.redeliveries.append(Redelivery(cadence, window, ids, reason))
        self.alerts.append(
            Alert(
                kind="window_missed",
                title=f"{len(ids)} {cadence} deliveries missed window {window}; redelivery requested",
                text="\n".join(v.describe() for v in missed),
                partition=window,
            )
        )
        self.remembered += [f"{i}@{window}" for i in ids]

    def blind(self, problems: Sequence[str]) -> None:
        """The businesses the tick could not certify (each ``"<business> <window>: <error>"``)."""
        if problems:
            self.alerts.append(
                Alert(
                    kind="watchdog_blind",
                    title=f"the watchdog could not certify {len(problems)} deliveries",
                    text="\n".join(problems),
                )
            )

    def cursor(self) -> list[str]:
        return self.remembered[-MEMORY:]
