"""Admin for campaigns and segments: preview who would see a campaign, save and export audiences.

Validation lives on the models (`Campaign.clean`, `Segment.clean`), so the forms here show
the same errors as the API: dates reversed, unknown audience rules, an audience for a
campaign that targets nothing.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.forms import SimpleArrayField
from django.core.exceptions import PermissionDenied
from django.db.models import JSONField, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from recommendations.admin.actions import EXPECTED_PROBLEMS, problem_text, run_each
from recommendations.admin.fields import JSONBoxField
from recommendations.admin.filters import NulSafeFilters, SearchByUser
from recommendations.admin.readonly import DeletedWithParentAdmin
from recommendations.marketing.audiences import build_audience, create_segment, refresh_segment
from recommendations.marketing.export import FIELDS, audience_rows, segment_rows, user_labels, write_csv
from recommendations.marketing.targeting import CampaignStatus, campaign_status
from recommendations.models import Campaign, Segment, SegmentMember

PREVIEW_ROWS = 50


def _cells(tag: str, values: Iterable[Any]) -> str:
    """One table row's cells, escaped."""
    return format_html_join("", f"<{tag}>{{}}</{tag}>", ((value,) for value in values))


class CommaSeparatedField(SimpleArrayField):
    """A comma-separated list that leaves out empty items: "1, 2," is ["1", "2"]. A trailing
    comma is a slip, not an item: refusing it also hid the products from `Campaign.clean()`,
    which then said the campaign promotes nothing."""

    def to_python(self, value: Any) -> list[Any]:
        if isinstance(value, str):
            value = self.delimiter.join(item for item in value.split(self.delimiter) if item.strip())
        return super().to_python(value)


class JSONObjectField(JSONBoxField):
    """An empty box is no rules, {}: the column holds an object (null would not save), as the
    API's default when the field is left out. A typed `null` is refused by the rules' check."""

    def to_python(self, value: Any) -> Any:
        return {} if value in self.empty_values else super().to_python(value)


