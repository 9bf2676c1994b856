"""What a window of a business holds, as a warehouse query: the changes received in the window, or
each user's snapshot as of its end (README, "What a window holds"). Delivery and certification ask
the same query, so what is certified is exactly what was delivered."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from s3_sharing.outbound.datasets import SOURCES, SUMMARIES, Contents, Dataset
from s3_sharing.outbound.registry import Business
from s3_sharing.platform.time import Window
from s3_sharing.platform.warehouse import (
    LatestQuery,
    Query,
    Relation,
    WindowQuery,
    count_of,
    naive_utc,
    ordered,
)


@dataclass(frozen=True)
class AnalyticsSnapshotQuery:
    """ANALYTICS of a snapshot: the FI_DATA snapshot summed per user and category, failed rows left
    out, in the columns of the ``analytics`` mart (the key is user and category)."""

    fi_data: LatestQuery
    window_start: datetime
    order_by: tuple[str, ...] = ()

    @property
    def relation(self) -> Relation:
        return self.fi_data.relation

    @property
    def sorts(self) -> bool:
        return True  # the snapshot under it is the newest version of each key

    def parameters(self) -> dict[str, Any]:
        return self.fi_data.parameters() | {"window_start": naive_utc(self.window_start)}

    def render(self, table: str, quote: Callable[[str], str], marker: Callable[[str], str]) -> str:
        amount, direction = quote("amount"), quote("direction")
        debit = f"sum(case when {direction} = 'debit' then {amount} else 0 end)"
        credit = f"sum(case when {direction} = 'credit' then {amount} else 0 end)"
        user, category = quote("user_id"), quote("category")
        sql = (
            f"select concat({user}, '|', {category}) as analytics_id, {quote('business_id')}, {user}, "
            f"{marker('window_start')} as window_start, {category}, count(*) as transaction_count, "
            f"{debit} as debit_amount, {credit} as credit_amount, {credit} - {debit} as net_amount, "
            f"max({quote('updated_at')}) as updated_at "
            f"from ({self.fi_data.render(table, quote, marker)}) as snapshot "
            f"where {quote('status')} != 'failed' group by {quote('business_id')}, {user}, {category}"
        )
        return ordered(sql, self.order_by, quote)

    def render_count(self, table: str, quote: Callable[[str], str], marker: Callable[[str], str]) -> str:
        return count_of(AnalyticsSnapshotQuery(self.fi_data, self.window_start).render(table, quote, marker))


def window_query(
    business: Business,
    dataset: Dataset,
    window: Window,
    relations: Mapping[Dataset, Relation],
    order_by: tuple[str, ...] = (),
) -> Query:
    """The rows of ``dataset`` that ``business``'s delivery of ``window`` holds."""
    source = SOURCES[dataset]
    owner = (("business_id", business.id),)
    if business.contents is Contents.CHANGES:
        return WindowQuery(
            relations[dataset], source.window_column, window.start, window.end, owner, order_by=order_by
        )
    if dataset in SUMMARIES:
        return AnalyticsSnapshotQuery(
            _snapshot(business, SUMMARIES[dataset], window, relations), window.start, order_by
        )
    return _snapshot(business, dataset, window, relations, order_by)


def _snapshot(
    business: Business,
    dataset: Dataset,
    window: Window,
    relations: Mapping[Dataset, Relation],
    order_by: tuple[str, ...] = (),
) -> LatestQuery:
    source = SOURCES[dataset]
    assert source.version_column is not None  # an aggregate is summarised, never versioned
    lookback = business.lookback_days is not None and source.event_column is not None
    return LatestQuery(
        relations[dataset],
        source.key_column,
        source.version_column,
        source.window_column,
        window.end,
        (("business_id", business.id),),
        since_column=source.event_column if lookback else None,
        since=window.end - timedelta(days=business.lookback_days or 0) if lookback else None,
        order_by=order_by,
    )
