"""What a release runs outside Git, recorded so that a killed release leaves nothing behind.

Git tells what a release changed; it cannot tell which processes and Prefect runs a
release had going when it was killed. So a release process keeps a record,
``<state_dir>/releases/<pid>.json``: its pid and that pid's start time (a reused pid is
never mistaken for it), its release id and step, the Prefect flow runs it runs in, and
the load generators it has started. The record goes when the release ends, however it
ends, unless its process is killed (or leaves in a hurry because its environment went
down with the Prefect server it reports to).

``clean_orphans``, run by the next release and by ``inferops up``, takes each record
whose process is gone: it stops the load that record names (the load generator also
stops by itself once its parent is gone), has the caller mark its Prefect runs crashed,
and removes it. ``live`` lists the records of releases running now.

A release whose environment went down ``settle``s: it has committed its rollback and
knows the one line to report, but the Prefect server it reports to went down with the
environment, and Prefect's client would retry it for minutes. A command running the
release inside ``leave_when_settled`` then reports that line and exits 1 at once,
leaving its record for the next run to mark its Prefect runs crashed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferops.platforms.supervisor import process_start, stop_process

RECORDS = "releases"
"""The folder, in an environment's state folder, that holds the release records."""

_STOP_GRACE_S = 5.0


def records_dir(state_dir: Path) -> Path:
    """Where an environment's release records live."""
    return state_dir / RECORDS


class ReleaseRecord:
    """This process' record: written at once on every change, removed by ``remove``."""

    def __init__(self, directory: Path) -> None:
        self.pid = os.getpid()
        self.path = directory / f"{self.pid}.json"
        self.data: dict[str, Any] = {
            "pid": self.pid,
            "started": process_start(self.pid),
            "since": time.time(),
            "release_id": None,
            "step": None,
            "api_url": None,
            "flow_runs": {},
            "loads": {},
        }

    def write(self) -> None:
        """Write the record whole (a reader never sees half of it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.data))
        partial.replace(self.path)

    def update(self, **fields: Any) -> None:
        """Set fields such as ``release_id`` and ``step``, and write."""
        self.data.update(fields)
        self.write()

    def add_flow_run(self, run_id: str, name: str) -> None:
        """A Prefect flow run this release runs in."""
        self.data["flow_runs"][run_id] = name
        self.write()

    def add_load(self, pid: int) -> None:
        """A load generator this release started (a child process)."""
        self.data["loads"][str(pid)] = process_start(pid)
        self.write()

    def drop_load(self, pid: int) -> None:
        """A load generator that has exited."""
        self.data["loads"].pop(str(pid), None)
        self.write()

    def remove(self) -> None:
        """The release ended: nothing of it is left to clean."""
        self.path.unlink(missing_ok=True)


_open: dict[Path, tuple[ReleaseRecord, int]] = {}


@contextlib.contextmanager
def recording(state_dir: Path) -> Iterator[ReleaseRecord]:
    """This process' record in ``state_dir``, shared by nested flows (the release and its
    rollout); written on entry, removed when the outermost ``recording`` ends."""
    directory = records_dir(state_dir)
    held = _open.get(directory)
    record = held[0] if held else ReleaseRecord(directory)
    _open[directory] = (record, (held[1] if held else 0) + 1)
    if held is None:
        record.write()
    try:
        yield record
    finally:
        record_now, depth = _open.pop(directory)
        if depth > 1:
            _open[directory] = (record_now, depth - 1)
        else:
            record.remove()


def _read(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            int(data["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        out.append((path, data))
    return out


def _running(data: Mapping[str, Any]) -> bool:
    started = data.get("started")
    return started is not None and process_start(int(data["pid"])) == started


def current(state_dir: Path) -> ReleaseRecord | None:
    """This process' record in ``state_dir`` while a ``recording`` holds it open."""
    held = _open.get(records_dir(state_dir))
    return held[0] if held else None


def live(state_dir: Path) -> list[dict[str, Any]]:
    """The records of the releases whose process runs now."""
    return [data for _, data in _read(records_dir(state_dir)) if _running(data)]


