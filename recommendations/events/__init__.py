"""Behaviour events: the ways in (track(), host signals, REST, beacon, importers), validation,
idempotent storage, sessions, and the preprocessing that turns stored events into training rows.

Models are not imported here, so `import recommendations.events` is safe before apps load.
"""
