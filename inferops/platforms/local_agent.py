"""The local platform's agent: a small GitOps controller for one machine.

Run as ``python -m inferops.platforms.local_agent LAYOUT.json``. It starts
Redis, Prometheus, nginx (and, when enabled, a Prefect server and worker),
then watches the GitOps remote. Whenever the branch moves it reconciles:
starts the pods the new commit asks for and waits until they are ready,
points nginx at them with the commit's weights and reloads it gracefully,
updates Prometheus' targets, stops pods no longer wanted, and only then
reports the commit live in ``status.json``. Crashed children are restarted.
SIGTERM stops everything, pods first.

The agent is the control plane only: its children run in sessions of their
own and are recorded (``inferops.platforms.supervisor``), so when the agent
dies the router, the pods and the rest keep serving. Its keeper
(``local_keeper``) starts it again; it adopts every recorded child still
running, then reconciles from Git as usual.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inferops.builders.local import BuildError, unpack
from inferops.gitops.manifests import DesiredState, ManifestError, TrackSpec, read_state
from inferops.gitops.repo import GitOpsError, GitOpsRepo
from inferops.platforms.layout import LocalLayout
from inferops.platforms.local_prefect import prefect_children
from inferops.platforms.local_render import (
    Pod,
    render_idle_upstreams,
    render_nginx,
    render_prometheus,
    render_redis,
    render_revision,
    render_targets,
    render_upstreams,
    server_weights,
)
from inferops.platforms.supervisor import Child, Supervisor, kill_recorded, read_records

log = logging.getLogger("inferops.agent")
READY_TIMEOUT_S = 30.0
POLL_S = 0.25
PORT_GRACE_S = 15.0


class ReconcileError(Exception):
    """A commit could not be made live."""


def _http_ok(url: str, timeout: float = 1.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body.decode() if resp.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def serve_command(port: int, metrics_port: int, *args: str) -> list[str]:
    """The command line of one service process on loopback: what the image's entrypoint runs."""
    return [
        sys.executable,
        "-m",
        "inferops_service",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
        *args,
    ]


