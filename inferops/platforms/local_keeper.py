"""The local agent's keeper: starts the agent and starts it again if it is killed.

Run as ``python -m inferops.platforms.local_keeper LAYOUT.json`` (``inferops
up`` does, in a session of its own). The agent is the environment's control
plane; when it dies the data plane keeps serving (its children run in sessions
of their own) and the keeper starts a new agent after a short, growing delay,
which adopts what is still running and reconciles from Git.

An agent that exits by itself is not restarted: 0 is a stop it was asked for,
1 a failure it has reported (a port taken, say); the keeper exits with the same
code. SIGTERM or SIGINT to the keeper stops the agent, and with it everything.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from inferops.platforms.layout import LocalLayout
from inferops.platforms.supervisor import kill_recorded

log = logging.getLogger("inferops.keeper")
SETTLED_S = 60.0
"""An agent that ran this long before it was killed restarts after the shortest delay."""


def keep(argv: list[str], run_dir: Path) -> int:
    """Run ``argv`` (the agent) until it exits by itself or the keeper is told to stop."""
    stopping = False
    agent: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = 0.5
    while True:
        started = time.monotonic()
        agent = subprocess.Popen(argv)
        code = agent.wait()
        if code >= 0:
            return code
        if stopping:
            # Killed while it was stopping: finish its work, so nothing is left running.
            kill_recorded(run_dir)
            return 1
        if time.monotonic() - started >= SETTLED_S:
            delay = 0.5
        log.warning("the agent was killed (signal %d); starting it again in %.1fs", -code, delay)
        time.sleep(delay)
        delay = min(delay * 2, 10.0)
        if stopping:
            kill_recorded(run_dir)
            return 0


def main(args: list[str] | None = None) -> int:
    """Entry point of the keeper process."""
    argv = args if args is not None else sys.argv[1:]
    if len(argv) != 1:
        print("usage: python -m inferops.platforms.local_keeper LAYOUT.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    layout = LocalLayout.load(Path(argv[0]))
    agent = [sys.executable, "-m", "inferops.platforms.local_agent", argv[0]]
    return keep(agent, layout.state_dir / "run")


if __name__ == "__main__":
    sys.exit(main())
