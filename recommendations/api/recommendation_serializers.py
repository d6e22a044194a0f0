"""JSON shapes of the recommendation and search endpoints.

Request parameters are validated by `ListParamsSerializer` (unknown names are rejected, so a
typo such as `limt` is a 400, not a silent default). Responses are built from a
`RecommendationResult` through the adapters, so any host model serialises the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from rest_framework import serializers

from recommendations.serving.rules import MAX_LIMIT
from recommendations.serving.types import Recommendation, RecommendationResult


class CommaSeparatedField(serializers.CharField):
    """`?exclude=1,2,3` -> ["1", "2", "3"]."""

    def to_internal_value(self, data: Any) -> list[str]:
        text = super().to_internal_value(data)
        return [part.strip() for part in text.split(",") if part.strip()]


class QueryParamsSerializer(serializers.Serializer):
    """Query parameters, whose unknown names are a 400 (a typo is never a silent default), as
    is a parameter of one value given twice: a query string keeps only the last, so
    `?exclude=1&exclude=2` (how HTTP libraries send a list) silently excluded only 2."""

    # Query parameters any DRF view accepts.
    IGNORED = frozenset({"format"})

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # Not a mapping (a JSON body of `false`, a list): DRF's own message says what to send.
        unknown = sorted(set(data) - set(self.fields) - self.IGNORED) if isinstance(data, Mapping) else []
        if unknown:
            raise serializers.ValidationError(
                {name: [f"Unknown parameter. Allowed: {', '.join(sorted(self.fields))}."] for name in unknown}
            )
        if hasattr(data, "getlist"):  # a query string or a form, which may repeat a name
            repeated = {
                name: [_once(field)]
                for name, field in self.fields.items()
                if not isinstance(field, serializers.ListField) and len(data.getlist(name)) > 1
            }
            if repeated:
                raise serializers.ValidationError(repeated)
        return super().to_internal_value(data)


def _once(field: serializers.Field) -> str:
    if isinstance(field, CommaSeparatedField):
        return f"Given more than once: give it once, the ids separated by commas ({field.field_name}=1,2,3)."
    return "Given more than once: give it once."


class ListParamsSerializer(QueryParamsSerializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, required=False)
    exclude = CommaSeparatedField(required=False, help_text="Product ids to leave out, comma-separated.")
    explain = serializers.BooleanField(required=False, default=False, help_text="Add a reason to each item.")
    user = serializers.CharField(
        required=False,
        help_text='Another user\'s id: staff with the "preview as user" permission and API keys with '
        "recommendations:read only.",
    )
    session_id = serializers.CharField(
        required=False, max_length=64, help_text="An anonymous session: the same callers as `user` only."
    )

    @classmethod
    def parse(cls, data: Any) -> dict[str, Any]:
        """The validated parameters, or DRF's `ValidationError` (a 400 listing each bad one).

        Validates with one instance per class, made once: a new serializer deep-copies its
        declared fields, which cost ten times the validation itself on every request. The
        shared instance is only read (its fields are bound when it is made).
        """
        if not isinstance(data, Mapping):  # a JSON body of null, false or a list
            raise serializers.ValidationError(
                {"non_field_errors": [f"Send a JSON object of parameters, not {type(data).__name__}."]}
            )
        return _validator(cls).run_validation(data)


@cache
def _validator(serializer_class: type[ListParamsSerializer]) -> ListParamsSerializer:
    validator = serializer_class()
    validator.fields  # noqa: B018 (bind the fields now, not in the first request's threads)
    return validator


class CategoryListParamsSerializer(ListParamsSerializer):
    """The lists that can keep to one category (trending, new arrivals); elsewhere `category`
    is an unknown parameter rather than one silently ignored."""

    category = serializers.CharField(required=False, max_length=200, help_text="A category name.")


class SearchParamsSerializer(ListParamsSerializer):
    q = serializers.CharField(max_length=200, help_text="What the shopper typed.")


class RerankSerializer(ListParamsSerializer):
    product_ids = serializers.ListField(
        child=serializers.CharField(max_length=64), min_length=1, max_length=MAX_LIMIT * 5
    )


class ItemSerializer(serializers.Serializer):
    """One recommended product (documents the shape; `result_payload` builds it)."""

    id = serializers.CharField()
    title = serializers.CharField()
    price = serializers.FloatField(allow_null=True)
    category = serializers.ListField(child=serializers.CharField())
    store_id = serializers.CharField(allow_null=True)
    store = serializers.CharField(allow_null=True)
    url = serializers.CharField(allow_null=True)
    score = serializers.FloatField()
    source = serializers.CharField(help_text="The recommender that proposed it.")
    position = serializers.IntegerField()
    recommendation_id = serializers.CharField(help_text="Send it back with clicks and purchases.")
    reason = serializers.CharField(required=False, help_text="With ?explain=1.")


class StoreItemSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    url = serializers.CharField(allow_null=True)
    score = serializers.FloatField()
    source = serializers.CharField()
    position = serializers.IntegerField()
    recommendation_id = serializers.CharField()
    reason = serializers.CharField(required=False)


class RecommendationListSerializer(serializers.Serializer):
    recommendation_id = serializers.CharField()
    kind = serializers.CharField()
    source = serializers.CharField()
    model_version = serializers.IntegerField(allow_null=True)
    results = ItemSerializer(many=True)


class StoreListSerializer(RecommendationListSerializer):
    results = StoreItemSerializer(many=True)


def _common(rec: Recommendation, explain: bool) -> dict[str, Any]:
    data = {
        "score": rec.score,
        "source": rec.source,
        "position": rec.position,
        "recommendation_id": rec.recommendation_id,
    }
    if explain:
        data["reason"] = rec.reason
    return data


def result_payload(result: RecommendationResult, explain: bool) -> dict[str, Any]:
    return {
        "recommendation_id": result.recommendation_id,
        "kind": result.kind,
        "source": result.source,
        "model_version": result.model_version_id,
        "results": [{**card, **_common(rec, explain)} for card, rec in result.cards()],
    }
