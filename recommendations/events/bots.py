"""Crawlers, known by their user agent (`BOT_USER_AGENT_PATTERNS`).

A crawler's visit is not a shopper's behaviour: its events are not stored (`ingestion.ingest`),
so they count in no trending list, pair, analytics figure or model, and it gets no session
(`tracking.is_bot`), so crawling the shop writes no session rows. A user agent is only a guess:
a signed-in user's events and purchases are stored whatever it says. Training still drops events of
such agents that came in another way (an import, or patterns added since: `preprocessing`).
"""

import re

from recommendations.conf import rec_settings


def bot_user_agents() -> re.Pattern[str]:
    """`BOT_USER_AGENT_PATTERNS` as one pattern (one that matches nothing when there are none)."""
    return re.compile("|".join(rec_settings.BOT_USER_AGENT_PATTERNS) or r"(?!)", re.IGNORECASE)


def is_bot_agent(user_agent: str | None) -> bool:
    """Whether this user agent is a crawler's (an empty one is not: server code sends none)."""
    return bool(user_agent) and bool(bot_user_agents().search(user_agent))
