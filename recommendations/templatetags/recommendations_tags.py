"""Template tags that put recommendation blocks on a page.

    {% load recommendations_tags %}
    {% recommended_products limit=8 title="Picked for you" %}
    {% similar_products product limit=6 %}
    {% bought_together product %}
    {% trending_products category="Hair Care" %}
    {% recommended_stores %}
    {% personalized_search query %}
    {% recommended_products limit=4 as picks %}   {# the objects, each with .recommendation #}

Each tag renders `recommendations/<block>.html` (override it in your templates) with a
`data-rec-id` container and a `data-product-id` per card, the attributes the beacon reads
for impressions and clicks. Blocks of one page share the request's "already shown" set, so
a product appears once per page. Any error is logged and the block renders empty (with
`as`, the variable is an empty list): a recommendation must never break a page. Set
`RECOMMENDATIONS["RAISE_TEMPLATE_ERRORS"] = True` with DEBUG to see the error instead. In a
shop without stores (no `STORE_MODEL`) the store tags render nothing, with nothing logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TypeVar

from django import template
from django.conf import settings
from django.db import connection, transaction
from django.template.base import FilterExpression, Parser, Token
from django.template.loader import render_to_string

from recommendations.adapters import get_store_model, key_of
from recommendations.conf import rec_settings
from recommendations.serving import products, search, stores
from recommendations.serving.errors import InvalidParameters, excluded_keys
from recommendations.serving.presentation import fill_heading
from recommendations.serving.types import Audience, Options, RecommendationResult

logger = logging.getLogger(__name__)
register = template.Library()

# Where a render without a request keeps its audience (in the root of its render context).
RENDER_CONTEXT_AUDIENCE = "recommendations_audience"
OPTION_NAMES = {"limit", "exclude", "category", "title"}
T = TypeVar("T")


def page_audience(context: template.Context) -> Audience:
    """The visitor, with a "shown" set shared by every block rendered for this request.

    It is the request's audience (`Audience.for_request`, which views share too), or without
    a request one kept on the root of this render's context.
    """
    request = context.get("request")
    if request is not None:
        return Audience.for_request(request)
    store = context.render_context.dicts[0]
    if RENDER_CONTEXT_AUDIENCE not in store:
        store[RENDER_CONTEXT_AUDIENCE] = Audience()
    return store[RENDER_CONTEXT_AUDIENCE]


def render_safely(name: str, compute: Callable[[], T], fallback: T) -> T:
    """`compute()`, or `fallback` when it fails: a block must never break the page.

    The failure is logged (re-raised with DEBUG and `RAISE_TEMPLATE_ERRORS`). A database
    error inside a transaction (ATOMIC_REQUESTS, tests) must not poison the rest of the page
    either: a savepoint rolls back only this block's queries.
    """
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            return compute()
    except InvalidParameters as exc:  # e.g. an empty search box: nothing to show, no traceback
        logger.info("The %s block has nothing to show: %s", name, exc)
    except Exception:
        if settings.DEBUG and rec_settings.RAISE_TEMPLATE_ERRORS:
            raise
        logger.exception("The %s block failed; rendering it empty", name)
    return fallback


@dataclass(frozen=True)
class Block:
    """One kind of block: its service, its template, and its one positional argument if any."""

    name: str
    template_name: str
    call: Callable[..., RecommendationResult]
    argument: str | None = None
    #: A block of stores, or of a store's products: empty in a shop without stores (STORE_MODEL
    #: is optional), where computing it would only log a NotFound on every page.
    needs_stores: bool = False

    @property
    def lists_stores(self) -> bool:
        """A block of stores (its `exclude=` names stores), not of products."""
        return self.template_name == STORES


class RecommendationNode(template.Node):
    def __init__(self, block: Block, args: list[FilterExpression], kwargs: dict, target: str | None) -> None:
        self.block, self.args, self.kwargs, self.target = block, args, kwargs, target

    def render(self, context: template.Context) -> str:
        if self.block.needs_stores and get_store_model() is None:
            result, html = None, ""
        else:
            result, html = render_safely(self.block.name, lambda: self._render(context), (None, ""))
        if self.target:
            context[self.target] = result.objects if result is not None else []
            return ""
        return html

    def _render(self, context: template.Context) -> tuple[RecommendationResult, str]:
        args = [arg.resolve(context) for arg in self.args]
        kwargs = {name: value.resolve(context) for name, value in self.kwargs.items()}
        exclude = kwargs.get("exclude") or ()
        excluded = [key_of(e) for e in ([exclude] if isinstance(exclude, str) else exclude)]
        options = Options(
            limit=int(kwargs["limit"]) if kwargs.get("limit") else None,
            # Keys as the API takes them ("06" is product 6); a store block leaves out stores.
            exclude=excluded_keys(excluded, stores=self.block.lists_stores),
            explain=True,
            category=kwargs.get("category"),
        )
        result = self.block.call(*args, page_audience(context), options)
        if self.target or not result.items:
            return result, ""
        cards = result.shown.cards()
        items = [
            {"object": obj, "card": dict(cards[rec.product_id]), "recommendation": rec}
            for obj, rec in result.items
        ]
        # A list about a product that found nothing of its own says what it holds instead.
        heading = (
            fill_heading(result.kind, result.recommendations) if self.block.argument == "product" else ""
        )
        html = render_to_string(
            self.block.template_name,
            {
                "result": result,
                "items": items,
                "title": kwargs.get("title"),
                "fill_heading": heading,
                "block": self.block.name,
                "limit": options.limit,
            },
            request=context.get("request"),
        )
        return result, html


def _compile(block: Block) -> Callable[[Parser, Token], RecommendationNode]:
    n_args = 1 if block.argument else 0

    def compile_tag(parser: Parser, token: Token) -> RecommendationNode:
        bits = token.split_contents()
        name, bits = bits[0], bits[1:]
        target = None
        if len(bits) >= 2 and bits[-2] == "as":
            target, bits = bits[-1], bits[:-2]
        args, kwargs = [], {}
        for bit in bits:
            key, sep, value = bit.partition("=")
            if sep:
                if key not in OPTION_NAMES:
                    allowed = ", ".join(sorted(OPTION_NAMES))
                    raise template.TemplateSyntaxError(
                        f"{{% {name} %}} got an unknown option {key!r}; use {allowed}."
                    )
                kwargs[key] = parser.compile_filter(value)
            else:
                args.append(parser.compile_filter(bit))
        if len(args) != n_args:
            usage = f" <{block.argument}>" if block.argument else ""
            raise template.TemplateSyntaxError(
                f"{{% {name}{usage} [limit=N] [category=...] [title=...] [as var] %}} takes {n_args} "
                f"positional argument(s), got {len(args)}."
            )
        return RecommendationNode(block, args, kwargs, target)

    return compile_tag


def _by_key(call: Callable) -> Callable:
    """Adapt a service that takes an id to a tag given an object (or an id)."""

    return lambda product, audience, options: call(key_of(product), audience, options)


PRODUCTS = "recommendations/products.html"
STORES = "recommendations/stores.html"
BLOCKS = {
    "recommended_products": Block("for_you", PRODUCTS, products.for_you),
    "similar_products": Block("similar", PRODUCTS, _by_key(products.similar), "product"),
    "bought_together": Block("bought_together", PRODUCTS, _by_key(products.bought_together), "product"),
    "trending_products": Block("trending", PRODUCTS, products.trending),
    "new_arrivals": Block("new_arrivals", PRODUCTS, products.new_arrivals),
    "recently_viewed": Block("recently_viewed", PRODUCTS, products.recently_viewed),
    "buy_again": Block("buy_again", PRODUCTS, products.buy_again),
    "store_products": Block(
        "store_products", PRODUCTS, _by_key(products.store_products), "store", needs_stores=True
    ),
    "recommended_stores": Block("stores", STORES, stores.stores_for_user, needs_stores=True),
    "similar_stores": Block(
        "similar_stores", STORES, _by_key(stores.similar_stores), "store", needs_stores=True
    ),
    "personalized_search": Block(
        "search",
        "recommendations/search_results.html",
        lambda query, audience, options: search.search(str(query or ""), audience, options),
        "query",
    ),
}

for _tag_name, _block in BLOCKS.items():
    register.tag(_tag_name, _compile(_block))
