"""API keys for server-to-server clients of the REST API.

Only a SHA-256 hash of a key is stored: the raw key is shown once, when it is created. Keys
are 256-bit random tokens, so a fast hash is enough (there is nothing to brute-force), and
the short public `prefix` finds the row without scanning.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

from django.db import models
from django.utils import timezone


class Scope(models.TextChoices):
    EVENTS_WRITE = "events:write", "Send behaviour events"
    RECOMMENDATIONS_READ = "recommendations:read", "Read recommendations"
    AUDIENCES_READ = "audiences:read", "Read audiences and segments"


KEY_PREFIX_LENGTH = 8
KEY_PREFIX = re.compile(f"[0-9a-f]{{{KEY_PREFIX_LENGTH}}}")
# Each process trusts a key it verified for this long, which saves a query on every API
# request. A key revoked through `revoke()` or the admin stops working at once in that
# process and within this many seconds in the others.
VERIFIED_KEY_SECONDS = 5.0
VERIFIED_KEYS_MAX = 1000
_verified: dict[str, tuple[float, ApiKey]] = {}


def forget_verified_keys() -> None:
    """Drop this process's verified keys (a key was revoked)."""
    _verified.clear()


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyManager(models.Manager["ApiKey"]):
    def create_key(self, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
        """Create a key; returns the row and the raw key, which is not stored anywhere."""
        api_key = self.model(name=name, scopes=list(scopes))
        raw = api_key.set_new_key()
        api_key.save()
        return api_key, raw

    def get_for_raw_key(self, raw: str) -> ApiKey | None:
        """The live key that `raw` belongs to, or None (unknown, malformed or revoked)."""
        prefix, _, secret = raw.partition(".")
        # Prefixes are hex (`set_new_key`); anything else, a NUL byte that PostgreSQL refuses
        # in a query (a 500) included, is no key.
        if not (secret and KEY_PREFIX.fullmatch(prefix)):
            return None
        api_key = self.filter(prefix=prefix, revoked_at__isnull=True).first()
        if api_key is None or not hmac.compare_digest(api_key.key_hash, _hash(raw)):
            return None
        return api_key

    def get_verified(self, raw: str) -> ApiKey | None:
        """`get_for_raw_key`, answered from this process's verified keys for a few seconds."""
        digest, now = _hash(raw), time.monotonic()
        cached = _verified.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        api_key = self.get_for_raw_key(raw)
        if api_key is None:
            _verified.pop(digest, None)
            return None
        if len(_verified) >= VERIFIED_KEYS_MAX:
            _verified.clear()
        _verified[digest] = (now + VERIFIED_KEY_SECONDS, api_key)
        return api_key


class ApiKey(models.Model):
    """A named key with scopes (e.g. `events:write`); revoked keys stay for the audit trail."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=KEY_PREFIX_LENGTH, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyManager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def set_new_key(self) -> str:
        """Give this key a fresh secret; returns the raw key `<prefix>.<secret>` to show once."""
        self.prefix = secrets.token_hex(KEY_PREFIX_LENGTH // 2)
        raw = f"{self.prefix}.{secrets.token_urlsafe(32)}"
        self.key_hash = _hash(raw)
        return raw

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scopes(self, scopes: list[str] | tuple[str, ...]) -> bool:
        return self.is_active and set(scopes) <= set(self.scopes)

    def touch(self, every_seconds: int = 60) -> None:
        """Record use, at most once a minute so busy clients do not write on every request."""
        now = timezone.now()
        if self.last_used_at is None or (now - self.last_used_at).total_seconds() >= every_seconds:
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
            forget_verified_keys()
