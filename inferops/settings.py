"""Process-wide settings read from the environment, in one place.

Prefect reads its settings from the environment when it is first imported,
so ``prepare_prefect`` runs before any flow module is imported: it points
commands at the environment's Prefect server when that is up, and otherwise
configures Prefect's ephemeral mode to keep its state inside the project.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path


def api_answers(api_url: str) -> bool:
    """Whether the Prefect API at ``api_url`` answers its health check now."""
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def prepare_prefect(state_dir: Path, server_api_url: str | None) -> str:
    """Choose the Prefect API for this process; says which in one word."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if os.environ.get("PREFECT_API_URL"):
        return "configured"
    if server_api_url and api_answers(server_api_url):
        os.environ["PREFECT_API_URL"] = server_api_url
        return "server"
    home = state_dir / "prefect-ephemeral"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home))
    return "ephemeral"
