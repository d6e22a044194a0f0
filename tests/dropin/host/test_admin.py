"""The admin of a host whose user model signs in by e-mail, with no `username`."""

import pytest
from django.urls import reverse

from recommendations.models import ServedRecommendation

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
