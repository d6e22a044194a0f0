"""A base for the admin of derived tables: written by the engine, browsed by people."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rebuilt by tasks, so hand edits would be overwritten (and could break invariants)."""

    list_per_page = 50
    # These tables hold one row per product (or per pair); exact counts on each page are slow.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
