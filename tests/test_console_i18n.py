"""The console's strings (console/i18n/<locale>.json) against English: the same keys, the same `{placeholders}`,
nothing left empty or left in English. A key missing from a locale would silently show English (i18n.js falls back),
so this is where it is caught."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

I18N = Path(__file__).resolve().parents[1] / "console" / "i18n"
LOCALES = ("ar", "de", "es", "fr", "it", "ja", "pt", "zh")  # console/js/i18n.js LOCALES, without English
PLACEHOLDER = re.compile(r"\{(\w+)\}")

# Values that are rightly the same as English: protocol notation everywhere, and per locale the words that are
# the same in that language (German "Status" and "Limits", Spanish "Plan", French "Date", Italian "Password") or
# that the widget keeps (German "Portfolio").
SAME_EVERYWHERE = frozenset({"URL", "#RRGGBB"})
SAME_IN = {
    "de": frozenset({"Broker", "Enterprise", "Instrument", "Limits", "Portfolio", "Professional", "Standard",
                     "Status"}),
    "es": frozenset({"No", "Plan"}),
    "fr": frozenset({"Actions", "Date", "Instrument", "Sessions", "Standard"}),
    "it": frozenset({"Broker", "Email", "Enterprise", "No", "Password", "Standard"}),
}


def strings(locale: str) -> dict[str, str]:
    data = json.loads((I18N / f"{locale}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{locale}.json is not an object"
    return data


def differences(en: dict[str, str], tr: dict[str, str], locale: str) -> list[str]:
    """Everything wrong with one locale's strings, as readable lines (empty: nothing)."""
    found = [f"missing: {k}" for k in sorted(en.keys() - tr.keys())]
    found += [f"not in English: {k}" for k in sorted(tr.keys() - en.keys())]
    allowed = SAME_EVERYWHERE | SAME_IN.get(locale, frozenset())
    for key in sorted(en.keys() & tr.keys()):
        source, value = en[key], tr[key]
        if not isinstance(value, str):
            found.append(f"{key}: not a string: {value!r}")
            continue
        if set(PLACEHOLDER.findall(value)) != set(PLACEHOLDER.findall(source)):
            found.append(f"{key}: placeholders {sorted(set(PLACEHOLDER.findall(value)))}, English has "
                         f"{sorted(set(PLACEHOLDER.findall(source)))}")
        if source == "":  # `role.` (no role yet) is empty on purpose
            if value != "":
                found.append(f"{key}: English is empty, this is {value!r}")
        elif not value.strip():
            found.append(f"{key}: empty")
        elif value == source and value not in allowed:
            found.append(f"{key}: still English: {value!r}")
    return found


def test_english_is_the_reference() -> None:
    en = strings("en")
    assert len(en) > 300
    assert all(isinstance(v, str) for v in en.values())


@pytest.mark.parametrize("locale", LOCALES)
def test_every_locale_translates_every_english_string(locale: str) -> None:
    found = differences(strings("en"), strings(locale), locale)
    assert not found, f"{locale}.json:\n" + "\n".join(found)


def test_the_allow_list_holds_only_what_is_needed() -> None:
    """Each allowed English-looking value is used as such by its locale(s), so the list cannot grow stale."""
    en = strings("en")
    same = {(loc, v) for loc in LOCALES for k, v in strings(loc).items() if en.get(k) == v and v}
    unused = [f"{loc}: {v}" for loc, values in SAME_IN.items() for v in sorted(values) if (loc, v) not in same]
    unused += [v for v in sorted(SAME_EVERYWHERE) if not any(v == w for _, w in same)]
    assert not unused, unused


def test_the_check_catches_each_kind_of_mistake() -> None:
    """The checker itself, on a broken copy of German: a key removed, one added, a placeholder renamed, one left
    in English, one emptied."""
    en, de = strings("en"), dict(strings("de"))
    assert not differences(en, de, "de")
    del de["keys.revokeTitle"]
    de["keys.extra"] = "Zusatz"
    de["keys.revokeText"] = de["keys.revokeText"].replace("{key}", "{schluessel}")
    de["users.title"] = en["users.title"]
    de["common.save"] = " "
    found = differences(en, de, "de")
    assert found == ["missing: keys.revokeTitle", "not in English: keys.extra",
                     "common.save: empty",
                     "keys.revokeText: placeholders ['schluessel'], English has ['key']",
                     "users.title: still English: 'Users'"], found


def test_the_console_offers_exactly_these_locales() -> None:
    """console/js/i18n.js LOCALES, the files here and this test agree."""
    source = (I18N.parent / "js" / "i18n.js").read_text(encoding="utf-8")
    offered = re.search(r"export const LOCALES = \[([^\]]*)\]", source)
    assert offered is not None
    assert sorted(re.findall(r"'(\w+)'", offered.group(1))) == sorted(("en", *LOCALES))
    assert sorted(p.stem for p in I18N.glob("*.json")) == sorted(("en", *LOCALES))
