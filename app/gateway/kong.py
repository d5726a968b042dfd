"""The Kong gateway config of the API (decK / Kong declarative format 3.0), built from the app's tables.

`build_kong_config` is a pure function of the tier table (`app.ratelimit.tiers.TIERS`), the body limit
(`Settings.max_body_bytes`) and the upstream URL; `render_kong_yaml` turns it into the committed
`k8s/kong/kong.yml` with a header comment. `forexrisk gateway kong-config` prints it.

Edition: consumer groups and rate-limiting-advanced are Kong Gateway Enterprise features, and plugins
scoped to a consumer group need 3.4 or later; Kong OSS accepts neither. Services, routes and
request-size-limiting work in both. On OSS the tier limits could only be an OSS `rate-limiting`
plugin on each broker's consumer (fixed windows, no group), which this generator does not emit.

Choices, each written into the file's header too:
- Routes keep their path (`strip_path: false`: the app serves the full path) and the client's Host
  (`preserve_host: true`: on a broker's own domain the app serves that broker's page).
- Routes accept every method: the app answers 405 itself, and CORS preflights (OPTIONS) must reach it.
- No `cors` plugin. Kong's cors plugin rewrites Access-Control-Allow-Origin on every response of its
  routes (`*` for an empty or `*` list, removed for an origin outside its static list);
  `preflight_continue: true` only hands the OPTIONS preflight to the upstream. The widget's allowed
  origins are per broker in the database and the app answers with the exact origin, so the gateway
  stays out of CORS entirely rather than widen or drop that answer.
- `/healthz`, `/readyz` and `/metrics` are not routed (`UNROUTED_PATHS`).
- Tier limits: see `app.gateway.limits` for the GCRA to window mapping. They apply to every route a
  broker's consumer calls, one unit per request (RLA cannot weigh a batch by its items). Kong's own
  rate-limit headers are hidden: the app's limiter sends the authoritative ones, and two sets with
  different counts would contradict each other. A 429 from Kong then has no Retry-After; it only
  happens beyond what the app admits.
- No consumers and no credentials: brokers' consumers are provisioned outside this file (see
  `CONSUMERS_NOTE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from app.config import Settings
from app.gateway.limits import kong_windows
from app.ratelimit.tiers import TIERS, TierLimit

FORMAT_VERSION = "3.0"
TAG = "forexrisk"  # on every entity: `deck gateway sync --select-tag forexrisk` leaves brokers' consumers alone
REGENERATE = "uv run forexrisk gateway kong-config --output k8s/kong/kong.yml"

# k8s/api/service.yaml: Service `forexrisk-api`, port 80, no namespace of its own. The short name resolves
# for a Kong in the same namespace, which is where the kustomization's ConfigMap of this file lands.
DEFAULT_UPSTREAM = "http://forexrisk-api:80"

# Admin, auth, widget, integration and docs requests carry small JSON (a broker config with instrument
# overrides is tens of kB); only calculations (batches of 10,000 items) need Settings.max_body_bytes.
SMALL_BODY_BYTES = 1024 * 1024

# Served by the app, deliberately not reachable through the gateway: they describe the pod that answers,
# not the service. Through Kong they would report a random pod, and /readyz names failing dependencies.
# The kubelet probes pods directly (k8s/api/deployment.yaml).
UNROUTED_PATHS: dict[str, str] = {
    "/healthz": "liveness of one pod; probed by the kubelet on the pod",
    "/readyz": "readiness of one pod (names failing dependencies); probed by the kubelet on the pod",
    "/metrics": "Prometheus metrics of one pod; scraped inside the cluster, never exposed publicly",
}

CONSUMERS_NOTE = (
    "Consumers: one per broker, provisioned outside this file (no credentials here): username\n"
    "broker-<slug>, custom_id <broker id>, member of the group named like its tier: with decK\n"
    "`groups: [{name: standard}]` on the consumer, in DB-less Kong a consumer_group_consumers entry\n"
    "{consumer_group: standard, consumer: broker-<slug>}. A tier change moves the consumer to the other\n"
    "group (one group per consumer: with several, Kong picks by group name). Kong applies a tier only to\n"
    "requests an auth plugin has mapped to that consumer; until brokers are provisioned in Kong, the\n"
    "app's limiter is the only per-tier limit."
)


@dataclass(frozen=True)
class Area:
    """One Kong service: a part of the API with its own body limit. All point at the same upstream."""

    service: str
    routes: tuple[tuple[str, str], ...]  # (route name, path); paths are prefixes, `~` marks a regex
    large_bodies: bool  # calculation batches: Settings.max_body_bytes; everything else SMALL_BODY_BYTES


AREAS: tuple[Area, ...] = (
    # The trailing slash keeps /api/v1/calculations (stored calculations, admin) from ever matching here,
    # whatever the router flavour; Kong would also prefer the longer admin prefix.
    Area("forexrisk-calculation", (("forexrisk-calculate", "/api/v1/calculate/"),
                                   ("forexrisk-instruments", "/api/v1/instruments"),
                                   ("forexrisk-quotes", "/api/v1/quotes")), large_bodies=True),
    Area("forexrisk-admin", (("forexrisk-brokers", "/api/v1/brokers"),
                             ("forexrisk-users", "/api/v1/users"),
                             ("forexrisk-calculations", "/api/v1/calculations"),
                             ("forexrisk-auth", "/api/v1/auth"),
                             ("forexrisk-jobs", "/api/v1/jobs"),
                             ("forexrisk-well-known", "/.well-known")), large_bodies=False),
    # Reserved for broker platform and webhook integrations (not served yet).
    Area("forexrisk-integration", (("forexrisk-integrations", "/api/v1/integrations"),), large_bodies=False),
    # Self-serve sign-up and Stripe billing (checkout, portal, subscription, Stripe's signed webhooks).
    Area("forexrisk-billing", (("forexrisk-billing", "/api/v1/billing"),
                               ("forexrisk-signup", "/api/v1/signup")), large_bodies=False),
    Area("forexrisk-widget", (("forexrisk-widget-loader", "/widget.js"),
                              ("forexrisk-widget-assets", "/widget/"),
                              ("forexrisk-widget-page", "/w/"),
                              ("forexrisk-widget-api", "/api/v1/widget"),
                              # A broker's own domain serves its full-page calculator at exactly `/`
                              # (the widget work, issue 6); a prefix `/` would swallow every path.
                              ("forexrisk-broker-domain-root", "~/$")), large_bodies=False),
    # The broker admin console (app/console): its HTML shell and static files; it calls the API above.
    Area("forexrisk-console", (("forexrisk-console", "/admin"),), large_bodies=False),
    Area("forexrisk-docs", (("forexrisk-docs", "/docs"),  # also /docs-assets/ (Swagger UI, ReDoc served offline)
                            ("forexrisk-redoc", "/redoc"),
                            ("forexrisk-openapi", "/openapi.json"),
                            ("forexrisk-problems", "/problems/")), large_bodies=False),
)


def check_upstream(url: str) -> str:
    """The upstream URL as given, or ValueError: http(s), a host, nothing after the path."""
    parts = urlsplit(url)
    try:
        _ = parts.port  # a port that is not a number in 0..65535 raises
    except ValueError as exc:
        raise ValueError(f"upstream {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"upstream must look like http://host[:port][/path], got {url!r}")
    return url


def _service(area: Area, upstream: str, settings: Settings) -> dict[str, Any]:
    body_limit = settings.max_body_bytes if area.large_bodies else SMALL_BODY_BYTES
    return {
        "name": area.service,
        "url": upstream,
        "tags": [TAG],
        "routes": [{"name": name, "paths": [path], "strip_path": False, "preserve_host": True, "tags": [TAG]}
                   for name, path in area.routes],
        "plugins": [{
            "name": "request-size-limiting",
            "enabled": True,
            # Bytes, not Kong's "megabytes" (10^6), so the limit is exactly the app's.
            "config": {"allowed_payload_size": body_limit, "size_unit": "bytes", "require_content_length": False},
            "tags": [TAG],
        }],
    }


def _tier_plugin(tier: TierLimit) -> dict[str, Any]:
    windows = kong_windows(tier)
    return {
        "name": "rate-limiting-advanced",
        "consumer_group": tier.name,
        "enabled": True,
        "config": {
            "identifier": "consumer",
            "limit": [w.limit for w in windows],
            "window_size": [w.window_size for w in windows],
            "window_type": "fixed",
            # DB-less Kong cannot count in a database ("cluster"); Redis is the next step (see README).
            "strategy": "local",
            "namespace": f"forexrisk-{tier.name}",
            "hide_client_headers": True,
        },
        "tags": [TAG],
    }


def build_kong_config(settings: Settings, upstream: str = DEFAULT_UPSTREAM) -> dict[str, Any]:
    """The decK document as plain data; key order is the output order."""
    check_upstream(upstream)
    return {
        "_format_version": FORMAT_VERSION,
        "services": [_service(area, upstream, settings) for area in AREAS],
        "consumer_groups": [{"name": tier.name, "tags": [TAG]} for tier in TIERS.values()],
        # Top-level plugins scoped with `consumer_group`: the form both decK and DB-less Kong load.
        "plugins": [_tier_plugin(tier) for tier in TIERS.values()],
    }


def _tier_lines() -> list[str]:
    lines = []
    for tier in TIERS.values():
        kind = " (sold as unlimited: protective ceiling)" if tier.unlimited else ""
        bounds = ", ".join(f"{w.limit}/{w.window_size}s" for w in kong_windows(tier))
        lines.append(f"  {tier.name}: {tier.per_minute}/min, burst {tier.burst}{kind} -> {bounds}")
    return lines


def header(settings: Settings, upstream: str) -> str:
    lines = [
        "generated by forexrisk gateway kong-config; do not edit",
        f"Regenerate: {REGENERATE}",
        "",
        "Kong Gateway Enterprise 3.4 or later: consumer groups and rate-limiting-advanced are Enterprise",
        "features (Kong OSS has neither). decK: deck gateway sync --select-tag forexrisk k8s/kong/kong.yml;",
        "DB-less Kong: the ConfigMap forexrisk-kong-config (k8s/kustomization.yaml) as its declarative config.",
        "",
        f"Upstream {upstream}: every route keeps its path (strip_path: false) and the client's Host",
        "(preserve_host: true; a broker's own domain selects its page). Routes accept every method.",
        f"Not routed: {', '.join(UNROUTED_PATHS)} (one pod's health; the kubelet probes pods directly).",
        f"Request size: calculation routes {settings.max_body_bytes} bytes (the app's max_body_bytes: batches of",
        f"{settings.batch_max_items} items), every other route {SMALL_BODY_BYTES} bytes.",
        "",
        "CORS: no cors plugin. It would rewrite Access-Control-Allow-Origin on every response ('*' for an",
        "empty list, removed for an origin outside its static list); preflight_continue only passes the",
        "OPTIONS preflight through. Allowed origins are per broker in the database: the app answers both.",
        "",
        "Rate limits: one consumer group per tier (app/ratelimit/tiers.py) with rate-limiting-advanced.",
        "The app limits with GCRA: a bucket `burst` deep refilled at `per_minute`; over any W seconds it",
        "admits at most burst + per_minute*W/60 requests. Each tier gets that bound (rounded up) in fixed",
        "windows of 1 s, 60 s and 3600 s, so Kong never refuses what the app accepts and stops floods",
        "before they reach it; the app enforces the exact limit and sends the RateLimit headers (Kong's",
        "are hidden). Kong may admit more: twice a limit across a window boundary, one extra burst an",
        "hour, and each Kong node counts alone (strategy local). Mapping: app/gateway/limits.py.",
        *_tier_lines(),
        "",
        *CONSUMERS_NOTE.splitlines(),
    ]
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # equal lists stay written out: decK and Kong read the file, not a YAML expert


def render_kong_yaml(settings: Settings, upstream: str = DEFAULT_UPSTREAM) -> str:
    """The committed k8s/kong/kong.yml: header comment, then the document (stable order, no anchors)."""
    body = yaml.dump(build_kong_config(settings, upstream), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False, width=120)
    return header(settings, upstream) + body
