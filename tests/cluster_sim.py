"""A Kubernetes cluster for the release pipeline's tests: its API at the HTTP boundary,
its controllers' effects emulated with real processes.

No Kubernetes cluster is reachable from the test machines. The pipeline's cluster
path talks to the API server only, so the tests meet it at the HTTP boundary: a
loopback server answering the API's paths (``tests/k8s_api.py``). What a real
cluster's controllers would then do with the objects the pipeline applies is what
``ClusterSim`` does, reacting to each write the server stores (its ``on_change``),
with the same real parts the local platform runs:

- **kubelet and the Deployment controller.** A Deployment labelled
  ``inferops.io/track`` with ``spec.replicas > 0`` runs one real service process
  (``python -m inferops_service serve``) from its image: the image is pinned by
  digest and the registry (the fake ``docker``, ``tests/fake_docker.py``) holds
  its build context under that digest, unpacked once and put on PYTHONPATH. The
  container's args are passed with the ports replaced by free loopback ports and
  the mount paths of its ConfigMap volumes mapped to files written from the
  ConfigMaps as applied; its env is the entries with a ``value``, the downward
  API's ``fieldRef`` (labels, annotations, name, namespace of the pod), and
  ``INFEROPS_REDIS_URL``. Any change of the pod template (a new ReplicaSet on a
  cluster) starts a new process, waits for ``/ready``, moves traffic and scrape
  targets to it and only then stops the old one (SIGTERM: it drains, as the
  container would); ``replicas: 0`` stops it; a process that exits is started again.
  Status is written back as the controller would: at once ``observedGeneration``
  with 0 updated replicas, then every replica updated and available once the
  process answers ``/ready``. The start runs in a background thread, so an apply
  returns at once and whoever waits for the rollout really waits.
- **ingress-nginx.** A real nginx sends the canary Ingress's ``canary-weight``
  percent of the traffic to the canary's process and the rest to the stable's
  (the stable Ingress ``inferops-service`` must exist); while the canary has no
  ready process its share goes to the stable one, as ingress-nginx does when the
  canary's backend has no endpoints. nginx is reloaded gracefully, and a write that
  changed an Ingress is answered only once the reload took effect. Every response
  carries ``X-Upstream-Addr``, the process that answered it.
- **Prometheus and the ServiceMonitor.** A real Prometheus scrapes each process's
  metrics port through file-based discovery, with the labels the ServiceMonitor's
  relabelings give on a cluster: ``namespace``, ``service``, ``pod``, ``track``
  and ``version`` (from the pod's labels).
- **Redis.** One redis-server that the pods share.

Not emulated: scheduling, resources and GPUs; more than one process per
Deployment (the replicas are reported, one process serves them); Services and
their endpoints (nginx points straight at the processes); probes after the first
``/ready``; pulls (an image the registry lacks leaves the pod pending); surge and
unavailability limits of a rolling update; the HorizontalPodAutoscaler,
PodDisruptionBudget and NetworkPolicy (stored, never enforced); ConfigMap changes
reaching running pods (a process reads them when it starts); hosts, TLS and the
other annotations of the Ingresses; admission, validation and watches of the API
server (the pipeline polls).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import fake_docker
import yaml
from k8s_api import FakeKubeAPI, Served

from inferops.builders.local import BuildError, unpack
from inferops.platforms.local_agent import reload_nginx, serve_command
from inferops.platforms.local_render import (
    Pod,
    render_idle_upstreams,
    render_nginx,
    render_prometheus,
    render_redis,
    render_revision,
    render_upstreams,
)

log = logging.getLogger("cluster_sim")

TRACK_LABEL = "inferops.io/track"
VERSION_LABEL = "inferops.io/version"
CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"
WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"
STABLE_INGRESS = "inferops-service"
CANARY_INGRESS = "inferops-service-canary"
UPSTREAM_HEADER = "X-Upstream-Addr"
READY_TIMEOUT_S = 60.0
RETRY_S = 2.0
# The kinds of the overlays that the recorded discovery lacks: (group version, kind, plural).
EXTRA_KINDS = (
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
    ("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
)
_NO_UPSTREAM = render_idle_upstreams()
# fieldRef metadata.name: the pod's name is known only when it starts.
_POD_NAME = "\0pod-name\0"


class _Pending(Exception):
    """A pod cannot start yet (its image or ConfigMap is missing); the message says why."""


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _http_ok(url: str, timeout: float = 0.5) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body.decode() if resp.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def _wait_http(url: str, timeout_s: float, what: str, want: str | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        body = _http_ok(url)
        if body is not None and (want is None or body == want):
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what} did not answer {url} within {timeout_s:g}s")
        time.sleep(0.05)


@dataclass
class _Process:
    """A child process with its log; stopped with ``stop_signal``, killed after a grace."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM

    @classmethod
    def start(
        cls,
        name: str,
        argv: list[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> _Process:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        return cls(name, popen, log_path, stop_signal)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def send_stop(self) -> None:
        """Send the stop signal (the process exits in its own time)."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(self.stop_signal)

    def stop(self, grace_s: float) -> None:
        """Signal it, wait up to ``grace_s``, then kill it."""
        self.send_stop()
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@dataclass(frozen=True)
class _Launch:
    """What one pod of a Deployment runs, resolved from its pod template."""

    deployment: str
    track: str
    image: str
    root: Path
    env: dict[str, str]
    args: list[str]
    mounts: dict[str, dict[str, str]]
    """Mount path -> files (name -> content) of the container's ConfigMap volumes."""
    labels: dict[str, str]
    grace_s: float
    key: str
    """The pod template's hash, as a ReplicaSet's name carries it."""


@dataclass
class SimPod:
    """One service process standing for a Deployment's pods."""

    name: str
    deployment: str
    track: str
    image: str
    key: str
    env: dict[str, str]
    labels: dict[str, str]
    port: int
    metrics_port: int
    process: _Process
    grace_s: float
    ready: bool = False

    @property
    def url(self) -> str:
        """The process's API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def addr(self) -> str:
        """The address nginx reports for it in ``X-Upstream-Addr``."""
        return f"127.0.0.1:{self.port}"


@dataclass
class ClusterSim:
    """The emulated cluster: API server, kubelet, ingress-nginx, Prometheus and Redis.

    Use as a context manager; ``bin_dir`` (the fake ``docker``) goes first on PATH for
    the pipeline's builds, ``write_kubeconfig`` points the pipeline at ``api_url``.
    """

    workdir: Path
    namespace: str = "inferops"
    scrape_interval_s: float = 1.0
    api: FakeKubeAPI = field(default_factory=FakeKubeAPI)
    events: list[str] = field(default_factory=list)
    """What the emulated controllers did, oldest first (as ``kubectl get events``)."""

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.bin_dir = self.workdir / "bin"
        self.registry_dir = self.workdir / "registry"
        self.images_dir = fake_docker.images_dir(self.registry_dir)
        self.docker = self.bin_dir / "docker"
        self._logs = self.workdir / "logs"
        self._nginx_dir = self.workdir / "nginx"
        self._prom_dir = self.workdir / "prometheus"
        self._targets = self._prom_dir / "targets.json"
        self._infra: list[_Process] = []
        self._retired: list[SimPod] = []
        self._pods: dict[str, SimPod] = {}
        self._pods_lock = threading.Lock()
        self._router_lock = threading.Lock()
        self._targets_lock = threading.Lock()
        self._unpack_lock = threading.Lock()
        self._loops: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._loops_lock = threading.Lock()
        self._pending: dict[str, str] = {}
        self._stopping = threading.Event()
        self._kubelet = threading.Event()
        self._kubelet.set()
        self._upstreams = ""
        self._router_revision = 0
        self._served: Served | None = None
        self.redis_port = self.nginx_port = self.prometheus_port = 0

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> ClusterSim:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start Redis, Prometheus, nginx and the API server; install the fake docker."""
        for d in (self.workdir, self._logs, self._prom_dir / "data"):
            d.mkdir(parents=True, exist_ok=True)
        fake_docker.install(self.bin_dir, self.registry_dir)
        self._start_redis()
        self._start_prometheus()
        self._start_nginx()
        _add_kinds(self.api.discovery, EXTRA_KINDS)
        self.api.on_change = self._on_change
        self._served = Served(self.api)

    def close(self) -> None:
        """Stop the controllers, every service process, nginx, Prometheus, Redis and the API."""
        self._stopping.set()
        self._kubelet.set()
        with self._loops_lock:
            loops = list(self._loops.values())
        for _, wake in loops:
            wake.set()
        for thread, _ in loops:
            thread.join(READY_TIMEOUT_S)
        if self._served is not None:
            self._served.close()
            self._served = None
        with self._pods_lock:
            pods = [*self._pods.values(), *self._retired]
            self._pods.clear()
        # Pods first (they drain for a while on SIGTERM: kill what has not gone in a second).
        for pod in pods:
            pod.process.send_stop()
        for pod in pods:
            pod.process.stop(1.0)
        for proc in reversed(self._infra):
            proc.stop(10.0)
        self._infra.clear()

    # --- what the tests read -------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The API server's URL."""
        assert self._served is not None, "the cluster is not started"
        return self._served.url

    @property
    def endpoint(self) -> str:
        """The ingress controller's URL: where clients (and the load generator) send requests."""
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def prometheus_url(self) -> str:
        """The Prometheus that scrapes the service's pods."""
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def redis_url(self) -> str:
        """The Redis the pods share."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def write_kubeconfig(self, path: Path, context: str = "dev") -> Path:
        """A kubeconfig whose ``context`` reaches the API server with a token."""
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": context, "cluster": {"server": self.api_url}}],
                    "users": [{"name": "inferops", "user": {"token": "k8s-test-token"}}],
                    "contexts": [
                        {"name": context, "context": {"cluster": context, "user": "inferops"}}
                    ],
                    "current-context": context,
                }
            )
        )
        return path

    def pods(self) -> dict[str, SimPod]:
        """The serving process of each track (stable, canary) that has one."""
        with self._pods_lock:
            return {p.track: p for p in self._pods.values()}

    def pod_at(self, addr: str) -> SimPod | None:
        """The process at ``addr`` (an ``X-Upstream-Addr``), serving or retired."""
        with self._pods_lock:
            every = [*self._pods.values(), *self._retired]
        return next((p for p in every if p.addr == addr), None)

    def path_of(self, kind: str, name: str) -> str:
        """The API path of a namespaced object of the service's namespace."""
        versions = {
            "Deployment": "apps/v1",
            "Ingress": "networking.k8s.io/v1",
            "ConfigMap": "v1",
            "Service": "v1",
        }
        return self.api.path_of(versions[kind], kind, self.namespace, name)

    def read(self, kind: str, name: str) -> dict[str, Any] | None:
        """An object of the namespace as the API server holds it now."""
        return self.api.read(self.path_of(kind, name))

    @contextlib.contextmanager
    def kubelet_paused(self) -> Iterator[None]:
        """Hold every new pod's start until the block ends (status shows the rollout pending)."""
        self._kubelet.clear()
        try:
            yield
        finally:
            self._kubelet.set()

    def wait_scraped(self, track: str, timeout_s: float = 30.0) -> None:
        """Wait until Prometheus has scraped the track's process (``up`` is 1)."""
        query = f'up{{namespace="{self.namespace}",track="{track}"}}'
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            body = _http_ok(url, 2.0)
            if body is not None:
                result = json.loads(body)["data"]["result"]
                if result and all(r["value"][1] == "1" for r in result):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"Prometheus did not scrape the {track} track in {timeout_s:g}s")

    def _event(self, message: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {message}")
        log.info("%s", message)

    # --- infrastructure ------------------------------------------------------------------

    def _start_redis(self) -> None:
        self.redis_port = free_port()
        redis_dir = self.workdir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        proc = _Process.start(
            "redis", render_redis(redis_dir, self.redis_port), self._logs / "redis.log"
        )
        self._infra.append(proc)
        deadline = time.monotonic() + 15
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.redis_port), 0.5) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            if not proc.alive or time.monotonic() >= deadline:
                raise RuntimeError(f"redis-server did not start: {proc.tail()}")
            time.sleep(0.05)

    def _start_prometheus(self) -> None:
        self.prometheus_port = free_port()
        self._targets.write_text("[]")
        conf = self._prom_dir / "prometheus.yml"
        conf.write_text(render_prometheus(self._targets, f"{self.scrape_interval_s:g}s"))
        argv = [
            "prometheus",
            f"--config.file={conf}",
            f"--storage.tsdb.path={self._prom_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
            "--storage.tsdb.retention.time=1d",
        ]
        self._infra.append(_Process.start("prometheus", argv, self._logs / "prometheus.log"))
        _wait_http(f"{self.prometheus_url}/-/ready", 30, "prometheus")

    def _start_nginx(self) -> None:
        self.nginx_port = free_port()
        d = self._nginx_dir
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        rendered = render_nginx(d, self.nginx_port, os.geteuid() == 0)
        proxy = "proxy_pass http://inferops_service;"
        assert proxy in rendered, "render_nginx changed: the upstream header needs a new anchor"
        rendered = rendered.replace(
            proxy, f"{proxy}\n            add_header {UPSTREAM_HEADER} $upstream_addr always;"
        )
        (d / "nginx.conf").write_text(rendered)
        (d / "upstreams.conf").write_text(_NO_UPSTREAM)
        (d / "revision.conf").write_text(render_revision("sim-0"))
        self._nginx("-t")
        argv = ["nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-g", "daemon off;"]
        proc = _Process.start("nginx", argv, self._logs / "nginx.log", stop_signal=signal.SIGQUIT)
        self._infra.append(proc)
        _wait_http(f"{self.endpoint}/-/revision", 15, "nginx", "sim-0")

    def _nginx(self, *args: str) -> None:
        d = self._nginx_dir
        proc = subprocess.run(
            ["nginx", "-p", str(d), "-c", str(d / "nginx.conf"), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"nginx {' '.join(args)} failed: {proc.stderr.strip()}")

    # --- reacting to the API -------------------------------------------------------------

    def _on_change(self, method: str, path: str, obj: dict[str, Any]) -> None:
        """The API server stored a write: wake the controller that owns the object."""
        if self._stopping.is_set():
            return
        parts = path.strip("/").split("/")
        if f"namespaces/{self.namespace}/" not in path or len(parts) < 4:
            return
        plural = parts[-2]
        meta = obj.get("metadata") or {}
        if plural == "deployments" and (meta.get("labels") or {}).get(TRACK_LABEL):
            self._wake(path)
        elif plural == "configmaps":
            # A pod waiting for its ConfigMap may start now; running pods keep what they read.
            with self._loops_lock:
                wakes = [wake for _, wake in self._loops.values()]
            for wake in wakes:
                wake.set()
        elif plural == "ingresses":
            try:
                self._sync_router()
            except Exception as exc:  # the API must answer whatever the emulation does
                self._event(f"ingress-nginx: reload failed: {exc}")

    def _wake(self, path: str) -> None:
        with self._loops_lock:
            if path not in self._loops:
                wake = threading.Event()
                thread = threading.Thread(
                    target=self._deployment_loop, args=(path, wake), daemon=True, name=path
                )
                self._loops[path] = (thread, wake)
                thread.start()
            self._loops[path][1].set()

    def _deployment_loop(self, path: str, wake: threading.Event) -> None:
        """One Deployment's controller and kubelet: reconcile on each change, and every second."""
        retry_at = 0.0
        while not self._stopping.is_set():
            woken = wake.wait(1.0)
            wake.clear()
            if self._stopping.is_set():
                return
            if not woken and time.monotonic() < retry_at:
                continue
            try:
                retry = self._reconcile(path)
            except Exception as exc:  # keep the controller alive, as a cluster's would be
                log.exception("reconcile of %s failed", path)
                self._event(f"{path}: reconcile failed: {exc!r}")
                retry = RETRY_S
            retry_at = time.monotonic() + (retry or 0.0)

    def _reconcile(self, path: str) -> float | None:
        """Make the Deployment's process match its spec; seconds until a retry, or None."""
        dep = self.api.read(path)
        if dep is None:
            self._retire(path, "deleted")
            return None
        meta, spec = dep["metadata"], dep.get("spec") or {}
        name, generation = str(meta["name"]), int(meta.get("generation") or 1)
        want = int(spec.get("replicas", 1))
        with self._pods_lock:
            current = self._pods.get(path)
        if want == 0:
            self._retire(path, "scaled to 0")
            self._set_status(path, _status(generation, 0, 0, 0))
            return None
        # As a ReplicaSet per pod template: any change of the template rolls the pod.
        key = _template_key(spec.get("template") or {})
        running = current is not None and current.process.alive
        same = current is not None and current.key == key
        if running and same:
            self._set_status(path, _status(generation, want, want, want))
            return None
        self._set_status(
            path, _status(generation, want, want if same else 0, want if running else 0)
        )
        if current is not None and not running:
            self._event(f"{name}: {current.name} exited: {current.process.tail(3)}; restarting")
        try:
            launch = self._launch(dep, key)
        except _Pending as exc:
            if self._pending.get(path) != str(exc):
                self._event(f"{name}: pod pending: {exc}")
            self._pending[path] = str(exc)
            return RETRY_S
        self._pending.pop(path, None)
        while not self._kubelet.wait(0.2):
            if self._stopping.is_set():
                return None
        pod = self._start_pod(launch)
        if not self._wait_ready(pod):
            pod.process.stop(1.0)
            self._event(f"{name}: {pod.name} did not become ready: {pod.process.tail(5)}")
            return RETRY_S
        with self._pods_lock:
            old = self._pods.get(path)
            self._pods[path] = pod
        self._sync_router()
        self._write_targets()
        if old is not None:
            self._stop_pod(old)
        self._set_status(path, _status(generation, want, want, want))
        self._event(f"{name}: {pod.name} ready at generation {generation}")
        return None

    def _set_status(self, path: str, status: dict[str, Any]) -> None:
        stored = self.api.read(path)
        if stored is not None and stored.get("status") != status:
            self.api.set_status(path, status)

    # --- pods ----------------------------------------------------------------------------

    def _launch(self, dep: dict[str, Any], key: str) -> _Launch:
        """What the Deployment's pod runs; _Pending when its image or ConfigMap is missing."""
        meta = dep["metadata"]
        template = (dep.get("spec") or {}).get("template") or {}
        pod_meta = template.get("metadata") or {}
        pod_spec = template.get("spec") or {}
        labels = {str(k): str(v) for k, v in (pod_meta.get("labels") or {}).items()}
        track = labels.get(TRACK_LABEL) or (meta.get("labels") or {}).get(TRACK_LABEL, "")
        containers = pod_spec.get("containers") or []
        container = next((c for c in containers if c.get("name") == "service"), None)
        if container is None:
            raise _Pending("the pod template has no container named 'service'")
        if container.get("command"):
            raise _Pending("a container command is not emulated (the image's entrypoint is)")
        image = str(container.get("image") or "")
        try:
            with self._unpack_lock:  # both tracks may start from one image at once
                root = unpack(self.images_dir, image)
        except BuildError as exc:
            raise _Pending(f"ErrImagePull: {exc}") from None
        env = {"INFEROPS_IDENTITY_TRACK": track}
        for entry in container.get("env") or []:
            env[str(entry["name"])] = self._env_value(entry, pod_meta)
        volumes = {v.get("name"): v for v in pod_spec.get("volumes") or []}
        mounts: dict[str, dict[str, str]] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount.get("name")) or {}
            if "configMap" in volume:
                mounts[str(mount["mountPath"])] = self._configmap_files(volume["configMap"])
        return _Launch(
            key=key,
            deployment=str(meta["name"]),
            track=track,
            image=image,
            root=root,
            env=env,
            args=[str(a) for a in container.get("args") or []],
            mounts=mounts,
            labels=labels,
            grace_s=float(pod_spec.get("terminationGracePeriodSeconds", 30)),
        )

    def _env_value(self, entry: dict[str, Any], pod_meta: dict[str, Any]) -> str:
        if "valueFrom" not in entry:
            return str(entry.get("value", ""))
        source = entry["valueFrom"]
        if "fieldRef" in source:
            return _field_ref(str(source["fieldRef"]["fieldPath"]), pod_meta, self.namespace)
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            cm = self.read("ConfigMap", str(ref["name"]))
            data = (cm or {}).get("data") or {}
            if ref["key"] not in data:
                raise _Pending(f"ConfigMap {ref['name']} has no key {ref['key']}")
            return str(data[ref["key"]])
        raise _Pending(
            f"env {entry['name']}: only value, fieldRef and configMapKeyRef are emulated"
        )

    def _configmap_files(self, source: dict[str, Any]) -> dict[str, str]:
        name = str(source.get("name"))
        cm = self.read("ConfigMap", name)
        if cm is None:
            raise _Pending(f'configmap "{name}" not found')
        data = {str(k): str(v) for k, v in (cm.get("data") or {}).items()}
        items = source.get("items")
        if items:
            return {str(i["path"]): data[i["key"]] for i in items if i["key"] in data}
        return data

    def _start_pod(self, launch: _Launch) -> SimPod:
        name = f"{launch.deployment}-{launch.key}-{secrets.token_hex(3)[:5]}"
        pod_dir = self.workdir / "pods" / name
        mapped: dict[str, Path] = {}
        for i, (mount_path, files) in enumerate(sorted(launch.mounts.items())):
            where = pod_dir / f"volume-{i}"
            where.mkdir(parents=True, exist_ok=True)
            for file_name, content in files.items():
                (where / file_name).write_text(content)
            mapped[mount_path] = where
        port, metrics_port = free_port(), free_port()
        while metrics_port == port:
            metrics_port = free_port()
        argv = serve_command(port, metrics_port, *_container_args(launch.args, mapped))
        resolved = {k: (name if v == _POD_NAME else v) for k, v in launch.env.items()}
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFEROPS_")}
        env.update(resolved)
        env.update(PYTHONPATH=str(launch.root), INFEROPS_REDIS_URL=self.redis_url)
        process = _Process.start(name, argv, self._logs / f"{name}.log", env, cwd=launch.root)
        pod = SimPod(
            name=name,
            deployment=launch.deployment,
            track=launch.track,
            image=launch.image,
            key=launch.key,
            env=resolved,
            labels=launch.labels,
            port=port,
            metrics_port=metrics_port,
            process=process,
            grace_s=launch.grace_s,
        )
        self._event(f"{launch.deployment}: started {name} ({launch.image}) on port {port}")
        return pod

    def _wait_ready(self, pod: SimPod) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not self._stopping.is_set():
            if _http_ok(f"{pod.url}/ready") is not None:
                pod.ready = True
                return True
            if not pod.process.alive:
                return False
            time.sleep(0.05)
        return False

    def _retire(self, path: str, why: str) -> None:
        with self._pods_lock:
            pod = self._pods.pop(path, None)
        if pod is None:
            return
        self._sync_router()
        self._write_targets()
        self._stop_pod(pod)
        self._event(f"{pod.deployment}: stopping {pod.name} ({why})")

    def _stop_pod(self, pod: SimPod) -> None:
        """SIGTERM (the service drains), killed after the grace period, in the background."""
        pod.ready = False
        with self._pods_lock:
            self._retired.append(pod)
        threading.Thread(target=pod.process.stop, args=(pod.grace_s,), daemon=True).start()

    # --- ingress-nginx and Prometheus ----------------------------------------------------

    def _canary_weight(self) -> tuple[bool, int]:
        """Whether the stable Ingress exists, and the canary Ingress's weight (0 without one)."""
        stable = self.read("Ingress", STABLE_INGRESS)
        canary = self.read("Ingress", CANARY_INGRESS)
        annotations = ((canary or {}).get("metadata") or {}).get("annotations") or {}
        if canary is None or annotations.get(CANARY_ANNOTATION) != "true":
            return stable is not None, 0
        try:
            weight = int(annotations.get(WEIGHT_ANNOTATION, "0"))
        except ValueError:
            weight = 0
        return stable is not None, max(0, min(100, weight))

    def _sync_router(self) -> None:
        """Point nginx at the serving processes with the live weight; wait for the reload."""
        with self._router_lock:
            routed, weight = self._canary_weight()
            with self._pods_lock:
                serving = [p for p in self._pods.values() if p.ready]
            pods = [
                Pod(p.name, p.track, p.image, p.port, p.metrics_port)
                for p in serving
                if p.track == "stable" or (p.track == "canary" and weight > 0)
            ]
            try:
                wanted = render_upstreams(pods, weight, "-") if routed else _NO_UPSTREAM
            except ValueError:  # no process can take traffic
                wanted = _NO_UPSTREAM
            if wanted == self._upstreams:
                return
            self._router_revision += 1
            revision = f"sim-{self._router_revision}"
            d = self._nginx_dir
            text = wanted if wanted == _NO_UPSTREAM else render_upstreams(pods, weight, revision)
            (d / "upstreams.conf").write_text(text)
            (d / "revision.conf").write_text(render_revision(revision))
            reload_nginx(
                lambda: self._nginx("-s", "reload"),
                d / "nginx.pid",
                lambda: _http_ok(f"{self.endpoint}/-/revision") == revision,
                30,
            )
            self._upstreams = wanted
            shares = {p.name: p.track for p in pods}
            self._event(f"ingress-nginx: canary-weight {weight}, upstreams {shares}")

    def _write_targets(self) -> None:
        """Prometheus' targets: each serving process, labelled as the ServiceMonitor does."""
        with self._targets_lock:
            with self._pods_lock:
                pods = list(self._pods.values())
            groups = []
            for p in pods:
                labels = {
                    "namespace": self.namespace,
                    "service": p.deployment,
                    "pod": p.name,
                    "track": p.track,
                }
                if p.labels.get(VERSION_LABEL):
                    labels["version"] = p.labels[VERSION_LABEL]
                groups.append({"targets": [f"127.0.0.1:{p.metrics_port}"], "labels": labels})
            tmp = self._targets.with_suffix(".tmp")
            tmp.write_text(json.dumps(groups, indent=2))
            tmp.replace(self._targets)


