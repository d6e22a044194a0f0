"""Admin for A/B experiments: variants with traffic shares, results with a chart, start/stop/promote.

The change page of an experiment shows its results under the form: per variant the funnel,
CTR, conversion and revenue per visitor with 95% intervals and the test against the control,
an SVG chart of conversion with its intervals, and "Not enough data yet" until every variant
has its minimum of visitors. The results are computed at most once a minute (`recent_results`),
with the time shown and a button that recomputes them. Buttons start it, stop it, or stop it
and promote a variant.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property, partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import JSONField, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.safestring import SafeString

from recommendations.admin.actions import run_each
from recommendations.admin.charts import interval_bars
from recommendations.admin.fields import JSONBoxField
from recommendations.admin.filters import NulSafeFilters, SearchByUser
from recommendations.admin.readonly import DeletedWithParentAdmin
from recommendations.experiments import lifecycle
from recommendations.experiments.assignment import promoted_default
from recommendations.experiments.results import (
    METRIC_LABELS,
    PRIMARY_METRIC,
    VariantResult,
    forget_recent_results,
    recent_results,
)
from recommendations.models import Assignment, Experiment, ExperimentStatus, Variant
from recommendations.models.experiments import validate_variant_set
from recommendations.serving.variants import RECOMMENDERS


class VariantForm(forms.ModelForm):
    """A variant's row: the recommender picked from those serving knows, and boxes narrow
    enough for the table to fit a laptop's screen."""

    recommender = forms.ChoiceField(
        choices=[("", "default"), *((name, name) for name in RECOMMENDERS)],
        required=False,
    )

    class Meta:
        model = Variant
        fields = ["key", "name", "is_control", "traffic_share", "model_version", "recommender", "rules"]
        widgets = {
            "key": forms.TextInput(attrs={"style": "width: 8em"}),
            "name": forms.TextInput(attrs={"style": "width: 8em"}),
            "traffic_share": forms.NumberInput(attrs={"style": "width: 5em"}),
            "rules": forms.Textarea(attrs={"rows": 2, "cols": 18}),
        }


class VariantFormSet(forms.BaseInlineFormSet):
    """The variants as a set (shares, one control, distinct keys), as the API checks them."""

    @cached_property
    def model_version_choices(self) -> list:
        """The model versions to pick from, read once for every row: each row's select read
        them again (8 variants, 8 queries)."""
        return list(self.form.base_fields["model_version"].choices)

    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        form.fields["model_version"].choices = self.model_version_choices

    def clean(self) -> None:
        # Before Django's own duplicate check, so a repeated key gets the API's message too.
        if not any(self.errors):
            # Each valid form has already copied its values onto its (unsaved) instance.
            validate_variant_set(
                [f.instance for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
            )
        super().clean()


class VariantInline(admin.TabularInline):
    model = Variant
    form = VariantForm
    formset = VariantFormSet
    extra = 0
    min_num = 2
    fields = VariantForm.Meta.fields
    formfield_overrides = {JSONField: {"form_class": JSONBoxField}}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Variant]:
        # Each row is titled with `Variant.__str__`, which names the experiment, and a started
        # experiment's rows show their model version: both read with the rows.
        return super().get_queryset(request).select_related("experiment", "model_version")

    def _editable(self, obj: Experiment | None) -> bool:
        return obj is None or obj.is_editable

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


def interval_chart(rows: Sequence[VariantResult], metric: str = PRIMARY_METRIC) -> SafeString:
    """One metric per variant with its 95% interval; the control is named as such."""
    bars = []
    for row in rows:
        m = row.metrics[metric]
        control = row.funnel.is_control and "control" not in row.funnel.label.lower()
        label = row.funnel.label + (" (control)" if control else "")
        bars.append((label, m.value, (m.interval.low, m.interval.high) if m.interval else None))
    return interval_bars(bars, title=f"{METRIC_LABELS[metric]} by variant, with 95% intervals")


