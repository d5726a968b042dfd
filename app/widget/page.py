"""The iframe / full-page HTML and its security headers (pure functions, no I/O).

The document is a fixed template; everything broker-controlled goes either through `html.escape`
(the title) or into the JSON boot block with `<`, `>` and `&` written as `\\u003c`, `\\u003e`,
`\\u0026`, so a broker named `</script><script>…` can neither end the script element nor start a
comment or entity. The app reads the block with `JSON.parse(textContent)`; those escapes round-trip.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import orjson

RTL_LOCALES = frozenset({"ar"})
# What an allowed origin must look like to be written into a header: scheme://host[:port], nothing
# that could end a CSP directive or a header. Config validation already enforces this on save; the
# header is built from the stored JSON, so it is checked again here (fail closed: dropped).
_SAFE_ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?$")

_CSP_STYLE = "style-src 'self' 'unsafe-inline'"
_CSP_REST = (f"default-src 'self'; script-src 'self'; {_CSP_STYLE}; img-src 'self' https: data:; "
             "connect-src 'self'; base-uri 'none'; form-action 'none'")

# The strings and the instrument list are preloaded (`as="fetch" crossorigin` matches the app's plain
# same-origin fetch), so they arrive beside the script instead of one round trip after it.
_TEMPLATE = (
    '<!doctype html><html lang="{lang}" dir="{dir}"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width,initial-scale=1">'
    "<title>{title}</title>"
    '<link rel="stylesheet" href="{css}">{font}'
    '<link rel="preload" href="{i18n}" as="fetch" crossorigin>'
    '<link rel="preload" href="{instruments}" as="fetch" crossorigin>'
    '<script id="fxr-boot" type="application/json">{boot}</script>'
    '<script src="{js}" defer></script>'
    '</head><body><div id="app"></div></body></html>'
)


def safe_origins(origins: Iterable[str]) -> list[str]:
    return [o for o in origins if _SAFE_ORIGIN.match(o)]


def content_security_policy(frame_ancestors: Iterable[str], font_stylesheet: str | None = None,
                            font_hosts: Iterable[str] = ()) -> str:
    """`frame-ancestors` with exactly these origins (`'none'` when there are none), then the fixed rest; a
    broker's web font adds its stylesheet's origin to `style-src` and its font hosts as `font-src`."""
    ancestors = " ".join(safe_origins(frame_ancestors)) or "'none'"
    rest = _CSP_REST
    sheet = safe_origins([stylesheet_origin(font_stylesheet)] if font_stylesheet else [])
    hosts = safe_origins(font_hosts)
    if sheet:
        rest = rest.replace(_CSP_STYLE, f"{_CSP_STYLE} {sheet[0]}")
    if sheet or hosts:
        rest += "; font-src 'self' " + " ".join(dict.fromkeys(hosts or sheet))
    return f"frame-ancestors {ancestors}; {rest}"


def stylesheet_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def boot_json(boot: dict[str, Any]) -> str:
    text = orjson.dumps(boot).decode()
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render(boot: dict[str, Any], *, broker_name: str, locale: str, title: str, assets: dict[str, str],
           font_stylesheet: str | None = None) -> str:
    """The document; `assets` are the hashed URLs (css, js, i18n, instruments), `title` the localised name."""
    font = f'<link rel="stylesheet" href="{html.escape(font_stylesheet)}">' if font_stylesheet else ""
    return _TEMPLATE.format(
        lang=html.escape(locale), dir="rtl" if locale in RTL_LOCALES else "ltr", font=font,
        title=html.escape(f"{title} – {broker_name}"), boot=boot_json(boot),
        **{k: html.escape(assets[k]) for k in ("css", "js", "i18n", "instruments")},
    )


def headers(frame_ancestors: Iterable[str], font_stylesheet: str | None = None,
            font_hosts: Iterable[str] = ()) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(frame_ancestors, font_stylesheet, font_hosts),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        # The document carries a session token: never stored by a browser or a shared cache.
        "Cache-Control": "no-store",
    }
