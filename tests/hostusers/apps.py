from django.apps import AppConfig


class HostUsersConfig(AppConfig):
    name = "tests.hostusers"
    label = "hostusers"
    default_auto_field = "django.db.models.BigAutoField"
