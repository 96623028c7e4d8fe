"""Helpers the pipeline's tests share: a throw-away local environment and the CLI.

A plain module, imported by name (``from support import ...``): a test that imported from
``conftest`` would get whichever of the suite's conftest files was loaded last.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def needs_binaries(*names: str) -> None:
    """Fail with what to run when the real parts are not installed."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run `make setup` (installs them)")


def _cli(*args: str) -> tuple[list[str], dict[str, str]]:
    """The ``inferops`` command line and the environment a user's shell would give it."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/sbin:{os.environ['PATH']}"}
    env.pop("PREFECT_API_URL", None)
    return [f"{bin_dir}/inferops", *args], env


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``inferops`` command as a user would, in ``cwd``."""
    argv, env = _cli(*args)
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


_RUNS = """
import json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.sorting import FlowRunSort

with get_client(sync_client=True) as client:
    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[sys.argv[1]])),
        sort=FlowRunSort.START_TIME_DESC,
        limit=20,
    )
print(json.dumps([
    {"type": r.state.type.value, "name": r.state.name, "message": r.state.message}
    for r in runs if r.state is not None
]))
"""


def flow_runs(flow_name: str) -> list[dict[str, str]]:
    """The latest runs of a flow as Prefect's API lists them (newest first).

    Asked in a process of its own, as ``run_cli``'s commands run: in ephemeral mode that
    process starts the API over the same database and stops it when it exits.
    """
    env = {**os.environ}
    env.pop("PREFECT_API_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", _RUNS, flow_name],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def start_cli(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """Start the ``inferops`` command as ``run_cli`` runs it, without waiting for it."""
    argv, env = _cli(*args)
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class SteadyClient:
    """Sends chat completions through a router back to back, counting what did not get
    through: refused or broken connections, and the router's own 502-504 answers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.body = {
            "model": "sim-llama-3-8b",
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 4,
        }
        self.sent = 0
        self.refused = 0
        self.gateway_errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                self.sent += 1
                try:
                    resp = client.post("/v1/chat/completions", json=self.body)
                except httpx.TransportError:
                    self.refused += 1
                    continue
                self.gateway_errors += resp.status_code in (502, 503, 504)

    def __enter__(self) -> SteadyClient:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(15)


@contextlib.contextmanager
def running_env(dir_: Path) -> Iterator[Path]:
    """The environment configured in ``dir_``, brought up by the CLI and down afterwards."""
    needs_binaries("redis-server", "nginx", "prometheus")
    up = run_cli(dir_, "up", "--env", "local")
    assert up.returncode == 0, up.stderr[-3000:]
    try:
        yield dir_
    finally:
        down = run_cli(dir_, "down", "--env", "local")
        assert down.returncode == 0, down.stderr[-3000:]


PORT_SPAN = 200
"""A local environment listens on ``base_port`` to ``base_port + 199``."""


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port() -> int:
    """A ``base_port`` whose ports are all free now, drawn at random below the ephemeral
    range: tests never collide with an environment already on this machine, a second
    test session, or each other."""
    draw = random.SystemRandom()
    for _ in range(100):
        base = draw.randrange(10_000, 32_000 - PORT_SPAN, PORT_SPAN)
        if all(_free(base + i) for i in range(PORT_SPAN)):
            return base
    raise RuntimeError("no free range of 200 ports from 10000 to 32000 on this machine")


def write_config(
    dir_: Path,
    base_port: int,
    steps: str = "[50, 100]",
    window_s: float = 5,
    prefect_server: bool = False,
) -> Path:
    """An inferops.yaml for one environment whose state lives in ``dir_``."""
    path = dir_ / "inferops.yaml"
    path.write_text(
        f"""
service_source: {ROOT / "service"}
state_dir: {dir_ / "state"}
environments:
  local:
    terraform:
      module: {ROOT / "terraform/environments/local"}
      variables: {{base_port: {base_port}, stable_replicas: 2, canary_replicas: 2}}
    canary:
      steps: {steps}
      window_s: {window_s}
      budget_s: 300
      load_profile: {ROOT / "loadtests/profiles/step.yaml"}
    slo_file: {ROOT / "loadtests/slos.yaml"}
    manifests: {{source: {ROOT / "gitops/overlays/local"}, policies: false}}
    prefect_server: {str(prefect_server).lower()}
"""
    )
    return path
