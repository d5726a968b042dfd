"""The refresh token of a browser session in a cookie, and the CSRF check that guards its use.

A browser client (the admin console) logs in with `refreshCookie: true`: the refresh token is then set
as `fxr_rt` (httpOnly, SameSite=Strict, Path=/api/v1/auth, Secure over https), so no page script ever
holds it; only the 15-minute access token lives in the page's memory. The cookie is sent only to the
auth routes, and only by same-site requests.

A cookie is ambient authority, so its two users (refresh, logout) also need a CSRF proof: the header
`X-CSRF-Token` must equal the `fxr_csrf` cookie (double submit), and that value must carry our HMAC
(signed double submit, OWASP: a sibling subdomain that plants its own `fxr_csrf` cookie cannot make a
valid one). A cross-site page cannot read the cookie to copy it into the header, cannot send a custom
header without a CORS preflight (which these routes never grant), and SameSite=Strict keeps the
refresh cookie off its requests in the first place.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import HTTPConnection
from starlette.responses import Response

from app.errors import Forbidden, Unauthorized

REFRESH_COOKIE = "fxr_rt"
CSRF_COOKIE = "fxr_csrf"
CSRF_HEADER = "x-csrf-token"
REFRESH_PATH = "/api/v1/auth"


def _sign(pepper: bytes, nonce: str) -> str:
    return hmac.new(pepper, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()[:32]


def new_csrf(pepper: bytes) -> str:
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{_sign(pepper, nonce)}"


def _secure(conn: HTTPConnection, production: bool) -> bool:
    return production or conn.url.scheme == "https"


def set_session(response: Response, conn: HTTPConnection, refresh_token: str, pepper: bytes, *,
                max_age: int, production: bool) -> None:
    secure = _secure(conn, production)
    response.set_cookie(REFRESH_COOKIE, refresh_token, max_age=max_age, path=REFRESH_PATH, httponly=True,
                        secure=secure, samesite="strict")
    # Readable by the page (it copies it into the header), scoped to the whole site, same lifetime.
    response.set_cookie(CSRF_COOKIE, new_csrf(pepper), max_age=max_age, path="/", httponly=False,
                        secure=secure, samesite="strict")
    response.headers["Cache-Control"] = "no-store"


def clear_session(response: Response, conn: HTTPConnection, production: bool) -> None:
    secure = _secure(conn, production)
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_PATH, httponly=True, secure=secure, samesite="strict")
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, samesite="strict")


def refresh_from_cookie(conn: HTTPConnection, pepper: bytes) -> str:
    """The cookie's refresh token, once the CSRF proof holds; 403 without the proof, 401 without a cookie."""
    cookie = conn.cookies.get(CSRF_COOKIE, "")
    header = conn.headers.get(CSRF_HEADER, "")
    nonce, _, mac = cookie.partition(".")
    if not (cookie and header and hmac.compare_digest(cookie, header)
            and hmac.compare_digest(mac, _sign(pepper, nonce))):
        raise Forbidden("A cookie session needs the header X-CSRF-Token equal to the fxr_csrf cookie.")
    token = conn.cookies.get(REFRESH_COOKIE)
    if not token:
        raise Unauthorized("No session: log in.")
    return token


# --- single sign-on into the console ------------------------------------------------------------------------
# The console's SSO login leaves a cookie binding the flow to this browser: an HMAC of the flow's state. Only
# a callback that carries it (the same browser) ends in a console session; any other callback answers the
# JSON pair as before. Without the binding, an attacker could send a victim the callback link of the
# attacker's own login and sign the victim's console in as the attacker (login CSRF). SameSite=Lax: the
# callback is a top-level GET from the identity provider's site, which Lax lets through and Strict would not.
SSO_COOKIE = "fxr_sso"
SSO_PATH = "/api/v1/auth/sso"


def sso_binding(pepper: bytes, state: str) -> str:
    return hmac.new(pepper, b"sso-console:" + state.encode(), hashlib.sha256).hexdigest()


def bind_sso(response: Response, conn: HTTPConnection, pepper: bytes, state: str, production: bool) -> None:
    response.set_cookie(SSO_COOKIE, sso_binding(pepper, state), max_age=600, path=SSO_PATH, httponly=True,
                        secure=_secure(conn, production), samesite="lax")


def sso_bound(conn: HTTPConnection, pepper: bytes, state: str | None) -> bool:
    cookie = conn.cookies.get(SSO_COOKIE)
    return bool(cookie and state and hmac.compare_digest(cookie, sso_binding(pepper, state)))
