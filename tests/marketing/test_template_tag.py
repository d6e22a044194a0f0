"""{% personalized_campaigns %} renders the visitor's campaigns, and an empty block on failure."""

import datetime as dt
import logging
import re

from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.template import Context, Engine, Template
from django.test import RequestFactory

from recommendations.events.tracking import SESSION_KEY
from recommendations.marketing.targeting import CampaignMatch
from recommendations.models import Campaign, ServedRecommendation
from tests.marketing.conftest import add_event


def render(source: str, user=None, session_id: str = "") -> str:
    request = RequestFactory().get("/")
    request.user = user or AnonymousUser()
    request.session = SessionStore()
    if session_id:
        request.session[SESSION_KEY] = session_id
    return Template("{% load marketing_tags %}" + source).render(Context({"request": request}))


def test_the_block_shows_the_visitors_campaigns(shop):
    tea = Campaign.objects.create(name="Tea week", category_names=["Tea"], discount_text="-20% <b>tea</b>")
    Campaign.objects.create(name="Garden week", category_names=["Garden"])
    html = render('{% personalized_campaigns limit=1 title="Offers for you" %}', user=shop.users["tea_lover"])
    assert f'data-campaign-id="{tea.pk}"' in html and "Offers for you" in html
    assert "Garden week" not in html
    assert "-20% &lt;b&gt;tea&lt;/b&gt;" in html  # campaign text is escaped
    assert "recommendations/campaigns.js" in html


def test_the_block_is_recorded_as_shown_and_carries_its_lists_id(shop):
    """Views count towards a cap only with the id of the list that showed the campaign."""
    tea = Campaign.objects.create(name="Tea week", category_names=["Tea"])
    html = render("{% personalized_campaigns %}", user=shop.users["tea_lover"])
    recommendation_id = re.search(rf'data-campaign-id="{tea.pk}" data-rec-id="(\w+)"', html).group(1)
    served = ServedRecommendation.objects.get(pk=recommendation_id)
    assert (served.kind, served.user, served.product_ids) == (
        "campaigns",
        shop.users["tea_lover"],
        [str(tea.pk)],
    )
    ids = render(
        "{% get_personalized_campaigns as offers %}{% for m in offers %}{{ m.recommendation_id }}{% endfor %}",
        user=shop.users["tea_lover"],
    )
    assert ServedRecommendation.objects.filter(pk=ids, kind="campaigns").exists()


def test_the_link_is_shown_only_as_a_path_or_an_http_address(shop):
    tea = Campaign.objects.create(
        name="Tea week", category_names=["Tea"], link_url="https://shop.example/tea"
    )
    links = lambda: render("{% personalized_campaigns %}", user=shop.users["tea_lover"])  # noqa: E731
    assert 'href="https://shop.example/tea"' in links()
    # A row saved before links were checked (the form refuses this one) is shown as a banner,
    # as one without a link is: not as a link that goes nowhere (href="#").
    Campaign.objects.filter(pk=tea.pk).update(link_url="javascript:alert(document.cookie)")
    assert "javascript:" not in links() and "<a " not in links() and "Tea week" in links()


def test_the_apps_own_campaigns_template_shows_a_campaign_without_a_link_as_no_link(db):
    """The app's recommendations/campaigns.html, which the demo shop's templates override."""
    engine = Engine(app_dirs=True, libraries={"static": "django.templatetags.static"})
    template = engine.get_template("recommendations/campaigns.html")

    def shown(link_url: str) -> str:
        campaign = Campaign(pk=7, name="Tea week", link_url=link_url)
        match = CampaignMatch(campaign=campaign, score=1.0, reason="", method="affinity")
        return template.render(Context({"matches": [match]}))

    assert 'href="/offers/tea/"' in shown("/offers/tea/")
    assert "<a " not in shown("") and "Tea week" in shown("")


def test_the_as_form_gives_the_matches(shop):
    Campaign.objects.create(name="Garden week", category_names=["Garden"])
    add_event("view", session="anon-g", product=shop.products["Garden"][0])
    html = render(
        "{% get_personalized_campaigns limit=2 as offers %}{% for m in offers %}[{{ m.campaign.name }}]{% endfor %}",
        session_id="anon-g",
    )
    assert html == "[Garden week]"


def test_nothing_to_show_renders_nothing(shop):
    assert render("{% personalized_campaigns %}", user=shop.users["bystander"]).strip() == ""


def test_a_database_failure_renders_an_empty_block_and_the_page_goes_on(shop, caplog):
    Campaign.objects.create(name="Tea week", category_names=["Tea"])
    with connection.cursor() as cursor:  # a real fault: the table is gone (undone with the test)
        cursor.execute("ALTER TABLE recommendations_campaign RENAME TO recommendations_campaign_gone")
    with caplog.at_level(logging.ERROR, logger="recommendations.templatetags.marketing_tags"):
        html = render("before{% personalized_campaigns %}after", user=shop.users["tea_lover"])
    assert html == "beforeafter"
    assert "personalised campaigns block failed" in caplog.text
    # Only the block's savepoint was rolled back: the page's transaction still works.
    assert shop.users["tea_lover"].__class__.objects.filter(username="tea_lover").exists()


def test_a_campaign_with_broken_rules_is_skipped_not_fatal(shop, caplog):
    Campaign.objects.create(name="Tea week", category_names=["Tea"])
    broken = Campaign.objects.create(name="Broken", category_names=["Tea"])
    Campaign.objects.filter(pk=broken.pk).update(audience_rules={"max_audiance": 5})  # bypasses clean()
    with caplog.at_level(logging.WARNING, logger="recommendations.marketing.targeting"):
        html = render("{% personalized_campaigns %}", user=shop.users["tea_lover"])
    assert "Tea week" in html and "Broken" not in html
    assert "Unknown audience rule(s): max_audiance" in caplog.text


def test_the_apps_own_block_dates_the_end_in_the_active_language(shop, settings):
    """The block (not the demo shop's override) wrote "Ends 1 十二月, 20:37" in Chinese."""
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": []}]
    settings.LANGUAGE_CODE = "zh-hans"
    Campaign.objects.create(
        name="Tea week", category_names=["Tea"], ends_at=dt.datetime(2099, 12, 1, 20, 37, tzinfo=dt.UTC)
    )
    html = render("{% personalized_campaigns %}", user=shop.users["tea_lover"])
    assert '<p class="rec-campaign-ends">Ends 2099年12月1日 20:37</p>' in html
