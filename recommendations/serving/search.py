"""Personalised product search.

Three signals, blended:
- keyword relevance: PostgreSQL full-text search (weighted title > brand, category path and
  store name > description, accents folded) plus trigram word similarity on titles, which
  forgives typos ("shampo", "sampoo");
- semantic similarity: the mean vector of the best keyword hits (pseudo-relevance feedback
  in the item tower's space) finds products that match the meaning but not the words, and
  scores every candidate by closeness to that meaning;
- the visitor's real-time taste vector, so two shoppers typing "shoes" see different orders.
Without an active model the answer is keyword relevance alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.search import (
    SearchQuery,
    SearchRank,
    TrigramStrictWordSimilarity,
    TrigramWordSimilarity,
)
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL

from recommendations.adapters import get_product_adapter
from recommendations.models import ModelVersion, ProductDocument
from recommendations.models.search import TEXT_SEARCH_CONFIG, search_form
from recommendations.serving import variants
from recommendations.serving.cache import ProcessCache
from recommendations.serving.errors import InvalidParameters
from recommendations.serving.realtime import current_taste
from recommendations.serving.rules import finalize, limit_for, pool_size
from recommendations.serving.types import Audience, Candidate, Kind, Options, RecommendationResult
from recommendations.vectors import queries

MAX_QUERY_LENGTH = 200
KEYWORD_POOL = 200
# Keyword hits whose vectors define the query's meaning.
FEEDBACK_HITS = 10
WEIGHTS = {"keyword": 0.6, "semantic": 0.25, "taste": 0.15}
# Several "-" (web search's NOT) in a row, spaces between them or not: PostgreSQL nests one NOT
# in another for each, and about thirty overflow its parser ("tsquery stack too small").
REPEATED_NOT = re.compile(r"-[\s-]*-")
# A word or quoted phrase the query excludes (web search's "-word", '-"two words"').
NEGATED = re.compile(r'(?:^|\s)-+("[^"]*"|[^\s"]+)')
# What a near match scores (exact hits score 0.5 to 1): a typo, when nothing that can be shown
# matches the query's words, half its word similarity; beside exact hits, a title that holds
# every word of the query, one at least spelt another way ("serum" and "Serrum", "moisturizer"
# and "Moisturizr": `_spelt_alike`), as an exact title hit would, with its word similarity
# for the relative rank; any other, such as a longer word that starts with a word of the query
# ("tea" and "teaser") or a title with only some of its words ("green tea" and "Green Thumb"),
# a tenth of its similarity.
NEAR_SHARE = 0.5
NEAR_SHARE_BESIDE_EXACT = 0.1
# A full-text hit whose title holds another word of a query word's stem, and no spelling of the
# word itself, is near, not exact: the English stemmer reads "moisturizer" and "Moisture-Wicking"
# as one word ("moistur"), and "hydrating" and "Hydration Vest" ("hydrat"). It counts
# STEM_ONLY_SHARE of its rank: below the titles spelling the word and their respellings (0.8
# and up), about level with the word in a brand, category or store name (ts_rank weighs those
# 0.4 of a title), above it in a description (0.2). Words sharing their first STEM_PREFIX
# letters are taken to share a stem ("moisture", "moisturizer"); shorter ones never ("run"
# and "Running" are left to the stemmer).
STEM_ONLY_SHARE = 0.4
STEM_PREFIX = 4
# Pairs of words whose `_spelt_alike` answer a process keeps (about 4 MB): a search checks
# the title words of up to KEYWORD_POOL hits, 7-12 ms of CPU each time, 2-3 ms kept.
SPELLINGS_KEPT = 10_000
# English inflections, which leave a word the same (`_spelt_alike`): "batteries" and "battery",
# "dresses" and "dress", "roasted" and "Roast", "charging" and "Charge"; never another word's
# suffix ("moisturizer", "hydration", "adjustable").
INFLECTION = re.compile(
    r"(?:(?<=[^aeiou])ies|(?<=[sxz])es|(?<=[cs]h)es|(?<=[^s])s|(?<=\w\w[^e])ed|(?<=\w\w\w)ing)$"
)
# The word similarity a title needs when nothing matches the query's words (pg_trgm's
# default, 0.6, misses common typos: "cutcle" is 0.5 like "Cuticle oil"), for a query with a
# word of TYPO_MIN_LETTERS or more (a short word shares half its trigrams with any word of
# the same first two letters: "rug" and "Running"), and then with a strict word similarity
# (whole words) of TYPO_STRICT_SIMILARITY: "polsh" and "polish" 0.44, "headp" and
# "Headphones" 0.42, but "dress" and "Press" 0.33, "table" and "Adjustable" 0.31.
TYPO_WORD_SIMILARITY = 0.45
TYPO_MIN_LETTERS = 5
TYPO_STRICT_SIMILARITY = 0.4
# A word's other regular spelling, British or American (`_other_spelling`), which full-text
# search looks for too: the English stemmer reads "moisturizing" as "moistur" and
# "moisturising" as "moisturis", and keeps "color" and "colour", "gray" and "grey" apart.
# "-ize" and "-ise", "-yze" and "-yse" forms of three letters or more before the "i" or "y"
# ("moisturizer", "organisation", "analyse"; not "size", "prize" or "raise"), and the
# "-or" and "-our" of the common words that differ so ("colors", "flavoured", "favorite";
# not "humorous", "laboratory").
IZE_ISE = re.compile(r"^(\w{3,}[iy])([sz])(e|es|ed|er|ers|ing|ation|ations)$")
OR_OUR = re.compile(
    r"^(arm|behavi|col|endeav|fav|flav|harb|hon|hum|lab|neighb|od|parl|rum|sav|vap|vig)o(u?)r"
    r"(s|ed|ing|ful|less|able|al|ite|ites|y)?$"
)
GRAY_GREY = {"gray": "grey", "grey": "gray", "grays": "greys", "greys": "grays"}
# The words of a list that full-text search reads (the stop words left out), in SQL.
WORDS_READ = (
    "ARRAY(SELECT w FROM unnest(%s::text[]) AS w WHERE numnode(plainto_tsquery(%s::regconfig, w)) > 0)"
)
# Runs of Chinese, Japanese or Korean characters: the full-text parser reads a run as one
# word, so a query's run is also looked for inside titles.
CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
# How each candidate relates to the words of the query.
EXACT, NEAR, RELATED = 2, 1, 0


def clean_query(query: str | None) -> str:
    """The query trimmed, in the form documents store (`search_form`: "ｺｰﾋｰ" finds
    "コーヒー"); `InvalidParameters` when it is empty or too long."""
    query = " ".join(search_form(query or "").split())
    if not query:
        raise InvalidParameters({"q": "Give a search query, e.g. ?q=running shoes."})
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidParameters({"q": f"The query is {len(query)} characters; at most {MAX_QUERY_LENGTH}."})
    return query


def _search_words(query: str) -> str:
    return REPEATED_NOT.sub("-", query)  # "t--shirt" is a t-shirt, "--x" one NOT


class _EitherSpelling(SearchQuery):
    """A web-search query that also looks for each word's other regular spelling
    (`_other_spelling`): `ts_rewrite` puts "moistur | moisturis" wherever the query reads
    "moistur", so a phrase, an exclusion ("-colour" excludes "Color" too) and several words'
    AND hold for either spelling. Immutable functions of constants: PostgreSQL folds them
    before planning, and the full-text index still answers."""

    def __init__(self, query: str) -> None:
        super().__init__(_search_words(query), search_type="websearch", config=TEXT_SEARCH_CONFIG)
        self.spellings = [
            (word, other) for word in dict.fromkeys(_words(query)) if (other := _other_spelling(word))
        ]

    def as_sql(
        self, compiler: Any, connection: Any, function: Any = None, template: Any = None
    ) -> tuple[str, Any]:
        sql, params = super().as_sql(compiler, connection, function, template)
        for word, other in self.spellings:
            sql = (
                f"ts_rewrite({sql}, plainto_tsquery(%s::regconfig, %s), "
                "plainto_tsquery(%s::regconfig, %s) || plainto_tsquery(%s::regconfig, %s))"
            )
            params = [*params, *(TEXT_SEARCH_CONFIG, word) * 2, TEXT_SEARCH_CONFIG, other]
        return sql, params


def _other_spelling(word: str) -> str | None:
    """The word's other regular spelling, British or American ("moisturising" for
    "moisturizing", "color" for "colour", "grey" for "gray"), if it has one."""
    if match := IZE_ISE.match(word):
        stem, letter, ending = match.groups()
        return f"{stem}{'s' if letter == 'z' else 'z'}{ending}"
    if match := OR_OUR.match(word):
        stem, u, ending = match.groups()
        return f"{stem}o{'' if u else 'u'}r{ending or ''}"
    return GRAY_GREY.get(word)


def _words_read_in(text: str) -> list[str]:
    """The words of `text` that full-text search reads, when no hit names them (`_words_read`):
    none for "the" or "a and" (stop words), which nothing can match, and whose near spelling
    would be any title with "Theory" in it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {WORDS_READ}", [_words(text), TEXT_SEARCH_CONFIG])
        return cursor.fetchone()[0]


