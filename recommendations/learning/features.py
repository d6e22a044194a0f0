"""Content features for items and users that need no downloaded weights and no vocabulary.

Every token is hashed into a fixed bucket range per field (the hashing trick), so a product
added tomorrow gets feature ids immediately and in any language: words are split on Unicode
word boundaries, and scripts written without spaces (Chinese, Japanese, Korean) are cut into
character uni/bi-grams. The output is a padded id matrix with per-feature weights, the input
format of `torch.nn.EmbeddingBag(mode="sum", per_sample_weights=...)` in the item tower.
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import chain, groupby

import numpy as np

from recommendations.text import without_marks

# Han, Hiragana, Katakana, Hangul (syllables and jamo), CJK compatibility ideographs.
_CJK_RE = re.compile(
    "[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+"
)
SECONDS_PER_DAY = 86_400.0


@dataclass
class ItemContent:
    """What the catalogue knows about one item; every field is optional."""

    title: str = ""
    description: str = ""
    category_path: Sequence[str] = ()
    brand: str | None = None
    store: str | None = None
    price: float | None = None
    created_at: float | None = None  # unix seconds


@dataclass
class ItemFeatures:
    """Padded feature ids per item (0 = padding) and the weight of each feature.

    Weights are 1/len(field) so that the weighted sum over a bag is the sum over fields of the
    mean token embedding within each field: long titles do not drown out the brand.
    """

    ids: np.ndarray  # int64 [n_items, max_features]
    weights: np.ndarray  # float32 [n_items, max_features], 0 at padding
    n_features: int  # size of the embedding table (ids are < n_features)

    @property
    def n_items(self) -> int:
        return self.ids.shape[0]

    @property
    def mask(self) -> np.ndarray:
        return self.weights > 0


@dataclass
class UserFeatures:
    """Padded feature ids per user (e.g. RFM buckets), same format as `ItemFeatures`."""

    ids: np.ndarray
    weights: np.ndarray
    n_features: int

    @property
    def mask(self) -> np.ndarray:
        return self.weights > 0

    def rows(self, index: np.ndarray | slice) -> UserFeatures:
        """The features of the users at `index` (positions in these rows)."""
        return UserFeatures(self.ids[index], self.weights[index], self.n_features)


@dataclass
class FeatureConfig:
    """Bucket sizes and text settings; stored with a model so serving hashes identically."""

    word_buckets: int = 1 << 16
    ngram_buckets: int = 1 << 16
    category_buckets: int = 1 << 12
    brand_buckets: int = 1 << 14
    store_buckets: int = 1 << 14
    n_price_buckets: int = 20
    age_edges_days: tuple[float, ...] = (1, 3, 7, 14, 30, 60, 90, 180, 365, 730, 1460)
    ngram_sizes: tuple[int, ...] = (3,)
    use_title_ngrams: bool = True
    use_description: bool = True
    max_words: int = 32
    max_ngrams: int = 64
    max_description_words: int = 64
    # Filled in by `ItemFeaturizer.fit`.
    price_edges: list[float] = field(default_factory=list)
    reference_time: float | None = None


class ItemFeaturizer:
    """Turns `ItemContent` into `ItemFeatures`; `fit` only learns price quantiles and 'now'."""

    FIELDS = ("word", "ngram", "category", "brand", "store", "price", "age")

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        c = self.config
        sizes = {
            "word": c.word_buckets,
            "ngram": c.ngram_buckets,
            "category": c.category_buckets,
            "brand": c.brand_buckets,
            "store": c.store_buckets,
            "price": c.n_price_buckets + 1,  # + missing
            "age": len(c.age_edges_days) + 2,  # + missing
        }
        self.offsets: dict[str, int] = {}
        start = 1  # 0 is padding
        for name in self.FIELDS:
            self.offsets[name] = start
            start += sizes[name]
        self.sizes = sizes
        self.n_features = start

    # --- fitting and (de)serialisation --------------------------------------------------
    def fit(self, items: Sequence[ItemContent], now: float | None = None) -> ItemFeaturizer:
        """Learn log-price quantile edges and the reference time for item age."""
        prices = np.array([i.price for i in items if _valid_number(i.price)], dtype=np.float64)
        n = self.config.n_price_buckets
        if len(prices) and n > 1:
            qs = np.quantile(np.log1p(np.maximum(prices, 0)), np.linspace(0, 1, n + 1)[1:-1])
            self.config.price_edges = [float(q) for q in np.unique(qs)]
        created = [i.created_at for i in items if _valid_number(i.created_at)]
        if now is not None:
            self.config.reference_time = float(now)
        elif created:
            self.config.reference_time = float(max(created))
        return self

    def to_dict(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_dict(cls, data: dict) -> ItemFeaturizer:
        data = dict(data)
        data["age_edges_days"] = tuple(data.get("age_edges_days", ()))
        data["ngram_sizes"] = tuple(data.get("ngram_sizes", (3,)))
        return cls(FeatureConfig(**data))

    # --- transform ----------------------------------------------------------------------
    def transform(self, items: Sequence[ItemContent], now: float | None = None) -> ItemFeatures:
        """Feature ids and weights for each item; `now` overrides the fitted reference time."""
        rows = [self.item_tokens(item, now) for item in items]
        width = max((len(r) for r in rows), default=1) or 1
        ids = np.zeros((len(rows), width), dtype=np.int64)
        weights = np.zeros((len(rows), width), dtype=np.float32)
        for i, row in enumerate(rows):
            if row:
                ids[i, : len(row)] = [f for f, _ in row]
                weights[i, : len(row)] = [w for _, w in row]
        return ItemFeatures(ids, weights, self.n_features)

    def fit_transform(self, items: Sequence[ItemContent], now: float | None = None) -> ItemFeatures:
        return self.fit(items, now).transform(items)

    def item_tokens(self, item: ItemContent, now: float | None = None) -> list[tuple[int, float]]:
        """(feature id, weight) pairs of one item; weights are 1/len within each field."""
        c = self.config
        words, ngrams = text_tokens(item.title, c.ngram_sizes)
        fields: list[tuple[str, list[str]]] = [("word", words[: c.max_words])]
        if c.use_title_ngrams:
            fields.append(("ngram", ngrams[: c.max_ngrams]))
        if c.use_description and item.description:
            desc, _ = text_tokens(item.description, ())
            fields.append(("word", ["d:" + w for w in desc[: c.max_description_words]]))
        path = [normalize_text(p) for p in item.category_path if p and p.strip()]
        fields.append(("category", [" > ".join(path[: i + 1]) for i in range(len(path))]))
        if item.brand and item.brand.strip():
            fields.append(("brand", [normalize_text(item.brand)]))
        if item.store is not None and str(item.store).strip():
            fields.append(("store", [normalize_text(str(item.store))]))
        out: list[tuple[int, float]] = []
        for name, tokens in fields:
            tokens = list(dict.fromkeys(tokens))
            if tokens:
                w = 1.0 / len(tokens)
                out.extend((self._hash(name, t), w) for t in tokens)
        out.append((self.offsets["price"] + self.price_bucket(item.price), 1.0))
        if item.created_at is not None or now is not None or c.reference_time is not None:
            out.append((self.offsets["age"] + self.age_bucket(item.created_at, now), 1.0))
        return out

    def price_bucket(self, price: float | None) -> int:
        """0 = unknown, else 1 + index among the fitted log-price quantiles."""
        if not _valid_number(price):
            return 0
        return 1 + int(np.searchsorted(self.config.price_edges, math.log1p(max(price, 0.0))))

    def age_bucket(self, created_at: float | None, now: float | None = None) -> int:
        """0 = unknown, else 1 + index of the item's age in days among `age_edges_days`."""
        ref = now if now is not None else self.config.reference_time
        if not _valid_number(created_at) or ref is None:
            return 0
        age_days = max(0.0, (ref - created_at) / SECONDS_PER_DAY)
        return 1 + int(np.searchsorted(self.config.age_edges_days, age_days, side="right"))

    def _hash(self, field_name: str, token: str) -> int:
        return self.offsets[field_name] + _bucket(token, field_name, self.sizes[field_name])


