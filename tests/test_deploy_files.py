"""Deployment files stay consistent with the app: probes hit real routes, the port and command match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


BASE = ROOT / "k8s" / "base"


def test_kustomization_lists_every_manifest() -> None:
    kust = docs(BASE / "kustomization.yaml")[0]
    listed = {BASE / r for r in kust["resources"] if r.endswith(".yaml")}
    on_disk = {p for p in BASE.rglob("*.yaml") if p.name not in ("kustomization.yaml",
                                                                "prometheus-adapter-values.yaml")}
    assert listed == on_disk
    kinds = {d["kind"] for p in on_disk for d in docs(p)}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Job"} <= kinds


def test_probes_hit_routes_that_answer(client: TestClient) -> None:
    dep = docs(BASE / "api" / "deployment.yaml")[0]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 8000
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert client.get(path).status_code == 200, probe
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_dockerfile_runs_the_console_script_on_the_probed_port() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert '"forexrisk", "run", "--host", "0.0.0.0", "--port", "8000"' in text.replace("/srv/.venv/bin/", "")
    assert "EXPOSE 8000" in text and "uv sync --locked --no-dev" in text and "USER 10001" in text


def test_production_gets_its_database_and_secrets_from_a_secret() -> None:
    dep = docs(BASE / "api" / "deployment.yaml")[0]
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "FOREXRISK_ENVIRONMENT=production" in (BASE / "kustomization.yaml").read_text()
    needed = ["DATABASE_APP_URL", "DATABASE_PLATFORM_URL", "FOREXRISK_SECRET_PEPPER",
              "FOREXRISK_ENCRYPTION_KEY", "FOREXRISK_JWT_PRIVATE_KEY_PEM", "FOREXRISK_SESSION_SECRET"]
    for name in needed:
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "forexrisk-secrets", name
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY migrations ./migrations" in text and "COPY alembic.ini" in text


def test_production_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    import pytest
    from pydantic import ValidationError

    from app.config import Settings

    with pytest.raises(ValidationError, match="secret_pepper"):
        Settings(environment="production", data_dir=tmp_path)
