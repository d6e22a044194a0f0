"""A shop without stores (STORE_MODEL is optional): no store blocks, and no errors logged for them."""

import logging

from django.template import RequestContext, Template
from django.urls import reverse


def test_preview_of_a_shop_without_stores_has_no_store_block(admin_client, shopper, history, caplog):
    with caplog.at_level(logging.INFO, logger="recommendations"):
        response = admin_client.get(
            reverse("admin:recommendations_userpreview_changelist"), {"user": shopper.email}
        )
    assert response.status_code == 200 and response.context["previewed"] == shopper
    blocks = response.context["blocks"]
    assert "Recommended for you" in [block.title for block in blocks]
    assert not any("Store" in block.title for block in blocks)
    assert [block.error for block in blocks if block.error] == []
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_store_tags_render_nothing_in_a_shop_without_stores(rf, shopper, listings, caplog):
    request = rf.get("/")
    request.user = shopper
    page = Template(
        "{% load recommendations_tags %}"
        "[{% recommended_stores %}{% similar_stores 'any' %}{% store_products 'any' %}"
        "{% recommended_stores as picks %}{{ picks|length }}]"
    )
    with caplog.at_level(logging.INFO, logger="recommendations"):
        assert page.render(RequestContext(request)) == "[0]"
    assert not caplog.records
