"""The console's files from the repository's `console/`: one HTML shell, ES modules, a stylesheet, strings.

Why plain ES modules and no build step: the console is a few thousand lines for a small team; browsers load
modules natively, JSDoc types are checked by an editor without compiling, and a fresh machine runs it from
the README's two commands (no Node, no bundler, no lock file of a second ecosystem to keep up).

Which names are served is fixed when the directory is first read (the files under `console/` with a known
suffix), so a request path never reaches the file system. Files are kept in memory with their gzip and
brotli bytes (`app.encoding`, as the widget does); a `stat` per request picks up an edited file.

Caching: every file is also served under one *release* hash, the hash of all files together
(`/admin/static/v/<release>/js/main.js`). Relative imports between modules then stay inside the same
release, so one hash covers the whole graph and each file is cached for a year as immutable; a change to
any file gives every URL a new hash. A URL of an older release answers the current file, revalidated.
"""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path

from app.encoding import Precompressed

CONSOLE_DIR = Path(__file__).resolve().parents[2] / "console"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".json": "application/json", ".svg": "image/svg+xml"}
SHELL = "index.html"


@dataclass(frozen=True)
class File:
    name: str
    body: Precompressed
    media_type: str
    digest: str
    stamp: tuple[int, int]


class ConsoleFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._names: frozenset[str] | None = None
        self._cache: dict[str, File] = {}

    def names(self) -> frozenset[str]:
        if self._names is None:
            found = {p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                     if p.is_file() and p.suffix in TYPES}
            self._names = frozenset(found)
        return self._names

    def get(self, name: str) -> File | None:
        if name not in self.names() and name != SHELL:
            return None
        path = self.root / name
        try:
            st = path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        hit = self._cache.get(name)
        if hit is not None and hit.stamp == stamp:
            return hit
        body = path.read_bytes()
        media = TYPES.get(path.suffix, "text/html; charset=utf-8")
        found = File(name, Precompressed.of(body), media, hashlib.sha256(body).hexdigest()[:20], stamp)
        self._cache[name] = found
        return found

    def release(self) -> str:
        """One hash over every served file (name and content)."""
        h = hashlib.sha256()
        for name in sorted(self.names()):
            f = self.get(name)
            if f is not None:
                h.update(name.encode() + b"\0" + f.digest.encode())
        return h.hexdigest()[:20]


FILES = ConsoleFiles(CONSOLE_DIR)
