"""The local platform: one machine, real processes, nginx as the traffic router.

``start`` launches the agent's keeper (``local_keeper``) in its own session,
so the environment outlives the command that started it; the keeper starts the
agent (``local_agent``) and starts it again if it is killed, while the router
and the pods keep serving. ``stop`` asks the keeper to stop everything, then
stops whatever an agent recorded and nobody stopped. The agent reconciles the
runtime to the GitOps remote and writes ``status.json``; this client reads it
to answer ``status`` and ``wait_until_live``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from inferops.platforms.base import LiveState, NotLive, PlatformError
from inferops.platforms.layout import LocalLayout
from inferops.platforms.supervisor import kill_recorded


def _answers(port: int) -> bool:
    """Whether something accepts connections on the loopback port now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        # Reap the agent if this process started it and it has exited.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalPlatform:
    """Client of the local agent."""

    def __init__(self, layout: LocalLayout) -> None:
        self.layout = layout
        self.status_path = layout.state_dir / "status.json"
        self.pid_path = layout.state_dir / "keeper.pid"
        self.log_path = layout.state_dir / "logs" / "agent.log"
        self.run_dir = layout.state_dir / "run"

    def keeper_pid(self) -> int | None:
        """The running keeper's pid (it keeps an agent running), or None."""
        try:
            pid = int(self.pid_path.read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def agent_pid(self) -> int | None:
        """The running agent's pid (as it reports it), or None."""
        try:
            pid = int(json.loads(self.status_path.read_text())["agent_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return pid if _alive(pid) else None

    def start(self, timeout_s: float = 90.0, progress: Callable[[str], None] = print) -> LiveState:
        """Start the agent (if not running) and wait until the head commit is live."""
        layout_file = self.layout.state_dir / "layout.json"
        self.layout.dump(layout_file)
        if self.keeper_pid() is None:
            self.status_path.unlink(missing_ok=True)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            # A daemon in its own session: it outlives this command, which keeps no handle on it.
            pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-m", "inferops.platforms.local_keeper", str(layout_file)],
                dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (
                        os.POSIX_SPAWN_OPEN,
                        1,
                        str(self.log_path),
                        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                        0o644,
                    ),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                ],
                setsid=True,
            )
            self.pid_path.write_text(str(pid))
            progress(f"started the local agent's keeper (pid {pid}); logs in {self.log_path}")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.status()
            if state.live:
                if self.layout.prefect_enabled:
                    self._wait_prefect(deadline, progress)
                return state
            if self.keeper_pid() is None:
                raise PlatformError(f"the local agent stopped: {state.error or self._log_tail()}")
            time.sleep(0.2)
        raise PlatformError(
            f"the environment did not come up in {timeout_s:.0f}s: "
            f"{self.status().error or self._log_tail()}"
        )

    def _wait_prefect(self, deadline: float, progress: Callable[[str], None]) -> None:
        url = self.layout.prefect_api_url
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as resp:
                    if resp.status == 200:
                        progress(
                            f"Prefect server at {url.removesuffix('/api')}; the worker "
                            "deploys prefect.yaml (logs/prefect-worker.log)"
                        )
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise PlatformError(
            f"the Prefect server at {url} did not start: see "
            f"{self.layout.state_dir / 'logs' / 'prefect-server.log'}"
        )

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log_path.read_text().splitlines()[-3:])
        except OSError:
            return "no agent log"

    def stop(self, timeout_s: float = 60.0) -> bool:
        """Stop the agent and everything it runs; False when nothing was running.

        Whatever an agent recorded and nobody stopped (the keeper and the agent were
        both killed) is stopped too: no process of the environment outlives ``down``.
        """
        pid = self.keeper_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
        self.pid_path.unlink(missing_ok=True)
        leftover = kill_recorded(self.run_dir)
        return pid is not None or bool(leftover)

    def status(self) -> LiveState:
        """The live state as the agent reports it; when the agent is not running, what
        answers right now instead (each part's port is tried; the Prefect worker, which
        has none, is unknown). Nothing is live without the agent."""
        try:
            data = json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return LiveState(revision=None, live=False, error="the environment is not running")
        if self.agent_pid() is None:
            last = f"; it last reported: {data['error']}" if data.get("error") else ""
            data["live"] = False
            data["error"] = (
                f"the local agent is not running (see {self.log_path}): run inferops up; "
                f"the parts below were checked just now{last}"
            )
            data["children"] = self._checked_now(data.get("children") or {})
            for pod in data.get("pods") or []:
                pod["answering"] = _answers(int(pod["port"]))
        return LiveState(
            revision=data.get("revision"),
            live=bool(data.get("live")),
            pods=tuple(data.get("pods", ())),
            weights=dict(data.get("weights", {})),
            error=data.get("error"),
            components=dict(data.get("children", {})),
            endpoints=self._endpoints(),
        )

    def _checked_now(self, reported: dict[str, Any]) -> dict[str, Any]:
        """The parts' state tried now: ``running`` true or false by their ports, else None."""
        lay = self.layout
        ports = {
            "redis": lay.redis_port,
            "prometheus": lay.prometheus_port,
            "nginx": lay.router_port,
            "prefect-server": lay.prefect_port,
        }
        return {
            name: {
                **part,
                "running": _answers(ports[name]) if name in ports else None,
                "checked": "now",
            }
            for name, part in reported.items()
        }

    def _endpoints(self) -> dict[str, str]:
        lay = self.layout
        out = {"router": lay.router_url, "prometheus": lay.prometheus_url, "redis": lay.redis_url}
        if lay.prefect_enabled:
            out["prefect"] = lay.prefect_api_url.removesuffix("/api")
        out["gitops"] = str(lay.gitops_remote)
        return out

    def wait_until_live(self, revision: str, timeout_s: float) -> LiveState:
        """Block until the agent reports ``revision`` live."""
        deadline = time.monotonic() + timeout_s
        state = self.status()
        while time.monotonic() < deadline:
            state = self.status()
            if state.revision == revision and state.live:
                return state
            if state.error and revision[:12] in state.error:
                raise NotLive(state.error)
            if self.keeper_pid() is None:
                raise NotLive("the local environment is not running: run inferops up")
            time.sleep(0.1)
        raise NotLive(
            f"commit {revision[:12]} not live after {timeout_s:.0f}s "
            f"(live: {(state.revision or 'nothing')[:12]}; {state.error or 'no error reported'})"
        )