@admin.register(Experiment)
class ExperimentAdmin(NulSafeFilters, admin.ModelAdmin):
    inlines = [VariantInline]
    list_display = ["name", "key", "status", "started_at", "stopped_at", "winner"]
    # The winner is shown as "<experiment key>/<variant key>": both in the list's one query.
    list_select_related = ["winner__experiment"]
    list_filter = ["status"]
    search_fields = ["name", "key"]
    readonly_fields = ["status", "started_at", "stopped_at", "winner", "created_at"]
    fieldsets = [
        (None, {"fields": ["name", "key", "description"]}),
        ("Measurement", {"fields": ["attribution_window_hours", "min_visitors"]}),
        ("Status", {"fields": ["status", "started_at", "stopped_at", "winner", "created_at"]}),
    ]
    change_form_template = "admin/recommendations/experiment_change_form.html"
    actions = ["start_selected", "stop_and_promote_selected", "delete_selected"]

    def has_delete_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        # Visitors are being bucketed into a running experiment's variants: stop it first.
        running = obj is not None and obj.status == ExperimentStatus.RUNNING
        return not running and super().has_delete_permission(request, obj)

    @admin.action(permissions=["delete"], description=delete_selected.short_description)
    def delete_selected(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> HttpResponse | None:
        """Django's "Delete selected", which would blame a running experiment on the user's
        permissions (`has_delete_permission` is False for it): say to stop it first instead."""
        problems = []
        for experiment in queryset:
            try:
                lifecycle.check_deletable(experiment)
            except ValidationError as exc:
                problems.append(" ".join(exc.messages))
        if problems:
            self.message_user(request, f"Nothing was deleted. {' '.join(problems)}", messages.ERROR)
            return None
        return delete_selected(self, request, queryset)

    def delete_model(self, request: HttpRequest, obj: Experiment) -> None:
        lifecycle.delete(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        for experiment in queryset:
            lifecycle.delete(experiment)

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, *obj.locked_fields()] if obj is not None else fields

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.lifecycle_view)
        recompute = self.admin_site.admin_view(self.recompute_view)
        return [
            path("<int:pk>/lifecycle/<str:verb>/", view, name="recommendations_experiment_lifecycle"),
            path("<int:pk>/recompute/", recompute, name="recommendations_experiment_recompute"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        experiment = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if experiment is not None and experiment.status != ExperimentStatus.DRAFT:
            recent = recent_results(experiment)
            results = recent.results
            extra.update(
                results=results,
                results_computed_at=recent.computed_at,
                metric_labels=METRIC_LABELS,
                chart=interval_chart(results.variants),
                ctr_chart=interval_chart(results.variants, "ctr"),
            )
        return super().change_view(request, object_id, form_url, extra)

    def lifecycle_view(self, request: HttpRequest, pk: int, verb: str) -> HttpResponse:
        """POST start / stop / promote (with `variant` = a key, or "winner")."""
        experiment = get_object_or_404(Experiment, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, experiment):
            raise PermissionDenied
        try:
            message = self._apply(experiment, verb, request.POST.get("variant", ""))
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:recommendations_experiment_change", args=[experiment.pk]))

    def recompute_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """POST: compute the results afresh, before the page's copy expires."""
        experiment = get_object_or_404(Experiment, pk=pk)
        if request.method != "POST" or not self.has_view_permission(request, experiment):
            raise PermissionDenied
        forget_recent_results(experiment)
        return HttpResponseRedirect(reverse("admin:recommendations_experiment_change", args=[experiment.pk]))

    def _apply(self, experiment: Experiment, verb: str, variant_key: str) -> str:
        if verb == "start":
            lifecycle.start(experiment)
            return f"Started “{experiment}”: visitors are now bucketed into its variants."
        if verb == "stop":
            lifecycle.stop(experiment)
            default = promoted_default()
            if default is None:
                return f"Stopped “{experiment}”; everyone gets the built-in default recommendations again."
            return (
                f"Stopped “{experiment}” without promoting a variant; everyone gets the promoted default "
                f"again: {default.label} of “{default.experiment}”."
            )
        if verb == "promote":
            variant = lifecycle.stop(experiment, promote=variant_key)
            return f"Stopped “{experiment}” and made {variant.label} the default for everyone."
        raise ValidationError(f"Unknown action {verb!r}: use start, stop or promote.")

    @admin.action(description="Start the selected experiments", permissions=["change"])
    def start_selected(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        run_each(self, request, queryset, lifecycle.start, "Started {count} experiment(s).")

    @admin.action(
        description="Stop the selected experiments and promote their winners", permissions=["change"]
    )
    def stop_and_promote_selected(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        run_each(
            self,
            request,
            queryset,
            partial(lifecycle.stop, promote=lifecycle.WINNER),
            "Stopped and promoted the winner of {count} experiment(s).",
        )


@admin.register(Variant)
class VariantAdmin(DeletedWithParentAdmin):
    """Every variant across experiments (edit them on their experiment's page)."""

    parent_delete_permission = "recommendations.delete_experiment"

    list_display = ["__str__", "name", "is_control", "traffic_share", "model_version", "recommender"]
    list_filter = ["experiment__status", "is_control"]
    list_select_related = ["experiment", "model_version"]
    search_fields = ["key", "name", "experiment__key"]


@admin.register(Assignment)
class AssignmentAdmin(SearchByUser, DeletedWithParentAdmin):
    """Who was exposed to which variant, and when (written by `variant_for`)."""

    parent_delete_permission = "recommendations.delete_experiment"

    list_display = ["experiment", "variant", "user", "session_id", "assigned_at"]
    list_filter = ["experiment", ("assigned_at", admin.DateFieldListFilter)]
    list_select_related = ["experiment", "variant__experiment", "user"]
    search_fields = ["session_id"]
