"""Decides when a file is completely written: size and mtime unchanged for a quiet period."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SETTLE_S = 2.0


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # monotonic time when this size and mtime were first seen


class StabilityTracker:
    """Thread-safe: the observer thread marks paths, the settle loop asks which are stable."""

    def __init__(
        self, settle_s: float = SETTLE_S, on_mark: Callable[[], None] = lambda: None
    ) -> None:
        self.settle_s = settle_s
        self.on_mark = on_mark  # after each mark: whoever asks `stable` may have slept
        self._lock = threading.Lock()
        self._pending: dict[Path, _Seen | None] = {}

    def mark(self, path: Path) -> None:
        """Something happened to this path; look at it again."""
        with self._lock:
            self._pending.setdefault(path, None)
        self.on_mark()

    def seen_size(self, path: Path) -> int | None:
        """The size the last look at a pending path found (None: not looked at, or not pending)."""
        with self._lock:
            seen = self._pending.get(path)
        return seen.size if seen is not None else None

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def stable(self, now: float) -> list[Path]:
        """Paths whose size and mtime held for settle_s; they leave the tracker. Vanished ones too."""
        with self._lock:
            paths = list(self._pending)
        ready = []
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                with self._lock:
                    self._pending.pop(path, None)
                continue
            with self._lock:
                seen = self._pending.get(path)
                if seen is None or (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                    self._pending[path] = _Seen(stat.st_size, stat.st_mtime_ns, now)
                elif now - seen.since >= self.settle_s:
                    del self._pending[path]
                    ready.append(path)
        return ready
