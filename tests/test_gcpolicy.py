"""The serving process's garbage-collector policy (app/gcpolicy.py): start-up objects frozen, a larger
gen-0 threshold while the app serves, both undone when it stops."""

from __future__ import annotations

import gc

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.gcpolicy import serve_policy
from app.main import create_app

# serve_policy() runs a full collection: in the shared test process it may finalise garbage other tests
# left behind (an unclosed client connection's ResourceWarning), which pytest would pin on these tests.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_the_app_serves_with_its_start_up_frozen_and_a_larger_gen0_threshold(settings: Settings) -> None:
    before = gc.get_threshold()
    with TestClient(create_app(settings.model_copy(update={"gc_gen0_threshold": 40_000}))) as c:
        assert c.get("/healthz").status_code == 200
        assert gc.get_threshold()[0] == 40_000
        assert gc.get_freeze_count() > 10_000  # the app's models, schemas and clients
    assert gc.get_threshold() == before


def test_zero_keeps_cpython_defaults() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    undo = serve_policy(0)
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
    undo()


def test_undo_gives_frozen_objects_back_to_the_collector() -> None:
    before = gc.get_threshold()
    undo = serve_policy(12_345)
    assert gc.get_threshold() == (12_345, before[1], before[2]) and gc.get_freeze_count() > 0
    undo()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
