"""Crawlers, known by their user agent (`BOT_USER_AGENT_PATTERNS`).

A crawler's visit is not a shopper's behaviour: its events are not stored (`ingestion.ingest`),
so they count in no trending list, pair, analytics figure or model, and it gets no session
(`tracking.is_bot`), so crawling the shop writes no session rows. A user agent is only a guess:
a signed-in user's events and purchases are stored whatever it says. Training still drops events of
such agents that came in another way (an import, or patterns added since: `preprocessing`);
`forget_crawler_events()` deletes those stored before a pattern was added, so that they stop
counting in trending lists, pairs and analytics too.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from django.db.models import QuerySet

from recommendations.conf import rec_settings
from recommendations.models import Event, EventType
from recommendations.progress import Progress

logger = logging.getLogger(__name__)

# Agents per DELETE; each deletes its events in batches of `batch_size`.
AGENTS_PER_BATCH = 100


def bot_user_agents() -> re.Pattern[str]:
    """`BOT_USER_AGENT_PATTERNS` as one pattern (one that matches nothing when there are none)."""
    return re.compile("|".join(rec_settings.BOT_USER_AGENT_PATTERNS) or r"(?!)", re.IGNORECASE)


def is_bot_agent(user_agent: str | None) -> bool:
    """Whether this user agent is a crawler's (an empty one is not: server code sends none)."""
    return bool(user_agent) and bool(bot_user_agents().search(user_agent))


@dataclass(frozen=True)
class ForgottenCrawlers:
    """What `forget_crawler_events()` deleted."""

    agents: int
    events: int
    seconds: float


def forget_crawler_events(progress: Progress | None = None, *, batch_size: int = 10_000) -> ForgottenCrawlers:
    """Delete the stored events that ingestion would refuse now as a crawler's.

    Run it after adding a pattern to `BOT_USER_AGENT_PATTERNS`: the events stored before it
    count in trending lists, pairs and analytics until deleted (the hourly refresh recomputes
    those from what remains; training skips them already). The same rule as at ingestion: a
    signed-in user's events and purchases are kept whatever their agent says. Each batch is its
    own statement, so an interrupted run leaves whole events and can simply run again.
    """
    started = time.perf_counter()
    progress = progress or Progress()
    stored_agents = (
        _refused_unless_signed_in()
        .filter(context__has_key="user_agent")
        .values_list("context__user_agent", flat=True)
        .distinct()
    )
    agents = [agent for agent in stored_agents.iterator() if isinstance(agent, str) and is_bot_agent(agent)]
    deleted = 0
    for start in range(0, len(agents), AGENTS_PER_BATCH):
        progress("deleting crawler events", start, len(agents))
        theirs = _refused_unless_signed_in().filter(
            context__user_agent__in=agents[start : start + AGENTS_PER_BATCH]
        )
        while ids := list(theirs.values_list("pk", flat=True)[:batch_size]):
            deleted += Event.objects.filter(pk__in=ids).delete()[0]
    progress("deleting crawler events", len(agents), len(agents))
    seconds = time.perf_counter() - started
    logger.info("Deleted %s event(s) of %s crawler user agent(s) in %.1fs", deleted, len(agents), seconds)
    return ForgottenCrawlers(agents=len(agents), events=deleted, seconds=seconds)


def _refused_unless_signed_in() -> QuerySet[Event]:
    """The events a crawler's user agent gets refused at ingestion (`ingestion._without_crawlers`):
    anonymous ones other than purchases."""
    return Event.objects.filter(user__isnull=True).exclude(event_type=EventType.PURCHASE)
