"""Every public calculation vector, through the HTTP API, from the project's copy of the vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.reference_harness import RUNNERS, Api, compare

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "reference" / "calc-vectors.json").read_text())["vectors"]


def test_every_vector_kind_has_a_runner() -> None:
    assert {v["kind"] for v in VECTORS} <= RUNNERS.keys()


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector_over_http(client: TestClient, vector: dict[str, Any]) -> None:
    got = RUNNERS[vector["kind"]](Api(client), vector)
    errors = compare(vector["expected"], got, vector.get("tolerance") or {})
    assert not errors, f"{vector['id']} {vector['title']}:\n  " + "\n  ".join(errors)
