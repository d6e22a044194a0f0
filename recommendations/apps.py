from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Bad configuration must fail at start-up with one clear message, not on first request.
        from recommendations.adapters import validate_configuration

        validate_configuration()

        from recommendations import routers

        routers.validate_configuration()

        # Configuration that works, but badly: warnings in `manage.py check`.
        from recommendations import checks  # noqa: F401
        from recommendations.events import receivers

        receivers.connect()

        # Privacy: erase a user's data when the host deletes the user, register the retention
        # task, and add "Erase personal data" to whichever admin the host registered for users
        # (ready() runs after admin autodiscovery).
        from recommendations import privacy
        from recommendations.admin.privacy import install_erase_action

        privacy.setup()
        install_erase_action()

        # Embed saved products within seconds, from their content (recommendations.indexing),
        # and keep their search documents fresh (recommendations.serving.catalog).
        from recommendations import signal_processors
        from recommendations.adapters import get_product_adapter, get_store_model
        from recommendations.conf import rec_settings
        from recommendations.serving.catalog import (
            CategorySearchProcessor,
            SearchIndexProcessor,
            StoreSearchProcessor,
        )

        signal_processors.install("embedding", rec_settings.SIGNAL_PROCESSOR)
        signal_processors.install("search index", SearchIndexProcessor)
        signal_processors.install("search index: stores", StoreSearchProcessor if get_store_model() else None)
        has_categories = get_product_adapter().category_model() is not None
        signal_processors.install(
            "search index: categories", CategorySearchProcessor if has_categories else None
        )
