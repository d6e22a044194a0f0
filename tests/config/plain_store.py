"""A product adapter whose store field is a plain field, not a ForeignKey: start-up refuses it."""

from tests.config.settings import *  # noqa: F403

RECOMMENDATIONS = {
    "PRODUCT_MODEL": "hostapp.Listing",
    "PRODUCT_ADAPTER": "tests.hostapp.adapters.PlainStoreListingAdapter",
}
