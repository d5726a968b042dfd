"""The widget's committed files, as served (no build step): size budgets, translations, message targets.

Budgets (gzip -9): the loader at most 5 KB; everything the iframe loads (the frame document, app.js,
app.css and its locale's strings; the largest locale counts) at most 30 KB. The browser tests measure
the same bytes as Chromium received them (tests/test_widget_browser.py).
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from app.calc.flags import FLAG_CODES
from app.widget import assets, page
from app.widget.schemas import LOCALES

ROOT = Path(__file__).resolve().parents[1]
WIDGET = ROOT / "widget"
LOADER_BUDGET = 5 * 1024
FRAME_BUDGET = 30 * 1024
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def gz(data: bytes) -> int:
    return len(gzip.compress(data, 9))


def strings(locale: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((WIDGET / "i18n" / f"{locale}.json").read_text(encoding="utf-8"))
    return data


def frame_document() -> bytes:
    """The iframe's HTML for a realistic broker (long name, logo, every feature), as the backend renders it."""
    boot = {
        "mode": "embedded", "wid": "fxr0123456789abcdefghij", "parentOrigin": "https://www.acme-forex.example.com",
        "session": {"token": "fxw_" + "x" * 400, "expiresAt": "2026-11-21T10:00:00Z"},
        "broker": {"slug": "acme-forex", "name": "Acme Forex International Markets Ltd"},
        "branding": {"primaryColor": "#c2185b", "logoUrl": "https://cdn.acme-forex.example.com/brand/logo-2026.svg",
                     "fontFamily": "Inter, system-ui, sans-serif", "darkMode": False},
        "features": {"advancedScenarios": True, "correlationAnalysis": True, "portfolio": True, "projections": True},
        "locale": "en", "theme": "auto", "maxLeverage": 30.0,
    }
    return page.render(boot, broker_name=boot["broker"]["name"], locale="en",  # type: ignore[index]
                       title="Position size calculator", assets=assets.frame_assets("en")).encode()


def test_loader_budget() -> None:
    size = gz((WIDGET / "widget.js").read_bytes())
    assert size <= LOADER_BUDGET, f"widget.js is {size} B gzipped (budget {LOADER_BUDGET})"


def test_iframe_budget() -> None:
    largest = max(gz((WIDGET / "i18n" / f"{loc}.json").read_bytes()) for loc in LOCALES)
    parts = {"frame": gz(frame_document()), "app.js": gz((WIDGET / "app.js").read_bytes()),
             "app.css": gz((WIDGET / "app.css").read_bytes()), "i18n": largest}
    total = sum(parts.values())
    assert total <= FRAME_BUDGET, f"the iframe loads {total} B gzipped (budget {FRAME_BUDGET}): {parts}"


def test_every_served_file_exists() -> None:
    names = ["widget.js", "app.js", "app.css", *(f"i18n/{loc}.json" for loc in sorted(LOCALES))]
    assert [n for n in names if not (WIDGET / n).is_file()] == []
    assert sorted(LOCALES) == sorted(["en", "de", "es", "fr", "it", "pt", "ja", "zh", "ar"])


def test_the_image_ships_the_widget() -> None:
    # app/widget/assets.py serves <repository root>/widget: the image must contain it at the same place.
    assert "COPY widget ./widget" in (ROOT / "Dockerfile").read_text()
    assert not any(line.strip().strip("/") == "widget" for line in (ROOT / ".dockerignore").read_text().splitlines())


def test_plain_modern_js_without_a_build_step() -> None:
    for name in ("widget.js", "app.js"):
        text = (WIDGET / name).read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|export)\s", text, re.M), name
        assert "require(" not in text and "sourceMappingURL" not in text, name


@pytest.mark.parametrize("locale", sorted(LOCALES - {"en"}))
def test_translation_is_complete(locale: str) -> None:
    en, other = strings("en"), strings(locale)
    assert sorted(other) == sorted(en), f"{locale}: keys differ from en.json"
    for key, text in other.items():
        assert text.strip(), f"{locale}.{key} is empty"
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(en[key])), f"{locale}.{key} placeholders"
    # Real translations: a string equal to the English one fails unless it is listed below as the word that
    # language really uses (trading terms such as "Stop loss", "pip", "ATR"; "Portfolio" in German).
    same = {k for k in en if other[k] == en[k]}
    assert same == SAME_AS_ENGLISH[locale], f"{locale}: still English: {sorted(same - SAME_AS_ENGLISH[locale])}"


CHOICES = (("stopPrice", "stopPips", "stopPoints", "stopAtr"),
           ("stopPriceLabel", "stopPipsLabel", "stopPointsLabel", "stopAtrLabel"),
           ("riskPct", "riskAmt", "riskLots"), ("riskPctLabel", "riskAmtLabel", "riskLotsLabel"), ("buy", "sell"),
           ("long", "short"))


