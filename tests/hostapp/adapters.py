from recommendations import adapters


class GadgetAdapter(adapters.ProductAdapter):
    title_field = "name"
    description_field = "blurb"
    category_field = "section"
    store_field = "seller"
    brand_field = "maker"
    price_field = None
    stock_field = "on_hand"
    active_field = "published"
    created_field = "listed_on"
    category_parent_field = "parent"

    def get_category_path(self, obj):
        path, section = [], obj.section
        while section is not None:  # no save of a section touches the sections under it
            path.insert(0, section.label)
            section = section.parent
        return path

    def to_record(self, obj):
        record = super().to_record(obj)
        # Prices are kept in cents by this host.
        return adapters.ProductRecord(**{**record.__dict__, "price": obj.cost_cents / 100})


class SellerAdapter(adapters.StoreAdapter):
    name_field = "shop_name"
    description_field = "about"
    rating_field = None


class ListingAdapter(adapters.ProductAdapter):
    """A host with a plain-text category and no stores: the default getters read both."""

    title_field = "name"
    description_field = None
    store_field = None
    brand_field = None
    price_field = None
    stock_field = None
    active_field = None


class PlainStoreListingAdapter(ListingAdapter):
    """A host that names each listing's seller in a text field (its category's, here) rather
    than a ForeignKey: start-up refuses it (tests.config.plain_store)."""

    store_field = "category"


# RECOMMENDATIONS that make this app, with its sellers, the host.
HOST_SETTINGS = {
    "PRODUCT_MODEL": "hostapp.Gadget",
    "PRODUCT_ADAPTER": "tests.hostapp.adapters.GadgetAdapter",
    "STORE_MODEL": "hostapp.Seller",
    "STORE_ADAPTER": "tests.hostapp.adapters.SellerAdapter",
}
