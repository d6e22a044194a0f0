"""Admin for API keys: the raw key is shown once, on the page that answers the form creating it.

Not as a message for the next page: messages travel in a cookie (signed, not encrypted) or in
the session row, so the key would be stored outside its hash, and sent with every request to
the site until shown.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from recommendations.models.api_keys import ApiKey, Scope, forget_verified_keys


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["name", "scopes"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "scope_list", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    fieldsets = [
        (None, {"fields": ["name", "scopes"]}),
        ("Usage", {"fields": ["prefix", "created_at", "last_used_at", "revoked_at"]}),
    ]
    actions = ["revoke"]

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        """A new key is made by `ApiKey.objects.create_key`, the one place that issues keys."""
        if change:
            super().save_model(request, obj, form, change)
            return
        created, raw = ApiKey.objects.create_key(obj.name, obj.scopes)
        # The admin logs the addition and answers using `obj`: make it the new row.
        obj.pk = created.pk
        obj.refresh_from_db()
        obj.raw_key = raw  # for `response_add` alone; never saved

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The new key on this answer's own page, which no cache may keep."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"API key “{obj.name}” created",
            "api_key": obj,
            "raw_key": obj.raw_key,
        }
        response = TemplateResponse(request, "admin/recommendations/api_key_created.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        # Counted before the update: a list filtered on "Revoked at: empty" would select none after.
        selected = queryset.count()
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        forget_verified_keys()
        already = f"; {selected - revoked} were already revoked" if selected > revoked else ""
        self.message_user(request, f"Revoked {revoked} API key(s){already}.")
