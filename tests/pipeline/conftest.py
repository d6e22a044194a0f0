import pytest

from tests.pipeline.data import make_shop


@pytest.fixture
def shop(db):
    return make_shop()
