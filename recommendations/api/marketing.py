"""`/api/campaigns/...` and `/api/experiments/...`: marketing and A/B tests over REST.

- `GET /api/campaigns/for-me/`: the campaigns for the visitor (any visitor; `?user=` for
  someone else needs staff who may preview shoppers or an API key with `recommendations:read`,
  as elsewhere).
- `GET /api/campaigns/{id}/audience/`: who the campaign should reach, from its latest saved
  segment that matches the campaign as it is now, or computed live; `count` is the audience's
  size, `limit` and `offset` choose the rows; JSON, or CSV with `?format=csv` / `Accept:
  text/csv`. Staff who may view campaigns, segments and users, or an API key with
  `audiences:read`.
- `/api/campaigns/` and `/api/experiments/`: create, read, change (staff with the model
  permission the admin asks for each; reading campaigns also with `audiences:read`). Model
  validation (dates, rules, traffic shares) answers 400.
- `GET /api/experiments/{id}/results/`, `POST .../start/`, `POST .../stop/` with
  `{"promote": "<variant key>" | "winner"}` to make a variant the default.
"""

from __future__ import annotations

import copy
import io
import itertools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Model
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, renderers, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from recommendations.api.audience import resolve_audience
from recommendations.api.authentication import ApiKeyAuthentication, CsrfSessionAuthentication
from recommendations.api.negotiation import FirstRendererNegotiation
from recommendations.api.parsers import PARSERS
from recommendations.api.permissions import (
    AudiencePermission,
    CanReadRecommendations,
    ModelPermissionsOrScope,
)
from recommendations.api.recommendation_serializers import QueryParamsSerializer
from recommendations.api.schema import TOO_LARGE, error_responses, user_key_field
from recommendations.api.throttles import ApiRateThrottle
from recommendations.experiments import lifecycle
from recommendations.experiments.results import METRICS, ExperimentResults, experiment_results
from recommendations.marketing.audiences import build_audience
from recommendations.marketing.export import audience_rows, segment_rows, write_csv
from recommendations.marketing.rules import MAX_AUDIENCE_LIMIT
from recommendations.marketing.targeting import PRODUCTS_PER_MATCH, show_campaigns
from recommendations.models import Campaign, Experiment, Variant
from recommendations.models.api_keys import Scope
from recommendations.models.experiments import validate_variant_set
from recommendations.models.marketing import audience_digest

AUDIENCES_SCOPE = Scope.AUDIENCES_READ.value
MAX_FOR_ME = 20
DEFAULT_AUDIENCE_ROWS = 100
MAX_AUDIENCE_ROWS = 10_000
NO_SUCH_ID = "No object with this id."
NOT_JSON = "The body is neither JSON nor a form: send Content-Type: application/json."


def _django_errors(exc: DjangoValidationError) -> Any:
    """A model's errors as DRF words them: Django's `__all__` becomes `non_field_errors`."""
    if not hasattr(exc, "error_dict"):
        return exc.messages
    return {
        (api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field): messages
        for field, messages in exc.message_dict.items()
    }


def _refused(exc: DjangoValidationError | ImproperlyConfigured) -> exceptions.ValidationError:
    """A 400 for what the object's state or the set-up refuses (a draft that cannot start, a
    campaign with no audience): `{"detail": "..."}`, one text, as every error's `detail` is."""
    messages = exc.messages if isinstance(exc, DjangoValidationError) else [str(exc)]
    return exceptions.ValidationError({"detail": " ".join(messages)})


def _no_such(model: type[Model], pk: Any) -> str:
    return f"No {model._meta.verbose_name} with id {str(pk)!r}."


class ByIdMixin:
    """A viewset's unknown id named as the serving endpoints name theirs ("No campaign with id
    '7'."): DRF said "No Campaign matches the given query.", or "Not found." for an id that is
    not a number."""

    def get_object(self) -> Model:
        try:
            return super().get_object()  # type: ignore[misc]
        except Http404 as exc:
            pk = self.kwargs[self.lookup_url_kwarg or self.lookup_field]  # type: ignore[attr-defined]
            raise exceptions.NotFound(_no_such(self.queryset.model, pk)) from exc  # type: ignore[attr-defined]


