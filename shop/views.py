"""Storefront views. Recommendation blocks are rendered by the app's template tags; the views
fetch the page's own content, change the cart and record what the server alone knows
(cart changes, purchases, searches). Views, impressions and clicks come from the beacon."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

import recommendations
from recommendations.adapters import get_product_adapter
from recommendations.events.signals import added_to_cart, removed_from_cart, searched
from recommendations.events.tracking import is_bot
from recommendations.serving.products import rerank
from recommendations.serving.types import Audience, Options, Recommendation
from shop import login_throttle, placeholders
from shop.cart import Cart, CartError, CartLine, quantity_limit
from shop.checkout import place_order, placed_order
from shop.demo_accounts import demo_shoppers
from shop.demo_data import DEMO_PASSWORD
from shop.forms import SEARCH_PAGE, CartChangeForm, CheckoutForm, SearchForm
from shop.models import Category, Order, Product, Store
from shop.ratings import attach_ratings

PAGE_SIZE = 24
# How many of a category's products are put in the visitor's order (the serving limit is 100).
RERANK_WINDOW = 96
# Where the "Recommended" order of the listing the visitor browses is kept (`_recommended_page`).
LISTING_ORDER_KEY = "listing_order"
KEPT_LISTINGS = 4  # listings whose order a session keeps: a few tabs' worth
SORTS = {
    "recommended": None,
    "price": "price",
    "-price": "-price",
    "newest": "-created_at",
}
# Generated pictures never change for a given product, so browsers may keep them a day.
IMAGE_MAX_AGE = 86400
ORDERS_SESSION_KEY = "orders"
LAST_SEARCH_KEY = "last_search"
SEARCH_REPEAT_SECONDS = 600  # the same search again within this is the same search
DEMO_ACCOUNTS = 4


def _for_pages(products: QuerySet[Product]) -> QuerySet[Product]:
    """Products as pages show them: with their store and category. Their ratings are read for
    the products a page shows, once it is cut (`_rated`)."""
    return products.select_related("store", "category")


def _rated(page: Page) -> Page:
    """`page` with its products' ratings, in one query for them alone (`attach_ratings`)."""
    page.object_list = list(page.object_list)
    attach_ratings(page.object_list)
    return page


