"""One release at a time per environment: an advisory file lock with its holder.

The lock is an ``flock`` on a file in the environment's state folder, so a
crashed holder releases it with its process. The file also records who holds
it (release id, pid, host, start time), so a refused caller can name them.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol


class EnvironmentBusy(Exception):
    """Another release holds the environment."""


class Hold(Protocol):
    """A release's hold of its environment."""

    def check(self) -> None:
        """Raise when the hold was lost: nothing may be committed without it."""
        ...


class EnvironmentLock:
    """Exclusive hold of one environment for one release (on this machine)."""

    def __init__(self, path: Path, env: str, holder: str) -> None:
        self.path = path
        self.env = env
        self.holder = holder
        self._fh: IO[str] | None = None

    def holder_info(self) -> dict[str, Any]:
        """What the lock file says about its holder (may be stale when unlocked)."""
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def check(self) -> None:
        """A file lock is held until released: nothing to check."""

    def __enter__(self) -> EnvironmentLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            info = self.holder_info()
            since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
            raise EnvironmentBusy(
                f"environment {self.env!r} is held by {info.get('holder', 'another release')} "
                f"(pid {info.get('pid', '?')} on {info.get('host', '?')}, since {since}); "
                "wait for it to finish or stop it"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(
            json.dumps(
                {
                    "holder": self.holder,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.time(),
                }
            )
        )
        fh.flush()
        self._fh = fh
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