def stable_hash(token: str, salt: str = "") -> int:
    """Process-independent hash (Python's `hash` is salted per process)."""
    return zlib.crc32(token.encode("utf-8"), zlib.crc32(salt.encode("utf-8")))


@lru_cache(maxsize=1 << 20)
def _bucket(token: str, salt: str, size: int) -> int:
    return stable_hash(token, salt) % size


def normalize_text(text: str) -> str:
    """NFKC, case-folded, without the marks writing leaves out (Hebrew points, Arabic vowel
    marks: `without_marks`): the forms one word is written in are one token."""
    return without_marks(unicodedata.normalize("NFKC", text).casefold()).strip()


@lru_cache(maxsize=1)
def _word_re() -> re.Pattern[str]:
    """Words: runs of `\\w` and combining marks (Unicode M*), which `\\w` leaves out though
    Devanagari, Thai, Arabic and others write vowels with them ("हिन्दी" is one word, not
    four letters). Marks lie in planes 0, 1 and 14 only; built on first use (a tenth of a
    second), as ranges: a class of each mark alone is ten times slower to match."""
    marks = (
        code
        for code in chain(range(0x20000), range(0xE0000, 0xE1000))
        if unicodedata.category(chr(code))[0] == "M"
    )
    runs = (list(run) for _, run in groupby(enumerate(marks), key=lambda pair: pair[1] - pair[0]))
    ranges = "".join(f"{chr(run[0][1])}-{chr(run[-1][1])}" for run in runs)
    return re.compile(f"[\\w{ranges}]+")


