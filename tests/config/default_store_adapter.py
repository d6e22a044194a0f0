"""A store model without a store adapter: the default one's names miss, and start-up says
which setting to fill."""

from tests.config.settings import *  # noqa: F403
from tests.hostapp.adapters import HOST_SETTINGS

RECOMMENDATIONS = {key: value for key, value in HOST_SETTINGS.items() if key != "STORE_ADAPTER"}
