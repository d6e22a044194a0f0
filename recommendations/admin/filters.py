"""Admin list filters that take typed input, for columns with too many values to list."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest

# PostgreSQL text cannot hold this character, so no row holds it: a box that has it matches none.
NUL = "\x00"


def matching_users(value: str) -> QuerySet:
    """Users whose username or e-mail is `value` (any case), or whose id it is."""
    User = get_user_model()
    if NUL in value:
        return User._default_manager.none()
    match = Q(**{f"{User.USERNAME_FIELD}__iexact": value})
    if hasattr(User, "email"):
        match |= Q(email__iexact=value)
    # The primary key field says what an id is: "²" passes str.isdigit() but is no integer.
    with suppress(ValidationError):
        match |= Q(pk=User._meta.pk.to_python(value))
    return User._default_manager.filter(match)


def user_lookups(relation: str) -> list[str]:
    """The lookups through `relation` that find a user by name: the user model's USERNAME_FIELD
    and its e-mail field where it has one. A host's own user model may have no `username` (one
    signing in by e-mail), where a hard-coded `user__username` made every search a 500."""
    User = get_user_model()
    fields = {field.name for field in User._meta.get_fields()}
    names = dict.fromkeys((User.USERNAME_FIELD, User.get_email_field_name()))
    return [f"{relation}__{name}" for name in names if name in fields]


class NulSafeChangeList(ChangeList):
    """A list whose filters' values hold a NUL character lists no rows, as the typed filters
    below do (`InputFilter`): no row holds one. Filtering a text column by it
    (`?kind__exact=%00`) reached PostgreSQL, which refuses the character: a 500."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
        queryset = super().get_queryset(request, exclude_parameters)
        if any(NUL in key or NUL in "".join(values) for key, values in self.filter_params.items()):
            return queryset.none()
        return queryset


class NulSafeFilters:
    """For a model admin: its list is a `NulSafeChangeList`."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return NulSafeChangeList


class SearchByUser:
    """For a model admin of rows that belong to a user: its search box also finds the rows by
    the user's name or e-mail (`user_lookups`). Added per request rather than in
    `search_fields`, since the user model is the host's, known once the apps are loaded."""

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return [*super().get_search_fields(request), *user_lookups("user")]  # type: ignore[misc]


class InputFilter(admin.SimpleListFilter):
    """A list filter shown as a text box; the typed value is the lookup.

    Subclasses set `parameter_name`, `title` and `filter_value()`.
    """

    template = "admin/recommendations/input_filter.html"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> tuple:
        # Django only shows filters that have lookups; a dummy one keeps this filter visible.
        return ((),)

    def choices(self, changelist: ChangeList) -> Iterator[dict[str, Any]]:
        # The template keeps the other parameters in its form: the other filters, and the
        # search box and sort order too (which `get_filters_params()` leaves out).
        query = {
            key: values for key, values in changelist.filter_params.items() if key != self.parameter_name
        }
        yield {
            "value": self.value() or "",
            "others": [(key, value) for key, values in query.items() for value in values],
            "clear_url": changelist.get_query_string(remove=[self.parameter_name]),
        }

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = (self.value() or "").strip()
        if NUL in value:
            return queryset.none()
        return self.filter_value(queryset, value) if value else queryset

    def filter_value(self, queryset: QuerySet, value: str) -> QuerySet:
        raise NotImplementedError


class UserFilter(InputFilter):
    """Events of one user, by username, e-mail or id."""

    title = "user (name, e-mail or id)"
    parameter_name = "user"

    def filter_value(self, queryset: QuerySet, value: str) -> QuerySet:
        return queryset.filter(user__in=matching_users(value))


def about_product(product_id: str) -> Q:
    """Events about the product with this id in any case: a host's keys may be SKUs in mixed
    case, which staff type as they come. The test names what `rec_event_product_upper` covers
    (`product_id <> ''`), so that the index serves it."""
    return Q(product_id__iexact=product_id) & ~Q(product_id="")


class ProductFilter(InputFilter):
    """Events about one product, by its id in the shop (in any case)."""

    title = "product id"
    parameter_name = "product"

    def filter_value(self, queryset: QuerySet, value: str) -> QuerySet:
        return queryset.filter(about_product(value))


class SessionFilter(InputFilter):
    """One anonymous session's events (prefix of the session id)."""

    title = "session id"
    parameter_name = "session"

    def filter_value(self, queryset: QuerySet, value: str) -> QuerySet:
        return queryset.filter(session_id__startswith=value)


class AttributedFilter(admin.SimpleListFilter):
    """Events that carry a recommendation id (shown by, or credited to, a recommendation)."""

    title = "attributed to a recommendation"
    parameter_name = "attributed"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> tuple:
        return (("yes", "Yes"), ("no", "No"))

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.exclude(recommendation_id="")
        if self.value() == "no":
            return queryset.filter(recommendation_id="")
        return queryset
