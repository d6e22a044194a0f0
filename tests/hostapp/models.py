"""A second host shop with other names and a UUID key: it proves the drop-in contract."""

import uuid

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models


class Section(models.Model):
    label = models.CharField(max_length=100)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE)

    def __str__(self) -> str:
        return self.label


class Seller(models.Model):
    shop_name = models.CharField(max_length=100)
    about = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.shop_name


class Gadget(models.Model):
    code = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=200)
    blurb = models.TextField(blank=True)
    # A deleted section leaves its gadgets on sale, uncategorised.
    section = models.ForeignKey(Section, null=True, on_delete=models.SET_NULL)
    seller = models.ForeignKey(Seller, null=True, on_delete=models.SET_NULL)
    maker = models.CharField(max_length=100, blank=True)
    cost_cents = models.PositiveIntegerField()
    on_hand = models.IntegerField(default=0)
    published = models.BooleanField(default=True)
    listed_on = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Listing(models.Model):
    """A product as a plainer host keeps it: a UUID key, a `name`, its category as text (no
    category model) and no stores."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Member(AbstractBaseUser):
    """A user model that signs in by a handle and has no e-mail field (nor `EMAIL_FIELD`),
    for tests that swap it in with `override_settings(AUTH_USER_MODEL="hostapp.Member")`."""

    handle = models.CharField(max_length=50, unique=True)

    USERNAME_FIELD = "handle"


class TextKeyed(models.Model):
    """A product keyed by text, with what `ListingAdapter` reads."""

    name = models.CharField(max_length=200)
    category = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name


class Bundle(TextKeyed):
    """A product kept under a code longer than the engine's keys: start-up refuses it
    (tests.config.long_key)."""

    code = models.CharField(max_length=100, primary_key=True)


class Kit(TextKeyed):
    """A product kept under its SKU, text that may hold a slash ("AB/12")."""

    sku = models.CharField(max_length=64, primary_key=True)
