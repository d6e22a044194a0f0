from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop catalogue"

    def ready(self) -> None:
        from shop import login_throttle  # noqa: F401  (connects its sign-in signal receivers)
