"""Every study test starts and ends with the fake training's crash switch off (study_fake.CRASH)."""

import pytest

from study_fake import CRASH


@pytest.fixture(autouse=True)
def _no_crash():
    CRASH.update(at=None, weight=None)
    yield
    CRASH.update(at=None, weight=None)
