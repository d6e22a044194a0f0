"""The model registry in the admin: status, progress, metrics, training curve, and the
"Retrain now", "Activate" and "Roll back" actions (also as buttons above the list)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from celery import current_app
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from recommendations import task_names
from recommendations.admin.charts import PALETTE, Series, line_chart
from recommendations.admin.readonly import ReadOnlyAdmin
from recommendations.locks import is_locked
from recommendations.models import ModelStatus, ModelVersion
from recommendations.models.registry import format_metric
from recommendations.vectors import activation

HEADLINE_METRICS = (
    "HR@10",
    "NDCG@10",
    "HR@20",
    "NDCG@20",
    "precision@10",
    "MAP@10",
    "coverage@10",
    "novelty@10",
)


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = [
        "__str__",
        "status",
        "ndcg10",
        "hr10",
        "n_items",
        "n_users",
        "n_events",
        "device",
        "training_time",
        "progress_display",
        "created_at",
        "activated_at",
    ]
    list_filter = ["status", "algorithm", "device"]
    actions = ["retrain_now", "activate_selected", "roll_back"]
    change_list_template = "admin/recommendations/modelversion/change_list.html"
    fieldsets = [
        (None, {"fields": ["algorithm", "status", "progress_display", "error", "task_id"]}),
        ("Quality", {"fields": ["metrics_table", "training_curve_chart"]}),
        (
            "Data and training",
            {
                "fields": [
                    ("data_window_start", "data_window_end"),
                    ("n_users", "n_items", "n_events", "dimensions"),
                    ("training_time", "device"),
                    "artifact",
                    "config_display",
                    "vector_search_display",
                    ("created_at", "embedded_at", "activated_at"),
                ]
            },
        ),
    ]
    readonly_fields = [
        "algorithm",
        "status",
        "progress_display",
        "error",
        "task_id",
        "metrics_table",
        "training_curve_chart",
        "data_window_start",
        "data_window_end",
        "n_users",
        "n_items",
        "n_events",
        "dimensions",
        "training_time",
        "device",
        "artifact",
        "config_display",
        "vector_search_display",
        "created_at",
        "embedded_at",
        "activated_at",
    ]

    # Read-only: versions are made by training and removed by the purge task (which also
    # drops their indexes and files); editing or deleting rows by hand would leave those behind.
    def has_activate_permission(self, request: HttpRequest) -> bool:
        """Retrain, activate and roll back change what shoppers see: "change" permission."""
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    # --- columns ------------------------------------------------------------------------
    @admin.display(description="NDCG@10")
    def ndcg10(self, obj: ModelVersion) -> str:
        return format_metric(obj.metrics, "NDCG@10")

    @admin.display(description="HR@10")
    def hr10(self, obj: ModelVersion) -> str:
        return format_metric(obj.metrics, "HR@10")

    @admin.display(description="training time", ordering="training_seconds")
    def training_time(self, obj: ModelVersion) -> str:
        if obj.training_seconds is None:
            return "—"
        minutes, seconds = divmod(round(obj.training_seconds), 60)
        return f"{minutes}m {seconds:02d}s" if minutes else f"{obj.training_seconds:.1f}s"

    @admin.display(description="progress")
    def progress_display(self, obj: ModelVersion) -> str:
        progress = obj.progress or {}
        if not progress:
            return "—"
        stage, done, total = progress.get("stage", ""), progress.get("done", 0), progress.get("total", 0)
        if obj.status != ModelStatus.TRAINING and stage == "done":
            return "done"
        return f"{stage} {done}/{total} ({100 * done / total:.0f}%)" if total else str(stage)

    @admin.display(description="metrics")
    def metrics_table(self, obj: ModelVersion) -> SafeString:
        return metrics_table(obj.metrics or {}, not_evaluated=not_evaluated_reason(obj))

    @admin.display(description="training curve")
    def training_curve_chart(self, obj: ModelVersion) -> SafeString:
        return training_curve_svg(obj.training_curve or [])

    @admin.display(description="config")
    def config_display(self, obj: ModelVersion) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(obj.config, indent=2, sort_keys=True))

    @admin.display(description="vector search (tuned on this version's users)")
    def vector_search_display(self, obj: ModelVersion) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(obj.vector_search, indent=2, sort_keys=True))

    # --- actions ------------------------------------------------------------------------
    @admin.action(description="Retrain now (train, evaluate, embed, activate)", permissions=["activate"])
    def retrain_now(self, request: HttpRequest, queryset: QuerySet | None = None) -> None:
        if is_locked():
            # Queued now, it would exit at once on another worker, or train a second version
            # right after this one on the same worker.
            self.message_user(
                request,
                "Nothing was queued: a retrain or embed is running now, and its version shows its "
                "progress below. Retrain again once it has finished, if its version is not what you need.",
                messages.WARNING,
            )
            return
        try:
            # By name: the web process need not import the training code to queue it.
            result = current_app.send_task(task_names.RETRAIN, retry=False)
        except Exception as exc:  # broker unreachable
            self.message_user(
                request,
                f"Could not queue the retrain: {str(exc).rstrip('.')}. Check that the Celery broker "
                "(CELERY_BROKER_URL) is reachable, or run `python manage.py train_model --activate` on a "
                "worker machine.",
                messages.ERROR,
            )
            return
        self.message_user(
            request,
            f"Retrain queued (task {result.id}). A new version appears here with its progress and "
            "becomes active when it is trained and embedded; the current one keeps serving meanwhile.",
            messages.SUCCESS,
        )

    @admin.action(description="Activate the selected version", permissions=["activate"])
    def activate_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.count()
        if count != 1:
            self.message_user(
                request, f"Select exactly one version to activate ({count} selected).", messages.WARNING
            )
            return
        try:
            result = activation.activate(queryset.get())
        except activation.ActivationError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        if result.already_active:
            self.message_user(request, f"Nothing changed: {result.version} already serves.", messages.WARNING)
            return
        kept = f" Version {result.previous.pk} is kept for rollback." if result.previous else ""
        self.message_user(
            request, f"Activated 1 version: {result.version} now serves.{kept}", messages.SUCCESS
        )
        if result.warning:
            self.message_user(request, result.warning, messages.WARNING)

    @admin.action(description="Roll back to the previously active version", permissions=["activate"])
    def roll_back(self, request: HttpRequest, queryset: QuerySet | None = None) -> None:
        try:
            result = activation.rollback()
        except activation.ActivationError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        replaced = f" (version {result.previous.pk} is ready again)" if result.previous else ""
        self.message_user(
            request, f"Rolled back 1 version: {result.version} serves again{replaced}.", messages.SUCCESS
        )
        if result.warning:
            self.message_user(request, result.warning, messages.WARNING)

    # --- buttons above the list (actions without a selection) ---------------------------
    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}"
        return [
            path("retrain/", self.admin_site.admin_view(self.retrain_view), name=f"{name}_retrain"),
            path("rollback/", self.admin_site.admin_view(self.rollback_view), name=f"{name}_rollback"),
            *super().get_urls(),
        ]

    def retrain_view(self, request: HttpRequest) -> HttpResponse:
        return self._button(request, self.retrain_now)

    def rollback_view(self, request: HttpRequest) -> HttpResponse:
        return self._button(request, self.roll_back)

    def _button(
        self, request: HttpRequest, action: Callable[[HttpRequest, QuerySet | None], None]
    ) -> HttpResponse:
        """Run an action that needs no selection: POST only, then back to the list."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_activate_permission(request):
            raise PermissionDenied
        action(request, None)
        opts = self.model._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # On the page shown, not on a POST of an action: that would say what held before the
        # action ("No model version is active" beside "Activated ..."), and the list it
        # redirects to says it again.
        if request.method == "GET":
            self._announce_state(request)
        extra_context = {**(extra_context or {}), "can_activate": self.has_activate_permission(request)}
        return super().changelist_view(request, extra_context)

    def _announce_state(self, request: HttpRequest) -> None:
        """Banners for a configuration that needs the staff's attention."""
        if not ModelVersion.objects.filter(status=ModelStatus.ACTIVE).exists():
            self.message_user(
                request,
                "No model version is active: recommendations fall back to popularity. Retrain now, "
                "or activate a ready version.",
                messages.WARNING,
            )
        if is_locked():
            self.message_user(
                request,
                "A retrain or embed is running now; its version shows its progress below. "
                "Retrain now queues nothing until it has finished.",
                messages.INFO,
            )


