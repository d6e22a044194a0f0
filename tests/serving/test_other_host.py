"""Serving on a second host with other names and UUID keys (tests/hostapp): the rules' key
lookups, store checks and the search index work for any primary key type."""

import pytest
from django.test import override_settings

from recommendations import signal_processors
from recommendations.models import ProductDocument
from recommendations.serving import products, search
from recommendations.serving.catalog import CategorySearchProcessor, index_products
from recommendations.serving.errors import NotFound
from recommendations.serving.types import Audience, Options
from tests.hostapp.adapters import HOST_SETTINGS
from tests.hostapp.models import Gadget, Kit, Section, Seller

KIT_SETTINGS = {"PRODUCT_MODEL": "hostapp.Kit", "PRODUCT_ADAPTER": "tests.hostapp.adapters.ListingAdapter"}

pytestmark = pytest.mark.django_db


@pytest.fixture
def gadgets():
    section = Section.objects.create(label="Audio")
    seller = Seller.objects.create(shop_name="Sound Co")
    made = {
        name: Gadget.objects.create(name=name, section=section, seller=seller, cost_cents=999, on_hand=stock)
        for name, stock in [("Wireless earbuds", 3), ("Bluetooth speaker", 2), ("Sold out earbuds", 0)]
    }
    with override_settings(RECOMMENDATIONS=HOST_SETTINGS):
        index_products()
        yield made, seller


def test_lists_and_search_with_uuid_keys(gadgets):
    made, seller = gadgets
    newest = products.new_arrivals(Audience(), Options())
    assert [obj.name for obj, _ in newest] == ["Bluetooth speaker", "Wireless earbuds"]  # in stock only
    assert newest.ids == [str(made["Bluetooth speaker"].pk), str(made["Wireless earbuds"].pk)]
    found = search.search("earbuds", Audience(), Options())
    assert [obj.name for obj, _ in found] == ["Wireless earbuds"]
    in_store = products.store_products(str(seller.pk), Audience(), Options())
    assert {obj.name for obj, _ in in_store} == {"Wireless earbuds", "Bluetooth speaker"}
    with pytest.raises(NotFound, match="No store with id 'not-a-uuid'"):
        products.store_products("not-a-uuid", Audience(), Options())
    with pytest.raises(NotFound, match="No product"):
        products.similar("00000000-0000-0000-0000-000000000000", Audience(), Options())


def test_rerank_takes_a_uuid_in_any_spelling_as_a_url_does(gadgets, client):
    """`/similar/<UUID>/` took an upper-case UUID; re-ranking answered it with a 404."""
    made, _seller = gadgets
    earbuds, speaker = str(made["Wireless earbuds"].pk), str(made["Bluetooth speaker"].pk)
    with override_settings(RECOMMENDATIONS=HOST_SETTINGS):
        response = client.post(
            "/api/recommendations/rerank/",
            {"product_ids": [earbuds.upper(), speaker, earbuds]},
            content_type="application/json",
        )
    assert response.status_code == 200, response.content
    assert {item["id"] for item in response.json()["results"]} == {earbuds, speaker}


@pytest.fixture
def section_processor():
    """The category processor as the host's `ready()` would install it: watching sections."""
    with override_settings(RECOMMENDATIONS=HOST_SETTINGS):
        yield signal_processors.install("search index: categories", CategorySearchProcessor)
    signal_processors.install("search index: categories", CategorySearchProcessor)  # the shop's again


def test_a_renamed_or_moved_section_renames_the_paths_under_it(
    section_processor, django_capture_on_commit_callbacks
):
    """Saving a section saves none under it here: the engine finds them by their parent field."""
    electronics = Section.objects.create(label="Electronics")
    audio = Section.objects.create(label="Audio", parent=electronics)
    made = Gadget.objects.create(name="Wireless earbuds", section=audio, cost_cents=999, on_hand=3)
    index_products()
    assert ProductDocument.objects.get(product_id=str(made.pk)).categories == ["Electronics", "Audio"]
    electronics.label = "Gear"
    with django_capture_on_commit_callbacks(execute=True):
        electronics.save()
    assert [obj for obj, _ in search.search("gear", Audience(), Options())] == [made]
    assert search.search("electronics", Audience(), Options()).ids == []
    audio.parent = Section.objects.create(label="Sound")
    with django_capture_on_commit_callbacks(execute=True):
        audio.save()
    assert [obj for obj, _ in search.search("sound", Audience(), Options())] == [made]
    assert ProductDocument.objects.get(product_id=str(made.pk)).placement == "Sound Audio"


def test_a_deleted_section_leaves_no_path_in_its_gadgets_documents(
    section_processor, django_capture_on_commit_callbacks
):
    """Deleting a section empties its gadgets' section (SET_NULL) and deletes the sections
    under it (CASCADE) with no save of either: their gadgets are searched without its path."""
    electronics = Section.objects.create(label="Electronics")
    audio = Section.objects.create(label="Audio", parent=electronics)
    made = [
        Gadget.objects.create(name="Wireless earbuds", section=audio, cost_cents=999, on_hand=3),
        Gadget.objects.create(name="Phone charger", section=electronics, cost_cents=999, on_hand=3),
    ]
    kept = Gadget.objects.create(
        name="Garden hose", section=Section.objects.create(label="Garden"), cost_cents=1, on_hand=1
    )
    index_products()
    with django_capture_on_commit_callbacks(execute=True):
        electronics.delete()
    documents = ProductDocument.objects.filter(product_id__in=[str(g.pk) for g in made])
    assert sorted(documents.values_list("categories", "placement")) == [([], ""), ([], "")]
    assert search.search("electronics", Audience(), Options()).ids == []
    assert search.search("audio", Audience(), Options()).ids == []
    assert [obj for obj, _ in search.search("earbuds", Audience(), Options())] == [made[0]]
    assert ProductDocument.objects.get(product_id=str(kept.pk)).categories == ["Garden"]


def test_a_product_whose_key_holds_a_slash_is_named_in_the_api_paths(client):
    """A host keyed by SKU ("AB/12"): the API's paths that name a product take the whole key."""
    kits = [Kit.objects.create(sku=sku, name=f"Tent {sku}", category="Tents") for sku in ("AB/12", "AB/13")]
    with override_settings(RECOMMENDATIONS=KIT_SETTINGS):
        index_products()
        for kind in ("similar", "bought-together"):
            response = client.get(f"/api/recommendations/{kind}/AB/12/")
            assert response.status_code == 200, response.content
            assert response.json()["results"][0]["id"] == kits[1].pk
        assert client.get("/api/recommendations/similar/AB/99/").status_code == 404


def test_a_text_key_with_a_nul_character_names_no_product(client):
    """PostgreSQL text cannot hold NUL: a SKU host's `/similar/AB%0012/` reached it as a
    parameter and was a 500. Such a key names nothing, as a malformed integer key does."""
    Kit.objects.create(sku="AB12", name="Tent", category="Tents")
    with override_settings(RECOMMENDATIONS=KIT_SETTINGS):
        index_products()
        for kind in ("similar", "bought-together"):
            response = client.get(f"/api/recommendations/{kind}/AB%0012/")
            assert response.status_code == 404, response.content
            assert response.json()["detail"] == "No product with id 'AB\\x0012'."
