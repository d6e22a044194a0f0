"""Settings of the Celery worker the pipeline tests start: the test settings, pointed at the
test database of the pytest run that started it, with a tiny training configuration."""

import os

from tests.config.settings import *  # noqa: F403
from tests.config.settings import DATABASES
from tests.pipeline.tiny import TINY_TRAINING

DATABASES["default"]["NAME"] = os.environ["PIPELINE_TEST_DB"]
RECOMMENDATIONS = {**RECOMMENDATIONS, "TRAINING": TINY_TRAINING, "DEVICE": "cpu"}  # noqa: F405
