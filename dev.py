#!/usr/bin/env python3
"""The project's commands, on a fresh machine with only python3:

    python3 dev.py run     # start the API (embedded defaults) and print a working example request
    python3 dev.py worker  # run the background jobs on their own (`run` already runs them in-process)
    python3 dev.py test    # ruff, mypy (strict on app/), import contracts, the whole pytest suite

It installs uv into .tools/ (from PyPI) when uv is not on PATH, then syncs the locked environment.
Extra arguments go to the underlying command: `python3 dev.py run --port 9000`, `python3 dev.py test -k vectors`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"
UV_VERSION = "0.13.8"


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


def sync(uv_bin: str) -> None:
    subprocess.run([uv_bin, "sync", "--locked", "--quiet"], cwd=ROOT, check=True)


def ensure_chromium() -> None:
    """The browser tests (tests/test_widget_browser.py) drive Debian's `chromium` through Playwright (never
    `playwright install`). When it is missing and this runs as root with apt-get, install it; otherwise
    those tests skip and say why."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        print("[dev] chromium is not on PATH and cannot be installed here (needs root and apt-get): "
              "the browser tests will be skipped", flush=True)
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        print(f"[dev] chromium is missing: {' '.join(step)}", flush=True)
        if subprocess.run(step, env=env).returncode != 0:
            print("[dev] installing chromium failed: the browser tests will be skipped", flush=True)
            return


def run_steps(uv_bin: str, steps: list[list[str]]) -> int:
    for step in steps:
        print(f"[dev] {' '.join(step)}", flush=True)
        code = subprocess.run([uv_bin, "run", "--locked", *step], cwd=ROOT).returncode
        if code != 0:
            return code
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "worker", "test"):
        print(__doc__)
        return 2
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # use the machine's Python 3.11
    # Trust the machine's certificate store (a corporate or sandbox proxy's root lives there).
    os.environ.setdefault("UV_SYSTEM_CERTS", "1")
    uv_bin = uv()
    sync(uv_bin)
    command, rest = argv[0], argv[1:]
    if command in ("run", "worker"):
        os.execv(uv_bin, [uv_bin, "run", "--locked", "forexrisk", command, *rest])
    ensure_chromium()
    workers = ["-n", "2"] if (os.cpu_count() or 1) > 1 else []
    return run_steps(uv_bin, [
        ["ruff", "check", "app", "tests", "bench", "dev.py"],
        ["mypy"],
        ["lint-imports"],  # the import contracts in pyproject.toml ([tool.importlinter])
        ["pytest", *workers, *rest],
    ])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
