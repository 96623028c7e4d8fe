"""Supervised child processes: started, restarted when they crash, stopped cleanly.

Each child gets ``PR_SET_PDEATHSIG`` so that it receives SIGTERM if the
supervisor itself dies, and never outlives it holding a port. A child that
keeps crashing is restarted with a growing delay (capped at 10 s).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    _log_fh: IO[bytes] | None = None

    def start(self) -> None:
        """Start the process, its output appended to its log file."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if self._log_fh is None:
            self._log_fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            list(self.argv),
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            preexec_fn=_die_with_parent,
        )

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the process to stop; kill it if it has not within the timeout."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def tail(self, lines: int = 5) -> str:
        """The last lines of the child's log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Supervisor:
    """Keeps a set of named children running."""

    def __init__(self) -> None:
        self.children: dict[str, Child] = {}

    def add(self, child: Child) -> Child:
        """Start and supervise a child."""
        if child.name in self.children:
            raise ValueError(f"child {child.name!r} already supervised")
        child.start()
        self.children[child.name] = child
        return child

    def poll(self) -> list[str]:
        """Restart children that exited; the names restarted."""
        now = time.monotonic()
        restarted = []
        for child in self.children.values():
            if child.running or now < child.next_start:
                continue
            if child.proc is not None and child.next_start == 0.0:
                child.next_start = now + min(10.0, 0.5 * 2**child.restarts)
                continue
            child.restarts += 1
            child.next_start = 0.0
            child.start()
            restarted.append(child.name)
        return restarted

    def remove(self, name: str, timeout_s: float = 15.0) -> None:
        """Stop a child and forget it."""
        child = self.children.pop(name, None)
        if child is not None:
            child.stop(timeout_s)

    def stop_all(self, order: Sequence[str] = ()) -> None:
        """Stop every child, those named in ``order`` first."""
        names = [n for n in order if n in self.children]
        names += [n for n in reversed(list(self.children)) if n not in names]
        for name in names:
            self.remove(name)
