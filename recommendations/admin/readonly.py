"""Bases for admin classes that change nothing: derived tables and pages that are views."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_permission_codename, get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from recommendations.admin.filters import NulSafeFilters
from recommendations.admin.pagination import EstimatedCountPaginator


class ReadOnlyAdmin(NulSafeFilters, admin.ModelAdmin):
    """Rebuilt by tasks, so hand edits would be overwritten (and could break invariants)."""

    list_per_page = 50
    # These tables hold one row per product, pair or served list; exact counts on each page
    # are slow.
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class DeletedWithParentAdmin(ReadOnlyAdmin):
    """Read-only rows that belong to a parent the admin deletes (an experiment's variants and
    assignments, a segment's members). Django deletes them along with the parent only if the
    user may delete them too, so whoever may delete the parent may; they are not deleted on
    their own (no action, no button)."""

    parent_delete_permission: str

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.has_perm(self.parent_delete_permission)

    def get_actions(self, request: HttpRequest) -> dict:
        return {}

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "show_delete": False}
        )


class DeletedWithUserAdmin(DeletedWithParentAdmin):
    """Read-only rows of one user (served lists, user vectors): whoever may delete users may
    delete a user with them, which Django's delete page otherwise refuses even a superuser."""

    @property
    def parent_delete_permission(self) -> str:
        options = get_user_model()._meta
        return f"{options.app_label}.{get_permission_codename('delete', options)}"


class AdminPage(ReadOnlyAdmin):
    """A page of the admin hung off a proxy model (`models/admin_pages.py`): a view, not a list.

    Subclasses set `title` and `template_name` and return the page's context from `page_context`.
    """

    title: str
    template_name: str

    def page_context(self, request: HttpRequest) -> dict[str, Any]:
        raise NotImplementedError

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": self.title,
            "opts": self.model._meta,
            **self.page_context(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.template_name, context)