class ApiView(APIView):
    authentication_classes = [ApiKeyAuthentication, CsrfSessionAuthentication]
    parser_classes = PARSERS
    throttle_classes = [ApiRateThrottle]
    content_negotiation_class = FirstRendererNegotiation


class ModelCleanMixin:
    """Run the model's `clean()` on the would-be instance, so the API refuses what the admin refuses."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)  # type: ignore[misc]
        model = self.Meta.model  # type: ignore[attr-defined]
        candidate = copy.copy(self.instance) if self.instance is not None else model()  # type: ignore[attr-defined]
        for name, value in attrs.items():
            if name in {f.name for f in model._meta.concrete_fields}:
                setattr(candidate, name, value)
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(_django_errors(exc)) from exc
        return attrs


class CampaignSerializer(ModelCleanMixin, serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "kind",
            "product_ids",
            "category_names",
            "store_ids",
            "discount_text",
            "link_url",
            "starts_at",
            "ends_at",
            "impression_cap",
            "audience_rules",
            "priority",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


class VariantSerializer(ModelCleanMixin, serializers.ModelSerializer):
    class Meta:
        model = Variant
        fields = ["id", "key", "name", "is_control", "traffic_share", "model_version", "recommender", "rules"]


class ExperimentSerializer(ModelCleanMixin, serializers.ModelSerializer):
    variants = VariantSerializer(many=True)

    class Meta:
        model = Experiment
        fields = [
            "id",
            "key",
            "name",
            "description",
            "status",
            "attribution_window_hours",
            "min_visitors",
            "started_at",
            "stopped_at",
            "winner",
            "variants",
            "created_at",
        ]
        read_only_fields = ["status", "started_at", "stopped_at", "winner", "created_at"]

    def validate_key(self, key: str) -> str:
        if self.instance is not None and "key" in self.instance.locked_fields() and key != self.instance.key:
            raise serializers.ValidationError(
                "The key salts the bucketing of a started experiment; it cannot change."
            )
        return key

    def validate_variants(self, variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.instance is not None and not self.instance.is_editable:
            raise serializers.ValidationError(
                "Variants of a started experiment cannot change; create a new experiment."
            )
        try:
            validate_variant_set([Variant(**v) for v in variants])
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return variants

    def _write_variants(self, experiment: Experiment, variants: list[dict[str, Any]]) -> None:
        experiment.variants.all().delete()
        Variant.objects.bulk_create(Variant(experiment=experiment, **v) for v in variants)

    @transaction.atomic
    def create(self, validated_data: dict[str, Any]) -> Experiment:
        variants = validated_data.pop("variants")
        experiment = Experiment.objects.create(**validated_data)
        self._write_variants(experiment, variants)
        return experiment

    @transaction.atomic
    def update(self, instance: Experiment, validated_data: dict[str, Any]) -> Experiment:
        variants = validated_data.pop("variants", None)
        instance = super().update(instance, validated_data)
        if variants is not None:
            self._write_variants(instance, variants)
        return instance


class ForMeParamsSerializer(QueryParamsSerializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_FOR_ME, default=3)
    user = serializers.CharField(
        required=False,
        help_text='Another user: staff with the "preview as user" permission, API keys with '
        "recommendations:read.",
    )
    session_id = serializers.CharField(
        required=False, max_length=64, help_text="An anonymous session (the same callers as `user`)."
    )


class CampaignMatchSerializer(serializers.Serializer):
    id = serializers.IntegerField(
        source="campaign.pk",
        help_text='Send it as the context\'s "campaign" of the campaign_view and campaign_click events.',
    )
    name = serializers.CharField(source="campaign.name")
    kind = serializers.CharField(source="campaign.kind")
    discount_text = serializers.CharField(source="campaign.discount_text")
    link_url = serializers.CharField(source="campaign.href", help_text='"#" when the campaign has no link.')
    ends_at = serializers.DateTimeField(
        source="campaign.ends_at", allow_null=True, help_text="null: no end date."
    )
    score = serializers.FloatField()
    reason = serializers.CharField()
    method = serializers.CharField()
    product_ids = serializers.SerializerMethodField(
        help_text=f"The first {PRODUCTS_PER_MATCH} products it offers, in stock now."
    )
    recommendation_id = serializers.CharField(
        help_text=(
            "Send it back with the campaign_view and campaign_click events of this campaign: a "
            "browser's view counts towards the impression cap only with it."
        )
    )

    def get_product_ids(self, match: Any) -> list[str]:
        return list(match.product_ids)


class CampaignMatchListSerializer(serializers.Serializer):
    results = CampaignMatchSerializer(many=True)


class CampaignsForMeView(ApiView):
    permission_classes = [CanReadRecommendations]

    @extend_schema(
        summary="Campaigns for the visitor",
        parameters=[ForMeParamsSerializer],
        responses={
            200: CampaignMatchListSerializer,
            **error_responses(
                {
                    400: "Bad parameters, each listed with what to send.",
                    403: "Another user's campaigns without permission, or an API key without "
                    "recommendations:read.",
                    404: "Unknown user.",
                }
            ),
        },
    )
    def get(self, request: Request) -> Response:
        params = ForMeParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        audience = resolve_audience(request, params.validated_data)
        matches = show_campaigns(audience, limit=params.validated_data["limit"])
        return Response(CampaignMatchListSerializer({"results": matches}).data)


class AudienceCSVRenderer(renderers.BaseRenderer):
    """The audience as CSV (errors as a one-column CSV, so a script sees what went wrong)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> str:
        out = io.StringIO()
        if isinstance(data, dict) and "results" in data:
            write_csv(data["results"], out)
        else:
            write_csv([{"error": _error_text(data)}], out, ["error"])
        return out.getvalue()


