"""Supervised children on real processes: recorded, adopted by a new supervisor, stopped."""

import json
import signal
import time
from pathlib import Path

from inferops.platforms.supervisor import (
    Child,
    Supervisor,
    kill_recorded,
    process_start,
    read_records,
)


def sleeper(tmp_path: Path, name: str = "sleeper") -> Child:
    return Child(name, ["sleep", "60"], tmp_path / f"{name}.log", run_dir=tmp_path / "run")


def test_a_child_outlives_its_supervisor_and_the_next_one_adopts_it(tmp_path: Path) -> None:
    first = Supervisor()
    child = first.add(sleeper(tmp_path))
    pid = child.pid
    assert pid is not None and process_start(pid) is not None
    # The supervisor is gone (nothing stops the child); its record says what runs.
    records = read_records(tmp_path / "run")
    assert records["sleeper"]["pid"] == pid
    second = Supervisor()
    adopted = second.adopt(sleeper(tmp_path), records["sleeper"])
    assert adopted.running and adopted.pid == pid
    assert second.poll() == []  # running: nothing to restart
    second.stop_all()
    assert process_start(pid) is None
    assert read_records(tmp_path / "run") == {}
    child.proc.wait()  # type: ignore[union-attr]  # reap it here, where it was started


def test_an_adopted_child_that_dies_is_started_again(tmp_path: Path) -> None:
    first = Supervisor()
    child = first.add(sleeper(tmp_path))
    record = read_records(tmp_path / "run")["sleeper"]
    second = Supervisor()
    adopted = second.adopt(sleeper(tmp_path), record)
    child.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    child.proc.wait()  # type: ignore[union-attr]
    assert not adopted.running
    second.poll()  # notices, and waits its back-off
    adopted.next_start = 1.0  # its back-off is over (a monotonic time long past)
    assert second.poll() == ["sleeper"]
    assert adopted.running and adopted.pid != child.pid and adopted.restarts == 1
    second.stop_all()


def test_records_of_gone_or_reused_pids_are_dropped(tmp_path: Path) -> None:
    first = Supervisor()
    first.add(sleeper(tmp_path))
    path = tmp_path / "run" / "sleeper.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "started": record["started"] + 1}))  # another process
    assert read_records(tmp_path / "run") == {}
    assert not path.exists()
    first.stop_all()


def test_kill_recorded_leaves_nothing_running(tmp_path: Path) -> None:
    children = [Supervisor().add(sleeper(tmp_path, name)) for name in ("a", "pod/b")]
    assert sorted(kill_recorded(tmp_path / "run", timeout_s=5)) == ["a", "pod/b"]
    for child in children:
        assert child.proc.wait(5) is not None  # type: ignore[union-attr]
    assert read_records(tmp_path / "run") == {}


def test_a_killed_childs_helpers_go_with_it(tmp_path: Path) -> None:
    """nginx's workers outlive a master killed with -9 and keep its port; the supervisor
    stops what is left of a dead child's process group before it starts it again."""
    helper_file = tmp_path / "helper.pid"
    sup = Supervisor()
    child = sup.add(
        Child(
            "master",
            ["sh", "-c", f"sleep 60 & echo $! > {helper_file}; wait"],
            tmp_path / "master.log",
            run_dir=tmp_path / "run",
        )
    )
    deadline = time.monotonic() + 10
    while not (helper_file.exists() and helper_file.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    helper = int(helper_file.read_text())
    started = process_start(helper)
    assert started is not None
    child.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    child.proc.wait()  # type: ignore[union-attr]
    assert process_start(helper) == started  # the helper outlived its parent
    sup.poll()  # notices the child is gone
    deadline = time.monotonic() + 10
    while process_start(helper) == started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_start(helper) != started
    sup.stop_all()