def keyword_hits(query: str, k: int = KEYWORD_POOL) -> tuple[dict[str, float], dict[str, float]]:
    """Products matching the words, and products nearly matching them: (id -> relevance in
    0..1) each, as the constants above score them.

    Full-text search first (GIN index, stemmed words; title, then brand, category path and
    store name, then description), plus titles holding a query's Chinese, Japanese or Korean
    text. A hit whose title holds only another word of a query word's stem is a near one
    ("Moisture-Wicking" for "moisturizer"). Only when that finds fewer than k products does
    trigram word similarity on titles (GIN index) add near matches: typos cost the second
    query, correctly spelled queries do not. A near match is what a typo needs when nothing
    that can be shown matches; beside exact hits it is a respelling of a word ("Serrum"),
    level with them, or a title that shares only letters or some words with the query, which
    then scores below what the query's meaning finds too.
    """
    search_query = _EitherSpelling(query)
    # A NOT gives every hit the same tiny rank (1e-20): rank by what the query asks for.
    wanted = NEGATED.sub(" ", query).strip()
    rank_query = _EitherSpelling(wanted) if wanted and wanted != query else search_query
    ranked = list(
        ProductDocument.objects.filter(search_vector=search_query)
        .annotate(
            rank=SearchRank(F("search_vector"), rank_query, normalization=32),
            read=_words_read(_words(wanted)),
        )
        .order_by("-rank", "product_id")
        .values_list("product_id", "rank", "title", "read")[:k]
    )
    # Relative to the best hit, so a title match stays well ahead of a word in a description
    # (ts_rank with normalization 32 squeezes both into [0, 1)).
    best = max((float(rank) for _, rank, _, _ in ranked), default=0.0) or 1.0
    # The words read, which the near search compares: "serum for your face" is not near
    # "Serrum face oil" by "for" and "your". Without a hit, one statement names them.
    words = ranked[0][3] if ranked else _words_read_in(wanted)
    exact: dict[str, float] = {}
    stem_only: dict[str, float] = {}
    for pid, rank, title, _read in ranked:
        if _shares_only_stems(title, words):
            stem_only[pid] = 0.5 + STEM_ONLY_SHARE * float(rank) / best / 2
        else:
            exact[pid] = 0.5 + float(rank) / best / 2
    found = {**exact, **stem_only}
    if CJK_RUN.search(wanted) and len(found) < k:
        holding = dict.fromkeys(_titles_holding(query, wanted, found, k - len(found)), 1.0)
        exact.update(holding)
        found.update(holding)
    near: dict[str, float] = {}
    if len(found) < k and words:
        near = _near_matches(query, words, found, k - len(found))
    return exact, {**stem_only, **near}


