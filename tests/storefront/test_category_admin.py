"""Categories added in the admin, however deep the tree and long the names."""

from django.urls import reverse

from shop.models import Category


def test_a_child_under_four_levels_of_120_character_names_is_added(admin_client):
    """Its path (612 characters) overflowed the column: the admin answered 500."""
    parent = None
    for depth in range(4):
        parent = Category.objects.create(name=f"{depth}" * 120, slug=f"level-{depth}", parent=parent)
    response = admin_client.post(
        reverse("admin:shop_category_add"), {"name": "长" * 120, "slug": "deep-leaf", "parent": parent.pk}
    )
    assert response.status_code == 302
    leaf = Category.objects.get(slug="deep-leaf")
    assert leaf.names == [*parent.names, "长" * 120] and len(leaf.path) == 612
