"""`POST /api/events/`: a batch of behaviour events from browsers (the beacon) or servers.

The view reads the body itself: the byte cap is enforced before anything is parsed, and the
batch is validated by `events.validation` in plain Python (no per-event serializer), then
stored by `events.ingestion` in one transaction. The serializers below only document the
JSON shapes in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from recommendations.api.authentication import (
    ApiKeyAuthentication,
    CsrfSessionAuthentication,
    sends_api_key,
)
from recommendations.api.negotiation import FirstRendererNegotiation
from recommendations.api.permissions import HasScope, IsBrowserSession
from recommendations.api.schema import error_responses
from recommendations.api.throttles import ApiRateThrottle
from recommendations.conf import rec_settings
from recommendations.events.ingestion import ingest
from recommendations.events.tracking import client_context, get_session_id, is_bot, request_user_id
from recommendations.events.validation import (
    BROWSER_EVENT_TYPES,
    MAX_CONTEXT_DEPTH,
    EventValidationError,
    Origin,
    parse_timestamp,
)
from recommendations.models.api_keys import ApiKey, Scope
from recommendations.models.events import EventType

BATCH_FIELDS = {"events", "csrf_token", "sent_at"}


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


def read_batch(request: HttpRequest) -> dict[str, Any]:
    """The parsed body, after the byte cap (413) and shape checks (400).

    A browser session's cap (`MAX_BROWSER_BATCH_BYTES`, what sendBeacon sends at most) is
    far below an API key's (`MAX_BATCH_BYTES`, which bounds both): from the public beacon
    endpoint, a megabyte a request let one address fill the events table by hundreds of
    megabytes a minute.
    """
    if sends_api_key(request):
        limit = rec_settings.MAX_BATCH_BYTES
        split_hint = f"Split it into batches of at most {rec_settings.MAX_BATCH_EVENTS} events."
    else:
        limit = min(rec_settings.MAX_BROWSER_BATCH_BYTES, rec_settings.MAX_BATCH_BYTES)
        split_hint = "A browser session sends smaller batches (the beacon's are 30 KB at most)."
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ParseError("The Content-Length header is not a number.") from None
    if declared > limit:
        raise PayloadTooLarge(
            f"The body is {declared} bytes; at most {limit} bytes are accepted. {split_hint}"
        )
    try:
        # orjson: twice as fast as json on a 500-event body, and it refuses NaN and lone
        # surrogates, which PostgreSQL's jsonb would refuse only later.
        payload = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f'The body is not valid JSON ({exc}). Send {{"events": [...]}}.') from None
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise ParseError('The body must be a JSON object with an "events" list: {"events": [{...}, ...]}.')
    unknown = payload.keys() - BATCH_FIELDS
    if unknown:
        raise ParseError(
            f"Unknown top-level field(s): {', '.join(sorted(unknown))}. "
            f"Allowed: {', '.join(sorted(BATCH_FIELDS))}."
        )
    if not payload["events"]:
        raise ParseError("The batch is empty; send at least one event.")
    if len(payload["events"]) > rec_settings.MAX_BATCH_EVENTS:
        raise ParseError(
            f"The batch has {len(payload['events'])} events; at most {rec_settings.MAX_BATCH_EVENTS} "
            "are accepted per request: split it into smaller batches."
        )
    if payload.get("sent_at") is not None:
        try:
            payload["sent_at"] = parse_timestamp(payload["sent_at"])
        except (ValueError, OverflowError, OSError) as exc:
            raise ParseError(
                f"sent_at {exc}; send the sender's clock when it sent the batch, e.g. "
                "new Date().toISOString()."
            ) from None
    token = payload.get("csrf_token")
    if isinstance(token, str) and "HTTP_X_CSRFTOKEN" not in request.META:
        # navigator.sendBeacon cannot set headers, so the beacon may send the token in the body.
        request.META["HTTP_X_CSRFTOKEN"] = token
    return payload


class EventInSchema(serializers.Serializer):
    event_id = serializers.CharField(
        required=False,
        max_length=64,
        help_text=(
            "Idempotency key; generated when absent. Stored once. From a browser session it is "
            "scoped to that session: stored as `browser:` and a hash of the session and the id."
        ),
    )
    event_type = serializers.ChoiceField(
        choices=EventType.choices,
        help_text=(
            f"From a browser session only {', '.join(sorted(BROWSER_EVENT_TYPES))}: purchases and "
            "ratings are recorded by the server (the order_placed and review_added signals, or "
            "track()) or sent with an API key."
        ),
    )
    product_id = serializers.CharField(
        required=False,
        help_text="Product primary key; required for view, click, cart, purchase, rating, favourite.",
    )
    products = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Products shown (impression, search results); impressions need these or `stores`.",
    )
    stores = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Stores shown (an impression of a list of stores).",
    )
    store_id = serializers.CharField(
        required=False,
        help_text="Store primary key; required for store_view, and for a click on a store (no product_id).",
    )
    query = serializers.CharField(
        required=False, max_length=255, help_text="Search text; required for search."
    )
    value = serializers.FloatField(
        required=False, help_text="Rating 1-5, or quantity for cart and purchase events."
    )
    revenue = serializers.DecimalField(
        max_digits=12, decimal_places=2, required=False, help_text="API keys only, like purchases."
    )
    timestamp = serializers.DateTimeField(
        required=False,
        help_text=(
            "ISO 8601 or unix seconds, after 1970; default now; at most a few minutes in the future "
            "(after the batch's `sent_at` correction)."
        ),
    )
    recommendation_id = serializers.CharField(
        required=False,
        max_length=64,
        help_text=(
            "The list the event is about (impressions, clicks, carts). From a browser session it is "
            "kept only when it names a list served to that session or user; otherwise the event is "
            "stored without it."
        ),
    )
    context = serializers.DictField(
        required=False,
        help_text=(
            "page, device, referrer, review text, ...; campaign_view and campaign_click events need "
            '`campaign`, the campaign\'s id (as /api/campaigns/for-me/ answers it): {"campaign": "12"}. '
            f"Nested at most {MAX_CONTEXT_DEPTH} levels deep. From a browser session at most "
            f"{rec_settings.MAX_BROWSER_CONTEXT_BYTES} bytes as JSON (`MAX_BROWSER_CONTEXT_BYTES`; "
            "listed products and stores not counted)."
        ),
    )
    user_id = serializers.CharField(
        required=False, help_text="API keys only; sessions use the signed-in user."
    )
    session_id = serializers.CharField(required=False, max_length=64, help_text="API keys only.")


class EventBatchSchema(serializers.Serializer):
    events = EventInSchema(many=True)
    csrf_token = serializers.CharField(
        required=False, help_text="For navigator.sendBeacon, which cannot set headers."
    )
    sent_at = serializers.DateTimeField(
        required=False,
        help_text=(
            "The sender's clock when it sent the batch, on the same clock as the events' timestamps "
            "(a browser's or phone's, which may be wrong). Each timestamp is moved by the difference "
            "with the server's clock. Without it, timestamps are stored as given."
        ),
    )


class EventBatchResultSchema(serializers.Serializer):
    received = serializers.IntegerField()
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField(
        help_text="Events whose event_id was already stored (or repeated within the batch)."
    )
    opted_out = serializers.IntegerField(
        help_text="Events not stored because their user opted out of personalisation."
    )
    bots = serializers.IntegerField(
        help_text="Events not stored because the request's user agent is a crawler's "
        "(BOT_USER_AGENT_PATTERNS)."
    )


class EventErrorSchema(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the event in the batch.")
    event_id = serializers.CharField(required=False)
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class EventBatchErrorSchema(serializers.Serializer):
    detail = serializers.CharField()
    errors = EventErrorSchema(many=True, required=False)


class EventBatchView(APIView):
    """Store a batch of behaviour events, all or nothing."""

    authentication_classes = [ApiKeyAuthentication, CsrfSessionAuthentication]
    throttle_classes = [ApiRateThrottle]
    content_negotiation_class = FirstRendererNegotiation
    parser_classes = [JSONParser]  # documents the media type; the body is read by read_batch()
    required_scopes = (Scope.EVENTS_WRITE.value,)
    http_method_names = ["post", "options"]

    def get_permissions(self) -> list[Any]:
        # API keys need the events:write scope; browsers need a session that passed its CSRF check.
        return [HasScope() if isinstance(self.request.auth, ApiKey) else IsBrowserSession()]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Size and shape first: an oversize body costs nothing, and the beacon's CSRF token in
        # the body must be known before authentication checks it.
        if request.method == "POST":
            self.batch = read_batch(request._request)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="events_create",
        summary="Send behaviour events",
        description=(
            f"Up to {rec_settings.MAX_BATCH_EVENTS} events and {rec_settings.MAX_BATCH_BYTES} bytes per "
            f"request ({rec_settings.MAX_BROWSER_BATCH_BYTES} bytes from a browser session). "
            "Authenticate with `Authorization: Api-Key <key>` (scope events:write) or a browser "
            "session plus its CSRF token. If any event is invalid the answer lists every problem and "
            "nothing is stored. Replaying an event_id stores nothing new. A browser session's "
            "`recommendation_id` is kept only when it names a list served to that session or user."
        ),
        request=EventBatchSchema,
        responses={
            200: EventBatchResultSchema,
            400: OpenApiResponse(EventBatchErrorSchema, description="Invalid JSON or invalid events."),
            **error_responses(
                {403: "Missing scope or failed CSRF check.", 413: "Body larger than the byte cap."}
            ),
        },
        examples=[
            OpenApiExample(
                "A view and an impression",
                request_only=True,
                value={
                    "events": [
                        {"event_type": "view", "product_id": "42", "context": {"page": "/product/mug/"}},
                        {
                            "event_id": "b6f1c0de-3",
                            "event_type": "impression",
                            "products": ["7", "9", "12"],
                            "recommendation_id": "r-5f2a",
                        },
                    ]
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiKey):
            origin = Origin(trusted=True, sent_at=self.batch.get("sent_at"))
        else:
            django_request = request._request
            origin = Origin(
                trusted=False,
                user_id=request_user_id(django_request),
                # A crawler gets no session, and its events are not stored (events.bots).
                session_id=get_session_id(django_request, create=not is_bot(django_request)),
                context=client_context(django_request),
                sent_at=self.batch.get("sent_at"),
            )
        try:
            result = ingest(self.batch["events"], origin)
        except EventValidationError as exc:
            return Response({"detail": exc.summary, "errors": exc.errors}, status=400)
        return Response(
            {
                "received": result.received,
                "stored": result.stored,
                "duplicates": result.duplicates,
                "opted_out": result.opted_out,
                "bots": result.bots,
            }
        )