def _words_read(words: list[str]) -> RawSQL:
    """The words among these that full-text search reads, as one value of the statement
    (computed once): a stop word matched nothing, so a title holding a longer word that
    starts with it ("your" and "Yourself") holds no other word of its stem."""
    # A constant statement: the words are its parameters.
    return RawSQL(WORDS_READ, (words, TEXT_SEARCH_CONFIG), output_field=ArrayField(TextField()))  # noqa: S611


def _titles_holding(query: str, wanted: str, hits: dict[str, float], k: int) -> list[str]:
    """Up to k titles (not among the full-text `hits`) holding the query's Chinese, Japanese or
    Korean text, and matching its other words, without what it excludes: the full-text parser
    reads "静音降噪蓝牙耳机" as one word, so "耳机" is looked for inside it."""
    titles = ProductDocument.objects.filter(*(Q(title__contains=run) for run in CJK_RUN.findall(wanted)))
    other_words = CJK_RUN.sub(" ", wanted).strip()
    if other_words:
        titles = titles.filter(search_vector=_EitherSpelling(other_words))
    found = list(
        titles.exclude(product_id__in=list(hits))
        .order_by("product_id")
        .values_list("product_id", flat=True)[:k]
    )
    unwanted = negated_hits(query, found)
    return [pid for pid in found if pid not in unwanted]


