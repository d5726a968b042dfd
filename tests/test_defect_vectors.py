"""The issue-13 defect vectors (tests/vectors/issue-13-defects.json) over HTTP: one case per defect class,
each with its derivation written out in the file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

DOC = json.loads((Path(__file__).parent / "vectors" / "issue-13-defects.json").read_text())
VECTORS: list[dict[str, Any]] = DOC["vectors"]


def at(doc: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        doc = doc[int(part[1:-1])] if part.startswith("[") else doc[part]
    return doc


def same(got: Any, want: Any, tol: dict[str, float]) -> bool:
    if isinstance(want, float | int) and not isinstance(want, bool) and isinstance(got, float | int):
        return abs(got - want) <= tol["absolute"] + tol["relative"] * abs(want)
    if isinstance(want, dict) and isinstance(got, dict):
        return want.keys() == got.keys() and all(same(got[k], want[k], tol) for k in want)
    return bool(got == want)


def test_every_class_is_derived() -> None:
    assert DOC["count"] == len(VECTORS) >= 20
    assert len({v["class"] for v in VECTORS}) == len(VECTORS)
    assert all(v["derivation"] and v["before"] for v in VECTORS)


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_defect_vector(client: TestClient, v: dict[str, Any]) -> None:
    r = client.post(f"/api/v1/calculate/{v['request']['path']}", json=v["request"]["body"])
    assert r.status_code == v["status"], r.text
    body = r.json()
    for path, want in (v.get("expected") or {}).items():
        got = at(body, path)
        assert same(got, want, v["tolerance"]), (v["id"], path, got, want)
    codes = [f["code"] for f in body.get("flags", [])]
    for code in v.get("flagsInclude") or []:
        assert code in codes, (v["id"], code, codes)
    for path, text in (v.get("contains") or {}).items():
        hay = r.text if path == "" else str(at(body, path))
        if text == "!-0.0":  # no negative zero as a number (-0.002 is fine)
            assert not re.search(r"[:\[,]\s*-0(\.0+)?\s*[,\]}]", hay), (v["id"], path)
        elif text.startswith("!"):
            assert text[1:] not in hay, (v["id"], path)
        else:
            assert text in hay, (v["id"], path, hay)
