"""The project's reference set, and the one runner for it (tests/test_reference_set.py).

The reference set = the shared copy + the project's own vectors:

- `tests/reference/` is a byte-equal copy of `../shared/reference` (tests/test_reference_copy.py fails when
  it drifts): `calc-vectors.json` (sizing, pip value, margin, P&L, ...: one runner per `kind` in
  tests/reference_harness.py) and `risk-vectors.json` (VaR/ES, drawdown, Kelly, ruin, ...: one runner per
  `metric` in tests/risk_harness.py, data from `tests/reference/data/`).
- `tests/vectors/*.json` are the project's own vectors, in the shared vectors' keys where the content
  allows (id, kind, title, expected, tolerance, source, derivation). Their `kind` is "http": the
  request itself (`request.path`, `request.body`), the status, expected values at JSON paths of the answer
  (dotted keys, `[i]` for list items), `flagsInclude` and `contains`; each also carries `class` (the
  defect class) and `before` (what the API answered before the fix). `issue-13-defects.json`: one vector
  per defect class of issue 13.

Every vector has its derivation written out in the file; nothing here computes an expected number. Each
vector is one case, run over HTTP against the app.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests import reference_harness as calc
from tests import risk_harness as risk

ROOT = Path(__file__).parent
SHARED = ROOT / "reference"
OWN = ROOT / "vectors"


@dataclass(frozen=True, slots=True)
class Case:
    source: str  # "shared" or "own"
    file: str  # path relative to tests/
    vector: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{Path(self.file).stem}:{self.vector['id']}"


def files() -> dict[str, str]:
    """Every vector file of the set -> its runner family."""
    out = {"reference/calc-vectors.json": "calc", "reference/risk-vectors.json": "risk"}
    out.update({str(p.relative_to(ROOT)): "http" for p in sorted(OWN.glob("*.json"))})
    return out


def cases() -> list[Case]:
    out: list[Case] = []
    for name in files():
        doc = json.loads((ROOT / name).read_text())
        source = "shared" if name.startswith("reference/") else "own"
        out.extend(Case(source, name, v) for v in doc["vectors"])
    return out


def run(client: TestClient, case: Case) -> list[str]:
    """The errors of one case (empty: it passes)."""
    return RUNNERS[files()[case.file]](client, case.vector)


def _calc(client: TestClient, v: dict[str, Any]) -> list[str]:
    got = calc.RUNNERS[v["kind"]](calc.Api(client), v)
    return calc.compare(v["expected"], got, v.get("tolerance") or {})


def _risk(client: TestClient, v: dict[str, Any]) -> list[str]:
    got = risk.RUNNERS[v["metric"]](risk.Api(client), v)
    rel = v["tolerance"]["relative"]
    adopted = {k: e for k, e in v["expected"].items() if (v["id"], k) not in risk.NOT_ADOPTED
               and k not in risk.INFORMATIVE}
    mc = v["metric"] == "monte_carlo_var_es"  # the tolerance applies to the first field only
    errors = risk.compare({k: adopted[k] for k in list(adopted)[:1]} if mc else adopted, got, rel)
    for key in v["expected"]:
        if (v["id"], key) in risk.NOT_ADOPTED and not risk.compare(v["expected"][key], got[key], rel):
            # A convention the vector rejects: the API must not silently give that library's number.
            errors.append(f"{key}: gives the number of a convention not adopted ({risk.NOT_ADOPTED[(v['id'], key)]})")
    if mc:
        # The reported standard error is of the size the vector derives (asymptotic, 100k paths).
        want = v["expected"]["mc_relative_standard_error_at_100k_paths"]
        if not abs(got["mc_relative_standard_error_at_100k_paths"] / want - 1) < 0.1:
            errors.append("mc_relative_standard_error_at_100k_paths: not within 10 % of the derived size")
    return errors


def at(doc: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        doc = doc[int(part[1:-1])] if part.startswith("[") else doc[part]
    return doc


def same(got: Any, want: Any, tol: dict[str, float]) -> bool:
    if isinstance(want, float | int) and not isinstance(want, bool) and isinstance(got, float | int):
        return abs(got - want) <= tol["absolute"] + tol["relative"] * abs(want)
    if isinstance(want, dict) and isinstance(got, dict):
        return want.keys() == got.keys() and all(same(got[k], want[k], tol) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(want) == len(got) and all(same(g, w, tol) for g, w in zip(got, want, strict=True))
    return bool(got == want)


def _http(client: TestClient, v: dict[str, Any]) -> list[str]:
    r = client.post(f"/api/v1/calculate/{v['request']['path']}", json=v["request"]["body"])
    if r.status_code != v["status"]:
        return [f"status {r.status_code}, want {v['status']}: {r.text[:300]}"]
    body = r.json()
    errors = [f"{path}: got {at(body, path)!r}, want {want!r}" for path, want in (v.get("expected") or {}).items()
              if not same(at(body, path), want, v["tolerance"])]
    codes = [f["code"] for f in body.get("flags", [])]
    errors += [f"flag {code} missing (have {codes})" for code in v.get("flagsInclude") or [] if code not in codes]
    for path, text in (v.get("contains") or {}).items():
        hay = r.text if path == "" else str(at(body, path))
        if text == "!-0.0":  # no negative zero as a number (-0.002 is fine)
            if re.search(r"[:\[,]\s*-0(\.0+)?\s*[,\]}]", hay):
                errors.append(f"{path or 'body'}: a negative zero")
        elif text.startswith("!"):
            if text[1:] in hay:
                errors.append(f"{path or 'body'}: contains {text[1:]!r}")
        elif text not in hay:
            errors.append(f"{path or 'body'}: lacks {text!r}")
    return errors


RUNNERS: dict[str, Callable[[TestClient, dict[str, Any]], list[str]]] = {"calc": _calc, "risk": _risk, "http": _http}