def not_evaluated_reason(version: ModelVersion) -> str:
    """Why a version has no metrics, from its own row: a failed version's error (its first
    line; the "error" field above holds the rest), training still under way, or the note that
    evaluation left (too few shoppers to evaluate)."""
    if version.status == ModelStatus.FAILED:
        error = version.error.strip()
        reason = error.splitlines()[0] if error else "no reason was recorded."
        return f"Not evaluated, because training failed: {reason}"
    if version.status == ModelStatus.TRAINING:
        return "Not evaluated yet: training is under way."
    note = (version.metrics or {}).get("note")
    return f"Not evaluated: {note}." if note else "Not evaluated."


def metrics_table(metrics: dict, not_evaluated: str = "Not evaluated.") -> SafeString:
    """The model's headline metrics beside the baselines evaluated in the same run, or
    `not_evaluated` when there are none."""
    columns = {"this model": metrics, **(metrics.get("baselines") or {})}
    names = [m for m in HEADLINE_METRICS if any(m in c for c in columns.values())]
    if not names:
        return format_html('<p class="rec-empty">{}</p>', not_evaluated)
    head = format_html_join("", '<th class="num">{}</th>', ((c,) for c in columns))
    body = format_html_join(
        "",
        "<tr><th>{}</th>{}</tr>",
        (
            (
                name,
                format_html_join(
                    "", '<td class="num">{}</td>', ((format_metric(c, name),) for c in columns.values())
                ),
            )
            for name in names
        ),
    )
    protocol = metrics.get("protocol", "")
    users = metrics.get("n_users")
    caption = f"{protocol}, {int(users)} users, full ranking" if users else protocol
    return format_html(
        '<table class="rec-table"><caption>{}</caption><thead><tr><th></th>{}</tr></thead>'
        "<tbody>{}</tbody></table>",
        caption,
        head,
        body,
    )


# Loss and validation NDCG@10 differ by orders of magnitude: each gets its own axis.
CURVE_SERIES = (("loss", "loss", PALETTE[0]), ("val_ndcg10", "validation NDCG@10", PALETTE[3]))


def training_curve_svg(curve: Sequence[dict]) -> SafeString:
    """Loss (left axis) and validation NDCG@10 (right axis) per epoch."""
    if not curve:
        return mark_safe('<p class="rec-empty">No epochs recorded.</p>')
    epochs = [int(point.get("epoch", i + 1)) for i, point in enumerate(curve)]
    series = [
        Series(label, [_number_or_nan(point.get(key)) for point in curve], color)
        for key, label, color in CURVE_SERIES
    ]
    return line_chart(epochs, series, x_label="epoch", title="Training curve")


def _number_or_nan(value: object) -> float:
    """NaN (skipped by the chart) for an epoch without that value, e.g. no validation run."""
    return float(value) if isinstance(value, int | float) else math.nan
