"""The one place that says which requests honour `Idempotency-Key`.

Mutating admin and billing routes, and batch calculations. Login, refresh, exchange and the other
auth routes have their own replay rules and ignore the header, as do all reads.
"""

from __future__ import annotations

METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# (path, whole subtree): the subtree form covers `/api/v1/brokers/{id}/config`, `.../api-keys/...`,
# `.../users`, `.../sso`, `/api/v1/users/{id}` and any future `/api/v1/billing/...` route.
PATHS: tuple[tuple[str, bool], ...] = (
    ("/api/v1/brokers", True),
    ("/api/v1/users", True),
    ("/api/v1/billing", True),
    ("/api/v1/calculate/batch", False),
)

_EXACT = frozenset(path for path, _ in PATHS)
_SUBTREES = tuple(f"{path}/" for path, subtree in PATHS if subtree)


def applies(method: str, path: str) -> bool:
    return method in METHODS and (path in _EXACT or path.startswith(_SUBTREES))