def _error_text(data: Any) -> str:
    """An error response as one line: its detail, or each bad parameter with its messages."""
    if not isinstance(data, dict):
        return str(data)
    if "detail" in data:
        return str(data["detail"])
    return "; ".join(
        f"{name}: {' '.join(map(str, problems)) if isinstance(problems, list) else problems}"
        for name, problems in data.items()
    )


class AudienceParamsSerializer(QueryParamsSerializer):
    limit = serializers.IntegerField(
        min_value=1,
        max_value=MAX_AUDIENCE_ROWS,
        required=False,
        help_text=f"Rows to answer at most: JSON {DEFAULT_AUDIENCE_ROWS} by default, CSV all of them.",
    )
    offset = serializers.IntegerField(
        min_value=0,
        # No audience is larger (`max_audience`): a bigger offset would only answer no rows.
        max_value=MAX_AUDIENCE_LIMIT,
        default=0,
        help_text=f"Rows to skip first (the next page: offset + limit); at most {MAX_AUDIENCE_LIMIT}, "
        "the largest audience.",
    )
    format = serializers.ChoiceField(choices=["json", "csv", "api"], required=False)


class AudienceMemberSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    score = serializers.FloatField(help_text="How engaged: the best first.")

    def get_fields(self) -> dict[str, serializers.Field]:
        # The user model is the host's: its key may be an integer, a UUID or text.
        return {"user_id": user_key_field(), **super().get_fields()}


class AudienceSerializer(serializers.Serializer):
    """Documents the JSON audience (the view builds it); CSV has the `results` rows alone."""

    campaign = serializers.IntegerField()
    source = serializers.CharField(help_text='"segment" (saved) or "live" (computed now).')
    segment = serializers.IntegerField(
        allow_null=True, help_text="The saved segment; null when computed now."
    )
    method = serializers.CharField(help_text="How the audience was chosen: rfm, affinity or vectors.")
    refreshed_at = serializers.DateTimeField(allow_null=True, help_text="When the segment was saved.")
    count = serializers.IntegerField(
        help_text="The audience's size: all its users, not only the rows of this answer (see "
        "`limit` and `offset`)."
    )
    results = AudienceMemberSerializer(many=True, help_text="Rows `offset` to `offset + limit`.")


