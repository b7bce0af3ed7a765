"""The fail-open spool: reports that could not reach the daemon, one JSON object per line,
appended with one fsync'd write each, size-capped, replayed through `POST /v1/reports`."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

__all__ = ["Spool", "SpoolFull"]

log = logging.getLogger("spendwall")
SPOOL_FILE = "reports.jsonl"
LOCK_FILE = "spool.lock"
BATCH = 1000


class SpoolFull(UserWarning):
    """The spool reached its size cap: further reports are dropped until it is replayed."""


class Spool:
    def __init__(self, directory: str, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.path = os.path.join(directory, SPOOL_FILE)
        self.dropped = 0
        self._warned = False
        self._thread_lock = threading.Lock()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Cross-process (flock on a lock file) and cross-thread exclusion."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        with self._thread_lock:
            fd = os.open(os.path.join(self.directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def append(self, report: Dict[str, Any]) -> bool:
        """Appends one report durably. Returns False (and warns once) when the cap is reached."""
        line = (json.dumps(report, separators=(",", ":")) + "\n").encode()
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size + len(line) > self.max_bytes:
                    self.dropped += 1
                    if not self._warned:
                        self._warned = True
                        msg = (f"spendwall: spool {self.path} reached its cap of {self.max_bytes} bytes; "
                               f"reports are being dropped until the daemon is back and the spool is replayed")
                        log.warning(msg)
                        warnings.warn(msg, SpoolFull, stacklevel=3)
                    return False
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return True

    def size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def pending(self) -> List[Dict[str, Any]]:
        with self._locked():
            return self._read()

    def _read(self) -> List[Dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        items = []
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except ValueError:
                log.warning("spendwall: skipping a torn line in %s", self.path)
                continue
            if isinstance(item, dict):
                items.append(item)
        return items

    def _rewrite(self, items: List[Dict[str, Any]]) -> None:
        if not items:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            return
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join((json.dumps(i, separators=(",", ":")) + "\n").encode() for i in items))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def replay(self, send: Callable[[List[Dict[str, Any]]], List[Dict[str, Any]]]) -> Tuple[int, int, int]:
        """Sends the spool in batches; drops items the daemon recorded, already had, or rejected.
        `send` raises when the daemon is unreachable: what was not acknowledged stays spooled.
        Returns (recorded, duplicate, rejected)."""
        counts = {"recorded": 0, "duplicate": 0, "rejected": 0}
        if self.size() == 0:
            return 0, 0, 0
        with self._locked():
            items = self._read()
            remaining = list(items)
            try:
                while remaining:
                    batch = remaining[:BATCH]
                    results = send(batch)
                    by_id: Dict[Optional[str], Dict[str, Any]] = {r.get("id"): r for r in results}
                    keep = []
                    for item in batch:
                        r = by_id.get(item.get("id"))
                        result = (r or {}).get("result")
                        if result in counts:
                            counts[result] += 1
                            if result == "rejected":
                                log.warning("spendwall: daemon rejected spooled report %s: %s", item.get("id"),
                                            (r or {}).get("error"))
                        else:
                            keep.append(item)
                    remaining = keep + remaining[BATCH:]
                    if keep:  # the daemon answered without a result for these: try again later
                        break
            finally:
                if len(remaining) != len(items):
                    self._rewrite(remaining)
                    self._warned = False
        return counts["recorded"], counts["duplicate"], counts["rejected"]
