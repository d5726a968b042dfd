"""A small, real OIDC provider for the SSO tests: Starlette served by uvicorn on 127.0.0.1 (real HTTP).

Endpoints: discovery, JWKS, /authorize (the user is already signed in: it redirects straight back with
a code), /token (checks the code, redirect_uri, client secret and the PKCE S256 verifier; returns an
ES256-signed ID token carrying the nonce) and /userinfo (email and name, for the access token).

`Provider.next_login` sets who signs in next; `Provider.tamper` bends the next ID token (wrong nonce,
audience or issuer, or signed by a key that is not in the JWKS under the published kid) so the tests
can prove each check refuses it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route


@dataclass
class Login:
    sub: str
    email: str | None = None
    name: str | None = None
    amr: list[str] | None = None


@dataclass
class Provider:
    client_id: str = "forexrisk-test-client"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    issuer: str = ""
    next_login: Login = field(default_factory=lambda: Login(sub="user-1", email="trader@idp.example.com"))
    tamper: dict[str, Any] = field(default_factory=dict)
    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", parameters={"kid": "idp-1"}))
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    access_tokens: dict[str, Login] = field(default_factory=dict)
    token_requests: int = 0

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/.well-known/openid-configuration", self.discovery),
            Route("/jwks", self.jwks),
            Route("/authorize", self.authorize),
            Route("/token", self.token, methods=["POST"]),
            Route("/userinfo", self.userinfo),
        ])

    async def discovery(self, request: Request) -> Response:
        return JSONResponse({
            "issuer": self.tamper.get("discovery_issuer", self.issuer),
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        })

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != self.client_id or q.get("response_type") != "code":
            return JSONResponse({"error": "unauthorized_client"}, status_code=400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge") or not q.get("nonce"):
            return JSONResponse({"error": "invalid_request", "error_description": "PKCE and nonce required"},
                                status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"redirect_uri": q["redirect_uri"], "challenge": q["code_challenge"],
                            "nonce": q["nonce"], "login": self.next_login, "scope": q.get("scope", "")}
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}",
                                status_code=302)

    def _client_ok(self, request: Request, form: dict[str, str]) -> bool:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Basic "):
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        else:
            cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        return cid == self.client_id and secrets.compare_digest(secret, self.client_secret)

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        # application/x-www-form-urlencoded, parsed by hand (Starlette's form parser needs python-multipart)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if not self._client_ok(request, form):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.codes.pop(form.get("code", ""), None)  # codes are single-use
        if grant is None or form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "redirect_uri"}, status_code=400)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if not verifier or challenge != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
        login: Login = grant["login"]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.tamper.get("iss", self.issuer), "aud": self.tamper.get("aud", self.client_id),
            "sub": login.sub, "iat": now, "exp": now + self.tamper.get("lifetime", 300),
            "nonce": self.tamper.get("nonce", grant["nonce"]),
        }
        if login.amr is not None:
            claims["amr"] = login.amr
        key = self.key
        if self.tamper.get("foreign_key"):  # same kid, another key: only the signature check can catch it
            key = ECKey.generate_key("P-256", parameters={"kid": self.key.kid})
        id_token = jwt.encode({"alg": "ES256", "kid": self.key.kid}, claims, key, algorithms=["ES256"])
        access = secrets.token_urlsafe(24)
        self.access_tokens[access] = login
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 300,
                             "id_token": id_token, "scope": grant["scope"]})

    async def userinfo(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        login = self.access_tokens.get(auth.removeprefix("Bearer ").strip())
        if login is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        info: dict[str, Any] = {"sub": self.tamper.get("userinfo_sub", login.sub)}
        if login.email:
            info.update(email=login.email, email_verified=True)
        if login.name:
            info["name"] = login.name
        return JSONResponse(info)


class ServedProvider:
    """Runs the provider under uvicorn in a daemon thread on a free loopback port."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        port = self.sock.getsockname()[1]
        provider.issuer = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(provider.app(), log_level="warning", access_log=False, lifespan="off", ws="none",
                                http="h11")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Provider:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test OIDC provider did not start")
            time.sleep(0.01)
        return self.provider

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
