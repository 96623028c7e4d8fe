"""Supervised child processes: started, restarted when they crash, stopped cleanly,
and adopted again by the next supervisor when this one dies.

The data plane does not depend on the supervisor being alive: each child runs in
a session of its own (a signal to the supervisor's process group never reaches
it, and it does not die with the supervisor), and each writes a record,
``RUN_DIR/<name>.json``, with its pid, the kernel's start time of that pid (so a
reused pid is never mistaken for it) and what the supervisor needs to take it
over. A new supervisor ``adopt``s a recorded child that still runs instead of
starting another; ``kill_recorded`` stops whatever records remain when no
supervisor is left to do it, so no process of the environment is ever orphaned.

A child that keeps crashing is restarted with a growing delay (capped at 10 s). Each
child leads a process group; when it is gone, so is whatever is left of its group (nginx's
workers outlive a killed master and would keep its port).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def process_start(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if it is gone."""
    try:
        # The command may hold spaces and parentheses: the fields follow the last ')'.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[19]) if fields[0] != "Z" else None
    except (OSError, ValueError, IndexError):
        return None


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` so far (all its threads), or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def kill_group(pid: int) -> None:
    """SIGKILL what is left of the process group ``pid`` led (each child leads its own):
    helpers such as nginx's workers, which outlive their master when it is killed."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _record_path(run_dir: Path, name: str) -> Path:
    return run_dir / (name.replace("/", "__") + ".json")


def read_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The recorded children whose process still runs, by name."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(run_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            pid, started = int(record["pid"]), int(record["started"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if process_start(pid) == started:
            out[str(record["name"])] = record
        else:
            kill_group(pid)  # its helpers, if it was killed without them
            path.unlink(missing_ok=True)
    return out


def stop_process(pid: int, started: int, sig: int, timeout_s: float) -> None:
    """Send ``sig`` to the process, then SIGKILL it if it still runs after the timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    while process_start(pid) == started and time.monotonic() < deadline:
        time.sleep(0.05)
    if process_start(pid) == started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while process_start(pid) == started:
            time.sleep(0.02)
    kill_group(pid)


def kill_recorded(run_dir: Path, timeout_s: float = 15.0) -> list[str]:
    """Stop every recorded child still running (no supervisor is left): their names."""
    records = read_records(run_dir)
    # Pods first (they drain), as the supervisor stops them.
    for name in sorted(records, key=lambda n: not n.startswith("pod/")):
        record = records[name]
        stop_process(
            int(record["pid"]),
            int(record["started"]),
            int(record.get("stop_signal", signal.SIGTERM)),
            timeout_s,
        )
        _record_path(run_dir, name).unlink(missing_ok=True)
    return list(records)


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    run_dir: Path | None = None
    """Where the child's record goes (None: not recorded, never adopted)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """What a supervisor that adopts the child needs besides its command line."""
    proc: subprocess.Popen[bytes] | None = None
    adopted: tuple[int, int] | None = None
    """(pid, start time) of a process started by an earlier supervisor."""
    restarts: int = 0
    next_start: float = 0.0

    def start(self) -> None:
        """Start the process in a session of its own, its output appended to its log file."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.adopted = None
        # The process holds its own descriptor of the log: nothing here stays open for it.
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,
            )
        self._write_record()

    def _write_record(self) -> None:
        if self.run_dir is None or self.proc is None:
            return
        started = process_start(self.proc.pid)
        if started is None:
            return  # exited already; poll() restarts it
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = _record_path(self.run_dir, self.name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "name": self.name,
                    "pid": self.proc.pid,
                    "started": started,
                    "argv": list(self.argv),
                    "stop_signal": int(self.stop_signal),
                    "restarts": self.restarts,
                    **self.extra,
                }
            )
        )
        tmp.replace(path)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether a recorded process runs this child's command line."""
        return list(record.get("argv", ())) == list(self.argv)

    @property
    def pid(self) -> int | None:
        """The process id, started or adopted."""
        if self.proc is not None:
            return self.proc.pid
        return self.adopted[0] if self.adopted else None

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        if self.proc is not None:
            return self.proc.poll() is None
        return self.adopted is not None and process_start(self.adopted[0]) == self.adopted[1]

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the process to stop; kill it if it has not within the timeout."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            kill_group(self.proc.pid)
        elif self.adopted is not None:
            stop_process(*self.adopted, self.stop_signal, timeout_s)
        if self.run_dir is not None:
            _record_path(self.run_dir, self.name).unlink(missing_ok=True)

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

    def adopt(self, child: Child, record: Mapping[str, Any]) -> Child:
        """Supervise a recorded process that an earlier supervisor started."""
        if child.name in self.children:
            raise ValueError(f"child {child.name!r} already supervised")
        child.adopted = (int(record["pid"]), int(record["started"]))
        child.restarts = int(record.get("restarts") or 0)  # a pod's restarts are evidence
        self.children[child.name] = child
        return child

    def poll(self) -> list[str]:
        """Restart children that exited; the names restarted."""
        now = time.monotonic()
        restarted = []
        for child in self.children.values():
            if child.running or now < child.next_start:
                continue
            if child.next_start == 0.0 and (child.proc is not None or child.adopted):
                if child.pid is not None:
                    kill_group(child.pid)  # no helper of a dead child keeps its port
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
