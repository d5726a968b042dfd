#!/usr/bin/env python3
"""The project's commands, on a fresh machine with only python3:

    python3 dev.py run       # start the API (embedded defaults) and print a working example request
    python3 dev.py worker    # run the background jobs on their own (`run` already runs them in-process)
    python3 dev.py test      # ruff, mypy (strict on app/), import contracts, the whole pytest suite
    python3 dev.py admin ... | gateway ... | migrate ...   # the other `forexrisk` commands (README)
    python3 dev.py python -m bench.http_bench               # any module in the project's environment

It installs uv into .tools/ (from PyPI) when uv is not on PATH, then syncs the locked environment, only when
uv.lock or pyproject.toml changed since the last sync (a stamp in .venv). Right after a sync it compiles the
bytecode of what the commands import, once: this machine's environment may set PYTHONDONTWRITEBYTECODE, and
then every start would compile the same modules again (seconds of CPU each time).
Extra arguments go to the underlying command: `python3 dev.py run --port 9000`, `python3 dev.py test -k vectors`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"
VENV = ROOT / ".venv"
STAMP = VENV / ".dev-synced"
UV_VERSION = "0.13.8"
# S3-compatible server the storage tests run against (tests/test_storage_s3.py), installed with npm into
# .tools/node (git-ignored) when npm is on the machine; otherwise those tests skip and say why.
NODE_TOOLS = TOOLS / "node"
S3RVER_VERSION = "3.7.1"
FOREXRISK_COMMANDS = ("run", "worker", "admin", "gateway", "migrate")
# What `run` and `worker` import (the app, the engine keeper's process, the servers' native loops), compiled
# right after a sync. Everything else compiles lazily as usual where bytecode may be written.
WARM_RUN = ("app.main", "app.cli", "app.enginekeeper", "app.worker.monitor", "uvicorn.loops.uvloop",
            "uvicorn.protocols.http.httptools_impl", "uvicorn.protocols.websockets.websockets_impl",
            "uvicorn.lifespan.on", "granian", "chdb", "alembic.command")


def uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    local = TOOLS / "bin" / "uv"
    if not local.exists():
        print(f"[dev] installing uv {UV_VERSION} into {TOOLS}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
        subprocess.run([str(TOOLS / "bin" / "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", f"uv=={UV_VERSION}"], check=True)
    return str(local)


def lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("uv.lock", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def sync() -> None:
    """`uv sync --locked` when the lock changed since the last one, then the bytecode of what runs."""
    wanted = lock_digest()
    if STAMP.exists() and STAMP.read_text() == wanted and (VENV / "bin" / "forexrisk").exists():
        return
    uv_bin = uv()
    subprocess.run([uv_bin, "sync", "--locked", "--quiet"], cwd=ROOT, check=True)
    compile_bytecode()
    STAMP.write_text(wanted)


def compile_bytecode() -> None:
    """The project's sources (all of them, in parallel) and the libraries `run` imports (by importing them once
    with bytecode writing on), so no start compiles them again."""
    python = str(VENV / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", "app", "migrations", "tests", "bench"], cwd=ROOT,
                   env=env, stdout=subprocess.DEVNULL, check=False)
    imports = "; ".join(f"import {module}" for module in WARM_RUN)
    subprocess.run([python, "-W", "ignore", "-c", imports], cwd=ROOT, env={**env, "FOREXRISK_LOG_LEVEL": "warning"},
                   check=False)


def missing_debian_packages() -> list[str]:
    """Debian packages the suite drives when present: `chromium` (tests/test_widget_browser.py, through Playwright,
    never `playwright install`), `postgresql` and `redis-server` (tests/test_one_machine_production.py)."""
    missing = []
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        missing.append("chromium")
    if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
        missing.append("postgresql")
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    return missing


def ensure_debian_packages() -> None:
    """Install what is missing when this runs as root with apt-get, without the recommended packages (fonts,
    drivers and desktop bits the headless tests never use); otherwise the tests that need them skip and say why."""
    missing = missing_debian_packages()
    if not missing:
        return
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"[dev] {', '.join(missing)} not installed and cannot be here (needs root and apt-get): "
              "the tests that use them will be skipped", flush=True)
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *missing]):
        print(f"[dev] missing {', '.join(missing)}: {' '.join(step)}", flush=True)
        if subprocess.run(step, env=env).returncode != 0:
            print("[dev] installing them failed: the tests that use them will be skipped", flush=True)
            return


def node_tool_version(name: str) -> str | None:
    """The version of the npm package `name` installed in .tools/node with its command, or None."""
    if not (NODE_TOOLS / "node_modules" / ".bin" / name).exists():
        return None
    try:
        return str(json.loads((NODE_TOOLS / "node_modules" / name / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_node_tools() -> None:
    """`s3rver` (an S3-compatible server backed by a directory) into .tools/node, once: skipped when the pinned
    version is already there (a few seconds otherwise), and when npm is not (the S3 storage tests then skip)."""
    if node_tool_version("s3rver") == S3RVER_VERSION:
        return
    npm = shutil.which("npm")
    if not npm:
        print("[dev] npm not installed: s3rver cannot be installed, the S3 storage tests will be skipped", flush=True)
        return
    step = [npm, "install", "--prefix", str(NODE_TOOLS), f"s3rver@{S3RVER_VERSION}", "--no-audit", "--no-fund"]
    print(f"[dev] {' '.join(step)}", flush=True)
    # Trust the machine's certificate store, as uv does (UV_SYSTEM_CERTS above): node has its own CA bundle, and
    # without NODE_EXTRA_CA_CERTS a proxy's root is refused (each package then takes ~70 s of retries). Bounded:
    # an unreachable registry must not hold the test command.
    env = {**os.environ, "NODE_OPTIONS": f"{os.environ.get('NODE_OPTIONS', '')} --use-openssl-ca".strip()}
    try:
        code = subprocess.run(step, env=env, timeout=300).returncode
    except subprocess.TimeoutExpired:
        code = -1
    if code != 0:
        print("[dev] installing s3rver failed: the S3 storage tests will be skipped", flush=True)


def run_steps(steps: list[list[str]]) -> int:
    for step in steps:
        print(f"[dev] {' '.join(step)}", flush=True)
        code = subprocess.run([str(VENV / "bin" / step[0]), *step[1:]], cwd=ROOT).returncode
        if code != 0:
            return code
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in (*FOREXRISK_COMMANDS, "test", "python"):
        print(__doc__)
        return 2
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # use the machine's Python 3.11
    # Trust the machine's certificate store (a corporate or sandbox proxy's root lives there).
    os.environ.setdefault("UV_SYSTEM_CERTS", "1")
    sync()
    command, rest = argv[0], argv[1:]
    os.chdir(ROOT)
    # What `uv run` would set: the environment's scripts first on PATH (tests start `forexrisk`, `kubectl` ...).
    os.environ["VIRTUAL_ENV"] = str(VENV)
    os.environ["PATH"] = f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    if command in FOREXRISK_COMMANDS:
        # The environment is synced above: exec the console script itself (no `uv run`, which would check again).
        os.execv(str(VENV / "bin" / "forexrisk"), ["forexrisk", command, *rest])
    if command == "python":
        os.execv(str(VENV / "bin" / "python"), ["python", *rest])
    ensure_debian_packages()
    ensure_node_tools()
    workers = ["-n", "2"] if (os.cpu_count() or 1) > 1 else []
    return run_steps([
        ["ruff", "check", "app", "tests", "bench", "examples", "dev.py"],
        ["mypy"],
        ["lint-imports"],  # the import contracts in pyproject.toml ([tool.importlinter])
        ["pytest", *workers, *rest],
    ])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