def text_tokens(text: str, ngram_sizes: Sequence[int] = (3,)) -> tuple[list[str], list[str]]:
    """Word tokens and character n-grams of any-language text.

    Latin/Cyrillic/... words give the word plus n-grams of `<word>` (robust to typos and
    inflection). Runs of CJK characters have no spaces, so they give character bigrams as
    'words' and single characters plus bigrams as n-grams.
    """
    words: list[str] = []
    ngrams: list[str] = []
    if not text:
        return words, ngrams
    for word in _word_re().findall(normalize_text(text)):
        for part, is_cjk in _split_cjk(word):
            if is_cjk:
                bigrams = [part[i : i + 2] for i in range(len(part) - 1)] or [part]
                words.extend(bigrams)
                ngrams.extend(list(part) + bigrams)
            else:
                words.append(part)
                padded = f"<{part}>"
                for n in ngram_sizes:
                    ngrams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return words, ngrams


def _split_cjk(word: str) -> list[tuple[str, bool]]:
    parts: list[tuple[str, bool]] = []
    pos = 0
    for m in _CJK_RE.finditer(word):
        if m.start() > pos:
            parts.append((word[pos : m.start()], False))
        parts.append((m.group(), True))
        pos = m.end()
    if pos < len(word):
        parts.append((word[pos:], False))
    return parts


def _valid_number(x: object) -> bool:
    if x is None or isinstance(x, str | bytes):
        return False
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


# --- user features -------------------------------------------------------------------------
RFM_RECENCY_EDGES_DAYS = (1, 3, 7, 14, 30, 60, 90, 180, 365, 730)
RFM_FREQUENCY_EDGES = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89)
RFM_SPEND_EDGES = (0.01, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


def rfm_user_features(
    last_seen: np.ndarray,
    frequency: np.ndarray,
    spend: np.ndarray | None,
    now: float,
) -> UserFeatures:
    """Recency / frequency / monetary buckets per user, with fixed edges (no fitting needed).

    `last_seen` is the unix time of the user's latest event (NaN if none), `frequency` their
    event count and `spend` their total spend (None if the shop has no prices).
    """
    last_seen = np.asarray(last_seen, dtype=np.float64)
    n = len(last_seen)
    recency = (now - last_seen) / SECONDS_PER_DAY
    columns = [
        _bucketize(recency, RFM_RECENCY_EDGES_DAYS),
        _bucketize(np.asarray(frequency, np.float64), RFM_FREQUENCY_EDGES, right=True),
    ]
    sizes = [len(RFM_RECENCY_EDGES_DAYS) + 2, len(RFM_FREQUENCY_EDGES) + 2]
    if spend is not None:
        columns.append(_bucketize(np.asarray(spend, np.float64), RFM_SPEND_EDGES, right=True))
        sizes.append(len(RFM_SPEND_EDGES) + 2)
    offsets = np.cumsum([1, *sizes[:-1]])
    ids = np.stack([c + o for c, o in zip(columns, offsets, strict=True)], axis=1)
    weights = np.ones((n, len(columns)), dtype=np.float32)
    return UserFeatures(ids.astype(np.int64), weights, int(1 + sum(sizes)))


@dataclass(frozen=True)
class RFMFeaturizer:
    """Derives each user's RFM features from their events, so that any part of the events (a
    split's training events, those known when a held-out target is predicted) gets features of
    its own events and never of the events it leaves out.

    `now` is the moment recency is measured from and `spend` whether the shop has prices; both
    hold for the whole data set, so every part gets features with the same ids.
    """

    now: float
    spend: bool

    def transform(
        self, users: np.ndarray, timestamps: np.ndarray, revenue: np.ndarray | None, n_users: int
    ) -> UserFeatures:
        """Features of users 0..n_users-1 from parallel event arrays (a user without events:
        recency unknown, frequency and spend 0)."""
        last_seen = np.full(n_users, np.nan)
        np.fmax.at(last_seen, users, np.asarray(timestamps, np.float64))
        frequency = np.bincount(users, minlength=n_users).astype(np.float64)
        if self.spend and revenue is None:
            raise ValueError("the spend feature needs the revenue of every event")
        spend = np.bincount(users, weights=revenue, minlength=n_users) if self.spend else None
        return rfm_user_features(last_seen, frequency, spend, self.now)


def _bucketize(values: np.ndarray, edges: Sequence[float], right: bool = False) -> np.ndarray:
    """0 for NaN, else 1 + bucket index."""
    side = "right" if right else "left"
    out = 1 + np.searchsorted(np.asarray(edges, np.float64), np.nan_to_num(values), side=side)
    return np.where(np.isnan(values), 0, out).astype(np.int64)
