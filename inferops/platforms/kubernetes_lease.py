"""One release at a time on a cluster environment, whichever machine runs it: a Lease.

The file lock of a local environment holds only on one machine; the pipelines
that release to a cluster run on CI runners and laptops alike. So a cluster
environment is held through a ``coordination.k8s.io/v1`` Lease in the service's
namespace, as Kubernetes' own leader election does:

- taking it creates the Lease, or takes over one whose holder let it lapse
  (released, or not renewed within its duration), by a replace that carries the
  resourceVersion read: of two callers racing, the API server lets one through
  and answers the other 409 Conflict;
- a thread renews it every third of its duration while the release runs, so a
  crashed release frees the environment within one duration;
- leaving releases it (no holder), so the next release need not wait.

A refused caller learns who holds the environment and since when.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from inferops.lock import EnvironmentBusy
from inferops.platforms.base import PlatformError

LEASE_NAME = "inferops-release"


class LeaseLost(PlatformError):
    """The release's Lease was taken over, or could not be renewed in time."""


class LeaseTaken(LeaseLost):
    """Someone else holds the release's Lease now."""


class ReleaseLease:
    """Exclusive hold of a cluster environment for one release, through a Lease."""

    def __init__(
        self,
        api: k8s.ApiClient,
        namespace: str,
        env: str,
        holder: str,
        *,
        duration_s: int = 120,
        name: str = LEASE_NAME,
    ) -> None:
        self.leases = k8s.CoordinationV1Api(api)
        self.namespace = namespace
        self.env = env
        self.name = name
        self.duration_s = duration_s
        self.identity = f"{holder} (pid {os.getpid()} on {socket.gethostname()})"
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost: str | None = None
        """Why the hold was lost while the release ran, or None."""

    # --- taking and releasing --------------------------------------------------------

    def __enter__(self) -> ReleaseLease:
        now = datetime.now(UTC)
        try:
            lease = self.leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise self._failed("read", exc) from None
            lease = None
        except HTTPError as exc:
            raise PlatformError(f"cannot read the Lease {self.name}: {exc}") from None
        if lease is None:
            body = k8s.V1Lease(
                metadata=k8s.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=self._spec(now, acquired=now, transitions=0),
            )
            self._write("create", lambda: self.leases.create_namespaced_lease(self.namespace, body))
        else:
            spec = lease.spec or k8s.V1LeaseSpec()
            if _held(spec, now):
                raise self._busy(spec)
            lease.spec = self._spec(
                now, acquired=now, transitions=(spec.lease_transitions or 0) + 1
            )
            # The replace carries the resourceVersion read: of two racing callers, one gets 409.
            self._write(
                "take over",
                lambda: self.leases.replace_namespaced_lease(self.name, self.namespace, lease),
            )
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True, name="lease")
        self._renewer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self.lost is not None:
            return  # someone else holds it now: leave their hold alone
        try:
            lease = self.leases.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = datetime.now(UTC)
                self.leases.replace_namespaced_lease(self.name, self.namespace, lease)
        except (ApiException, HTTPError):
            pass  # it lapses within its duration anyway

    # --- renewing --------------------------------------------------------------------

    def check(self) -> None:
        """LeaseLost when the hold was lost while the release ran: commit nothing more."""
        if self.lost is not None:
            raise LeaseLost(
                f"environment {self.env!r} is no longer held by this release: {self.lost}; "
                "stopped before committing anything more"
            )

    def renew(self) -> None:
        """Extend the hold by one duration; LeaseLost when someone else holds it now."""
        try:
            lease = self.leases.read_namespaced_lease(self.name, self.namespace)
        except (ApiException, HTTPError) as exc:
            raise LeaseLost(f"cannot read the Lease {self.name}: {exc}") from None
        spec = lease.spec or k8s.V1LeaseSpec()
        if spec.holder_identity != self.identity:
            raise LeaseTaken(f"the Lease {self.name} is held by {spec.holder_identity} now")
        spec.renew_time = datetime.now(UTC)
        try:
            self.leases.replace_namespaced_lease(self.name, self.namespace, lease)
        except (ApiException, HTTPError) as exc:
            raise LeaseLost(f"cannot renew the Lease {self.name}: {exc}") from None

    def _renew_loop(self) -> None:
        period = self.duration_s / 3
        last = datetime.now(UTC)
        while not self._stop.wait(period):
            try:
                self.renew()
                last = datetime.now(UTC)
            except LeaseLost as exc:
                # A passing API error is retried until the hold would have lapsed.
                lapsed = datetime.now(UTC) - last > timedelta(seconds=self.duration_s)
                if isinstance(exc, LeaseTaken) or lapsed:
                    self.lost = str(exc)
                    return

    # --- helpers ---------------------------------------------------------------------

    def _spec(self, now: datetime, acquired: datetime, transitions: int) -> k8s.V1LeaseSpec:
        return k8s.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.duration_s,
            acquire_time=acquired,
            renew_time=now,
            lease_transitions=transitions,
        )

    def _busy(self, spec: k8s.V1LeaseSpec) -> EnvironmentBusy:
        since = spec.acquire_time.strftime("%Y-%m-%d %H:%M:%S UTC") if spec.acquire_time else "?"
        return EnvironmentBusy(
            f"environment {self.env!r} is held by {spec.holder_identity} since {since} "
            f"(Lease {self.namespace}/{self.name}); wait for it to finish, or for the Lease "
            f"to lapse {spec.lease_duration_seconds}s after its holder stops renewing it"
        )

    def _write(self, what: str, request: Callable[[], k8s.V1Lease]) -> k8s.V1Lease:
        try:
            result: k8s.V1Lease = request()
        except ApiException as exc:
            if exc.status == 409:
                # Another release took it between our read and our write.
                raise EnvironmentBusy(
                    f"environment {self.env!r} was taken by another release just now "
                    f"(Lease {self.namespace}/{self.name}); wait for it to finish"
                ) from None
            raise self._failed(what, exc) from None
        except HTTPError as exc:
            raise PlatformError(f"cannot {what} the Lease {self.name}: {exc}") from None
        return result

    def _failed(self, what: str, exc: ApiException) -> PlatformError:
        return PlatformError(
            f"cannot {what} the Lease {self.namespace}/{self.name} that holds releases "
            f"of {self.env!r}: {exc.status} {exc.reason} (the pipeline's credentials need "
            "get, create and update on coordination.k8s.io leases in that namespace: "
            "gitops/controllers/pipeline/rbac.yaml grants them)"
        )


def release_holder(api: k8s.ApiClient, namespace: str, name: str = LEASE_NAME) -> str | None:
    """Who holds the environment now and since when, or None (free, lapsed, or unreadable)."""
    try:
        lease = k8s.CoordinationV1Api(api).read_namespaced_lease(name, namespace)
    except (ApiException, HTTPError):
        return None
    spec = lease.spec or k8s.V1LeaseSpec()
    if not _held(spec, datetime.now(UTC)):
        return None
    since = spec.acquire_time.strftime("%Y-%m-%d %H:%M:%S UTC") if spec.acquire_time else "?"
    return f"{spec.holder_identity}, since {since}"


def _held(spec: k8s.V1LeaseSpec, now: datetime) -> bool:
    """True when a holder renewed the Lease within its duration."""
    if not spec.holder_identity or spec.renew_time is None:
        return False
    duration = timedelta(seconds=spec.lease_duration_seconds or 0)
    renewed: datetime = spec.renew_time
    if renewed.tzinfo is None:
        renewed = renewed.replace(tzinfo=UTC)
    return bool(renewed + duration > now)
