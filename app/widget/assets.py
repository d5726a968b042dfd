"""The widget's static files (loader, iframe app, styles, translations) from the repository's `widget/`,
and the widget's instrument list built from the catalogue.

Only names from a fixed list are served (`widget.js`, `app.js`, `app.css`, `i18n/<locale>.json` for
the supported locales, the generated `instruments.json`), so no request path ever reaches the file
system: traversal has nothing to traverse. Files are kept in memory with their content hash and their
gzip and brotli bytes, computed once per content (`app.encoding`); each request costs one `stat` so an
edited file (development) is picked up without a restart and a file that does not exist yet is a 404
until it does. The `stat` and the rare re-read are blocking calls of microseconds on small files:
cheaper than a threadpool hop (perf-notes: two hops cost more than the work).

Two URLs per file: the plain one (`/widget/app.js`: five minutes, then revalidated with the ETag), and a
content-hashed one (`/widget/v/<hash>/app.js`), which the frame document links to and which is cached
for a year as `immutable`: a repeat load fetches none of them, and a new release has new URLs.
"""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path

import orjson
from starlette.responses import Response

from app.calc.instruments import CATALOGUE
from app.encoding import VARY, Precompressed
from app.widget.schemas import LOCALES

# The repository root's widget/ (resolved from this file, never from the working directory).
WIDGET_DIR = Path(__file__).resolve().parents[2] / "widget"

JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
JSON = "application/json"
SERVED: dict[str, str] = {"widget.js": JS, "app.js": JS, "app.css": CSS,
                          **{f"i18n/{locale}.json": JSON for locale in sorted(LOCALES)}}
GENERATED = "instruments.json"
CACHE_CONTROL = "public, max-age=300"
IMMUTABLE = "public, max-age=31536000, immutable"
# A hashed URL whose hash is no longer the file's (a page loaded before a release): the current file,
# revalidated every time, so an old hash is never cached as the new content.
REVALIDATE = "no-cache"


@dataclass(frozen=True)
class Asset:
    name: str
    body: Precompressed
    media_type: str
    digest: str  # 20 hex digits of the SHA-256 of the body: the URL's hash and the ETag
    stamp: tuple[int, int] | None  # (mtime_ns, size) of the file this was read from; None when generated

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'

    @property
    def url(self) -> str:
        return f"/widget/v/{self.digest}/{self.name}"


def _asset(name: str, body: bytes, media_type: str, stamp: tuple[int, int] | None) -> Asset:
    return Asset(name=name, body=Precompressed.of(body), media_type=media_type,
                 digest=hashlib.sha256(body).hexdigest()[:20], stamp=stamp)


def instrument_list() -> bytes:
    """What the widget needs of the catalogue, compactly: symbol, asset class, base, quote, pip size,
    digits, lot step (the widget localises names itself, with Intl.DisplayNames)."""
    rows = [[s.symbol, s.asset_class, s.base, s.quote, s.pip_size, s.digits, s.lot_step] for s in CATALOGUE.values()]
    return orjson.dumps({"fields": ["symbol", "assetClass", "base", "quote", "pipSize", "digits", "lotStep"],
                         "items": rows})


class Assets:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[Path, Asset] = {}
        self._generated = _asset(GENERATED, instrument_list(), JSON, None)

    def get(self, name: str) -> Asset | None:
        if name == GENERATED:
            return self._generated
        media_type = SERVED.get(name)
        if media_type is None:
            return None
        path = self.root / name
        try:
            st = path.stat()
        except OSError:
            self._cache.pop(path, None)
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        hit = self._cache.get(path)
        if hit is not None and hit.stamp == stamp:
            return hit
        try:
            body = path.read_bytes()
        except OSError:
            return None
        asset = _asset(name, body, media_type, stamp)
        self._cache[path] = asset
        return asset

    def url(self, name: str) -> str:
        """The hashed URL of a file (the plain one while the file is missing: it answers 404 then)."""
        asset = self.get(name)
        return asset.url if asset is not None else f"/widget/{name}"


ASSETS = Assets(WIDGET_DIR)
_TITLES: dict[str, str] = {}
DEFAULT_TITLE = "Position size calculator"


def title(locale: str) -> str:
    """The calculator's name in this locale (its `title` string), for the frame's and the iframe's title."""
    asset = ASSETS.get(f"i18n/{locale}.json")
    if asset is None:
        return DEFAULT_TITLE
    found = _TITLES.get(asset.digest)
    if found is None:
        try:
            value = orjson.loads(asset.body.body).get("title")
        except (orjson.JSONDecodeError, AttributeError):
            value = None
        found = _TITLES[asset.digest] = value if isinstance(value, str) and value else DEFAULT_TITLE
    return found


def frame_assets(locale: str) -> dict[str, str]:
    """The hashed URLs a frame document links to (stylesheet, script) and preloads (strings, instruments)."""
    return {"css": ASSETS.url("app.css"), "js": ASSETS.url("app.js"), "i18n": ASSETS.url(f"i18n/{locale}.json"),
            "instruments": ASSETS.url(GENERATED)}


def _matches(if_none_match: str | None, digest: str) -> bool:
    if not if_none_match:
        return False
    # The coding suffix (`-gzip`, `-br`) is dropped: any representation of the same content is current.
    tags = {t.strip().removeprefix("W/").strip('"').split("-")[0] for t in if_none_match.split(",")}
    return "*" in tags or digest in tags


def asset_response(asset: Asset, if_none_match: str | None, accept_encoding: str | None, *,
                   cross_origin: bool = False, cache_control: str = CACHE_CONTROL) -> Response:
    body, coding = asset.body.pick(accept_encoding)
    # One strong ETag per representation (RFC 9110 8.8.3: the gzip bytes are not the identity bytes).
    etag = asset.etag if coding is None else f'"{asset.digest}-{coding}"'
    headers = {"Cache-Control": cache_control, "ETag": etag, "X-Content-Type-Options": "nosniff", "Vary": VARY}
    if cross_origin:
        # The loader is loaded by brokers' pages: a `<script integrity=… crossorigin>` (SRI) needs CORS,
        # and a page with Cross-Origin-Embedder-Policy needs CORP. It is public, so `*` gives nothing away.
        headers["Access-Control-Allow-Origin"] = "*"
        headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    if _matches(if_none_match, asset.digest):
        return Response(status_code=304, headers=headers)
    if coding is not None:
        headers["Content-Encoding"] = coding
    return Response(body, media_type=asset.media_type, headers=headers)
