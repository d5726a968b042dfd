"""The widget's static files (loader, iframe app, styles, translations) from the repository's `widget/`.

Only names from a fixed list are served (`widget.js`, `app.js`, `app.css`, `i18n/<locale>.json` for
the supported locales), so no request path ever reaches the file system: traversal has nothing to
traverse. Files are kept in memory; each request costs one `stat` so an edited file (development)
is picked up without a restart and a file that does not exist yet is a 404 until it does. The
`stat` and the rare re-read are blocking calls of microseconds on small files: cheaper than a
threadpool hop (perf-notes: two hops cost more than the work).
"""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path

from starlette.responses import Response

from app.widget.schemas import LOCALES

# The repository root's widget/ (resolved from this file, never from the working directory).
WIDGET_DIR = Path(__file__).resolve().parents[2] / "widget"

JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
JSON = "application/json"
SERVED: dict[str, str] = {"widget.js": JS, "app.js": JS, "app.css": CSS,
                          **{f"i18n/{locale}.json": JSON for locale in sorted(LOCALES)}}
CACHE_CONTROL = "public, max-age=300"


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str
    stamp: tuple[int, int]  # (mtime_ns, size) of the file this was read from


class Assets:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[Path, Asset] = {}

    def get(self, name: str) -> Asset | None:
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
        asset = Asset(body=body, media_type=media_type, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"',
                      stamp=stamp)
        self._cache[path] = asset
        return asset


ASSETS = Assets(WIDGET_DIR)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


def asset_response(asset: Asset, if_none_match: str | None, *, cross_origin: bool = False) -> Response:
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": asset.etag, "X-Content-Type-Options": "nosniff"}
    if cross_origin:
        # The loader is loaded by brokers' pages: a `<script integrity=… crossorigin>` (SRI) needs CORS,
        # and a page with Cross-Origin-Embedder-Policy needs CORP. It is public, so `*` gives nothing away.
        headers["Access-Control-Allow-Origin"] = "*"
        headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    if _matches(if_none_match, asset.etag):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
