"""Every domain error's problem type is documented: a title in the response and a page at /problems/{slug}."""

from __future__ import annotations

from fastapi.testclient import TestClient

import app.main  # noqa: F401  (imports every domain package, so every AppError subclass exists)
from app.errors import PROBLEM_TYPES, AppError


def subclasses(cls: type[AppError]) -> set[type[AppError]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= subclasses(sub)
    return found


def test_every_app_error_slug_has_a_title() -> None:
    missing = sorted({f"{c.__module__}.{c.__qualname__}: {c.slug}" for c in subclasses(AppError)
                      if c.slug not in PROBLEM_TYPES})
    assert not missing, f"add these problem types to app.errors.PROBLEM_TYPES: {missing}"


def test_problem_page_for_quote_unavailable(client: TestClient) -> None:
    r = client.get("/problems/quote-unavailable")
    assert r.status_code == 200 and r.json()["title"] == "Quote unavailable"
