"""The HTTP face of auth: token, refresh, logout, MFA enrolment, SSO and the one-time code exchange.

Routes only; the logic is app.auth, one layer below (it never imports these)."""
