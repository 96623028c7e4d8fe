"""Release records on real processes: what a killed release leaves is found and cleaned,
and a release whose environment (and Prefect server) went down leaves at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from inferops import runs
from inferops.platforms.supervisor import process_start
from inferops.rollout import OutageWatch


def _dead_pid() -> tuple[int, int]:
    """The pid and start time of a process that has exited."""
    proc = subprocess.Popen(["sleep", "0.2"])
    started = process_start(proc.pid)
    assert started is not None
    proc.wait()
    return proc.pid, started


def _write(state_dir: Path, pid: int, **fields: object) -> Path:
    path = runs.records_dir(state_dir) / f"{pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "flow_runs": {}, "loads": {}, **fields}))
    return path


def test_a_release_is_recorded_while_it_runs_and_the_record_goes_when_it_ends(
    tmp_path: Path,
) -> None:
    with runs.recording(tmp_path) as outer:
        outer.add_flow_run("run-1", "release")
        with runs.recording(tmp_path) as inner:  # the rollout inside the release
            assert inner is outer
            inner.add_flow_run("run-2", "rollout")
            inner.update(release_id="r-7", step="2/3 (50%)")
        assert outer.path.is_file(), "the rollout ended; the release still runs"
        [live] = runs.live(tmp_path)
        assert live["pid"] == os.getpid() and live["release_id"] == "r-7"
        assert live["flow_runs"] == {"run-1": "release", "run-2": "rollout"}
        assert runs.current(tmp_path) is outer
        # A running release is nobody's orphan.
        assert runs.clean_orphans(tmp_path, None) == []
    assert not outer.path.exists() and runs.current(tmp_path) is None
    assert runs.live(tmp_path) == []


def test_a_killed_releases_load_is_stopped_and_its_runs_crashed(tmp_path: Path) -> None:
    pid, started = _dead_pid()
    load = subprocess.Popen(["sleep", "60"])
    crashed: list[tuple[str | None, Mapping[str, str], str]] = []

    def crash(api: str | None, flow_runs: Mapping[str, str], message: str) -> int:
        crashed.append((api, dict(flow_runs), message))
        return len(flow_runs)

    path = _write(
        tmp_path,
        pid,
        started=started,
        since=0,
        release_id="r-3",
        step="1/2 (50%)",
        api_url="http://127.0.0.1:1/api",
        flow_runs={"a": "release", "b": "rollout"},
        loads={str(load.pid): process_start(load.pid)},
    )
    try:
        [orphan] = runs.clean_orphans(tmp_path, crash)
        assert load.wait(timeout=10) is not None  # stopped
    finally:
        load.kill()
    assert orphan.release_id == "r-3" and orphan.loads_stopped == (load.pid,)
    assert orphan.runs_crashed == 2 and not path.exists()
    [(api, flow_runs, message)] = crashed
    assert api == "http://127.0.0.1:1/api" and flow_runs == {"a": "release", "b": "rollout"}
    assert "r-3 was killed at step 1/2 (50%)" in message
    said = orphan.describe()
    assert "r-3" in said and "marked 2 of its 2 Prefect runs crashed" in said
    assert f"stopped its load (pid {load.pid})" in said


def test_runs_that_cannot_be_marked_keep_the_record_for_the_next_try(tmp_path: Path) -> None:
    pid, started = _dead_pid()
    path = _write(tmp_path, pid, started=started, flow_runs={"a": "release"})

    def unreachable(api: str | None, flow_runs: Mapping[str, str], message: str) -> int:
        raise ConnectionError("connection refused")

    [orphan] = runs.clean_orphans(tmp_path, unreachable)
    assert path.exists() and orphan.runs_crashed == 0
    assert "could not be marked crashed (connection refused)" in orphan.describe()
    [again] = runs.clean_orphans(tmp_path, lambda api, flow_runs, message: 1)
    assert again.runs_crashed == 1 and not path.exists()


def test_a_reused_pid_is_not_mistaken_for_the_release(tmp_path: Path) -> None:
    """A record whose pid now belongs to another process (another start time) is orphaned."""
    _write(tmp_path, os.getpid(), started=-1)
    assert runs.live(tmp_path) == []
    [orphan] = runs.clean_orphans(tmp_path, None)
    assert orphan.pid == os.getpid()


_SETTLES = """
import sys, time
from inferops import runs

with runs.leave_when_settled(lambda: sys.argv[1] == "answers", grace_s=0.2):
    runs.settle("r-4 rolled back at step 1 of 2 (50%): the environment went down")
    time.sleep(3)  # Prefect's client retrying a dead server, in a real release
print("finished by itself")
"""


@pytest.mark.parametrize("api", ["gone", "answers"])
def test_a_settled_release_leaves_at_once_only_when_prefect_is_gone(api: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SETTLES, api], capture_output=True, text=True, timeout=60
    )
    if api == "gone":
        assert done.returncode == 1 and "finished by itself" not in done.stdout
        assert done.stderr == (
            "inferops: error: r-4 rolled back at step 1 of 2 (50%): the environment went down\n"
        )
    else:
        assert done.returncode == 0 and "finished by itself" in done.stdout


def test_an_outage_counts_once_it_lasts() -> None:
    """A router the agent restarts within a second is no outage; one that stays down is."""
    now = [0.0]
    found: list[str | None] = ["router refuses", "router refuses", None, "router refuses"]
    watch = OutageWatch(lambda: found.pop(0) if found else "router refuses", 2.0, lambda: now[0])
    assert watch() is None  # down at t=0: not yet
    now[0] = 1.0
    assert watch() is None
    now[0] = 1.5
    assert watch() is None and watch.since is None  # it came back
    now[0] = 2.0
    assert watch() is None  # down again, from t=2
    now[0] = 4.0
    assert watch() == "router refuses"

    up = OutageWatch(lambda: None)
    assert up.confirm(sleep=lambda s: None) is None

    ticks = iter(range(100))
    down = OutageWatch(lambda: "router refuses", 2.0, lambda: float(next(ticks)))
    assert down.confirm(sleep=lambda s: None) == "router refuses"