def available_products() -> QuerySet[Product]:
    """What may be sold now, as the recommendations adapter says: the shop and its lists agree."""
    return _for_pages(get_product_adapter().available_queryset())


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.META.get("HTTP_REFERER", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return fallback


def home(request: HttpRequest) -> HttpResponse:
    categories = Category.objects.filter(parent__isnull=True)
    return render(request, "shop/home.html", {"categories": categories})


def _in_visitor_order(
    request: HttpRequest, ranked: list[str], rest: list[str]
) -> tuple[list[str], dict[str, Recommendation]]:
    """`ranked` in this visitor's order, then `rest` as given; and the recommendation of each
    product ranked."""
    if not ranked:
        return rest, {}
    result = rerank(ranked, Audience.for_request(request), Options(limit=len(ranked), explain=True))
    found = set(result.ids)
    order = [*result.ids, *(pid for pid in ranked if pid not in found), *rest]
    return order, {rec.product_id: rec for _, rec in result.items}


class _RecommendedListing:
    """A listing sorted "Recommended" as `Paginator` reads it: the `ranked` ids, then the
    listing's other products in the shop's order, whose pages the database cuts (LIMIT and
    OFFSET). Reading every id of a category to page it here grew with the category (a page of
    61,500 products took 150 ms of the database instead of 46)."""

    def __init__(self, ranked: list[str], listing: QuerySet[Product]) -> None:
        self.ranked = ranked
        self.rest = listing.exclude(pk__in=ranked).values_list("pk", flat=True)

    def count(self) -> int:
        return len(self.ranked) + self.rest.count()

    def __getitem__(self, cut: slice) -> list[str]:
        skip = len(self.ranked)
        rest = self.rest[max(cut.start - skip, 0) : cut.stop - skip] if cut.stop > skip else []
        return [*self.ranked[cut], *(str(pk) for pk in rest)]


def _recommended_page(
    request: HttpRequest, listing: str, products: QuerySet[Product]
) -> tuple[Page, dict[str, Recommendation]]:
    """A page of a listing (`products`, in the shop's order) sorted "Recommended", as ids, and
    the recommendation of each of its products put in the visitor's order.

    The first `RERANK_WINDOW` products are put in the visitor's order; the long tail keeps the
    shop's. That order changes with every product the visitor opens, so pages cut from the
    order of each request repeated products and skipped others. Instead, the visitor's browse
    of a listing keeps one order: opening it (a URL without a page, as menus and the sort links
    give) ranks it and keeps the ranked ids in the session (for the last `KEPT_LISTINGS`
    listings, so another tab or a look at another category keeps this one's order; a few
    hundred bytes each); the pager's links, which name a page, cut theirs from the kept order, so
    each product appears once across the pages. Personalisation still follows the visitor:
    a page cut from a kept order shows its ranked products in their order of the moment.
    Products that arrived since follow the kept ones, in the shop's order; those gone are left
    out. Nothing is kept for a visitor the engine does not know (no session is written for a
    crawler): their order, by popularity, is the same on every request. Only the ranked ids
    are read whole; the tail's pages are cut by the database (`_RecommendedListing`).
    """
    kept: dict[str, list[str]] = request.session.get(LISTING_ORDER_KEY, {})
    if "page" in request.GET and listing in kept:
        still_listed = {str(pk) for pk in products.filter(pk__in=kept[listing]).values_list("pk", flat=True)}
        ranked = [pid for pid in kept[listing] if pid in still_listed]
        page = Paginator(_RecommendedListing(ranked, products), PAGE_SIZE).get_page(request.GET.get("page"))
        on_page = list(page.object_list)
        page.object_list, recommendations = _in_visitor_order(
            request,
            [pid for pid in on_page if pid in still_listed],
            [pid for pid in on_page if pid not in still_listed],
        )
        return page, recommendations
    head = [str(pk) for pk in products.values_list("pk", flat=True)[:RERANK_WINDOW]]
    order, recommendations = _in_visitor_order(request, head, [])
    if Audience.for_request(request).is_known:
        listings = {name: order for name, order in kept.items() if name != listing}
        listings[listing] = order  # the newest last: the oldest go first
        request.session[LISTING_ORDER_KEY] = dict(list(listings.items())[-KEPT_LISTINGS:])
    in_order = _RecommendedListing(order, products)
    return Paginator(in_order, PAGE_SIZE).get_page(request.GET.get("page")), recommendations


def category(request: HttpRequest, slug: str) -> HttpResponse:
    node = get_object_or_404(Category, slug=slug)
    sort = request.GET.get("sort", "recommended")
    if sort not in SORTS:
        sort = "recommended"
    # The ids, not a subquery: the planner then reads a category's page newest first from
    # `shop_product_category_newest` (0.3 ms at 200,000 products, against 11 ms sorting it),
    # and a parent's categories' products through it (29 ms, against 73 ms for a scan).
    below = list(node.descendants_and_self().values_list("pk", flat=True))
    products = available_products().filter(category__in=below)
    recommendations_by_id: dict[str, Recommendation] = {}
    if SORTS[sort]:
        page = Paginator(products.order_by(SORTS[sort], "pk"), PAGE_SIZE).get_page(request.GET.get("page"))
    else:
        page, recommendations_by_id = _recommended_page(
            request, node.slug, products.order_by("-created_at", "pk")
        )
        # The page holds ids: fetch its products, in order, with their recommendation.
        by_id = {str(p.pk): p for p in products.filter(pk__in=list(page.object_list))}
        page.object_list = [by_id[pid] for pid in page.object_list if pid in by_id]
        for item in page.object_list:
            item.recommendation = recommendations_by_id.get(str(item.pk))
    page = _rated(page)
    block_id = next(iter(recommendations_by_id.values())).recommendation_id if recommendations_by_id else ""
    ancestors = _ancestors(node)
    # Where a card's add form returns without JavaScript: this page, named, so that it is cut
    # from the kept order (`_recommended_page`) instead of ranking the listing anew.
    back = request.GET.copy()
    back["page"] = page.number
    return render(
        request,
        "shop/category.html",
        {
            "category": node,
            "page": page,
            "sort": sort,
            "sorts": list(SORTS),
            "children": node.children.all(),
            "ancestors": ancestors,
            "active_category": (ancestors[0] if ancestors else node).slug,
            "recommendation_id": block_id,
            "card_next": f"{request.path}?{back.urlencode()}",
        },
    )


def _ancestors(node: Category) -> list[Category]:
    chain = []
    while node.parent_id:
        node = node.parent
        chain.append(node)
    return chain[::-1]


def product(request: HttpRequest, slug: str) -> HttpResponse:
    # A sold-out product keeps its page (links from orders, carts and search engines stay
    # good) and says so; one no longer sold is gone. Recommendations never show either.
    item = get_object_or_404(_for_pages(Product.objects.filter(is_active=True)), slug=slug)
    attach_ratings([item])
    cart = Cart(request.session)
    recommendation_id = _opened_from(request)
    form = CartChangeForm(initial={"product": item.pk, "quantity": 1, "recommendation_id": recommendation_id})
    return render(
        request,
        "shop/product.html",
        {
            "product": item,
            "form": form,
            "recommendation_id": recommendation_id,  # the beacon credits the view to it
            "in_cart": cart.quantity_of(item),
            # The browser's own check, as the cart's: no more than in stock, nor than a line holds.
            "quantity_limit": quantity_limit(item),
            "ancestors": [*_ancestors(item.category), item.category],
        },
    )


def _opened_from(request: HttpRequest) -> str:
    """The recommendation id of the link that opened this page (`?rec=`), which the add form
    and the beacon's view carry: the browser's word, credited only for a list this visitor was
    shown. "" for a value no id can be (too long, a NUL), which the form's field and the events
    API refuse: the add would fail, and the beacon's batch (the view and the page's
    impressions) would be lost."""
    try:
        return CartChangeForm.base_fields["recommendation_id"].clean(request.GET.get("rec", ""))
    except ValidationError:
        return ""


def store(request: HttpRequest, slug: str) -> HttpResponse:
    seller = get_object_or_404(Store.objects.prefetch_related("categories"), slug=slug)
    products = available_products().filter(store=seller)
    page = _rated(Paginator(products, PAGE_SIZE).get_page(request.GET.get("page")))
    return render(request, "shop/store.html", {"store": seller, "page": page})


def _searched_just_now(request: HttpRequest, query: str) -> bool:
    """Whether this session searched `query` in the last `SEARCH_REPEAT_SECONDS`; notes this
    search if not. The results page comes back without a new search when the shopper adds to
    the cart without JavaScript (the form redirects back), reloads or returns to it: recorded
    again, one search would count as several. A crawler's searches are not noted: it gets no
    session (`is_bot`)."""
    if is_bot(request):
        return False
    now = time.time()
    last = request.session.get(LAST_SEARCH_KEY)
    if last and last["query"] == query.casefold() and now - last["at"] < SEARCH_REPEAT_SECONDS:
        return True
    request.session[LAST_SEARCH_KEY] = {"query": query.casefold(), "at": now}
    return False


def search(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET)
    form.is_valid()  # each field apart: a bad "shown" falls back to the first page
    query = form.cleaned_data.get("q", "")
    shown = form.cleaned_data.get("shown") or SEARCH_PAGE
    if query and shown == SEARCH_PAGE and not _searched_just_now(request, query):
        # The personalised results are rendered by the template tag, which returns the list
        # it showed; recording the search itself (once, not per "show more") needs no list.
        searched.send(sender=None, request=request, query=query)
    return render(request, "shop/search.html", {"query": query, "form": form, "shown": shown})


def _cart_lines(request: HttpRequest, cart: Cart) -> list[CartLine]:
    """The cart's lines; the shopper is told of each product dropped as no longer sold."""
    lines = cart.lines()
    for title in cart.removed:
        messages.warning(request, f"{title} is no longer sold and was removed from your cart.")
    return lines


@require_GET
def cart_view(request: HttpRequest) -> HttpResponse:
    cart = Cart(request.session)
    lines = _cart_lines(request, cart)
    can_check_out = not any(line.shortage for line in lines)
    context = {"lines": lines, "total": cart.total(lines), "can_check_out": can_check_out}
    return render(request, "shop/cart.html", context)


def _wants_json(request: HttpRequest) -> bool:
    """Whether the add-to-cart form was sent by the shop's script (cart.js), which shows the
    answer on the page, rather than by the browser, which follows a redirect back."""
    return "application/json" in request.headers.get("Accept", "")


def _cart_add_answer(request: HttpRequest, message: str, *, ok: bool, fallback: str) -> HttpResponse:
    if _wants_json(request):
        answer = {"message": message, "count": len(Cart(request.session))}
        return JsonResponse(answer, status=200 if ok else 400)
    (messages.success if ok else messages.error)(request, message)
    return redirect(_safe_next(request, fallback))


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    form = CartChangeForm(request.POST)
    if not form.is_valid():
        return _cart_add_answer(
            request, "Choose a quantity between 1 and 99.", ok=False, fallback=reverse("shop:cart")
        )
    item = get_object_or_404(Product, pk=form.cleaned_data["product"])
    quantity = form.cleaned_data["quantity"]
    # The posted id is the browser's word: credited (now and at checkout) only for a list
    # this visitor was shown with this product in it.
    recommendation_id = recommendations.claim_recommendation(
        request, form.cleaned_data["recommendation_id"], item
    )
    try:
        Cart(request.session).add(item, quantity, recommendation_id)
    except CartError as error:
        return _cart_add_answer(request, str(error), ok=False, fallback=item.get_absolute_url())
    added_to_cart.send(
        sender=Product, request=request, product=item, quantity=quantity, recommendation_id=recommendation_id
    )
    return _cart_add_answer(
        request, f"Added {quantity} x {item.title} to your cart.", ok=True, fallback=reverse("shop:cart")
    )


@require_POST
def cart_update(request: HttpRequest) -> HttpResponse:
    form = CartChangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a quantity between 0 and 99.")
        return redirect("shop:cart")
    item = get_object_or_404(Product, pk=form.cleaned_data["product"])
    cart = Cart(request.session)
    before = cart.quantity_of(item)
    try:
        cart.set_quantity(item, form.cleaned_data["quantity"])
    except CartError as error:
        messages.error(request, str(error))
        return redirect("shop:cart")
    after = cart.quantity_of(item)
    if after < before:
        removed_from_cart.send(sender=Product, request=request, product=item, quantity=before - after)
    elif after > before:
        added_to_cart.send(sender=Product, request=request, product=item, quantity=after - before)
    return redirect("shop:cart")


def checkout(request: HttpRequest) -> HttpResponse:
    cart = Cart(request.session)
    if request.method == "POST":
        # A form sent again after its order was placed (a double click: the first answer is
        # dropped, the cart is already empty) shows that order, not "Your cart is empty".
        repeated = placed_order(request, _checkout_token(request))
        if repeated is not None:
            return _show_placed_order(request, cart, repeated)
    lines = _cart_lines(request, cart)
    if not lines:
        messages.info(request, "Your cart is empty.")
        return redirect("shop:cart")
    if request.method == "POST":
        form = CheckoutForm(request.POST)
        if form.is_valid():
            details = dict(form.cleaned_data)
            token = details.pop("checkout_token")
            try:
                order = place_order(request, cart, details, token)
            except CartError as error:
                messages.error(request, str(error))
                return redirect("shop:cart")
            return _show_placed_order(request, cart, order)
    else:
        user = request.user
        initial = {"name": user.get_full_name(), "email": user.email} if user.is_authenticated else {}
        form = CheckoutForm(initial={**initial, "checkout_token": uuid.uuid4()})
    return render(request, "shop/checkout.html", {"form": form, "lines": lines, "total": cart.total(lines)})


def _checkout_token(request: HttpRequest) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.POST.get("checkout_token", ""))
    except ValueError:
        return None