def _near_matches(query: str, words: list[str], hits: dict[str, float], k: int) -> dict[str, float]:
    """Up to k titles near the query's words (not among the keyword `hits`), scored as the
    constants above say; `words`: those that full-text search read (`_words_read`), which the
    titles are compared with (not the stop words or excluded words of the query) and a
    respelling's title holds or respells."""
    compared = " ".join(words)
    similar_titles = (
        ProductDocument.objects.filter(title__trigram_word_similar=compared)
        .exclude(product_id__in=list(hits))
        .annotate(
            similarity=TrigramWordSimilarity(compared, "title"),
            strict=TrigramStrictWordSimilarity(compared, "title"),
        )
        .order_by("-similarity", "product_id")
        .values_list("product_id", "similarity", "strict", "title")[:k]
    )
    # Sold-out hits still lend the query their meaning, but cannot answer it.
    answered = _any_available(hits)
    if answered or max(map(len, words)) < TYPO_MIN_LETTERS:
        rows = list(similar_titles)
    else:
        # A typo ("cutcle", "polsh") is all there is to go on, so take spellings further off
        # than pg_trgm's default cut-off lets through, if they are alike as whole words (not
        # "table" inside "Adjustable").
        rows = [
            row
            for row in _with_word_similarity(TYPO_WORD_SIMILARITY, similar_titles)
            if row[2] >= TYPO_STRICT_SIMILARITY
        ]
    near = {
        pid: _near_score(float(similarity), answered, _respells(title, words))
        for pid, similarity, _strict, title in rows
    }
    # Trigrams know no NOT: "shampoo -dry" is near "Dry shampoo spray".
    for pid in negated_hits(query, list(near)):
        del near[pid]
    return near


def _near_score(similarity: float, answered: bool, respelling: bool) -> float:
    if not answered:
        return similarity * NEAR_SHARE
    if respelling:
        return 0.5 + similarity / 2
    return similarity * NEAR_SHARE_BESIDE_EXACT


def _respells(title: str, query_words: list[str]) -> bool:
    """Whether the title holds every word of the query, one at least spelt another way
    ("serum for face" and "Serrum face oil"), rather than only some of them ("green
    tea" and "Green Thumb") or a longer word that starts with one ("tea" and "teaser")."""
    title_words = set(_words(title))
    respelt = False
    for word in query_words:
        if word in title_words:
            continue
        if not any(not other.startswith(word) and _spelt_alike(word, other) for other in title_words):
            return False
        respelt = True
    return respelt


def _shares_only_stems(title: str, query_words: list[str]) -> bool:
    """Whether the title holds, for a word of the query, another word of its stem and no
    spelling of it ("Moisture-Wicking" for "moisturizer"). A word the title does not hold at
    all was found in the brand, the category, the store or the description. `query_words`:
    those that full-text search reads (`_words_read`)."""
    title_words = set(_words(title))
    return any(
        len(word) >= STEM_PREFIX
        and word not in title_words
        and any(other.startswith(word[:STEM_PREFIX]) for other in title_words)
        and not any(_spelt_alike(word, other) for other in title_words)
        for word in query_words
    )


@lru_cache(maxsize=SPELLINGS_KEPT)
def _spelt_alike(word: str, other: str) -> bool:
    """Whether `other` spells `word`, as typed or another way: inflected or not (`INFLECTION`),
    one edit (`_one_edit_apart`) apart at most ("colour" and "color", "moisturizers" and
    "Moisturiser"), not two ("hydrating" and "Hydration"). Kept per pair of words: the hits of
    one search share most of their titles' words, and searches their queries' words."""
    if abs(len(word) - len(other)) > 4:  # one edit and the longest ending ("ing") apart
        return False
    return any(
        _one_edit_apart(first, second)
        for first in {word, _uninflected(word)}
        for second in {other, _uninflected(other)}
    )


