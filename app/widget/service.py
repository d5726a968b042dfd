"""Widget rules: who gets a session (config), renewing it, and the frame / full page documents.

Lookups that happen before anyone is authenticated (broker by slug, broker by Host, a broker's page
key) use the platform role, like the key loader, and are cached in-process for `key_cache_seconds`
(misses too), so a page view costs no database round trip and a flood of made-up hosts or slugs
costs one query each at most per TTL. They cache only ids: the broker record itself comes from
AuthService's cache, which a config change or offboarding drops at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import structlog
from pydantic import ValidationError
from sqlalchemy import any_, literal, or_, select
from starlette.requests import HTTPConnection

from app.auth import keys, widget_session
from app.auth.cache import BrokerRecord, KeyRecord, TtlCache
from app.auth.service import AuthService
from app.auth.widget_tokens import WidgetClaims
from app.broker_config import DOMAIN, BrokerConfig
from app.db.engine import Database
from app.errors import Conflict, NotFound, OriginNotAllowed, Unauthorized
from app.models import ApiKey, Broker
from app.widget import page
from app.widget.assets import frame_assets, title
from app.widget.schemas import FEATURES, LOCALES, DisplayOptions

log = structlog.get_logger(__name__)

PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Accept, Content-Type, X-Request-ID",
    "Access-Control-Max-Age": "600",
}
WRONG_BROKER = "This publishable key does not belong to this broker."
NO_PAGE = "No widget page at this address."


def _field(field: str, code: str, detail: str) -> list[dict[str, Any]]:
    return [{"field": field, "pointer": "#" if field == "origin" else f"#/{field}", "code": code, "detail": detail}]


def public_base(conn: HTTPConnection, configured: str) -> str:
    """Where the frame is served: the scheme://host[:port] the caller reached us at. The loader
    computes the API's address from its own script URL, so this is the host the broker's page already
    talks to (ours, or a broker's custom domain), and tests on a random port work. One exception:
    when that host is the configured public host and the configuration says https, https wins,
    because a TLS-terminating proxy that does not forward X-Forwarded-Proto makes the request look
    like plain http."""
    base = str(conn.base_url).rstrip("/")
    conf = urlsplit(configured)
    if conf.scheme == "https" and conf.netloc and conf.netloc == conn.url.netloc:
        return f"https://{conf.netloc}" + (conn.scope.get("root_path") or "").rstrip("/")
    return base


def host_name(header: str | None) -> str | None:
    """The Host header without port, lowercase, if it could be a broker's domain (IP literals cannot)."""
    if not header:
        return None
    name = header.strip().lower().rsplit(":", 1)[0].rstrip(".")
    return name if DOMAIN.match(name) else None


@dataclass(frozen=True)
class BrokerView:
    """What the widget shows of a broker: its public identity and display config, nothing else."""

    slug: str
    name: str
    branding: dict[str, Any]
    features: dict[str, bool]
    locale: str
    max_leverage: float | None
    frame_ancestors: tuple[str, ...]
    font_stylesheet: str | None = None
    font_hosts: tuple[str, ...] = ()

    @classmethod
    def of(cls, broker: BrokerRecord) -> BrokerView:
        try:
            config = BrokerConfig.model_validate(broker.config)
        except ValidationError:
            # Stored config is validated on save; if an old row still fails, show defaults and let no
            # one frame it (an empty allow-list) rather than fail the page.
            log.warning("widget_broker_config_invalid", broker_id=str(broker.id))
            config = BrokerConfig()
        b, f = config.branding, config.features
        return cls(
            slug=broker.slug, name=broker.name,
            branding={"primaryColor": b.primary_color, "logoUrl": b.logo_url, "fontFamily": b.font_family,
                      "darkMode": b.dark_mode},
            features=dict(zip(FEATURES, (f.advanced_scenarios, f.correlation_analysis, f.portfolio, f.projections),
                              strict=True)),
            locale=config.locale, max_leverage=config.max_leverage, frame_ancestors=tuple(config.allowed_origins),
            font_stylesheet=b.font_stylesheet, font_hosts=tuple(b.font_hosts),
        )

    def public(self) -> dict[str, Any]:
        return {"broker": {"slug": self.slug, "name": self.name}, "branding": self.branding,
                "features": self.features, "locale": self.locale, "maxLeverage": self.max_leverage}


def session_out(token: str, claims: WidgetClaims) -> dict[str, str]:
    return {"token": token, "expiresAt": claims.expires_at}


@dataclass(frozen=True)
class Document:
    html: str
    headers: dict[str, str]


class WidgetService:
    def __init__(self, auth: AuthService, db: Database) -> None:
        self.auth = auth
        self.db = db
        ttl = auth.settings.key_cache_seconds
        self.slugs: TtlCache[str, uuid.UUID] = TtlCache(ttl)
        self.hosts: TtlCache[str, uuid.UUID] = TtlCache(ttl)
        self.page_keys: TtlCache[uuid.UUID, str] = TtlCache(ttl)
        # Usage analytics: called with (broker id, API key row id, "config" | "page") for each widget load
        # (set by the lifespan to the usage outbox; it only appends to a list).
        self.on_load: Callable[[uuid.UUID, uuid.UUID | None, str], None] | None = None

    # --- the loader's request: key, broker, origin -> a session -----------------------------------
    async def check(self, slug: str, raw_key: str, origin: str | None) -> tuple[BrokerRecord, KeyRecord, str]:
        """The broker, the publishable key and the page's origin, or 401 (key / broker) or 403 (origin).

        The origin is checked last: only a caller holding this broker's valid publishable key learns
        anything about its allow-list, and a wrong or unknown slug gives one body either way."""
        parsed = keys.parse(raw_key)
        if parsed is not None and parsed.kind == "secret":
            detail = ("This is a secret key. Never put a secret key in a web page: use the broker's publishable "
                      "key (fxr_live_pk_…) and rotate this secret key now.")
            raise Unauthorized(detail, errors=_field("key", "secret_key", "a secret key is not for browsers"))
        try:
            record, broker = await self.auth.verify_key(raw_key)
        except Unauthorized as exc:
            raise Unauthorized(exc.detail, errors=_field("key", "invalid_key", exc.detail)) from exc
        if broker.slug != slug:
            raise Unauthorized(WRONG_BROKER, errors=_field("broker", "wrong_broker", WRONG_BROKER))
        if not origin or origin.rstrip("/").lower() not in broker.allowed_origins:
            detail = f"Origin {origin or '(none)'} is not on this broker's allowedOrigins."
            raise OriginNotAllowed(detail, errors=_field("origin", "origin_not_allowed", detail))
        return broker, record, origin

    async def allowed_origin(self, slug: str, origin: str | None) -> str | None:
        """The page's origin when it is on the broker's allow-list (used to let that page read an error)."""
        if not origin:
            return None
        broker_id = await self.slugs.get(slug, self._load_slug)
        broker = await self.auth.broker(broker_id) if broker_id is not None else None
        if broker is None or origin.rstrip("/").lower() not in broker.allowed_origins:
            return None
        return origin

    async def config(self, conn: HTTPConnection, slug: str, raw_key: str,
                     locale: str | None = None) -> tuple[dict[str, Any], str]:
        """The loader's config and a fresh session bound to broker, key and origin; and the origin to allow."""
        broker, record, origin = await self.check(slug, raw_key, conn.headers.get("origin"))
        self.auth.note_key_use(record, conn)
        token, claims = self.auth.widget_tokens.issue(broker_id=broker.id, key_id=record.key_id,
                                                      origin=origin.rstrip("/").lower())
        base = public_base(conn, self.auth.settings.public_base_url)
        view = BrokerView.of(broker)
        # The iframe's title (WCAG H64) in the page's language, set by the loader.
        name = title(locale if locale in LOCALES else view.locale)
        body = {**view.public(), "frameUrl": f"{base}/widget/frame?session={token}",
                "session": session_out(token, claims), "title": f"{name} – {view.name}"}
        if self.on_load is not None:
            self.on_load(broker.id, record.id, "config")
        return body, origin

    async def renew(self, token: str) -> dict[str, str]:
        """A fresh token with the same binding, while the key and broker are still active."""
        verified = await widget_session.verify(self.auth, token)
        return self._mint(verified.claims)[0]

    def _mint(self, bound: WidgetClaims) -> tuple[dict[str, str], WidgetClaims]:
        token, claims = self.auth.widget_tokens.issue(broker_id=bound.broker_id, key_id=bound.key_id,
                                                      origin=bound.origin)
        return session_out(token, claims), claims

    # --- documents --------------------------------------------------------------------------------
    async def frame(self, token: str, options: DisplayOptions) -> Document:
        """The iframe: framable only by the broker's allowed origins; boots with a fresh session."""
        verified = await widget_session.verify(self.auth, token)
        view = BrokerView.of(verified.broker)
        session, claims = self._mint(verified.claims)
        boot = self._boot(view, options, mode="embedded", parent_origin=claims.origin, session=session)
        return Document(self._render(boot, view), page.headers(view.frame_ancestors, view.font_stylesheet,
                                                               view.font_hosts))

    async def preview_session(self, broker_id: uuid.UUID) -> dict[str, str]:
        """A session for the admin console's preview: the broker's oldest active publishable key, no page origin
        (the preview is framed by our own origin, see `preview`)."""
        key_id = await self._page_key(broker_id)
        if key_id is None:
            raise Conflict("The preview runs on a publishable key: create one first.",
                           errors=_field("publishableKey", "no_publishable_key", "create a publishable key first"))
        token, claims = self.auth.widget_tokens.issue(broker_id=broker_id, key_id=key_id, origin=None)
        return session_out(token, claims)

    async def preview(self, token: str, options: DisplayOptions, own_origin: str) -> Document:
        """The widget as the admin console shows it: embedded, its parent our own origin (the console), so the
        console may restyle it with the widget's own `setTheme` message while the broker edits."""
        verified = await widget_session.verify(self.auth, token)
        if verified.claims.origin is not None:
            raise Unauthorized("A preview needs a preview session (POST /api/v1/brokers/{brokerId}/widget/preview).")
        view = BrokerView.of(verified.broker)
        session, _ = self._mint(verified.claims)
        boot = self._boot(view, options, mode="embedded", parent_origin=own_origin, session=session)
        return Document(self._render(boot, view), page.headers((own_origin,), view.font_stylesheet, view.font_hosts))

    async def page_for_slug(self, slug: str, options: DisplayOptions) -> Document:
        broker_id = await self.slugs.get(slug, self._load_slug)
        return await self._full_page(broker_id, options)

    async def page_for_host(self, host_header: str | None, options: DisplayOptions) -> Document | None:
        host = host_name(host_header)
        if host is None:
            return None
        broker_id = await self.hosts.get(host, self._load_host)
        if broker_id is None:
            return None
        return await self._full_page(broker_id, options)

    async def _full_page(self, broker_id: uuid.UUID | None, options: DisplayOptions) -> Document:
        """The calculator as a page of its own (no parent): never framable; a server-minted session."""
        broker = await self.auth.broker(broker_id) if broker_id is not None else None
        if broker is None or broker.status != "active" or not broker.config.get("fullPage"):
            raise NotFound(NO_PAGE)
        key_id = await self._page_key(broker.id)
        if key_id is None:
            raise NotFound(NO_PAGE)
        token, claims = self.auth.widget_tokens.issue(broker_id=broker.id, key_id=key_id, origin=None)
        if self.on_load is not None:
            self.on_load(broker.id, None, "page")
        view = BrokerView.of(broker)
        boot = self._boot(view, DisplayOptions(options.locale, options.theme, options.features, wid=None),
                          mode="page", parent_origin=None, session=session_out(token, claims))
        return Document(self._render(boot, view), page.headers((), view.font_stylesheet, view.font_hosts))

    @staticmethod
    def _render(boot: dict[str, Any], view: BrokerView) -> str:
        locale = boot["locale"]
        assets = frame_assets(locale)
        boot["assets"] = {"i18n": assets["i18n"], "instruments": assets["instruments"]}
        return page.render(boot, broker_name=view.name, locale=locale, title=title(locale), assets=assets,
                           font_stylesheet=view.font_stylesheet)

    @staticmethod
    def _boot(view: BrokerView, options: DisplayOptions, *, mode: str, parent_origin: str | None,
              session: dict[str, str]) -> dict[str, Any]:
        return {
            "mode": mode, "wid": options.wid, "parentOrigin": parent_origin, "session": session,
            "broker": {"slug": view.slug, "name": view.name}, "branding": view.branding,
            "features": options.resolved_features(view.features), "locale": options.resolved_locale(view.locale),
            "theme": options.resolved_theme(bool(view.branding["darkMode"])), "maxLeverage": view.max_leverage,
        }

    async def _page_key(self, broker_id: uuid.UUID) -> str | None:
        """The broker's oldest active publishable key; re-read at once when the cached one stopped working."""
        key_id = await self.page_keys.get(broker_id, self._load_page_key)
        if key_id is None:
            return None
        if widget_session.key_usable(await self.auth.key_record(key_id), datetime.now(UTC)):
            return key_id
        self.page_keys.drop(broker_id)
        key_id = await self.page_keys.get(broker_id, self._load_page_key)
        if key_id is None or not widget_session.key_usable(await self.auth.key_record(key_id), datetime.now(UTC)):
            return None
        return key_id

    # --- loaders (platform role: nobody is authenticated yet) -------------------------------------
    async def _load_slug(self, slug: str) -> uuid.UUID | None:
        async with self.db.platform() as s:
            found: uuid.UUID | None = (await s.execute(select(Broker.id).where(Broker.slug == slug))).scalar()
        return found

    async def _load_host(self, host: str) -> uuid.UUID | None:
        async with self.db.platform() as s:
            rows = (await s.execute(select(Broker.id).where(literal(host) == any_(Broker.domains),
                                                            Broker.status == "active").limit(2))).scalars().all()
        if len(rows) > 1:
            # Two active brokers claim one host: serving either could show one broker's page on the
            # other's domain, so neither is served.
            log.warning("widget_domain_ambiguous", host=host)
            return None
        return rows[0] if rows else None

    async def _load_page_key(self, broker_id: uuid.UUID) -> str | None:
        now = datetime.now(UTC)
        async with self.db.platform() as s:
            found: str | None = (await s.execute(
                select(ApiKey.key_id)
                .where(ApiKey.broker_id == broker_id, ApiKey.kind == "publishable", ApiKey.status == "active",
                       or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))
                .order_by(ApiKey.created_at, ApiKey.id).limit(1))).scalar()
        return found
