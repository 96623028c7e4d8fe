"""Configuration files of the local platform, rendered as pure functions.

nginx splits traffic between the stable and canary pods with integer server
weights chosen so that each track's share equals the desired canary weight,
whatever the replica counts; a track at 0% is left out (nginx rejects
``weight=0``). Prometheus discovers pods from a file, each target labelled
with its env, track, version and pod.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pod:
    """One running service instance."""

    name: str
    track: str
    image: str
    port: int
    metrics_port: int

    @property
    def version(self) -> str:
        """The short digest of the image the pod runs."""
        return self.image.rpartition("@sha256:")[2][:12] or self.image


def server_weights(weight: int, n_stable: int, n_canary: int) -> tuple[int, int]:
    """Per-server nginx weights (stable, canary) giving the canary ``weight`` percent."""
    if not 0 <= weight <= 100:
        raise ValueError(f"weight must be 0..100, got {weight}")
    if weight == 0 or n_canary == 0:
        return (1, 0)
    if weight == 100 or n_stable == 0:
        return (0, 1)
    stable, canary = (100 - weight) * n_canary, weight * n_stable
    g = math.gcd(stable, canary)
    return stable // g, canary // g


def render_upstreams(pods: Sequence[Pod], weight: int, revision: str) -> str:
    """The nginx upstream block for the pods at the canary weight."""
    stable = [p for p in pods if p.track == "stable"]
    canary = [p for p in pods if p.track == "canary"]
    ws, wc = server_weights(weight, len(stable), len(canary))
    lines = [f"# revision {revision} canary-weight {weight}", "upstream inferops_service {"]
    for pod, w in [(p, ws) for p in stable] + [(p, wc) for p in canary]:
        if w > 0:
            lines.append(f"    server 127.0.0.1:{pod.port} weight={w};  # {pod.name}")
    if len(lines) == 2:
        raise ValueError("no pod can take traffic: refusing to render an empty upstream")
    lines += ["    keepalive 64;", "}", ""]
    return "\n".join(lines)


def render_nginx(state_dir: Path, port: int, run_as_root: bool) -> str:
    """The main nginx configuration; upstreams come from a file rewritten on each change."""
    d = state_dir
    user = "user root;\n" if run_as_root else ""
    return f"""{user}worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    client_max_body_size 2m;
    include {d}/upstreams.conf;
    server {{
        listen 127.0.0.1:{port};
        include {d}/revision.conf;
        location / {{
            proxy_pass http://inferops_service;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def render_revision(revision: str) -> str:
    """A location answering the revision nginx serves, to tell when a reload took effect."""
    return (
        "location = /-/revision {\n"
        "    default_type text/plain;\n"
        f'    return 200 "{revision}";\n'
        "}\n"
    )


def render_targets(pods: Sequence[Pod], env: str) -> str:
    """Prometheus file-based service discovery: one target per pod, with labels."""
    return json.dumps(
        [
            {
                "targets": [f"127.0.0.1:{p.metrics_port}"],
                "labels": {"env": env, "track": p.track, "version": p.version, "pod": p.name},
            }
            for p in pods
        ],
        indent=2,
    )


def render_prometheus(targets_file: Path, scrape_interval: str) -> str:
    """The Prometheus configuration: scrape every pod listed in the targets file."""
    return f"""global:
  scrape_interval: {scrape_interval}
  evaluation_interval: {scrape_interval}
scrape_configs:
  - job_name: inferops-service
    file_sd_configs:
      - files: ["{targets_file}"]
        refresh_interval: 1s
"""


def render_redis(state_dir: Path, port: int) -> list[str]:
    """The redis-server command line: loopback only, nothing persisted."""
    return [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(state_dir),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]
