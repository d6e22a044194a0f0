"""Deterministic bucketing: the same visitor always lands in the same variant.

A visitor's position on [0, 1) is a hash of (experiment key, visitor id), so it needs no
stored state, is the same in every process and on every server, and differs between
experiments (a visitor in the challenger of one test is not in the challenger of all).
Variants own consecutive slices of [0, 1) proportional to their traffic shares.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal
from typing import TypeVar

T = TypeVar("T")

# 60 bits of the digest: uniform enough, and exact as a float divided by 2**60.
_BITS = 60


def position(experiment_key: str, unit_id: str) -> float:
    """Where this visitor falls on [0, 1) for this experiment."""
    digest = hashlib.sha256(f"{experiment_key}\x1f{unit_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> (64 - _BITS)) / float(1 << _BITS)


def choose(shares: Sequence[tuple[T, Decimal | float]], point: float) -> T:
    """The item whose slice of [0, 1) contains `point`; slices follow `shares` (any positive scale)."""
    if not shares:
        raise ValueError("Cannot choose a variant: the experiment has no variants.")
    total = float(sum(Decimal(str(share)) for _, share in shares))
    if total <= 0:
        raise ValueError("Cannot choose a variant: the traffic shares add up to zero.")
    cumulative = 0.0
    for item, share in shares:
        cumulative += float(share) / total
        if point < cumulative:
            return item
    # Floating-point rounding can leave the very top of [0, 1) uncovered.
    return shares[-1][0]


def assign(experiment_key: str, unit_id: str, shares: Sequence[tuple[T, Decimal | float]]) -> T:
    """The variant of `unit_id` in the experiment `experiment_key`."""
    return choose(shares, position(experiment_key, unit_id))
