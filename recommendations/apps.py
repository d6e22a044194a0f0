from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Bad configuration must fail at start-up with one clear message, not on first request.
        from recommendations.adapters import validate_configuration

        validate_configuration()

        from recommendations.events import receivers

        receivers.connect()
