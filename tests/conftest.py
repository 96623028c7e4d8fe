"""Session-wide settings for every test: Prefect offline, its state in a temporary folder."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _prefect_offline(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep Prefect's state out of the home folder and its telemetry off."""
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
