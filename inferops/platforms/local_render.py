"""Configuration files of the local platform, rendered as pure functions.

nginx splits traffic between the stable and canary pods with integer server
weights chosen so that each track's share equals the desired canary weight,
whatever the replica counts; a track at 0% is left out (nginx rejects
``weight=0``). Prometheus discovers pods from a file, each target labelled
with its env, track, version and pod.

Every answer names the track and version that served it: a pod sets
``x-inferops-track`` and ``x-inferops-version`` itself, and where the router
answers for it (a 502 or 504 when the pod refused, dropped or timed out the
request) nginx adds them from the pod it tried, so the load generator counts
the error against that track instead of "unknown". The mapping from pod
address to track and version is rendered with the upstreams, so the two
always change together.
"""

from __future__ import annotations

import json
import math
import re
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


_UNQUOTED = re.compile(r"^[A-Za-z0-9._:/@+-]*$")


def _literal(value: str) -> str:
    """``value`` as a quoted nginx string; a map's value may otherwise name variables."""
    if not _UNQUOTED.match(value):
        raise ValueError(f"{value!r} cannot be a router header value")
    return f'"{value}"'


def _address_map(variable: str, values: Sequence[tuple[int, str]]) -> list[str]:
    """An nginx map from the pod nginx last tried for a request (by port) to a value.

    ``$upstream_addr`` lists every server tried, "a, b" within the upstream (and "a : b"
    across internal redirects); the last one is the one whose answer, or failure, the
    client got.
    """
    lines = [f"map $upstream_addr ${variable} {{", '    default "";']
    for port, value in values:
        address = re.escape(f"127.0.0.1:{port}")
        lines.append(f'    "~(^|\\s){address}$" {_literal(value)};')
    return [*lines, "}"]


def _track_maps(pods: Sequence[Pod]) -> list[str]:
    """``$inferops_upstream_track`` and ``$inferops_upstream_version`` of the pods' addresses."""
    return [
        *_address_map("inferops_upstream_track", [(p.port, p.track) for p in pods]),
        *_address_map("inferops_upstream_version", [(p.port, p.version) for p in pods]),
    ]


def render_idle_upstreams() -> str:
    """The upstreams before any pod serves: nginx answers 502 for itself, naming no track."""
    return "\n".join(
        ["upstream inferops_service { server 127.0.0.1:9 down; }", *_track_maps([]), ""]
    )


def render_upstreams(pods: Sequence[Pod], weight: int, revision: str) -> str:
    """The nginx upstream block for the pods at the canary weight, and their tracks by address."""
    stable = [p for p in pods if p.track == "stable"]
    canary = [p for p in pods if p.track == "canary"]
    ws, wc = server_weights(weight, len(stable), len(canary))
    servers = [(p, w) for p, w in [(p, ws) for p in stable] + [(p, wc) for p in canary] if w > 0]
    if not servers:
        raise ValueError("no pod can take traffic: refusing to render an empty upstream")
    lines = [f"# revision {revision} canary-weight {weight}", "upstream inferops_service {"]
    # max_fails=0: after one failed connection nginx would otherwise send a pod nothing for
    # 10 s, moving a dead canary's share to stable and its errors out of the judge's sight.
    # The agent restarts a crashed pod; until then its share of requests fails, as its track's.
    for pod, w in servers:
        lines.append(f"    server 127.0.0.1:{pod.port} weight={w} max_fails=0;  # {pod.name}")
    # Idle connections close before the pod's own keep-alive timeout (uvicorn's 5 s) would,
    # so nginx never sends a request on one the pod is closing: a 502, never retried.
    lines += ["    keepalive 64;", "    keepalive_timeout 4s;", "}"]
    return "\n".join([*lines, *_track_maps([p for p, _ in servers]), ""])


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
    # A pod that answered named its track and version itself: then add nothing (an empty
    # add_header adds no header), else name the pod nginx tried.
    map $upstream_http_x_inferops_track $inferops_router_track {{
        "" $inferops_upstream_track;
        default "";
    }}
    map $upstream_http_x_inferops_version $inferops_router_version {{
        "" $inferops_upstream_version;
        default "";
    }}
    server {{
        listen 127.0.0.1:{port};
        include {d}/revision.conf;
        location / {{
            proxy_pass http://inferops_service;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 300s;
            # No retry on another pod: a request the canary failed must count against the
            # canary. Retried on stable, it would be stable's success, hiding a dead canary
            # from the judge and moving its share of traffic to stable.
            proxy_next_upstream off;
            add_header x-inferops-track $inferops_router_track always;
            add_header x-inferops-version $inferops_router_version always;
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
