"""Training data from the database: the catalogue through the host's adapters, behaviour
from events, and the maps between host keys and the dense indices the models use.

    data = build_training_data(window_days=365)   # raises InsufficientData with a reason
"""

from recommendations.features.catalogue import Catalogue, item_content, load_catalogue
from recommendations.features.keys import KeyIndex
from recommendations.features.training_data import InsufficientData, TrainingData, build_training_data

__all__ = [
    "Catalogue",
    "InsufficientData",
    "KeyIndex",
    "TrainingData",
    "build_training_data",
    "item_content",
    "load_catalogue",
]