def _show_placed_order(request: HttpRequest, cart: Cart, order: Order) -> HttpResponse:
    """Redirect to `order`'s page, which this session may then see. A request that finds its
    order placed by another (sent at the same time) empties the cart as that one did: else its
    session, saved last, would bring the bought cart back."""
    orders = request.session.get(ORDERS_SESSION_KEY, [])
    if order.pk not in orders:
        cart.clear()
        request.session[ORDERS_SESSION_KEY] = [*orders, order.pk]
    return redirect("shop:order", pk=order.pk)


def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order.objects.prefetch_related("lines__product"), pk=pk)
    own = (request.user.is_authenticated and order.user_id == request.user.pk) or pk in request.session.get(
        ORDERS_SESSION_KEY, []
    )
    if not own:
        raise Http404("No such order.")
    return render(request, "shop/order.html", {"order": order})


class LoginView(auth_views.LoginView):
    """Sign in; on the demo data, offers a few demo shoppers to sign in as with one click."""

    template_name = "shop/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "demo_accounts": demo_shoppers(DEMO_ACCOUNTS),
            "demo_password": DEMO_PASSWORD,
        }

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Refuse, unchecked, a username that failed too often from this address (429)."""
        username = request.POST.get("username", "")
        if not login_throttle.is_locked(request, username):
            return super().post(request, *args, **kwargs)
        minutes = -(-settings.LOGIN_FAILURE_WINDOW_SECONDS // 60)
        refusal = (
            f"Too many failed sign-ins for this account. Wait up to {minutes} "
            f"minute{pluralize(minutes)} and try again, or sign in as someone else."
        )
        # An unbound form: a bound one would check the password as it shows its errors.
        form = self.get_form_class()(request, initial={"username": username})
        response = self.render_to_response(self.get_context_data(form=form, refusal=refusal), status=429)
        response["Retry-After"] = str(settings.LOGIN_FAILURE_WINDOW_SECONDS)
        return response


@require_POST
def new_visitor(request: HttpRequest) -> HttpResponse:
    """Forget who this browser is: sign out and start a fresh anonymous session."""
    logout(request)  # flushes the session: cart, engine session id and history link all go
    messages.info(request, "You are now browsing as a new visitor.")
    return redirect("shop:home")


@require_GET
def product_image(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(Product.objects.select_related("category"), pk=pk)
    svg = placeholders.product_svg(str(item.pk), item.title, item.category.name)
    return _svg_response(svg)


@require_GET
def store_logo(request: HttpRequest, pk: int) -> HttpResponse:
    return _svg_response(placeholders.store_svg(get_object_or_404(Store, pk=pk).name))


def _svg_response(svg: str) -> HttpResponse:
    response = HttpResponse(svg, content_type="image/svg+xml")
    patch_cache_control(response, public=True, max_age=IMAGE_MAX_AGE)
    return response
