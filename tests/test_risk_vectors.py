"""Every public risk vector, through the HTTP API, from the project's copy of the vectors and data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.risk_harness import INFORMATIVE, NOT_ADOPTED, RUNNERS, Api, compare

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "reference" / "risk-vectors.json").read_text())["vectors"]


def test_every_metric_has_a_runner() -> None:
    assert {v["metric"] for v in VECTORS} <= RUNNERS.keys()
    assert len(VECTORS) == 34


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector_over_http(client: TestClient, vector: dict[str, Any]) -> None:
    got = RUNNERS[vector["metric"]](Api(client), vector)
    rel = vector["tolerance"]["relative"]
    adopted = {k: e for k, e in vector["expected"].items()
               if (vector["id"], k) not in NOT_ADOPTED and k not in INFORMATIVE}
    mc = vector["metric"] == "monte_carlo_var_es"  # the tolerance applies to the first field only
    errors = compare({k: adopted[k] for k in list(adopted)[:1]} if mc else adopted, got, rel)
    assert not errors, f"{vector['id']}:\n  " + "\n  ".join(errors)
    for key in vector["expected"]:
        if (vector["id"], key) in NOT_ADOPTED:
            # A convention the vector rejects: the API must not silently give that library's number.
            assert compare(vector["expected"][key], got[key], rel), f"{key}: {NOT_ADOPTED[(vector['id'], key)]}"
    if mc:
        # The reported standard error is of the size the vector derives (asymptotic, 100k paths).
        want = vector["expected"]["mc_relative_standard_error_at_100k_paths"]
        assert abs(got["mc_relative_standard_error_at_100k_paths"] / want - 1) < 0.1
