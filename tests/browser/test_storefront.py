"""The demo shop as a person uses it: a real Chromium, the JS beacon, a live server.

The catalogue has mugs, teas and knives. Past shoppers made mugs the best sellers and bought
teas together with teas, so a new visitor first gets mugs (trending) as "recommended for
you", and after looking at two teas gets other teas, with no retrain (no model is trained
here: the classic recommenders answer).
"""

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from recommendations.models import Event
from shop.models import Order, Product
from tests.browser.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FOR_YOU = "#for-you [data-rec-impression] [data-product-id]"


def for_you_ids(page) -> list[str]:
    page.locator(FOR_YOU).first.wait_for()
    return page.locator(FOR_YOU).evaluate_all("nodes => nodes.map(n => n.dataset.productId)")


def visit_product(page, product):
    page.goto(product.get_absolute_url())
    wait_for(
        lambda: Event.objects.filter(event_type="view", product_id=str(product.pk)).exists(),
        what=f"the beacon's view of {product.title}",
    )


def test_viewing_products_changes_the_home_page_recommendations(page, shop, artifacts):
    page.goto("/")
    page.keyboard.press("Tab")  # keyboard users first meet a way past the header
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    before = for_you_ids(page)
    mug_ids = {str(p.pk) for p in shop["mug"]}
    tea_ids = {str(p.pk) for p in shop["tea"]}
    assert before[0] in mug_ids, "a new visitor starts with the best sellers"

    visit_product(page, shop["tea"][0])
    visit_product(page, shop["tea"][1])
    page.goto("/")
    after = for_you_ids(page)
    assert after != before
    assert after[0] in tea_ids and after[0] not in {str(shop["tea"][0].pk), str(shop["tea"][1].pk)}
    assert "Based on what you have viewed" in page.locator("#for-you").inner_text()
    # The first card explains itself, naming a product the visitor looked at.
    first = page.locator("#for-you .card").first
    first.locator("summary").click()
    reason = first.locator(".why-pop").inner_text()
    assert shop["tea"][0].title in reason or shop["tea"][1].title in reason, reason
    page.screenshot(path=str(artifacts / "home.png"), full_page=True)

    # "New visitor" forgets all that: the shelf starts again from the best sellers.
    page.get_by_test_id("new-visitor").click()
    page.get_by_text("You are now browsing as a new visitor").wait_for()
    assert for_you_ids(page)[0] in mug_ids


def test_a_shop_with_nothing_to_recommend_shows_no_empty_shelf_nor_a_link_to_one(page):
    """A new install, before `make demo` loads the catalogue."""
    page.goto("/")
    assert page.locator(".shelf:visible h2").all_inner_texts() == ["Shop by category"]
    assert not page.get_by_role("link", name="See your picks").is_visible()


