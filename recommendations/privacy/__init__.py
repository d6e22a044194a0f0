"""Privacy: the right to erasure, opt-out of personalisation and event retention.

- `erasure.forget_user(user)` deletes everything the engine holds about a person, in one
  transaction, and writes an `AuditEntry`. Tables holding personal data register a deleter
  in `registry` so erasure keeps up with new features.
- `optout.is_opted_out(user)` is asked before storing behaviour and before personalising.
- `retention.purge_expired_events()` deletes events older than `EVENT_RETENTION_DAYS`.
"""

from __future__ import annotations


def setup() -> None:
    """Connect what must run in every process; called once from the app's `ready()`."""
    from recommendations.privacy import erasure, signals  # noqa: F401 - registers the deleters

    signals.connect()
