"""A Prefect server and process worker beside the local environment.

The server keeps its SQLite database under the environment's state folder.
The worker process first waits for the server, deploys ``prefect.yaml`` (so
the schedules and triggers it declares are live), then becomes the worker of
the ``inferops-local`` process pool. Both are supervised by the local agent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from inferops.platforms.layout import LocalLayout
from inferops.platforms.supervisor import Child

POOL = "inferops-local"


def prefect_env(layout: LocalLayout) -> dict[str, str]:
    """Environment shared by the server, the worker and commands using them."""
    home = layout.prefect_home
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": layout.prefect_api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(layout.prefect_port),
        "PREFECT_UI_API_URL": layout.prefect_api_url,
        # prefect.yaml passes it to the deployments as their config_path parameter.
        "INFEROPS_CONFIG": str(layout.config_path),
    }


def _prefect() -> str:
    return str(Path(sys.executable).parent / "prefect")


def prefect_children(layout: LocalLayout) -> list[Child]:
    """The supervised Prefect server and worker."""
    layout.prefect_home.mkdir(parents=True, exist_ok=True)
    env = prefect_env(layout)
    logs = layout.state_dir / "logs"
    server = Child(
        "prefect-server",
        [_prefect(), "server", "start", "--host", "127.0.0.1", "--port", str(layout.prefect_port)],
        logs / "prefect-server.log",
        env=env,
    )
    worker = Child(
        "prefect-worker",
        [
            sys.executable,
            "-m",
            "inferops.platforms.local_prefect",
            str(layout.state_dir / "layout.json"),
        ],
        logs / "prefect-worker.log",
        env=env,
        cwd=layout.project_root,
        stop_signal=2,  # SIGINT: the worker ignores SIGTERM for too long
    )
    return [server, worker]


def _wait_healthy(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    raise SystemExit(f"Prefect server at {url} not healthy after {timeout_s:.0f}s")


def main() -> None:
    """Wait for the server, deploy prefect.yaml, then run the worker."""
    layout = LocalLayout.load(Path(sys.argv[1]))
    _wait_healthy(layout.prefect_api_url, 120)
    prefect = _prefect()
    subprocess.run(
        [prefect, "work-pool", "create", POOL, "--type", "process", "--overwrite"], check=False
    )
    subprocess.run([prefect, "--no-prompt", "deploy", "--all"], check=True, cwd=layout.project_root)
    os.execv(prefect, [prefect, "worker", "start", "--pool", POOL, "--type", "process"])


if __name__ == "__main__":
    main()