@dataclass(frozen=True)
class Orphan:
    """What a killed release had left running, and what was done about it."""

    pid: int
    release_id: str | None
    step: str | None
    since: float
    flow_runs: Mapping[str, str]
    loads_stopped: tuple[int, ...] = ()
    runs_crashed: int = 0
    problems: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """One line for the log."""
        who = self.release_id or "a release"
        at = f" at step {self.step}" if self.step else ""
        when = time.strftime("%H:%M:%S", time.localtime(self.since))
        done = [f"marked {self.runs_crashed} of its {len(self.flow_runs)} Prefect runs crashed"]
        if self.loads_stopped:
            done.append(f"stopped its load (pid {', '.join(map(str, self.loads_stopped))})")
        told = "; ".join([*done, *self.problems])
        return f"{who} (pid {self.pid}, started {when}) was killed{at}: {told}"


def _stop_load(pid: int, started: int | None) -> bool:
    """Stop a recorded load generator still running: True when one was stopped."""
    if started is None or process_start(pid) != started:
        return False
    stop_process(pid, started, signal.SIGTERM, _STOP_GRACE_S)
    return True


CrashRuns = Callable[[str | None, Mapping[str, str], str], int]
"""Marks flow runs (id to name) crashed with a message, on the Prefect API at the URL the
release used (None: the caller's own); how many it changed."""


def clean_orphans(state_dir: Path, crash_runs: CrashRuns | None) -> list[Orphan]:
    """Clean up after every killed release recorded in ``state_dir``.

    Its load is stopped, its runs are marked crashed by ``crash_runs`` (None: left as
    they are, and said so), and its record removed. A record whose runs could not be
    marked (the Prefect API did not answer) is kept for the next try.
    """
    cleaned = []
    for path, data in _read(records_dir(state_dir)):
        if _running(data):
            continue
        stopped = tuple(
            int(pid)
            for pid, started in data.get("loads", {}).items()
            if _stop_load(int(pid), started)
        )
        runs = dict(data.get("flow_runs") or {})
        problems: list[str] = []
        crashed = 0
        keep = False
        if runs and crash_runs is not None:
            message = (
                f"{data.get('release_id') or 'the release'} was killed"
                + (f" at step {data['step']}" if data.get("step") else "")
                + f" (its process {data['pid']} is gone); found by a later run"
            )
            try:
                crashed = crash_runs(data.get("api_url"), runs, message)
            except Exception as exc:  # the record stays for the next try
                problems.append(f"its Prefect runs could not be marked crashed ({exc})")
                keep = True
        elif runs:
            problems.append("its Prefect runs were left as they are")
        if not keep:
            path.unlink(missing_ok=True)
        cleaned.append(
            Orphan(
                pid=int(data["pid"]),
                release_id=data.get("release_id"),
                step=data.get("step"),
                since=float(data.get("since") or 0.0),
                flow_runs=runs,
                loads_stopped=stopped,
                runs_crashed=crashed,
                problems=tuple(problems),
            )
        )
    return cleaned


_settled = threading.Event()
_settled_line: list[str] = []


def settle(line: str) -> None:
    """This process' release is decided and committed, its environment is down: ``line``
    says so. A command inside ``leave_when_settled`` may report it and exit."""
    _settled_line[:] = [line]
    _settled.set()


@contextlib.contextmanager
def leave_when_settled(api_answers: Callable[[], bool], grace_s: float = 2.0) -> Iterator[None]:
    """Run a release; once it ``settle``s and ``api_answers`` says the Prefect API is gone,
    give it ``grace_s`` to end by itself, then print its line and exit 1 at once."""
    done = threading.Event()
    _settled.clear()

    def watch() -> None:
        while not _settled.wait(0.2):
            if done.is_set():
                return
        if api_answers() or done.wait(grace_s):
            return
        sys.stdout.flush()
        sys.stderr.write(f"inferops: error: {_settled_line[0]}\n")
        sys.stderr.flush()
        os._exit(1)

    watcher = threading.Thread(target=watch, name="leave-when-settled", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