@pytest.mark.parametrize("locale", sorted(LOCALES))
def test_choices_read_differently_in_every_locale(locale: str) -> None:
    """The options of one choice never share a label: pips and points were both 点数 in Chinese (and both
    'distance in النقاط' to an Arabic screen reader), a choice a trader could not make, off by ten on EURUSD."""
    text = strings(locale)
    for keys in CHOICES:
        labels = [text[k].strip().casefold() for k in keys]
        assert len(set(labels)) == len(labels), f"{locale}: {dict(zip(keys, labels, strict=True))}"


_JARGON = {"stopAtr", "atrTimes"}  # "ATR" is written so in every language
SAME_AS_ENGLISH: dict[str, set[str]] = {
    "de": _JARGON | {"tabPort", "instrument", "stopPips", "median", "riskLots"},
    "es": _JARGON | {"pipSize", "stop", "stopPips", "pips", "stopPipsCol", "class_metal", "tpN", "spread"},
    "fr": _JARGON | {"tabProj", "instrument", "pipSize", "stop", "stopPips", "lotsUnit", "pips", "tradesAxis",
                     "stopPipsCol", "stopPoints", "riskLots", "spread"},
    "it": _JARGON | {"pipSize", "stop", "tpN"},
    "pt": _JARGON | {"pipSize", "stop", "stopPips", "pips", "stopPipsCol", "class_metal", "tpN", "spread"},
    "ja": _JARGON | {"pipSize", "pips"},
    "zh": _JARGON,
    "ar": _JARGON,
}


def test_every_api_flag_has_a_plain_language_warning() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "app" / "calc").rglob("*.py"))
    codes = set(FLAG_CODES) | set(re.findall(r'\bflag\(\s*"([A-Z0-9_]+)"', sources))
    assert "UNBOUNDED_RISK" in codes and "LEVERAGE_CAPPED" in codes
    en = strings("en")
    assert sorted(c for c in codes if f"flag_{c}" not in en) == []
    # Every placeholder of a warning is a data field the API sends with that flag.
    for code in codes:
        sent: set[str] = set()
        for m in re.finditer(rf'\bflag\(\s*"{code}"', sources):
            sent |= set(re.findall(r"\b(\w+)=(?!=)", sources[m.end():m.end() + 250].split("\n\n")[0]))
        assert set(PLACEHOLDER.findall(en[f"flag_{code}"])) <= sent, code


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    x, y = _luminance(a), _luminance(b)
    return (max(x, y) + 0.05) / (min(x, y) + 0.05)


def palette(block: str) -> dict[str, str]:
    found = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{3,6})\b", block))
    return {k: ("#" + "".join(c * 2 for c in v[1:]) if len(v) == 4 else v).lower() for k, v in found.items()}


def test_palette_contrast_in_both_themes() -> None:
    css = (WIDGET / "app.css").read_text(encoding="utf-8")
    light = palette(css.split(":root", 1)[1].split("}", 1)[0])
    dark = {**light, **palette(css.split("[data-theme=dark]", 1)[1].split("}", 1)[0])}
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    for name, theme in (("light", light), ("dark", dark)):
        for text in ("fg", "mut", "err"):
            for ground in ("bg", "sf", "in"):
                assert contrast(theme[text], theme[ground]) >= 4.5, (name, text, ground)
        assert contrast(theme["wfg"], theme["wbg"]) >= 4.5, name
        for ground in ("in", "sf"):
            assert contrast(theme["bdi"], theme[ground]) >= 3, (name, "bdi", ground)


def test_app_js_palette_is_the_stylesheets() -> None:
    """app.js computes contrast (text on the brand colour, the heat map's strongest tint) against copies of
    the stylesheet's ground, text, surface and error colours: they must be the same colours."""
    css = (WIDGET / "app.css").read_text(encoding="utf-8")
    light = palette(css.split(":root", 1)[1].split("}", 1)[0])
    dark = {**light, **palette(css.split("[data-theme=dark]", 1)[1].split("}", 1)[0])}
    app_js = (WIDGET / "app.js").read_text(encoding="utf-8")
    for const, var in (("BG", "bg"), ("FG", "fg"), ("SF", "sf"), ("ERR", "err")):
        found = re.search(rf"\b{const} = \{{ light: '(#[0-9a-f]{{6}})', dark: '(#[0-9a-f]{{6}})' \}}", app_js)
        assert found, const
        assert (found[1], found[2]) == (light[var], dark[var]), const


def test_messages_are_posted_to_exact_origins_only() -> None:
    for name in ("widget.js", "app.js"):
        text = (WIDGET / name).read_text(encoding="utf-8")
        calls = re.findall(r"postMessage\(([^;]*)\)", text)
        assert calls, name
        assert all("'*'" not in c and '"*"' not in c for c in calls), calls
    app_js = (WIDGET / "app.js").read_text(encoding="utf-8")
    assert "e.origin !== PARENT || e.source !== W.parent" in app_js
    loader = (WIDGET / "widget.js").read_text(encoding="utf-8")
    assert "ev.origin !== BASE || ev.source !== frame.contentWindow" in loader
