"""The local platform's router on a real nginx: errors it makes itself name the track.

nginx runs the configuration the local agent renders, in front of pods that are
tiny HTTP servers (a real pod sets ``x-inferops-track`` and ``x-inferops-version``
itself) and of ports where nothing listens (a dead pod).
"""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from support import needs_binaries

from inferops.platforms.local_agent import reload_nginx
from inferops.platforms.local_render import (
    Pod,
    render_idle_upstreams,
    render_nginx,
    render_revision,
    render_upstreams,
)

STABLE_IMAGE = "inferops-service@sha256:" + "a" * 64
CANARY_IMAGE = "inferops-service@sha256:" + "c" * 64
BODY = {"model": "sim", "messages": [{"role": "user", "content": "hi"}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class FakePod:
    """What one pod answers every request with."""

    status: int = 200
    own_headers: bool = True


def serve(pod: Pod, answers: FakePod) -> ThreadingHTTPServer:
    """A pod answering on ``pod.port``: its status, with its own headers unless told not to."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            data = b'{"ok": true}'
            self.send_response(answers.status)
            if answers.own_headers:
                self.send_header("x-inferops-track", pod.track)
                self.send_header("x-inferops-version", pod.version)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", pod.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Router:
    dir: Path
    url: str

    def route(self, pods: list[Pod], weight: int, revision: str) -> None:
        """Point nginx at ``pods`` as the agent does, and wait until only they are served."""
        (self.dir / "upstreams.conf").write_text(render_upstreams(pods, weight, revision))
        (self.dir / "revision.conf").write_text(render_revision(revision))
        reload_nginx(
            lambda: self.nginx("-s", "reload"),
            self.dir / "nginx.pid",
            lambda: self.serves(revision),
            15.0,
        )

    def serves(self, revision: str) -> bool:
        try:
            return httpx.get(f"{self.url}/-/revision", timeout=1).text == revision
        except httpx.TransportError:
            return False

    def nginx(self, *args: str) -> None:
        conf = self.dir / "nginx.conf"
        done = subprocess.run(
            ["nginx", "-p", str(self.dir), "-c", str(conf), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    def wait_for(self, revision: str) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.serves(revision):
                return
            time.sleep(0.05)
        pytest.fail(f"nginx did not serve revision {revision}: {self.dir / 'error.log'}")

    def answers(self, n: int) -> list[httpx.Response]:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            return [client.post("/v1/chat/completions", json=BODY) for _ in range(n)]


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    """nginx as the agent starts it: no pod yet."""
    needs_binaries("nginx")
    d = tmp_path / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (d / "tmp" / sub).mkdir(parents=True)
    port = free_port()
    (d / "nginx.conf").write_text(render_nginx(d, port, os.geteuid() == 0))
    (d / "upstreams.conf").write_text(render_idle_upstreams())
    (d / "revision.conf").write_text(render_revision("none"))
    router = Router(d, f"http://127.0.0.1:{port}")
    router.nginx("-t")
    with (tmp_path / "nginx.log").open("wb") as log:
        process = subprocess.Popen(
            ["nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-g", "daemon off;"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        router.wait_for("none")
        yield router
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def pods() -> Iterator[Callable[[Pod, FakePod], None]]:
    servers: list[ThreadingHTTPServer] = []
    yield lambda pod, answers: servers.append(serve(pod, answers))
    for server in servers:
        server.shutdown()
        server.server_close()


def pod(track: str) -> Pod:
    image = STABLE_IMAGE if track == "stable" else CANARY_IMAGE
    return Pod(f"{track}-0", track, image, free_port(), free_port())


def headers(response: httpx.Response, name: str) -> list[str]:
    return response.headers.get_list(name)


def assert_each_names_its_track(answers: list[httpx.Response], stable: Pod, canary: Pod) -> None:
    """Answered by stable (200) or failed on the canary: one track and version header each."""
    versions = {"stable": stable.version, "canary": canary.version}
    for answer in answers:
        track = "stable" if answer.status_code == 200 else "canary"
        assert headers(answer, "x-inferops-track") == [track]
        assert headers(answer, "x-inferops-version") == [versions[track]]


def test_a_dead_canary_pods_502s_name_the_canary(
    router: Router, pods: Callable[[Pod, FakePod], None]
) -> None:
    stable, canary = pod("stable"), pod("canary")  # nothing listens on the canary's port
    pods(stable, FakePod())
    router.route([stable, canary], 50, "r1")

    answers = router.answers(20)

    # Not retried on stable, not taken out of rotation: the canary's share fails, as its own.
    assert collections.Counter(a.status_code for a in answers) == {200: 10, 502: 10}
    assert_each_names_its_track(answers, stable, canary)


def test_a_pods_own_headers_pass_alone_and_are_added_where_it_sends_none(
    router: Router, pods: Callable[[Pod, FakePod], None]
) -> None:
    stable, canary = pod("stable"), pod("canary")
    pods(stable, FakePod(own_headers=False))
    pods(canary, FakePod(status=500))
    router.route([stable, canary], 25, "r2")

    answers = router.answers(12)

    assert collections.Counter(a.status_code for a in answers) == {200: 9, 500: 3}
    assert_each_names_its_track(answers, stable, canary)


def test_before_any_pod_the_router_names_no_track(router: Router) -> None:
    (answer,) = router.answers(1)

    assert answer.status_code == 502
    assert "x-inferops-track" not in answer.headers
    assert "x-inferops-version" not in answer.headers
