"""Revoked sessions and users: an access token stops working on every worker at once, not when it expires.

Access tokens are verified without a database round trip (15 minutes, ES256). What can end one early:
- a logout or a detected refresh-token reuse revokes the session: every token whose `sid` (the refresh
  family) is that session;
- disabling a user or changing its role revokes the user: every token of that user issued before then.

Postgres holds the truth (the family's `revoked_at`, the user's status). Each worker keeps the revocations
of the last token lifetime in memory and checks them at admission (a dict lookup). The worker that
revokes records it at once and publishes it on the existing invalidation channel
(app.redisdb.invalidation); every subscribed worker records it when the message arrives (milliseconds).
A worker that is not subscribed (Redis down, or the subscription being re-established) cannot trust its
memory: it asks Postgres for each session instead (cached `check_seconds`, one second), and when it
(re)subscribes it reloads the revocations of the last token lifetime from Postgres before trusting its
memory again, so nothing published while it was away is missed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Revocations:
    horizon_s: float  # how long an entry matters: the longest an access token lives, leeway included
    clock: Callable[[], float] = time.time
    sessions: dict[str, float] = field(default_factory=dict)  # sid -> forget after (epoch s)
    users: dict[str, tuple[float, float]] = field(default_factory=dict)  # user id -> (not before, forget after)

    def revoke_session(self, sid: str, at: float | None = None) -> None:
        self.sessions[sid] = (at if at is not None else self.clock()) + self.horizon_s

    def revoke_user(self, user_id: str, not_before: float) -> None:
        known = self.users.get(user_id)
        if known is None or known[0] < not_before:
            self.users[user_id] = (not_before, not_before + self.horizon_s)

    def revoked(self, user_id: str, sid: str | None, issued_at: int) -> bool:
        if sid is not None and sid in self.sessions:
            return True
        user = self.users.get(user_id)
        # iat has whole seconds: a token issued in the second of the revocation counts as before it.
        return user is not None and issued_at < user[0]

    def prune(self) -> None:
        now = self.clock()
        self.sessions = {k: v for k, v in self.sessions.items() if v > now}
        self.users = {k: v for k, v in self.users.items() if v[1] > now}

    def message(self, kind: str, ident: str) -> None:
        """An invalidation-channel message: `sid:<family>` or `user:<id>@<not before>`."""
        if kind == "sid":
            self.revoke_session(ident)
        elif kind == "user":
            user_id, _, when = ident.partition("@")
            try:
                self.revoke_user(user_id, float(when))
            except ValueError:
                pass
