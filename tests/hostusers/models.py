"""A host's own user model, as new projects often start with one: a UUID key, signing in by
e-mail, no `username`. Swapped in by tests/config/dropin.py only; it is an app of its own
because Django creates AUTH_USER_MODEL in its app's first migration."""

import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models


class ShopperManager(BaseUserManager):
    def create_user(self, email: str, password: str | None = None, **fields: Any) -> "Shopper":
        user = self.model(email=self.normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> "Shopper":
        return self.create_user(email, password, is_staff=True, is_superuser=True, **fields)


class Shopper(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    email = models.EmailField(unique=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"

    objects = ShopperManager()

    def __str__(self) -> str:
        return self.email
