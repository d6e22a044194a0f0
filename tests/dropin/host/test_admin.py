"""The admin of a host whose user model signs in by e-mail, with no `username`."""

import re

import pytest
from django.urls import reverse

from recommendations.marketing.audiences import create_segment
from recommendations.models import Campaign, ServedRecommendation
from recommendations.serving.catalog import index_products

USER_ROWS = ["assignment", "segmentmember", "servedrecommendation", "uservector"]


@pytest.mark.parametrize("model", USER_ROWS)
def test_rows_of_a_user_are_searched_by_the_users_email(admin_client, shopper, model):
    response = admin_client.get(reverse(f"admin:recommendations_{model}_changelist"), {"q": "tea.lover"})
    assert response.status_code == 200


def test_a_served_list_is_found_by_its_shoppers_email(admin_client, shopper, django_user_model):
    other = django_user_model.objects.create_user("other@example.com")
    for key, user in (("mine", shopper), ("theirs", other)):
        ServedRecommendation.objects.create(id=key, kind="for_you", source="popular", user=user)
    url = reverse("admin:recommendations_servedrecommendation_changelist")
    response = admin_client.get(url, {"q": "TEA.LOVER@example"})
    assert [row.pk for row in response.context["cl"].result_list] == ["mine"]


def test_member_tables_name_the_user_column_after_the_sign_in_field(admin_client, history, shopper):
    """Shoppers sign in by e-mail: the campaign preview and the segment's members show the
    address once, under its own name, not under "Username" beside a copy of itself."""
    index_products()
    tea = Campaign.objects.create(name="Tea week", category_names=["Tea"])
    segment = create_segment(tea, name="Tea drinkers")
    pages = [
        admin_client.get(reverse("admin:recommendations_campaign_preview", args=[tea.pk])),
        admin_client.get(reverse("admin:recommendations_segment_change", args=[segment.pk])),
    ]
    for page in pages:
        html = page.content.decode()
        assert page.status_code == 200 and "tea.lover@example.com" in html
        headings = re.findall(r"<th[^>]*>([^<]*)</th>", html.split("<tbody>")[0].split("User id")[-1])
        assert headings[:1] == ["Email"] and "Username" not in html
        assert html.count("tea.lover@example.com") == 1
