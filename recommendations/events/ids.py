"""Event ids: what makes an event stored once however often it is sent.

An event id is 1-64 characters of letters, digits, `_`, `-`, `.` or `:`. Server code and
importers derive ids from their data (`stable_event_id`: `order:<order pk>:<product pk>`), so a
re-sent signal or a re-imported file stores nothing twice; ids a browser chooses are hashed with
its session (`session_event_id`), so they never meet the others; events sent without one get a
random id (`models.events.new_event_id`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from itertools import repeat

EVENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
# Ids a browser session chooses are stored as `browser:<hash of session and id>`
# (`session_event_id`), apart from the ids server code and importers derive from their data.
BROWSER_EVENT_NAMESPACE = "browser"
# Ids one per line, all checked by one match: the ids of a whole import batch in a single C call.
EVENT_ID_LINES_PATTERN = re.compile(r"(?:[A-Za-z0-9_.:\-]{1,64}\n)*")


def stable_event_id(namespace: str, *parts: object) -> str:
    """A deterministic event id from source data, so re-sending or re-importing stores nothing twice.

    Readable (`amazon-beauty:A1YJEY40YUW4SE:B004756YJA`) when it fits and no part contains a
    colon; otherwise the namespace and a hash of the parts.
    """
    texts = [str(p) for p in parts]
    readable = ":".join((namespace, *texts))
    if len(readable) <= 64 and readable.count(":") == len(texts) and EVENT_ID_PATTERN.fullmatch(readable):
        return readable
    return hashed_event_id(namespace, "\x1f".join(texts))


def session_event_id(session_id: str, event_id: str) -> str:
    """The id stored for an `event_id` a browser session chose: its own namespace and a hash.

    Server code and importers derive ids from their data (`order:<order pk>:<product pk>`),
    which a visitor can guess. Stored as sent, a browser's ids would share that space, and a
    visitor could claim the ids of orders not yet placed so that their purchases are never
    stored. Hashed with the session, they cannot collide with another sender's ids, and a
    session's retries (the beacon's) still store each event once.
    """
    return hashed_event_id(BROWSER_EVENT_NAMESPACE, f"{session_id}\x1f{event_id}")


def hashed_event_id(namespace: str, text: str) -> str:
    """The namespace and a blake2b of `text`: the form of `stable_event_id` when the readable
    one does not fit (a hashed id must stay the same across imports)."""
    return f"{namespace[:39]}:{hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}"


def stable_event_ids(namespace: str, keys: Sequence[Sequence[str]]) -> list[str]:
    """`stable_event_id(namespace, *key)` for each key, for a whole batch given by key part:
    `keys` holds one column (of strings) per part, all as long.

    Readable ids are joined in C and checked at once: one pattern match over all of them, and
    no colon in any part. A batch where that fails goes id by id.
    """
    if not keys:
        return []
    parts: list[Iterable[str]] = [repeat(f"{namespace}:"), keys[0]]
    for column in keys[1:]:
        parts += [repeat(":"), column]
    texts = all(set(map(type, column)) <= {str} for column in keys)
    if texts and ":" not in namespace and not any(":" in "".join(column) for column in keys):
        readable = list(map("".join, zip(*parts, strict=False)))  # strict=False: repeat() never ends
        if EVENT_ID_LINES_PATTERN.fullmatch("\n".join(readable) + "\n"):
            return readable
    return [stable_event_id(namespace, *key) for key in zip(*keys, strict=True)]
