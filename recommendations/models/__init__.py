"""The engine's own tables. None of them has a foreign key to a host model: products and
stores are referenced by their primary key as a string (see `adapters.BaseAdapter.key`)."""

from recommendations.models.admin_pages import Dashboard, UserPreview
from recommendations.models.api_keys import ApiKey, Scope
from recommendations.models.events import Event, EventType
from recommendations.models.experiments import Assignment, Experiment, ExperimentStatus, Variant
from recommendations.models.marketing import Campaign, CampaignKind, Segment, SegmentMember
from recommendations.models.registry import ModelStatus, ModelVersion
from recommendations.models.search import ProductDocument
from recommendations.models.served import ServedRecommendation
from recommendations.models.statistics import PairKind, ProductPair, ProductPopularity
from recommendations.models.vectors import ProductVector, StoreVector, UserVector

__all__ = [
    "ApiKey",
    "Assignment",
    "Campaign",
    "CampaignKind",
    "Dashboard",
    "Event",
    "EventType",
    "Experiment",
    "ExperimentStatus",
    "ModelStatus",
    "ModelVersion",
    "PairKind",
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
