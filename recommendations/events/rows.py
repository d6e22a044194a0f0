"""`EventRow`: one valid event, as validation hands it to the writers."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from typing import Any, NamedTuple


class EventRow(NamedTuple):
    """One valid event, in the column order of the events table."""

    event_id: str
    event_type: str
    user_id: Any
    session_id: str
    product_id: str
    store_id: str
    query: str
    value: float | None
    revenue: Decimal | None
    timestamp: dt.datetime
    context: dict[str, Any]
    recommendation_id: str


# EventRow(*values) without a Python call per row: bulk paths build hundreds of thousands.
EVENT_ROW = functools.partial(tuple.__new__, EventRow)
