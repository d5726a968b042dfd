"""Start and stop localstripe and the double as child processes on free loopback ports.

Both children get a parent-death signal (Linux prctl), so a parent that is killed leaves nothing running;
`stop()` (also registered with atexit) ends them on a normal exit.
"""

from __future__ import annotations

import atexit
import signal
import socket
import subprocess
import sys
import time

import httpx

LOCAL_API_KEY = "sk_test_forexrisk_local"

# localstripe's own `python -m localstripe` listens on every interface ('::') and writes its whole store
# to the fixed file /tmp/localstripe.pickle after every change (one file shared by every instance on the
# machine; a second instance started without --from-scratch loads the first one's data). This launcher
# binds loopback only and keeps the store in memory.
_LOCALSTRIPE = """
import sys
import localstripe.resources as resources
resources.Store.dump_to_disk = lambda self: None
from aiohttp import web
from localstripe.server import app
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _parent_death_signal() -> None:  # runs in the child between fork and exec
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalStripeUnavailable(RuntimeError):
    pass


class LocalStripe:
    def __init__(self, api_key: str = LOCAL_API_KEY, start_timeout: float = 60.0) -> None:
        self.api_key = api_key
        self.start_timeout = start_timeout
        self.procs: list[subprocess.Popen[bytes]] = []
        self.url = ""

    @staticmethod
    def available() -> bool:
        try:
            import localstripe  # noqa: F401  (a dev dependency: present in development and tests only)
        except ImportError:
            return False
        return True

    def start(self) -> str:
        if not self.available():
            raise LocalStripeUnavailable("localstripe is not installed (it is a development dependency: "
                                         "`uv sync` installs it)")
        upstream_port, double_port = free_port(), free_port()
        upstream = f"http://127.0.0.1:{upstream_port}"
        self.procs.append(self._spawn([sys.executable, "-c", _LOCALSTRIPE, str(upstream_port)]))
        self._wait(upstream)
        self.procs.append(self._spawn([sys.executable, "-m", "app.billing.localserver", "--port", str(double_port),
                                       "--upstream", upstream]))
        self.url = f"http://127.0.0.1:{double_port}"
        self._wait(self.url)
        atexit.register(self.stop)
        return self.url

    @staticmethod
    def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=_parent_death_signal)

    def _wait(self, url: str) -> None:
        # A bound on how long a start may take, not a speed assumption: it returns as soon as it answers.
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                self.stop()
                raise LocalStripeUnavailable(f"the local Stripe server exited while starting ({url})")
            try:
                resp = httpx.get(f"{url}/v1/customers", params={"limit": 1},
                                 headers={"Authorization": f"Bearer {self.api_key}"}, timeout=2)
                if resp.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise LocalStripeUnavailable(f"the local Stripe server did not answer at {url}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()
