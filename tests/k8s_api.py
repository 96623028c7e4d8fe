"""A Kubernetes API server's HTTP answers on loopback, for the Kubernetes platform's tests.

No cluster is reachable from the test machines, so the tests meet the platform at
the HTTP boundary: this server answers the paths the official client calls
(discovery, GET of objects and lists, server-side apply and merge ``PATCH``,
``DELETE``) with objects recorded in ``tests/fixtures/k8s/`` as the API returns
them, and records every request it receives. It emulates what the tests rely on
and no more: label selectors of the ``key=value`` form; list items without
``kind``/``apiVersion`` for built-in types, as the API serves them; an apply
creates the object or replaces its metadata and spec (keeping uid and status);
a create (``POST``) refuses a taken name and a replace (``PUT``) a stale
resourceVersion, both with 409; a delete honours a uid precondition.

``on_change``, when set, hears every write that created, changed or deleted an
object: ``(method, path, object)`` with the object as stored (as it was, for a
delete), called outside the server's lock, before the answer is sent. A test
that emulates a cluster's controllers reacts to it (``tests/cluster_sim.py``).
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "k8s"
# Built-in groups: their list items come without kind and apiVersion.
BUILT_IN_GROUPS = {"", "apps", "networking.k8s.io", "policy", "autoscaling"}
OnChange = Callable[[str, str, dict[str, Any]], None]


def fixture(name: str) -> dict[str, Any]:
    """A recorded object from ``tests/fixtures/k8s``."""
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    authorization: str | None
    body: Any


@dataclass
class FakeKubeAPI:
    """Objects by their API path, the discovery documents, and the requests received."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    discovery: dict[str, Any] = field(default_factory=lambda: fixture("discovery.json"))
    requests: list[Seen] = field(default_factory=list)
    refuse: bool = False
    forbidden: set[str] = field(default_factory=set)
    """Paths answered 403, as for credentials whose RBAC does not grant them."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_change: OnChange | None = None
    """Called with (method, path, object) after a write created, changed or deleted an object."""

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """The plural name and whether the kind is namespaced, from discovery."""
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        for r in self.discovery[base]["resources"]:
            if r["kind"] == kind and "/" not in r["name"]:
                return r["name"], r["namespaced"]
        raise KeyError(f"{kind} ({api_version}) is not in the discovery fixture")

    def path_of(self, api_version: str, kind: str, namespace: str | None, name: str) -> str:
        """The API path of an object."""
        plural, namespaced = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        where = f"/namespaces/{namespace}" if namespaced else ""
        return f"{base}{where}/{plural}/{name}"

    def collection(self, path: str) -> tuple[str, str] | None:
        """The apiVersion and kind when ``path`` lists a kind (in a namespace or not), else None."""
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            api_version, rest = "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None
        if len(rest) == 3 and rest[0] == "namespaces":
            rest = rest[2:]
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        for r in self.discovery.get(base, {}).get("resources", []):
            if rest == [r["name"]]:
                return api_version, r["kind"]
        return None

    def put(self, *objs: dict[str, Any]) -> None:
        """Store objects as the server holds them."""
        for obj in objs:
            meta = obj["metadata"]
            path = self.path_of(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
            self.objects[path] = copy.deepcopy(obj)

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Any:
        """The stored object, or None."""
        return self.objects.get(self.path_of(api_version, kind, namespace, name))

    def seen(self, method: str) -> list[Seen]:
        """The requests received with ``method``."""
        return [r for r in self.requests if r.method == method]

    def read(self, path: str) -> dict[str, Any] | None:
        """A copy of the object stored at ``path``, or None (safe while the server runs)."""
        with self.lock:
            obj = self.objects.get(path)
            return copy.deepcopy(obj) if obj is not None else None

    def set_status(self, path: str, status: dict[str, Any]) -> bool:
        """Write an object's status as its controller would; False when it is gone."""
        with self.lock:
            obj = self.objects.get(path)
            if obj is None:
                return False
            obj["status"] = copy.deepcopy(status)
            meta = obj["metadata"]
            meta["resourceVersion"] = str(int(meta.get("resourceVersion") or 0) + 1)
            return True


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _content(obj: dict[str, Any] | None) -> Any:
    """An object without its resourceVersion: what a write changed, if anything."""
    if obj is None:
        return None
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body in one write: two small writes meet the client's delayed ACK.
    wbufsize = -1
    api: FakeKubeAPI

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = yaml.safe_load(raw) if raw else None
        api = self.api
        with api.lock:
            api.requests.append(
                Seen(
                    self.command,
                    url.path,
                    query,
                    self.headers.get("Content-Type"),
                    self.headers.get("Authorization"),
                    body,
                )
            )
            if url.path in api.discovery:
                return self._send(200, api.discovery[url.path])
            if api.refuse or url.path in api.forbidden:
                return self._send(403, _status(403, "Forbidden", "access denied for inferops"))
            hook = api.on_change if self.command != "GET" else None
            before = copy.deepcopy(api.objects.get(url.path)) if hook else None
            code, answer = getattr(self, f"_{self.command.lower()}")(url.path, query, body)
            after = copy.deepcopy(api.objects.get(url.path)) if hook else None
        if hook is not None and code < 300 and _content(before) != _content(after):
            changed = after if after is not None else before
            assert changed is not None
            hook(self.command, url.path, changed)
        self._send(code, answer)

    def _get(self, path: str, query: dict[str, str], _: Any) -> tuple[int, Any]:
        obj = self.api.objects.get(path)
        if obj is not None:
            return 200, obj
        listing = self.api.collection(path)
        if listing is None:
            name = path.rsplit("/", 1)[-1]
            return 404, _status(404, "NotFound", f'"{name}" not found')
        api_version, kind = listing
        prefix = path + "/"
        listed = [
            o
            for p, o in sorted(self.api.objects.items())
            if p.startswith(prefix)
            and "/" not in p[len(prefix) :]
            and _matches(o["metadata"].get("labels") or {}, query.get("labelSelector"))
        ]
        built_in = api_version.rpartition("/")[0] in BUILT_IN_GROUPS
        items = [
            {k: v for k, v in o.items() if not (built_in and k in ("apiVersion", "kind"))}
            for o in listed
        ]
        return 200, {
            "kind": f"{kind}List",
            "apiVersion": api_version,
            "metadata": {"resourceVersion": "48212000"},
            "items": items,
        }

    def _patch(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        old = self.api.objects.get(path)
        if self.headers.get("Content-Type") == "application/merge-patch+json":
            if old is None:
                return 404, _status(404, "NotFound", f"{path} not found")
            _merge(old, body)
            return 200, old
        new = copy.deepcopy(body)
        meta = new.setdefault("metadata", {})
        if old is None:
            meta.update(uid=str(uuid.uuid4()), resourceVersion="1", generation=1)
            code = 201
        else:
            meta["uid"] = old["metadata"]["uid"]
            meta["resourceVersion"] = str(int(old["metadata"]["resourceVersion"]) + 1)
            changed = new.get("spec") != old.get("spec")
            meta["generation"] = int(old["metadata"].get("generation", 1)) + int(changed)
            if "status" in old:
                new["status"] = old["status"]
            code = 200
        self.api.objects[path] = new
        return code, new

    def _delete(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        obj = self.api.objects.get(path)
        if obj is None:
            return 404, _status(404, "NotFound", f"{path} not found")
        want = ((body or {}).get("preconditions") or {}).get("uid")
        if want and want != obj["metadata"]["uid"]:
            return 409, _status(409, "Conflict", "Precondition failed: UID in precondition")
        del self.api.objects[path]
        return 200, {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"]},
        }

    def _post(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """Create: 409 AlreadyExists when the name is taken."""
        name = ((body or {}).get("metadata") or {}).get("name", "")
        where = f"{path}/{name}"
        if where in self.api.objects:
            return 409, _status(409, "AlreadyExists", f'"{name}" already exists')
        new = copy.deepcopy(body)
        new["metadata"].update(uid=str(uuid.uuid4()), resourceVersion="1", generation=1)
        self.api.objects[where] = new
        return 201, new

    def _put(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """Replace: 409 Conflict unless the body carries the stored resourceVersion."""
        old = self.api.objects.get(path)
        if old is None:
            return 404, _status(404, "NotFound", f"{path} not found")
        sent = ((body or {}).get("metadata") or {}).get("resourceVersion")
        if sent != old["metadata"]["resourceVersion"]:
            return 409, _status(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest "
                "version and try again",
            )
        new = copy.deepcopy(body)
        new["metadata"]["uid"] = old["metadata"]["uid"]
        new["metadata"]["resourceVersion"] = str(int(old["metadata"]["resourceVersion"]) + 1)
        self.api.objects[path] = new
        return 200, new

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()


class Served:
    """A FakeKubeAPI listening on loopback until ``close``."""

    def __init__(self, api: FakeKubeAPI) -> None:
        handler = type("Handler", (_Handler,), {"api": api})
        self.api = api
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
