from shop.settings import *  # noqa: F403

RECOMMENDATIONS = {"PRODUCT_MODEL": "shop.Product", "PRODUCT_MODLE": "shop.Product"}