def test_a_click_on_a_recommendation_and_the_view_it_opens_are_attributed_and_a_purchase_recorded(
    page, shop, artifacts
):
    page.goto("/")
    block = page.locator("#for-you [data-rec-impression]")
    recommendation_id = block.get_attribute("data-rec-id")
    card = block.locator("[data-product-id]").first
    product_id = card.get_attribute("data-product-id")
    wait_for(
        lambda: Event.objects.filter(event_type="impression", recommendation_id=recommendation_id).exists(),
        what="the impression of the for-you block",
    )
    card.locator(".card-title").click()
    page.wait_for_url(f"**/product/**?rec={recommendation_id}")
    click = wait_for(
        lambda: Event.objects.filter(event_type="click", recommendation_id=recommendation_id).first(),
        what="the attributed click",
    )
    assert click.product_id == product_id
    view = wait_for(
        lambda: Event.objects.filter(event_type="view", product_id=product_id).first(),
        what="the view of the product page the click opened",
    )
    assert view.recommendation_id == recommendation_id, "the view is credited to the list it came from"
    page.screenshot(path=str(artifacts / "product.png"), full_page=True)

    page.get_by_test_id("add-to-cart").click()
    page.get_by_text("to your cart").wait_for()
    assert page.get_by_test_id("cart-count").inner_text() == "1"
    page.goto("/cart/")
    page.set_viewport_size({"width": 375, "height": 740})  # a phone: the cart fits its width
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(artifacts / "cart-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_test_id("checkout").click()
    page.get_by_label("Full name").fill("Ada Shopper")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Street address").fill("1 Quay Street")
    page.get_by_label("City").fill("Bristol")
    page.get_by_label("Postcode").fill("BS1 4ST")
    page.get_by_test_id("place-order").click()
    page.get_by_test_id("order-number").wait_for()

    order = Order.objects.get()
    product = Product.objects.get(pk=product_id)
    purchase = Event.objects.get(event_type="purchase", context__order_id=str(order.pk))
    assert purchase.product_id == product_id and purchase.revenue == product.price
    assert purchase.recommendation_id == recommendation_id, "the sale is credited to the recommendation"
    assert order.total == product.price and product.stock == 19
    assert page.get_by_test_id("cart-count").inner_text() == "0"


def test_a_new_visitors_first_click_is_an_add_to_cart_in_the_session_of_its_impression_and_click(page, shop):
    """A first action before any cookie: the beacon's click and the cart's form start one session.

    Sent beside the form, the beacon's batch had no session cookie either: two sessions, the
    first impression and click outside the visitor's, and the browser kept one of the two
    cookies (the cart's, or the events' with an empty cart).
    """
    beacons = []
    page.on("request", lambda request: request.url.endswith("/api/events/") and beacons.append(request))
    page.goto("/")
    block = page.locator("#for-you [data-rec-impression]")
    recommendation_id = block.get_attribute("data-rec-id")
    card = block.locator("[data-product-id]").first
    product_id = card.get_attribute("data-product-id")
    assert not beacons, "the beacon sent its first batch before the click: there was no race to test"
    card.locator(".add-btn").click()
    page.get_by_test_id("cart-status").get_by_text("to your cart").wait_for()
    click, cart = (
        wait_for(lambda: Event.objects.filter(event_type=kind).first(), what=f"the {kind} event")
        for kind in ("click", "add_to_cart")
    )
    visitor = Event.objects.exclude(event_type="purchase")  # the shop's past sales have no session
    sessions = sorted(visitor.values_list("session_id", "event_type").distinct())
    assert len({session for session, _ in sessions}) == 1, sessions
    assert (click.product_id, cart.product_id) == (product_id, product_id)
    assert click.recommendation_id == cart.recommendation_id == recommendation_id
    assert Session.objects.count() == 1
    page.goto("/cart/")
    assert page.get_by_test_id("cart-count").inner_text() == "1", "the browser kept the cart's session"


@pytest.mark.usefixtures("admin_page")
def test_admin_preview_shows_the_users_blocks_and_the_dashboard_renders(
    page, shop, django_user_model, artifacts
):
    shopper = django_user_model.objects.create_user("ada")
    Event.objects.create(
        event_type="view", user=shopper, product_id=str(shop["tea"][0].pk), timestamp=timezone.now()
    )

    page.goto("/admin/recommendations/userpreview/")
    page.get_by_label("Shopper").fill("ada")
    page.get_by_role("button", name="Preview").click()
    page.get_by_role("heading", name="What ada sees").wait_for()
    for title in (
        "Recommended for you",
        "Trending now",
        "Stores you may like",
        f"Similar to {shop['tea'][0].title}",
    ):
        assert page.locator(f'section[data-block="{title}"] li').count() > 0, title
    # Ada looked at one tea; what was bought with it leads, and says so.
    assert (
        shop["tea"][0].title
        in page.locator('section[data-block="Recommended for you"] li').first.inner_text()
    )
    page.screenshot(path=str(artifacts / "admin-preview.png"), full_page=True)

    page.goto("/admin/recommendations/dashboard/?days=7")
    page.locator("#events-per-day svg.rec-chart").wait_for()
    assert page.locator("#top-products tbody tr").count() > 0
    page.screenshot(path=str(artifacts / "admin-dashboard.png"), full_page=True)

    page.set_viewport_size({"width": 1366, "height": 800})  # a laptop: the variants table fits
    page.goto("/admin/recommendations/experiment/add/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366


def test_a_listing_taller_than_the_screen_is_counted_as_seen(page, shop):
    """Half of a tall block never fits on screen at once; half a screen of it is enough."""
    page.set_viewport_size({"width": 375, "height": 600})
    page.goto("/category/kitchen/")
    grid = page.locator(".grid[data-rec-impression]")
    recommendation_id = grid.get_attribute("data-rec-id")
    assert grid.bounding_box()["height"] > 2 * 600, "the listing is taller than two screens"
    page.mouse.wheel(0, 900)  # well into the listing, far from its end
    wait_for(
        lambda: Event.objects.filter(event_type="impression", recommendation_id=recommendation_id).exists(),
        what="the impression of the category listing",
    )


def test_adding_to_the_cart_from_a_card_stays_on_the_page(page, shop):
    """A reload after "+" ranked a listing anew and recorded the search (or the view) again."""
    page.goto("/search/?q=tea")
    page.evaluate("window.stillHere = true")
    first = page.locator("#search-results .card").first
    product_id = first.locator("[data-product-id]").get_attribute("data-product-id")
    first.locator(".add-btn").click()
    page.get_by_test_id("cart-status").get_by_text("to your cart").wait_for()
    assert page.evaluate("window.stillHere") is True, "the page was reloaded"
    assert page.get_by_test_id("cart-count").inner_text() == "1"
    assert page.locator(".cart-link").get_attribute("aria-label") == "Cart, 1 item"
    wait_for(lambda: Event.objects.filter(event_type="add_to_cart", product_id=product_id).exists())
    assert Event.objects.filter(event_type="search").count() == 1


# The focused element and whether its focus ring shows (an outline, which the CSS keeps for
# keyboard focus on every control).
FOCUSED = """() => {
    const el = document.activeElement, style = getComputedStyle(el);
    return {tag: el.tagName, cls: el.className, ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0};
}"""


def test_a_keyboard_user_sees_the_focus_and_keeps_it_on_the_add_button(page, shop):
    """A disabled button loses the focus: after "+" by keyboard the next Tab started again
    from the top of the page."""
    page.goto("/")
    for _ in range(30):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        assert focused["ring"], f"no focus ring on {focused}"
        if focused["cls"] == "add-btn":
            break
    else:
        raise AssertionError("Tab never reached an add button")
    product_id = page.evaluate("document.activeElement.form.product.value")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # again before the answer: adds nothing more
    page.get_by_test_id("cart-status").get_by_text("to your cart").wait_for()
    assert (
        page.evaluate("document.activeElement.form && document.activeElement.form.product.value")
        == product_id
    )
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED)["cls"] != "skip-link", "the focus went back to the top"
    assert page.get_by_test_id("cart-count").inner_text() == "1"
    assert Event.objects.filter(event_type="add_to_cart", product_id=product_id).count() == 1


def test_a_new_visitors_quick_adds_on_a_slow_network_fill_one_cart(page, shop):
    """Two adds sent before the first answer came (which starts a new visitor's session) each
    started a session: the browser kept one cookie, and the other product left the cart."""
    page.goto("/")
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 400, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    buttons = page.locator("form[data-cart-add] [type=submit]")
    products = {
        buttons.nth(i).locator("xpath=ancestor::*[@data-product-id][1]").get_attribute("data-product-id")
        for i in (0, 1)
    }
    buttons.nth(0).click()
    buttons.nth(1).click()
    wait_for(lambda: Event.objects.filter(event_type="add_to_cart").count() == 2, what="both adds")
    # A function, not an expression: Playwright evaluates an expression with eval(), which
    # the Content-Security-Policy refuses.
    page.wait_for_function("() => document.querySelector('[data-testid=cart-count]').textContent === '2'")
    adds = Event.objects.filter(event_type="add_to_cart")
    assert {e.product_id for e in adds} == products and len({e.session_id for e in adds}) == 1
    assert Session.objects.count() == 1


def test_an_add_that_falls_back_to_posting_holds_the_adds_behind_it(page, shop):
    """When an add's fetch fails, its form is posted the ordinary way; an add queued behind it
    that went at once started a second session beside that post, losing one product."""
    page.goto("/")
    fetches = []

    def fail_the_first_fetch(route, request):
        if request.resource_type == "fetch":
            fetches.append(request)
            if len(fetches) == 1:
                page.wait_for_timeout(300)
                return route.abort()
        return route.continue_()

    page.route(lambda url: "/cart/add/" in url, fail_the_first_fetch)
    buttons = page.locator("form[data-cart-add] [type=submit]")
    first = buttons.nth(0).locator("xpath=ancestor::*[@data-product-id][1]").get_attribute("data-product-id")
    buttons.nth(0).click()
    buttons.nth(1).click()
    # Waiting in Playwright, which runs the route's handler meanwhile (a plain sleep would not).
    for _ in range(50):
        page.wait_for_timeout(200)
        if Event.objects.filter(event_type="add_to_cart").exists():
            break
    page.wait_for_load_state()  # the post's answer, back on the page it was sent from
    page.wait_for_timeout(1000)  # time enough for a queued add to go, were it not held
    adds = Event.objects.filter(event_type="add_to_cart")
    assert [e.product_id for e in adds] == [first] and len(fetches) == 1
    assert Session.objects.count() == 1
    page.goto("/cart/")
    assert page.get_by_test_id("cart-count").inner_text() == "1"


# Scrolls the link to just under the header's bottom edge, as reading down and tabbing back
# up leaves it, and focuses it: the browser scrolls it into view only if it counts it hidden.
HIDDEN_BY_HEADER = """el => {
    const header = document.querySelector('.site-header');
    window.scrollBy(0, el.getBoundingClientRect().top - header.getBoundingClientRect().bottom + 10);
    el.focus();
    return getComputedStyle(header).position === 'sticky'
        && el.getBoundingClientRect().top < header.getBoundingClientRect().bottom;
}"""


@pytest.mark.parametrize("width", [1280, 320])
def test_keyboard_focus_is_never_under_the_header_and_the_header_reads_in_order(page, shop, width):
    page.set_viewport_size({"width": width, "height": 700})
    page.goto("/category/kitchen/")
    for link in page.locator(".card-title").all()[-6:]:
        assert not link.evaluate(HIDDEN_BY_HEADER), f"focus hidden under the header at {width}px"
    # The sort pills keep their words on one line.
    for pill in page.locator(".sort a").all():
        assert pill.evaluate("el => el.getClientRects().length") == 1
        assert pill.bounding_box()["height"] < 40
    # Keyboard order is reading order: the search box before "Sign in" and the cart.
    search, cart = (page.locator(s).bounding_box() for s in (".search", ".cart-link"))
    assert (search["y"], search["x"]) < (cart["y"], cart["x"]) if width < 900 else search["x"] < cart["x"]
