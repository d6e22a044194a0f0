"""Privacy in the admin: "Erase personal data" on the host's user admin, and the audit log.

The host owns its user admin, so the action is added to whichever `ModelAdmin` is registered
for the user model, without replacing it: `install_erase_action()` runs from the app's
`ready()`, after admin autodiscovery, so a host that re-registered its own UserAdmin gets the
action too. Like Django's "delete selected", it asks for confirmation first and needs the
permission to delete users.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from recommendations.admin.filters import NulSafeFilters
from recommendations.admin.pagination import EstimatedCountPaginator
from recommendations.conf import rec_settings
from recommendations.models.audit import AuditEntry
from recommendations.models.preferences import PersonalisationPreference
from recommendations.privacy.erasure import forget_user

logger = logging.getLogger(__name__)


@admin.action(description="Erase personal data (recommendations)", permissions=["delete"])
def erase_personal_data(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> Any:
    """Ask for confirmation, then erase each selected user's data in its own transaction; one
    that fails is named, and the others are still erased."""
    if request.POST.get("post") != "yes":
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": "Erase personal data?",
            "users": queryset,
            "opts": modeladmin.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "erase_personal_data",
        }
        return TemplateResponse(request, "admin/recommendations/erase_personal_data.html", context)
    totals: dict[str, int] = {}
    erased, failed = 0, []
    for user in queryset:
        try:
            report = forget_user(user, actor=request.user, source="admin")
        except Exception as exc:  # one user's erasure is all or nothing: say so, go on with the rest
            logger.exception("Could not erase the personal data of user %s", user.pk)
            failed.append(f"{user} ({exc})")
            continue
        erased += 1
        for name, count in report.counts.items():
            totals[name] = totals.get(name, 0) + count
    summary = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in totals.items() if count)
    if erased or not failed:
        modeladmin.message_user(
            request,
            f"Erased the personal data of {erased} user(s): {summary or 'nothing was stored'}. "
            "The accounts themselves were kept.",
            messages.SUCCESS,
        )
    if failed:
        modeladmin.message_user(
            request,
            f"Could not erase the personal data of {len(failed)} user(s), of whom nothing was erased: "
            f"{'; '.join(failed)}. The log has the details; fix the cause and run the action again "
            "for them.",
            messages.ERROR,
        )
    return None


def install_erase_action(site: admin.AdminSite = admin.site) -> bool:
    """Add the action to the user model's admin; False (and a log line) when there is none."""
    if not apps.is_installed("django.contrib.admin"):
        return False
    user_model = get_user_model()
    if not site.is_registered(user_model):
        logger.info("No admin is registered for %s; no erase action installed", user_model._meta.label)
        return False
    model_admin = site.get_model_admin(user_model)
    actions = list(model_admin.actions or [])
    if erase_personal_data not in actions:
        # An instance attribute: the host's class and any other site using it are untouched.
        model_admin.actions = [*actions, erase_personal_data]
    return True


@admin.register(AuditEntry)
class AuditEntryAdmin(NulSafeFilters, admin.ModelAdmin):
    """Read-only: an audit trail that staff could edit would prove nothing."""

    list_display = ["created_at", "action", "source", "actor_id", "counts"]
    list_filter = ["action", "source", ("created_at", admin.DateFieldListFilter)]
    # No `date_hierarchy`: its DISTINCT DATE_TRUNC read every entry (one per erased user, one per
    # retention run) on each page; the date filter picks a period through the index.
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PersonalisationPreference)
class PersonalisationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "opted_out", "updated_at"]
    list_filter = ["opted_out"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    search_fields = ["user__pk"]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        self._warn_when_unread(request)
        return super().changelist_view(request, extra_context)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        self._warn_when_unread(request)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _warn_when_unread(self, request: HttpRequest) -> None:
        """With the host's own flag configured, these rows change nothing: say so, on the page
        shown (not the POST that saves, which would say it twice)."""
        if request.method == "GET" and rec_settings.OPT_OUT_CHECK is not None:
            self.message_user(
                request,
                "RECOMMENDATIONS['OPT_OUT_CHECK'] is set, so the engine reads the host's own opt-out "
                "flag, not these rows: a change here changes nothing. Change the field that function "
                "reads instead.",
                messages.WARNING,
            )
