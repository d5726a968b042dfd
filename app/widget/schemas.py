"""Wire format of the widget endpoints (documentation; responses are serialised directly) and the
frame's display options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from pydantic import Field

from app.broker_config import Locale
from app.schemas import OutModel

LOCALES: frozenset[str] = frozenset(get_args(Locale))
THEMES = frozenset({"light", "dark", "auto"})
FEATURES = ("advancedScenarios", "correlationAnalysis", "portfolio", "projections")
WID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"


class WidgetSession(OutModel):
    token: str = Field(description="`fxw_…`: send as `Authorization: Bearer`; stateless calculations only")
    expires_at: str = Field(description="ISO 8601 UTC; renew before with POST /api/v1/widget/session")


class WidgetPreview(OutModel):
    frame_url: str = Field(description="An iframe src on our own origin: the widget in the broker's saved config, "
                           "framable by this origin only (the admin console), restyled live with setTheme")
    expires_at: str


class WidgetBroker(OutModel):
    slug: str
    name: str


class WidgetBranding(OutModel):
    primary_color: str
    logo_url: str | None
    font_family: str
    dark_mode: bool


class WidgetFeatures(OutModel):
    advanced_scenarios: bool
    correlation_analysis: bool
    portfolio: bool
    projections: bool


class WidgetConfig(OutModel):
    broker: WidgetBroker
    branding: WidgetBranding
    features: WidgetFeatures
    locale: Locale
    max_leverage: float | None
    frame_url: str = Field(description="The iframe's src: <base>/widget/frame?session=<token>")
    session: WidgetSession
    title: str = Field(description="The iframe's title in the requested locale (else the broker's): "
                       "'<calculator> – <broker>'")


@dataclass(frozen=True)
class DisplayOptions:
    """What the host page asked for; each is only a preference within what the broker allows."""

    locale: str | None = None
    theme: str | None = None
    features: str | None = None  # comma-separated names; narrows, never widens
    wid: str | None = None

    def resolved_locale(self, default: str) -> str:
        return self.locale if self.locale in LOCALES else default

    def resolved_theme(self, dark_mode: bool) -> str:
        if self.theme in THEMES:
            return self.theme
        return "dark" if dark_mode else "light"

    def resolved_features(self, enabled: dict[str, bool]) -> dict[str, bool]:
        # Absent or empty: the broker's own set (the loader may always send the parameter).
        # Unknown names are ignored, so a newer loader's feature cannot break an older frame.
        wanted = {name.strip() for name in (self.features or "").split(",") if name.strip()}
        if not wanted:
            return dict(enabled)
        return {name: on and name in wanted for name, on in enabled.items()}
