"""The reference set (tests/reference_set.py): the shared copy (tests/reference/, equal to
../shared/reference) and the project's own vectors (tests/vectors/), every vector over HTTP, by one runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests import reference_harness, reference_set, risk_harness

CASES = reference_set.cases()

# Every defect class of issue 13 (its "Why" list and point 6, the large-horizon part of point 5) and the
# review follow-ups: each has a vector with its derivation in tests/vectors/issue-13-defects.json.
ISSUE_13_CLASSES = {
    "margin-blocks-size", "one-bridge-only", "hint-names-the-instrument", "cornish-fisher-negative", "kelly-units",
    "stress-linear", "own-rate-overrides-entry", "silent-direction", "margin-vs-balance", "two-free-margins",
    "ruin-bound", "no-edge-float", "historical-convention-string", "mid-quotes", "crypto-link", "spread-unit",
    "nfa-invented-cap", "asic-majors", "batch-items-bare", "negative-zero", "horizon-linear", "horizon-conversion",
    "cornish-fisher-position-floor", "projection-float-range", "stress-leg-direction",
    "projection-closed-form-overflow",
}


def test_the_set_is_every_vector_file() -> None:
    on_disk = {str(p.relative_to(reference_set.ROOT)) for p in reference_set.SHARED.glob("*.json")}
    on_disk |= {str(p.relative_to(reference_set.ROOT)) for p in reference_set.OWN.glob("*.json")}
    assert on_disk == set(reference_set.files())
    per_file = {name: json.loads((reference_set.ROOT / name).read_text()) for name in reference_set.files()}
    for name, doc in per_file.items():
        assert doc["count"] == len(doc["vectors"]), name
    assert len(per_file["reference/calc-vectors.json"]["vectors"]) == 75
    assert len(per_file["reference/risk-vectors.json"]["vectors"]) == 34
    assert len(CASES) == sum(len(d["vectors"]) for d in per_file.values())
    assert len({c.id for c in CASES}) == len(CASES)


def test_every_kind_has_a_runner() -> None:
    for case in CASES:
        family = reference_set.files()[case.file]
        if family == "calc":
            assert case.vector["kind"] in reference_harness.RUNNERS, case.id
        elif family == "risk":
            assert case.vector["metric"] in risk_harness.RUNNERS, case.id
        else:
            assert case.vector["kind"] == "http", case.id


def test_every_vector_is_derived() -> None:
    for case in CASES:
        v = case.vector
        assert v.get("derivation") or v.get("computed_by") or v.get("source"), case.id
        if case.source == "own":
            assert v["derivation"] and v["before"] and v["title"] and v["tolerance"], case.id


def test_every_issue_13_class_has_a_vector() -> None:
    own = [c.vector for c in CASES if Path(c.file).name == "issue-13-defects.json"]
    classes = [v["class"] for v in own]
    assert len(classes) == len(set(classes))
    assert set(classes) == ISSUE_13_CLASSES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reference_vector(client: TestClient, case: reference_set.Case) -> None:
    errors = reference_set.run(client, case)
    assert not errors, f"{case.id} {case.vector.get('title', '')}:\n  " + "\n  ".join(errors)
