"""Results stored by content, so a run over an unchanged tree proves nothing twice (issue 21).

An entry's key is a sha256 over everything its result depends on: the input's canonical bytes, the identity of the
tool that judged it (version pin, binary size and mtime, build stamp), the schemas' digest, the stage's
configuration and the Python code that reads the tool's answer. Change any of those and the key changes, so an
entry can never be stale, only unused; unused entries are pruned oldest first once the store outgrows its bound.

Entries live under `<cache dir>/results/<stage>/<key[:2]>/<key>` and follow the rule every .cache writer follows
(see gitops/validate/schemas.py `_publish`): an entry is written to a private temporary file in the same directory
and appears whole by one rename(2), so concurrent runs (the environment threads, two `make validate`s, CI jobs on
one runner) may share the store; a half-written entry is never read. An entry that cannot be read is a miss.

`enabled=False` (`gitops validate --no-cache`) neither reads nor writes: every result is proved from scratch, which
is how the tests show that the cache changes nothing but time.
"""

import contextlib
import hashlib
import json
import os
import pickle
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.core.paths import cache_dir

MAX_BYTES_ENV = "GITOPS_CACHE_MAX_MB"
DEFAULT_MAX_MB = 256
RESULTS_DIR = "results"


@dataclass
class Counts:
    hits: int = 0
    misses: int = 0

    @property
    def lookups(self) -> int:
        return self.hits + self.misses


def digest(*parts: str | bytes) -> str:
    """sha256 over the parts, each length-prefixed so that ("ab", "c") and ("a", "bc") differ."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(f"{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


_file_digests: dict[tuple[str, int, int], str] = {}
_file_digests_lock = threading.Lock()


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, remembered for this process while its size and mtime stay the same."""
    stat = path.stat()
    ident = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _file_digests_lock:
        known = _file_digests.get(ident)
    if known is None:
        known = hashlib.sha256(path.read_bytes()).hexdigest()
        with _file_digests_lock:
            _file_digests[ident] = known
    return known


def tool_identity(path: str | Path, *extra: str) -> str:
    """What names a built tool: its resolved path, size and modification time (a rebuild or reinstall changes them)
    plus `extra` (a version pin, a build stamp). Cheaper than hashing a 50 MB binary on every run."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return digest(str(resolved), str(stat.st_size), str(stat.st_mtime_ns), *extra)


def code_digest(*modules: Any) -> str:
    """sha256 over the source of the Python modules that turn a tool's answer into a result."""
    return digest(*(Path(m.__file__).read_bytes() for m in modules))


class ResultCache:
    """A content-addressed store of stage results with hit/miss counts per stage."""

    def __init__(self, enabled: bool = True, root: Path | None = None, max_bytes: int | None = None) -> None:
        self.enabled = enabled
        self.root = (root or cache_dir()) / RESULTS_DIR
        if max_bytes is None:
            try:
                max_bytes = int(float(os.environ.get(MAX_BYTES_ENV, DEFAULT_MAX_MB)) * 1024 * 1024)
            except ValueError:  # a malformed bound must not stop validate: the default applies
                max_bytes = DEFAULT_MAX_MB * 1024 * 1024
        self.max_bytes = max_bytes
        self.counts: dict[str, Counts] = {}
        self._lock = threading.Lock()
        self._writable = True

    def _path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / key

    def _count(self, stage: str, hit: bool) -> None:
        with self._lock:
            counts = self.counts.setdefault(stage, Counts())
            if hit:
                counts.hits += 1
            else:
                counts.misses += 1

    def get(self, stage: str, key: str, *, binary: bool = False) -> Any | None:
        """The stored result, or None (a miss). JSON entries by default; `binary`: a pickle this code wrote (the
        store is the repository's own .cache, trusted like .venv)."""
        if not self.enabled:
            self._count(stage, False)
            return None
        try:
            data = self._path(stage, key).read_bytes()
            value = pickle.loads(data) if binary else json.loads(data)
        except (OSError, ValueError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
            self._count(stage, False)
            return None
        self._count(stage, True)
        if self._writable:
            with contextlib.suppress(OSError):  # used now: pruning removes the least recently used entries first
                os.utime(self._path(stage, key))
        return value

    def put(self, stage: str, key: str, value: Any, *, binary: bool = False) -> None:
        """Store a result: written aside, then renamed into place (a reader sees all of it or nothing). A store
        that cannot be written (a read-only checkout) only costs time: the run goes on without it."""
        if not (self.enabled and self._writable):
            return
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL) if binary else json.dumps(value).encode()
        path = self._path(stage, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, staging = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(staging, path)
        except OSError:
            self._writable = False

    def hit_rate(self) -> tuple[int, int]:
        """(hits, lookups) over every stage."""
        hits = sum(c.hits for c in self.counts.values())
        return hits, sum(c.lookups for c in self.counts.values())

    def prune(self) -> int:
        """Keep the store under its bound: when it is larger, delete the least recently used entries until it
        is at three quarters of it. Returns the number of entries removed. Another run reading an entry being
        removed sees a miss, never a partial entry."""
        if not self.enabled or not self.root.is_dir():
            return 0
        entries = []
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(dirpath) / name
                try:
                    stat = path.stat()
                except OSError:
                    continue
                entries.append((stat.st_mtime_ns, stat.st_size, path))
                total += stat.st_size
        if total <= self.max_bytes:
            return 0
        removed = 0
        for _mtime, size, path in sorted(entries):
            if total <= self.max_bytes * 3 // 4:
                break
            try:
                path.unlink()
            except OSError:
                continue
            total -= size
            removed += 1
        return removed


def disabled() -> ResultCache:
    """A cache that stores nothing: every result proved from scratch."""
    return ResultCache(enabled=False)
