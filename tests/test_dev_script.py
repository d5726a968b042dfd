"""dev.py on a fresh machine: it syncs only when the lock changed, compiles the bytecode of what runs right after
a sync (this environment may set PYTHONDONTWRITEBYTECODE), wraps the forexrisk commands so the README never needs
uv on PATH, and installs Chromium without recommended packages."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Any

import pytest

import dev
from app import cli

ROOT = Path(__file__).resolve().parents[1]


def fake_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "forexrisk").write_text("")
    monkeypatch.setattr(dev, "VENV", venv)
    monkeypatch.setattr(dev, "STAMP", venv / ".dev-synced")
    monkeypatch.setattr(dev, "uv", lambda: "uv")
    calls: list[list[str]] = []

    def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append([str(a) for a in args])
        assert "PYTHONDONTWRITEBYTECODE" not in kwargs.get("env", {}), args  # bytecode is written
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(dev.subprocess, "run", run)
    return calls


def test_a_changed_lock_syncs_and_compiles_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    calls = fake_venv(tmp_path, monkeypatch)
    dev.sync()
    assert calls[0][:3] == ["uv", "sync", "--locked"]
    assert calls[1][1:4] == ["-m", "compileall", "-q"] and "app" in calls[1]
    assert calls[2][1:3] == ["-W", "ignore"] and "import app.main" in calls[2][-1]
    assert dev.STAMP.read_text() == dev.lock_digest()
    calls.clear()
    dev.sync()  # nothing changed: no uv, no compiling
    assert calls == []
    dev.STAMP.write_text("an older lock")
    dev.sync()
    assert [c[:2] for c in calls][:1] == [["uv", "sync"]]


def test_warm_modules_exist() -> None:
    for module in dev.WARM_RUN:
        assert importlib.util.find_spec(module) is not None, module


def test_forexrisk_commands_are_wrapped() -> None:
    for command in dev.FOREXRISK_COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0, command
    readme = (ROOT / "README.md").read_text()
    assert "uv run" not in readme and "python3 dev.py admin create-broker" in readme


def test_debian_packages_without_recommended_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev.shutil, "which", lambda name: None)
    assert {"chromium", "redis-server"} <= set(dev.missing_debian_packages())
    monkeypatch.setattr(dev.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert not {"chromium", "redis-server"} & set(dev.missing_debian_packages())
    monkeypatch.setattr(dev, "missing_debian_packages", lambda: ["chromium", "redis-server"])
    monkeypatch.setattr(dev.os, "geteuid", lambda: 0)
    calls: list[list[str]] = []
    monkeypatch.setattr(dev.subprocess, "run", lambda args, **kw: calls.append(args) or
                        subprocess.CompletedProcess(args, 0))
    dev.ensure_debian_packages()
    assert calls == [["apt-get", "update"],
                     ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "redis-server"]]
