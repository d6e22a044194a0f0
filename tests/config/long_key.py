"""A product model whose primary key may be longer than the engine's keys: start-up refuses it."""

from tests.config.settings import *  # noqa: F403

RECOMMENDATIONS = {
    "PRODUCT_MODEL": "hostapp.Bundle",
    "PRODUCT_ADAPTER": "tests.hostapp.adapters.ListingAdapter",
}
