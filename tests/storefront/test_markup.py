"""Every storefront page passes the markup review of tests/storefront/markup.py: as a new shop
(no history, no model: empty recommendation blocks), and with full blocks and a cart."""

import pytest
from django.urls import reverse

from recommendations.models import Campaign, CampaignKind
from tests.storefront.conftest import page_urls
from tests.storefront.markup import problems
from tests.storefront.test_cart_checkout import DETAILS, add


def review(client, urls: list[str]) -> dict[str, list[str]]:
    pages = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        pages[url] = problems(response.content.decode())
    return {url: found for url, found in pages.items() if found}


def test_the_pages_of_a_new_shop_pass_the_review(client, indexed, django_user_model):
    # A demo shopper, whom the login page offers to sign in as.
    django_user_model.objects.create_user("maya.lopez", email="maya.lopez@demo.example.com")
    too_long = reverse("shop:search") + "?q=" + "mug " * 60
    urls = [*page_urls(indexed), indexed[7].get_absolute_url(), too_long]  # and a sold-out product
    assert review(client, urls) == {}


def test_the_pages_with_recommendations_a_cart_and_an_order_pass_the_review(client, history, shopper):
    Campaign.objects.create(name="Mug week", kind=CampaignKind.PROMOTION, product_ids=[str(history[0].pk)])
    failed = client.post(reverse("shop:login"), {"username": "shopper", "password": "wrong"})
    assert problems(failed.content.decode()) == []
    client.force_login(shopper)
    for product in history[:3]:
        add(client, product, 2)
    urls = [url for url in page_urls(history) if url != reverse("shop:login")]  # signed in: redirected
    assert review(client, [*urls, reverse("shop:checkout")]) == {}
    refused = client.post(reverse("shop:checkout"), {**DETAILS, "email": "not-an-email"})
    assert problems(refused.content.decode()) == []
    order = client.post(reverse("shop:checkout"), DETAILS)
    assert review(client, [order.url]) == {}


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ("<h1>A</h1><h3>B</h3><p>x</p>", "<h3> 'B' follows <h1>: a level is skipped"),
        ("<h2>B</h2><p>x</p><h1>A</h1><p>y</p>", "<h2> 'B' comes before the <h1>"),
        ("<h1>A</h1><h2>Picks</h2><h2>B</h2><p>x</p>", "<h2> 'Picks' heads nothing"),
        ('<h1>A</h1><p id="x"></p><p id="x">y</p>', 'id="x" is used 2 times'),
        ('<h1>A</h1><img src="/p.svg"><p>x</p>', "<img src='/p.svg'> needs an alt"),
        ('<h1>A</h1><a href="/p/"><img src="/p.svg" alt=""></a>', "the link to /p/ has no text"),
        ('<h1>A</h1><input name="q" id="q">', "<input name='q'> has no label"),
        (
            '<h1>A</h1><div data-rec-impression data-rec-id="1"></div>',
            "a recommendation block shows no product",
        ),
        ('<h1>A</h1><span class="stars"></span>', 'mark them aria-hidden="true"'),
        ("<h1>A</h1><div><span>x</div></span>", "</div> closes <span>"),
    ],
)
def test_the_review_finds_what_it_is_for(html, problem):
    page = f'<html lang="en"><body><nav>n</nav><main>{html}</main></body></html>'
    assert any(problem in found for found in problems(page)), problems(page)
