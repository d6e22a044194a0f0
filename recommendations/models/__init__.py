"""The engine's own tables. None of them has a foreign key to a host model: products and
stores are referenced by their primary key as a string (see `adapters.BaseAdapter.key`)."""

from recommendations.models.admin_pages import Dashboard, UserPreview
from recommendations.models.api_keys import ApiKey, Scope
from recommendations.models.audit import AuditAction, AuditEntry
from recommendations.models.events import Event, EventKey, EventType
from recommendations.models.experiments import Assignment, Experiment, ExperimentStatus, Variant
from recommendations.models.marketing import Campaign, CampaignKind, Segment, SegmentMember
from recommendations.models.preferences import PersonalisationPreference
from recommendations.models.registry import ModelStatus, ModelVersion
from recommendations.models.retention import DailyEventCount
from recommendations.models.search import ProductDocument
from recommendations.models.served import ServedRecommendation
from recommendations.models.statistics import PairKind, ProductPair, ProductPopularity
from recommendations.models.vectors import ListKind, PrecomputedList, ProductVector, StoreVector, UserVector

__all__ = [
    "ApiKey",
    "Assignment",
    "AuditAction",
    "AuditEntry",
    "Campaign",
    "CampaignKind",
    "DailyEventCount",
    "Dashboard",
    "Event",
    "EventKey",
    "EventType",
    "Experiment",
    "ExperimentStatus",
    "ListKind",
    "ModelStatus",
    "ModelVersion",
    "PairKind",
    "PersonalisationPreference",
    "PrecomputedList",
    "ProductDocument",
    "ProductPair",
    "ProductPopularity",
    "ProductVector",
    "Scope",
    "Segment",
    "SegmentMember",
    "ServedRecommendation",
    "StoreVector",
    "UserPreview",
    "UserVector",
    "Variant",
]