def _status(generation: int, want: int, updated: int, ready: int) -> dict[str, Any]:
    """A Deployment's status as its controller writes it."""
    done = updated == want and ready == want
    return {
        "observedGeneration": generation,
        "replicas": max(want, ready),
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": ready,
        **({} if ready >= want else {"unavailableReplicas": want - ready}),
        "conditions": [
            {
                "type": "Available",
                "status": "True" if ready > 0 or want == 0 else "False",
                "reason": "MinimumReplicasAvailable"
                if ready > 0 or want == 0
                else "MinimumReplicasUnavailable",
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
            },
        ],
    }


def _template_key(template: Mapping[str, Any]) -> str:
    """A pod template's hash: what a Deployment starts a new ReplicaSet for when it changes."""
    raw = json.dumps(template, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:10]


def _field_ref(path: str, pod_meta: Mapping[str, Any], namespace: str) -> str:
    """The downward API's value of ``path`` for a pod with ``pod_meta``."""
    for prefix, source in (
        ("metadata.labels", pod_meta.get("labels") or {}),
        ("metadata.annotations", pod_meta.get("annotations") or {}),
    ):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str(source.get(path[len(prefix) + 2 : -2], ""))
    if path == "metadata.namespace":
        return namespace
    if path == "metadata.name":
        return _POD_NAME
    raise _Pending(f"fieldRef {path} is not emulated")