def nginx_workers(pid_file: Path) -> set[int]:
    """The worker processes of the nginx whose master wrote ``pid_file`` (old and new)."""
    try:
        master = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return set()
    workers = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command may hold spaces and parentheses: the fields follow the last ')'.
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == master:
                workers.add(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return workers


def reload_nginx(
    reload: Callable[[], None], pid_file: Path, serving: Callable[[], bool], timeout_s: float
) -> None:
    """Reload nginx and return once only workers with the new configuration can take requests.

    A new worker answering (``serving``) is not enough: an old one may still accept a
    connection, with the old upstreams, until it has handled its QUIT. So this also waits
    for the old workers to exit, or at most 5 s (they finish their open requests first).
    """
    old = nginx_workers(pid_file)
    reload()
    deadline = time.monotonic() + timeout_s
    while not serving():
        if time.monotonic() >= deadline:
            raise ReconcileError(f"nginx did not load its new configuration in {timeout_s:g}s")
        time.sleep(0.05)
    settled = time.monotonic() + 5.0
    while old & nginx_workers(pid_file) and time.monotonic() < settled:
        time.sleep(0.02)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the servers themselves do: connections in TIME_WAIT must not count as taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_port_free(port: int, timeout_s: float) -> bool:
    """True once ``port`` is free; a previous agent's children may still be exiting."""
    deadline = time.monotonic() + timeout_s
    while not _port_free(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def spec_hash(spec: TrackSpec) -> str:
    """A short hash of what makes pods differ: image and environment."""
    raw = json.dumps([spec.image, list(spec.env)]).encode()
    return hashlib.sha256(raw).hexdigest()[:8]


_POD_FIELDS = ("track", "image", "port", "metrics_port", "env", "cwd")
"""What a pod's record holds for the agent that adopts it (and restarts it if it crashes)."""


def desired_pods(state: DesiredState) -> dict[str, tuple[str, TrackSpec]]:
    """Pod names the state asks for, with their track and spec."""
    out: dict[str, tuple[str, TrackSpec]] = {}
    for track, spec in (("stable", state.stable), ("canary", state.canary)):
        for i in range(spec.replicas):
            out[f"{track}-{spec_hash(spec)}-{i}"] = (track, spec)
    return out


class Agent:
    """Supervises the environment's processes and reconciles it to Git."""

    def __init__(self, layout: LocalLayout) -> None:
        self.layout = layout
        self.sup = Supervisor()
        self.repo = GitOpsRepo(
            layout.gitops_remote, layout.gitops_workdir, layout.gitops_branch, layout.gitops_path
        )
        self.pods: dict[str, Pod] = {}
        self.applied: str | None = None
        self.weight = 0
        self.error: str | None = None
        self.stopping = threading.Event()
        self.nginx_dir = layout.state_dir / "nginx"
        self.status_path = layout.state_dir / "status.json"
        self.run_dir = layout.state_dir / "run"
        self.adopted: list[str] = []

    # -- infrastructure -------------------------------------------------
    def _place(
        self, child: Child, records: dict[str, dict[str, Any]], port: int | None = None
    ) -> None:
        """Adopt the child's recorded process if it still runs its command, else start it.

        A recorded process running another command line (the layout changed) is stopped
        first; a port something else holds is an error saying what to do.
        """
        child.run_dir = self.run_dir
        record = records.pop(child.name, None)
        if record is not None and child.matches(record):
            self.sup.adopt(child, record)
            self.adopted.append(child.name)
            return
        if record is not None:
            stale = Child(child.name, record["argv"], child.log, run_dir=self.run_dir)
            self.sup.adopt(stale, record)
            self.sup.remove(child.name)
        if port is not None and not _wait_port_free(port, PORT_GRACE_S):
            raise ReconcileError(
                f"port {port} for {child.name} is taken: stop what uses it, "
                "or set another base_port in inferops.yaml"
            )
        self.sup.add(child)

    def start_infra(self) -> None:
        """Start Redis, Prometheus and nginx (and Prefect when enabled), or adopt the ones an
        earlier agent started that still run; then adopt its pods."""
        lay = self.layout
        records = read_records(self.run_dir)
        logs = lay.state_dir / "logs"
        redis_dir = lay.state_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        redis = Child("redis", render_redis(redis_dir, lay.redis_port), logs / "redis.log")
        self._place(redis, records, lay.redis_port)

        prom_dir = lay.state_dir / "prometheus"
        (prom_dir / "data").mkdir(parents=True, exist_ok=True)
        targets = prom_dir / "targets.json"
        if not targets.exists():
            targets.write_text("[]")
        (prom_dir / "prometheus.yml").write_text(render_prometheus(targets, lay.scrape_interval))
        prometheus = Child(
            "prometheus",
            [
                "prometheus",
                f"--config.file={prom_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={prom_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{lay.prometheus_port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=7d",
            ],
            logs / "prometheus.log",
        )
        self._place(prometheus, records, lay.prometheus_port)

        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.nginx_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        conf = self.nginx_dir / "nginx.conf"
        conf.write_text(render_nginx(self.nginx_dir, lay.router_port, os.geteuid() == 0))
        nginx = Child(
            "nginx",
            ["nginx", "-p", str(self.nginx_dir), "-c", str(conf), "-g", "daemon off;"],
            logs / "nginx.log",
            stop_signal=signal.SIGQUIT,
        )
        if nginx.name in records and nginx.matches(records[nginx.name]):
            # It serves the last live commit's upstreams: keep them until the reconcile.
            self._place(nginx, records)
        else:
            (self.nginx_dir / "upstreams.conf").write_text(render_idle_upstreams())
            (self.nginx_dir / "revision.conf").write_text(render_revision("none"))
            self._nginx(["-t"])
            self._place(nginx, records, lay.router_port)
            self._wait_router("none")
        if lay.prefect_enabled:
            for child in prefect_children(lay):
                self._place(child, records)
        self._adopt_pods(records, logs)
        for name, record in records.items():
            if not name.startswith("pod/"):
                # Recorded by an earlier agent, no longer configured (Prefect turned off).
                self.sup.adopt(Child(name, record["argv"], logs / f"{name}.log"), record)
                self.sup.remove(name)
        if self.adopted:
            log.info("adopted what an earlier agent started: %s", ", ".join(self.adopted))

    def _adopt_pods(self, records: dict[str, dict[str, Any]], logs: Path) -> None:
        """Take over the recorded pods that still run; the reconcile keeps what Git wants."""
        for name, record in records.items():
            if not name.startswith("pod/"):
                continue
            pod = Pod(
                name.removeprefix("pod/"),
                str(record["track"]),
                str(record["image"]),
                int(record["port"]),
                int(record["metrics_port"]),
            )
            child = Child(
                name,
                record["argv"],
                logs / f"{pod.name}.log",
                env=dict(record.get("env") or {}),
                cwd=Path(record["cwd"]) if record.get("cwd") else None,
                run_dir=self.run_dir,
                extra={k: record[k] for k in _POD_FIELDS if k in record},
            )
            self.sup.adopt(child, record)
            self.pods[pod.name] = pod
            self.adopted.append(name)

    def _nginx(self, args: list[str]) -> None:
        conf = self.nginx_dir / "nginx.conf"
        proc = subprocess.run(
            ["nginx", "-p", str(self.nginx_dir), "-c", str(conf), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ReconcileError(f"nginx {' '.join(args)} failed: {proc.stderr.strip()}")

    # -- pods -------------------------------------------------------------
    def _free_ports(self) -> tuple[int, int]:
        used = {p for pod in self.pods.values() for p in (pod.port, pod.metrics_port)}
        lay = self.layout
        for port in range(lay.service_port_start, lay.service_port_end, 2):
            if port in used or port + 1 in used:
                continue
            if _port_free(port) and _port_free(port + 1):
                return port, port + 1
        raise ReconcileError(
            f"no free port pair in {lay.service_port_start}-{lay.service_port_end} for a pod"
        )

    def _start_pod(self, name: str, track: str, spec: TrackSpec) -> Pod:
        try:
            root = unpack(self.layout.images_dir, spec.image)
        except BuildError as exc:
            raise ReconcileError(str(exc)) from None
        port, metrics_port = self._free_ports()
        pod = Pod(name, track, spec.image, port, metrics_port)
        env = {
            **dict(spec.env),
            "PYTHONPATH": str(root),
            "INFEROPS_IDENTITY_VERSION": pod.version,
            "INFEROPS_IDENTITY_TRACK": track,
            "INFEROPS_REDIS_URL": self.layout.redis_url,
        }
        self.sup.add(
            Child(
                f"pod/{name}",
                serve_command(port, metrics_port),
                self.layout.state_dir / "logs" / f"{name}.log",
                env=env,
                cwd=root,
                run_dir=self.run_dir,
                extra={
                    "track": track,
                    "image": spec.image,
                    "port": port,
                    "metrics_port": metrics_port,
                    "env": env,
                    "cwd": str(root),
                },
            )
        )
        self.pods[name] = pod
        return pod

    def _stop_pod(self, name: str) -> None:
        self.sup.remove(f"pod/{name}")
        self.pods.pop(name, None)

    def _router_revision(self) -> str | None:
        """The revision nginx's workers answer with (a reload is asynchronous)."""
        return _http_ok(f"http://127.0.0.1:{self.layout.router_port}/-/revision", 0.5)

    def _wait_router(self, revision: str) -> None:
        """Wait until nginx serves the configuration of ``revision`` (at start-up)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self._router_revision() != revision:
            if time.monotonic() >= deadline:
                raise ReconcileError(f"nginx did not load the configuration of {revision[:12]}")
            time.sleep(0.05)

    def _exit_code(self, pod: Pod) -> int | None:
        """The pod's exit code once its process has exited, else None."""
        child = self.sup.children.get(f"pod/{pod.name}")
        return None if child is None or child.proc is None else child.proc.poll()

    def _wait_ready(self, pods: list[Pod]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = list(pods)
        while waiting and time.monotonic() < deadline:
            waiting = [
                p for p in waiting if _http_ok(f"http://127.0.0.1:{p.port}/ready", 0.5) is None
            ]
            exited = {p.name: code for p in waiting if (code := self._exit_code(p)) is not None}
            if exited:
                # A pod that exits before it is ready will not become ready by waiting.
                raise ReconcileError(
                    "pods exited before they were ready: "
                    + "; ".join(
                        f"{name} (exit code {code}): {self.sup.children[f'pod/{name}'].tail(3)}"
                        for name, code in exited.items()
                    )
                )
            if waiting:
                time.sleep(0.1)
        if waiting:
            tails = "; ".join(
                f"{p.name}: {self.sup.children[f'pod/{p.name}'].tail(3)}"
                for p in waiting
                if f"pod/{p.name}" in self.sup.children
            )
            raise ReconcileError(
                f"pods not ready after {READY_TIMEOUT_S:.0f}s: "
                f"{', '.join(p.name for p in waiting)} ({tails})"
            )

    # -- reconcile --------------------------------------------------------
    def reconcile(self, revision: str) -> None:
        """Make the runtime match ``revision``, then report it live."""
        try:
            state = read_state(self.repo.files(revision))
        except (ManifestError, GitOpsError) as exc:
            raise ReconcileError(f"commit {revision[:12]} is not deployable: {exc}") from None
        wanted = desired_pods(state)
        started = [self._start_pod(n, t, s) for n, (t, s) in wanted.items() if n not in self.pods]
        try:
            self._wait_ready(started)
        except ReconcileError:
            for pod in started:
                self._stop_pod(pod.name)
            raise
        serving = [self.pods[n] for n in wanted]
        upstreams = render_upstreams(serving, state.weight, revision)
        (self.nginx_dir / "upstreams.conf").write_text(upstreams)
        (self.nginx_dir / "revision.conf").write_text(render_revision(revision))
        reload_nginx(
            lambda: self._nginx(["-s", "reload"]),
            self.nginx_dir / "nginx.pid",
            lambda: self._router_revision() == revision,
            READY_TIMEOUT_S,
        )
        targets = self.layout.state_dir / "prometheus" / "targets.json"
        tmp = targets.with_suffix(".tmp")
        tmp.write_text(render_targets(serving, self.layout.env))
        tmp.replace(targets)
        for name in [n for n in self.pods if n not in wanted]:
            self._stop_pod(name)
        self.applied, self.weight, self.error = revision, state.weight, None
        log.info("live: %s weight=%s pods=%s", revision[:12], state.weight, sorted(wanted))

    def write_status(self) -> None:
        """Publish the live state for clients (atomically)."""
        pods = list(self.pods.values())
        ws, wc = server_weights(
            self.weight,
            sum(p.track == "stable" for p in pods),
            sum(p.track == "canary" for p in pods),
        )
        data: dict[str, Any] = {
            "revision": self.applied,
            "live": self.applied is not None and self.error is None,
            "error": self.error,
            "weights": {"stable": 100 - self.weight, "canary": self.weight},
            "server_weights": {"stable": ws, "canary": wc},
            "pods": [
                {
                    "name": p.name,
                    "track": p.track,
                    "image": p.image,
                    "port": p.port,
                    "metrics_port": p.metrics_port,
                    "restarts": self.sup.children[f"pod/{p.name}"].restarts,
                }
                for p in pods
                if f"pod/{p.name}" in self.sup.children
            ],
            "children": {
                n: {"running": c.running, "restarts": c.restarts}
                for n, c in self.sup.children.items()
                if not n.startswith("pod/")
            },
            "agent_pid": os.getpid(),
            "updated": time.time(),
        }
        tmp = self.status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.status_path)

    def run(self) -> None:
        """Supervise and reconcile until SIGTERM."""
        retry_at = 0.0
        failed: str | None = None
        while not self.stopping.is_set():
            for name in self.sup.poll():
                log.warning("restarted %s", name)
            try:
                head = self.repo.head() if self.repo.exists() else None
            except GitOpsError as exc:
                head, self.error = None, str(exc)
            due = head != failed or time.monotonic() >= retry_at
            if head and head != self.applied and due:
                try:
                    self.reconcile(head)
                    failed = None
                except ReconcileError as exc:
                    self.error = f"commit {head[:12]} could not go live: {exc}"
                    log.error("%s", self.error)
                    failed, retry_at = head, time.monotonic() + 5.0
                except Exception as exc:  # a bug must not take the environment down
                    self.error = f"commit {head[:12]} could not go live: internal error: {exc!r}"
                    log.exception("reconcile of %s failed", head[:12])
                    failed, retry_at = head, time.monotonic() + 5.0
            self.write_status()
            self.stopping.wait(POLL_S)

    def stop(self) -> None:
        """Stop pods first, then nginx, Prometheus, Redis and Prefect (and anything recorded
        that this agent did not get to adopt)."""
        pods = [n for n in self.sup.children if n.startswith("pod/")]
        self.sup.stop_all(order=[*pods, "prefect-worker", "nginx"])
        kill_recorded(self.run_dir)
        self.status_path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the agent process."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m inferops.platforms.local_agent LAYOUT.json", file=sys.stderr)
        return 2
    layout = LocalLayout.load(Path(args[0]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    agent = Agent(layout)
    signal.signal(signal.SIGTERM, lambda *_: agent.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stopping.set())
    try:
        agent.start_infra()
        agent.run()
    except ReconcileError as exc:
        log.error("%s", exc)
        agent.stop()
        agent.error = str(exc)
        agent.write_status()
        return 1
    agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