@admin.register(Campaign)
class CampaignAdmin(NulSafeFilters, admin.ModelAdmin):
    formfield_overrides = {
        ArrayField: {"form_class": CommaSeparatedField},
        JSONField: {"form_class": JSONObjectField},
    }
    list_display = [
        "name",
        "kind",
        "priority",
        "is_active",
        "starts_at",
        "ends_at",
        "shown_status",
        "audience",
    ]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "discount_text"]
    readonly_fields = ["sale_products", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "discount_text", "link_url"]}),
        ("What it promotes", {"fields": ["product_ids", "category_names", "store_ids", "sale_products"]}),
        (
            "When and how much",
            {"fields": ["starts_at", "ends_at", "impression_cap", "priority", "is_active"]},
        ),
        ("Who should see it", {"fields": ["audience_rules"]}),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    actions = ["save_audiences"]

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        """The page's rows with their status, read for all of them at once (one query for the
        impression caps' views, cached as the storefront caches it)."""
        changelist = super().get_changelist_instance(request)
        campaigns = list(changelist.result_list)  # evaluated once: the template shows these objects
        status = campaign_status(campaigns)
        for campaign in campaigns:
            campaign.status_now = status[campaign.pk]
        return changelist

    @admin.display(description="shown to shoppers")
    def shown_status(self, obj: Campaign) -> str:
        """What shoppers get now, as the storefront decides it (`targeting.campaign_status`):
        a campaign whose impression cap is reached reads "used up", not running."""
        return CampaignStatus(getattr(obj, "status_now", None) or campaign_status([obj])[obj.pk]).label

    @admin.display(description="flash sale's products")
    def sale_products(self, obj: Campaign) -> str:
        """An inventory flash sale's slow sellers, kept from its start (`marketing.products`)."""
        if obj.sale_product_ids:
            return ", ".join(obj.sale_product_ids)
        return "Chosen among the slow sellers when an inventory flash sale starts, and kept until it ends."

    @admin.display(description="audience")
    def audience(self, obj: Campaign) -> str:
        url = reverse("admin:recommendations_campaign_preview", args=[obj.pk])
        return format_html('<a href="{}">Preview who would see it</a>', url)

    def get_urls(self) -> list:
        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path("<int:pk>/preview/", preview, name="recommendations_campaign_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The users who would see the campaign, best first; POST saves them as a segment."""
        campaign = get_object_or_404(Campaign, pk=pk)
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_add_segment_permission(request):
                raise PermissionDenied
            return self._save_segment(request, campaign)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "campaign": campaign,
            "title": f"Who would see “{campaign.name}”",
            "can_save_segment": self.has_add_segment_permission(request),
        }
        status = campaign_status([campaign])[campaign.pk]
        if status != CampaignStatus.SHOWN:
            context["not_shown"] = CampaignStatus(status).label
        try:
            audience = build_audience(campaign, limit=PREVIEW_ROWS)
        except EXPECTED_PROBLEMS as exc:
            context["problem"] = problem_text(exc)
        else:
            name_label, email_label = user_labels()
            context.update(
                method=audience.method,
                rows=audience_rows(audience.members),
                name_label=name_label,
                email_label=email_label,
            )
        return TemplateResponse(request, "admin/recommendations/campaign_preview.html", context)

    def _save_segment(self, request: HttpRequest, campaign: Campaign) -> HttpResponse:
        try:
            segment = create_segment(campaign, name=f"{campaign.name} ({timezone.localdate():%Y-%m-%d})")
        except EXPECTED_PROBLEMS as exc:
            self.message_user(request, problem_text(exc), messages.ERROR)
            return HttpResponseRedirect(request.path)
        self.message_user(
            request, f"Saved {segment.size} users as segment “{segment.name}”.", messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("admin:recommendations_segment_change", args=[segment.pk]))

    def has_add_segment_permission(self, request: HttpRequest) -> bool:
        """Saving an audience adds a segment: the preview's button and the bulk action ask this."""
        return request.user.has_perm("recommendations.add_segment")

    @admin.action(description="Save each campaign's audience as a segment", permissions=["add_segment"])
    def save_audiences(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        run_each(self, request, queryset, create_segment, "Saved {count} segment(s).")


@admin.register(Segment)
class SegmentAdmin(NulSafeFilters, admin.ModelAdmin):
    list_display = ["name", "campaign", "size", "method", "refreshed_at", "up_to_date", "auto_refresh"]
    list_filter = ["auto_refresh", "method"]
    list_select_related = ["campaign"]
    search_fields = ["name", "campaign__name"]
    readonly_fields = ["size", "method", "refreshed_at", "created_at", "members_preview"]
    fieldsets = [
        (None, {"fields": ["name", "campaign", "max_size", "auto_refresh"]}),
        ("Members", {"fields": ["size", "method", "refreshed_at", "members_preview"]}),
    ]
    actions = ["refresh", "export_csv"]

    @admin.display(description="matches its campaign", boolean=True)
    def up_to_date(self, obj: Segment) -> bool:
        """False once the campaign's targeting or audience rules changed: the API then serves
        the live audience until the segment is refreshed."""
        return obj.is_current

    @admin.display(description=f"first {PREVIEW_ROWS} members")
    def members_preview(self, obj: Segment) -> str:
        rows = list(itertools.islice(segment_rows(obj), PREVIEW_ROWS)) if obj.pk else []
        if not rows:
            return "No members yet: they are computed when the segment is saved or refreshed."
        name_label, email_label = user_labels()
        labels = {"user_id": "User id", "username": name_label, "email": email_label, "score": "Score"}
        # No e-mail column when the sign-in field is the address already (its label is then "").
        columns = [key for key, label in labels.items() if label]
        cells = ([f"{row[k]:.3f}" if k == "score" else row[k] for k in columns] for row in rows)
        return format_html(
            '<table class="rec-members"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
            _cells("th", [labels[key] for key in columns]),
            format_html_join("", "<tr>{}</tr>", ((_cells("td", row),) for row in cells)),
        )

    def save_model(self, request: HttpRequest, obj: Segment, form: Any, change: bool) -> None:
        """Saving computes the members (the form already checked the campaign targets something),
        except for a segment whose campaign was deleted: `Segment.clean()` lets it be saved
        only with auto-refresh off, to keep its members as they are."""
        super().save_model(request, obj, form, change)
        if obj.campaign is None:
            self.message_user(
                request,
                f"Kept the {obj.size} members of “{obj.name}” as they were: it has no campaign to "
                "compute them from. Choose one to refresh them.",
            )
            return
        try:
            refresh_segment(obj)
        except EXPECTED_PROBLEMS as exc:
            self.message_user(
                request, f"Saved, but the members were not computed: {problem_text(exc)}", messages.ERROR
            )
        else:
            self.message_user(request, f"{obj.size} users in “{obj.name}” (scored by {obj.method}).")

    @admin.action(description="Refresh the members of the selected segments now", permissions=["change"])
    def refresh(self, request: HttpRequest, queryset: QuerySet[Segment]) -> None:
        run_each(
            self,
            request,
            queryset.select_related("campaign"),
            refresh_segment,
            "Refreshed {count} segment(s).",
        )

    @admin.action(description="Export the selected segments as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Segment]) -> HttpResponse:
        segments = list(queryset.order_by("name"))
        out = io.StringIO()
        if len(segments) == 1:
            write_csv(segment_rows(segments[0]), out)
            filename = f"segment-{segments[0].pk}.csv"
        else:
            rows = ({**row, "segment": s.name} for s in segments for row in segment_rows(s))
            write_csv(rows, out, [*FIELDS, "segment"])
            filename = "segments.csv"
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


@admin.register(SegmentMember)
class SegmentMemberAdmin(SearchByUser, DeletedWithParentAdmin):
    """Members of every segment (rewritten by each refresh)."""

    parent_delete_permission = "recommendations.delete_segment"

    list_display = ["segment", "user", "score"]
    list_filter = ["segment"]
    list_select_related = ["segment", "user"]
    search_fields = ["segment__name"]
    ordering = ["segment", "-score"]
