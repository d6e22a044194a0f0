from shop.settings import *  # noqa: F403
from shop.settings import RECOMMENDATIONS

RECOMMENDATIONS = {**RECOMMENDATIONS, "SIGNAL_PROCESSOR": "recommendations.indexing.OnCommitSignalProcesor"}
