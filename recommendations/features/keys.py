"""Host keys <-> the dense integer indices that models work with."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class KeyIndex:
    """An ordered set of string keys: `index(key)` is the key's position, `keys[i]` the key.

    Models see items and users as `0..n-1`; the database sees host primary keys as strings.
    The order is stored with the model artifact so that index `i` means the same product
    when the model is loaded again.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys: list[str] = list(dict.fromkeys(str(k) for k in keys))
        self._positions = {key: i for i, key in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    def index(self, key: str) -> int:
        return self._positions[key]

    def get(self, key: str, default: int = -1) -> int:
        return self._positions.get(key, default)

    def indices(self, keys: Sequence[str], default: int = -1) -> list[int]:
        """Positions of `keys`, with `default` for unknown ones."""
        positions = self._positions
        return [positions.get(k, default) for k in keys]