def _container_args(args: list[str], mounts: Mapping[str, Path]) -> list[str]:
    """The container's args without the address flags, mount paths mapped to local folders."""

    def mapped(value: str) -> str:
        for mount_path in sorted(mounts, key=len, reverse=True):
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                return str(mounts[mount_path]) + value[len(mount_path.rstrip("/")) :]
        return value

    out: list[str] = []
    it = iter(args)
    for arg in it:
        flag, eq, value = arg.partition("=")
        if flag in ("--host", "--port", "--metrics-port"):
            if not eq:
                next(it, None)
            continue
        out.append(f"{flag}={mapped(value)}" if eq and flag.startswith("-") else mapped(arg))
    return out


def _add_kinds(discovery: dict[str, Any], kinds: tuple[tuple[str, str, str], ...]) -> None:
    """Serve more kinds in a discovery document (as a cluster with their CRDs would)."""
    groups = discovery["/apis"]["groups"]
    for group_version, kind, plural in kinds:
        group, _, version = group_version.partition("/")
        entry = next((g for g in groups if g["name"] == group), None)
        gv = {"groupVersion": group_version, "version": version}
        if entry is None:
            groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
        elif gv not in entry["versions"]:
            entry["versions"].append(gv)
        listing = discovery.setdefault(
            f"/apis/{group_version}",
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": [],
            },
        )
        if not any(r["kind"] == kind for r in listing["resources"]):
            listing["resources"].append(
                {
                    "name": plural,
                    "singularName": kind.lower(),
                    "namespaced": True,
                    "kind": kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                }
            )