def _uninflected(word: str) -> str:
    return INFLECTION.sub(lambda ending: "y" if ending.group() == "ies" else "", word)


def _one_edit_apart(first: str, second: str) -> bool:
    """Whether one letter added, dropped, changed or swapped with the next at most turns
    `first` into `second` (optimal string alignment distance <= 1). In one pass, not the
    distance's table: a search checks each title word of up to KEYWORD_POOL hits."""
    if len(first) > len(second):
        first, second = second, first
    if len(second) - len(first) > 1:
        return False
    start = 0  # the first letter that differs
    while start < len(first) and first[start] == second[start]:
        start += 1
    if len(first) < len(second):  # one letter added
        return first[start:] == second[start + 1 :]
    if first[start + 1 :] == second[start + 1 :]:  # the same, or one letter changed
        return True
    return (  # two letters swapped
        start + 1 < len(first)
        and first[start] == second[start + 1]
        and first[start + 1] == second[start]
        and first[start + 2 :] == second[start + 2 :]
    )


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _any_available(product_ids: Iterable[str]) -> bool:
    """Whether any of these products may be shown now (active and in stock)."""
    keys = list(product_ids)
    return bool(keys) and get_product_adapter().available_queryset().filter(pk__in=keys).exists()


def _with_word_similarity(threshold: float, rows: QuerySet) -> list[Any]:
    """`rows`, read with pg_trgm's word-similarity cut-off (what `%>` and the title index
    test) at `threshold` for this read alone."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('pg_trgm.word_similarity_threshold', %s, true)", [str(threshold)])
        found = list(rows)
        # LOCAL lasts to the end of the outermost transaction, which may be the request's.
        cursor.execute("SET LOCAL pg_trgm.word_similarity_threshold TO DEFAULT")
    return found


def negated_hits(query: str, product_ids: list[str]) -> set[str]:
    """Those of `product_ids` that match a word the query excludes ("-bassline"), or whose
    title holds Chinese, Japanese or Korean text it excludes ("-蓝牙")."""
    excluded = [term.lstrip("-") for term in NEGATED.findall(query)]
    excluded = [term for term in excluded if term.strip('"')]
    if not excluded or not product_ids:
        return set()
    matches = Q(search_vector=_EitherSpelling(" or ".join(excluded)))
    for run in CJK_RUN.findall(" ".join(excluded)):
        matches |= Q(title__contains=run)
    matching = ProductDocument.objects.filter(matches, product_id__in=product_ids)
    return set(matching.values_list("product_id", flat=True))


@dataclass(frozen=True)
class QueryMatches:
    """What a query finds, the same for every visitor, so it is kept per query and version.

    `ids`: the candidates, keyword hits first (best first), then the products near the query's
    meaning; `scores`: each one's score before the visitor's taste; `matched`: EXACT for a
    keyword hit, NEAR for a near match of the words, RELATED for a product of like meaning.
    `units`: the directions of the candidates with a vector (the visitor's taste
    scores them; diversity compares them); `rows`: where each of those sits in `ids`, and
    `row_of`: each candidate's row in `units` (-1: none). Arrays, not dicts: a request
    re-scores the candidates with two vector operations.
    """

    ids: list[str]
    scores: np.ndarray
    matched: np.ndarray
    rows: np.ndarray
    row_of: np.ndarray
    units: np.ndarray | None = None


def query_matches(query: str, version: ModelVersion | None, k: int) -> QueryMatches:
    """Keyword hits and, with a model, the `k` products nearest the meaning of the best ones."""
    exact, near = keyword_hits(query)
    keyword = {**exact, **near}
    hits = sorted(keyword.items(), key=lambda item: -item[1])
    if version is None:
        return _matches(keyword, exact, {}, [], None)
    seeds = [pid for pid, _ in hits[: max(k, FEEDBACK_HITS)]]
    embeddings = {pid: v.embedding for pid, v in queries.product_vectors(seeds, version).items()}
    feedback = [(embeddings[pid], score) for pid, score in hits[:FEEDBACK_HITS] if pid in embeddings]
    meaning = None
    if feedback:
        meaning = queries.unit_rows(
            sum(score * queries.unit_rows(embedding) for embedding, score in feedback)
        )
        nearest = queries.nearest_products(meaning, k, version, from_items=True)
        related = [pid for pid, _ in nearest if pid not in embeddings]
        # The meaning of "headphones -bassline" is near Bassline's headphones too.
        unwanted = negated_hits(query, related)
        related = [pid for pid in related if pid not in unwanted]
        embeddings.update({pid: v.embedding for pid, v in queries.product_vectors(related, version).items()})
    if not embeddings:
        return _matches(keyword, exact, {}, [], None, weighted=True)
    ids = list(embeddings)
    # Every candidate's direction at once: one matrix product per signal, not a norm each.
    units = queries.unit_rows(np.stack([embeddings[pid] for pid in ids]))
    semantic = dict(zip(ids, (units @ meaning).tolist(), strict=True)) if meaning is not None else {}
    return _matches(keyword, exact, semantic, ids, units, weighted=True)


def _matches(
    keyword: dict[str, float],
    exact: dict[str, float],
    semantic: dict[str, float],
    vector_ids: list[str],
    units: np.ndarray | None,
    *,
    weighted: bool = False,
) -> QueryMatches:
    """The candidates in order with their scores before taste (`weighted`: blended as with a
    model; else keyword relevance alone)."""
    ids = list(dict.fromkeys([*keyword, *semantic]))
    scores = [
        WEIGHTS["keyword"] * keyword.get(pid, 0.0) + WEIGHTS["semantic"] * semantic.get(pid, 0.0)
        if weighted
        else keyword[pid]
        for pid in ids
    ]
    position = {pid: i for i, pid in enumerate(ids)}
    rows = np.array([position[pid] for pid in vector_ids], dtype=np.intp)
    row_of = np.full(len(ids), -1, dtype=np.intp)
    row_of[rows] = np.arange(len(rows))
    matched = np.array(
        [EXACT if pid in exact else NEAR if pid in keyword else RELATED for pid in ids], dtype=np.int8
    )
    return QueryMatches(ids, np.array(scores, dtype=np.float64), matched, rows, row_of, units)


# Queries' matches kept in each process, and shared with the others through Django's cache:
# about 70 KB each with 64-d vectors. The prefix names the layout of `QueryMatches`.
kept_matches = ProcessCache(size=256, lifetime="SEARCH_CACHE_SECONDS", shared_as="recommendations:search:2:")


def search(query: str, audience: Audience, options: Options) -> RecommendationResult:
    """Products for `query`, best first, personalised for the visitor when a model is active.

    What the query finds is shared by every visitor (`query_matches`, kept in the process and
    shared between processes through Django's cache);
    the visitor's taste only re-scores it, so a popular query costs only the visitor's own
    reads (history and stored vector) and the rules.
    """
    query = clean_query(query)
    version = variants.model_version(audience)
    k = limit_for(Kind.SEARCH, options, audience) * 3 + len(options.exclude) + len(audience.shown)
    matches = kept_matches.get(
        (query.lower(), version and version.pk, k), lambda: query_matches(query, version, k)
    )
    scores, personal = matches.scores, False
    if matches.units is not None:
        taste = current_taste(version, audience)
        if taste.vector is not None:
            affinity = matches.units @ queries.unit_rows(taste.vector)
            scores = scores.copy()
            scores[matches.rows] += WEIGHTS["taste"] * affinity.astype(np.float64)
            personal = True
    # The rules need room for exclusions and diversity, not the whole keyword pool.
    best = np.argsort(-scores, kind="stable")[: pool_size(Kind.SEARCH, options, audience)]
    units = matches.units
    reasons = {EXACT: f"Matches “{query}”", NEAR: f"Close to “{query}”", RELATED: f"Related to “{query}”"}
    candidates = []
    for at, score, matched, row in zip(
        best.tolist(),
        scores[best].tolist(),
        matches.matched[best].tolist(),
        matches.row_of[best].tolist(),
        strict=True,
    ):
        if version is None:
            source = "keyword"
        else:
            source = "search" if personal else "keyword" if matched != RELATED else "semantic"
        embedding = units[row] if row >= 0 and units is not None else None
        candidates.append(Candidate(matches.ids[at], score, source, reasons[matched], embedding=embedding))
    return finalize(
        Kind.SEARCH,
        candidates,
        audience,
        options,
        model_version_id=version and version.pk,
        context={"query": query},
    )