def _json_or_csv(responses: dict[int, Any]) -> dict[tuple[int, str], Any]:
    """The audience's answers as JSON, each also as CSV (an error as one `error` column)."""
    return {
        key: answer
        for status, response in responses.items()
        for key, answer in (
            ((status, "application/json"), response),
            ((status, "text/csv"), OpenApiTypes.STR),
        )
    }


class CampaignAudienceView(ApiView):
    permission_classes = [AudiencePermission]
    required_scopes = (AUDIENCES_SCOPE,)
    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, AudienceCSVRenderer]

    @extend_schema(
        summary="Who a campaign should reach",
        parameters=[AudienceParamsSerializer],
        responses=_json_or_csv(
            {
                200: OpenApiResponse(
                    AudienceSerializer,
                    description="The latest saved segment computed for the campaign as it is now "
                    "(what it promotes and its audience rules), else the audience computed now.",
                ),
                **error_responses(
                    {
                        400: "Bad parameters, or the campaign has no audience: it targets "
                        "nothing (add products, categories or stores) or has nothing to offer now.",
                        403: "Neither staff who may view campaigns, segments and users, nor an "
                        f"API key with {AUDIENCES_SCOPE}.",
                        404: "Unknown campaign.",
                    }
                ),
            }
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        campaign = Campaign.objects.filter(pk=pk).first()
        if campaign is None:
            raise exceptions.NotFound(_no_such(Campaign, pk))
        params = AudienceParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        csv_wanted = request.accepted_renderer.format == "csv"
        limit = params.validated_data.get("limit") or (None if csv_wanted else DEFAULT_AUDIENCE_ROWS)
        offset = params.validated_data["offset"]
        end = offset + limit if limit else None
        # A segment computed before the campaign's targeting changed is not its audience.
        segment = (
            campaign.segments.filter(refreshed_at__isnull=False, rules_digest=audience_digest(campaign))
            .order_by("-refreshed_at")
            .first()
        )
        if segment is not None:
            results = list(itertools.islice(segment_rows(segment), offset, end))
            payload = {
                "source": "segment",
                "segment": segment.pk,
                "method": segment.method,
                "refreshed_at": segment.refreshed_at,
                "count": segment.size,
            }
        else:
            try:
                audience = build_audience(campaign)
            except (DjangoValidationError, ImproperlyConfigured) as exc:
                raise _refused(exc) from exc
            results = audience_rows(audience.members[offset:end])
            payload = {
                "source": "live",
                "segment": None,
                "method": audience.method,
                "refreshed_at": None,
                "count": len(audience),
            }
        headers = {"Content-Disposition": f'attachment; filename="campaign-{campaign.pk}-audience.csv"'}
        return Response(
            {"campaign": campaign.pk, **payload, "results": results},
            headers=headers if csv_wanted else None,
        )


def _model_schema(
    serializer: type[serializers.ModelSerializer],
    *,
    key_scope: str | None = None,
    delete_refused: str | None = None,
) -> Callable[[type], type]:
    """The answers of a model viewset's operations, errors included: staff with the model's
    permission for each (`ModelPermissionsOrScope`), API keys with `key_scope` may read, and
    `delete_refused` says when deleting is a 400."""
    plural = serializer.Meta.model._meta.verbose_name_plural

    def refused(permission: str, or_key: str = "") -> dict[int, str]:
        return {403: f"Not staff with the {permission} permission of {plural}{or_key}."}

    read = refused("view (or change)", f", nor an API key with {key_scope}" if key_scope else "")
    invalid = {400: "Bad fields, each listed with what to send, or values the model refuses."}
    one = {404: NO_SUCH_ID}
    edit = extend_schema(
        responses={
            200: serializer,
            **error_responses({**invalid, **refused("change"), **TOO_LARGE, 415: NOT_JSON, **one}),
        }
    )
    return extend_schema_view(
        list=extend_schema(responses={200: serializer, **error_responses(read)}),
        retrieve=extend_schema(responses={200: serializer, **error_responses({**read, **one})}),
        create=extend_schema(
            responses={
                201: serializer,
                **error_responses({**invalid, **refused("add"), **TOO_LARGE, 415: NOT_JSON}),
            }
        ),
        update=edit,
        partial_update=edit,
        destroy=extend_schema(
            responses={
                204: None,
                **error_responses(
                    {**({400: delete_refused} if delete_refused else {}), **refused("delete"), **one}
                ),
            }
        ),
    )


@_model_schema(CampaignSerializer, key_scope=AUDIENCES_SCOPE)
class CampaignViewSet(ByIdMixin, viewsets.ModelViewSet):
    """Campaigns: staff with the admin's campaign permissions read and change them; API keys
    with audiences:read read them."""

    queryset = Campaign.objects.all()
    serializer_class = CampaignSerializer
    authentication_classes = ApiView.authentication_classes
    parser_classes = ApiView.parser_classes
    throttle_classes = ApiView.throttle_classes
    content_negotiation_class = ApiView.content_negotiation_class
    permission_classes = [ModelPermissionsOrScope]
    required_scopes = (AUDIENCES_SCOPE,)


class MetricSerializer(serializers.Serializer):
    """One metric of a variant; null where there is no data yet (or, for the control, no comparison)."""

    value = serializers.FloatField(allow_null=True)
    interval = serializers.ListField(
        child=serializers.FloatField(allow_null=True),
        allow_null=True,
        min_length=2,
        max_length=2,
        help_text="[low, high] of the 95% interval.",
    )
    lift = serializers.FloatField(
        allow_null=True, help_text="Relative to the control; null when the control's value is 0."
    )
    difference = serializers.FloatField(allow_null=True, help_text="The value minus the control's.")
    test = serializers.CharField(
        allow_null=True,
        help_text='The test against the control: "two-proportion z-test", "Fisher\'s exact test" '
        "(conversion with small counts), \"Welch's t-test\", or for click-through Welch's t-test on "
        "visitor-level (delta method) variance.",
    )
    p_value = serializers.FloatField(allow_null=True, help_text="Unadjusted.")
    adjusted_p_value = serializers.FloatField(
        allow_null=True, help_text="Holm-adjusted for `comparisons` challengers; `significant` rests on it."
    )
    comparisons = serializers.IntegerField(
        allow_null=True, help_text="Challengers tested against the control on this metric."
    )
    significant = serializers.BooleanField(allow_null=True)


class VariantResultsSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    is_control = serializers.BooleanField()
    visitors = serializers.IntegerField()
    impressions = serializers.IntegerField()
    clicked_impressions = serializers.IntegerField()
    clicks = serializers.IntegerField()
    add_to_carts = serializers.IntegerField()
    purchases = serializers.IntegerField()
    converted_visitors = serializers.IntegerField()
    revenue = serializers.CharField(help_text="A decimal, as a string.")
    metrics = serializers.DictField(child=MetricSerializer(), help_text=f"By name: {', '.join(METRICS)}.")


class ExperimentResultsSerializer(serializers.Serializer):
    """Documents `_results_payload`'s answer."""

    enough_data = serializers.BooleanField()
    status = serializers.CharField()
    suggested_winner = serializers.CharField(allow_null=True, help_text="A variant key.")
    variants = VariantResultsSerializer(many=True)


def _results_payload(results: ExperimentResults) -> dict[str, Any]:
    def number(value: Any) -> Any:
        return None if value is None else round(float(value), 6)

    variants = []
    for row in results.variants:
        f = row.funnel
        metrics = {}
        for name in METRICS:
            m = row.metrics[name]
            metrics[name] = {
                "value": number(m.value),
                "interval": [number(m.interval.low), number(m.interval.high)] if m.interval else None,
                "lift": number(m.lift),
                "difference": number(m.difference),
                "test": m.test.method if m.test else None,
                "p_value": number(m.test.p_value) if m.test else None,
                "adjusted_p_value": number(m.test.decisive_p_value) if m.test else None,
                "comparisons": m.test.comparisons if m.test else None,
                "significant": m.test.significant if m.test else None,
            }
        variants.append(
            {
                "key": f.key,
                "label": f.label,
                "is_control": f.is_control,
                "visitors": f.visitors,
                "impressions": f.impressions,
                "clicked_impressions": f.clicked_impressions,
                "clicks": f.clicks,
                "add_to_carts": f.add_to_carts,
                "purchases": f.purchases,
                "converted_visitors": f.converted_visitors,
                "revenue": str(f.revenue),
                "metrics": metrics,
            }
        )
    winner = results.suggested_winner
    return {
        "enough_data": results.enough_data,
        "status": results.status_line,
        "suggested_winner": winner.funnel.key if winner else None,
        "variants": variants,
    }


class StopSerializer(serializers.Serializer):
    promote = serializers.CharField(
        required=False,
        allow_null=True,
        help_text=f'A variant key, or "{lifecycle.WINNER}" for the suggested winner.',
    )


READERS_ONLY = {403: "Not staff with the view (or change) permission of experiments."}
CHANGERS_ONLY = {403: "Not staff with the change permission of experiments."}


@_model_schema(
    ExperimentSerializer,
    delete_refused="The experiment is running: stop it before deleting it.",
)
class ExperimentViewSet(ByIdMixin, viewsets.ModelViewSet):
    """Experiments with their variants: staff only, with the admin's experiment permissions
    (starting and stopping one changes it)."""

    queryset = Experiment.objects.prefetch_related("variants")
    serializer_class = ExperimentSerializer
    authentication_classes = ApiView.authentication_classes
    parser_classes = ApiView.parser_classes
    throttle_classes = ApiView.throttle_classes
    content_negotiation_class = ApiView.content_negotiation_class
    permission_classes = [ModelPermissionsOrScope]

    def perform_destroy(self, instance: Experiment) -> None:
        try:
            lifecycle.delete(instance)
        except DjangoValidationError as exc:
            raise _refused(exc) from exc

    @extend_schema(
        summary="Funnels, intervals and tests per variant",
        responses={200: ExperimentResultsSerializer, **error_responses({**READERS_ONLY, 404: NO_SUCH_ID})},
    )
    @action(detail=True, methods=["get"])
    def results(self, request: Request, pk: str) -> Response:
        return Response(_results_payload(experiment_results(self.get_object())))

    @extend_schema(
        summary="Start bucketing visitors",
        request=None,
        responses={
            200: ExperimentSerializer,
            **error_responses(
                {400: "Only a draft can start, one at a time.", **CHANGERS_ONLY, 404: NO_SUCH_ID}
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str) -> Response:
        experiment = self.get_object()
        try:
            lifecycle.start(experiment)
        except DjangoValidationError as exc:
            raise _refused(exc) from exc
        return Response(self.get_serializer(experiment).data)

    @extend_schema(
        summary="Stop, optionally promoting a variant to default",
        request=StopSerializer,
        responses={
            200: ExperimentSerializer,
            **error_responses(
                {
                    400: "Not running, or `promote` names no variant of it (or there is no winner yet).",
                    **CHANGERS_ONLY,
                    404: NO_SUCH_ID,
                    **TOO_LARGE,
                    415: NOT_JSON,
                }
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str) -> Response:
        experiment = self.get_object()
        body = StopSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            lifecycle.stop(experiment, promote=body.validated_data.get("promote"))
        except DjangoValidationError as exc:
            raise _refused(exc) from exc
        experiment.refresh_from_db()
        return Response(self.get_serializer(experiment).data)
