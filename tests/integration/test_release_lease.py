"""One release at a time on a cluster environment: the Lease that holds it.

No cluster is reachable from these machines, so the Lease is taken, renewed and
released against a loopback server that answers the Kubernetes API's paths as
the API does (``tests/k8s_api.py``): a create of a taken name and a replace with
a stale resourceVersion are refused with 409, which is what makes the hold safe
between machines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from k8s_api import FakeKubeAPI, Served
from kubernetes.client import ApiClient, Configuration

from inferops.lock import EnvironmentBusy
from inferops.platforms.base import PlatformError
from inferops.platforms.kubernetes_lease import (
    LEASE_NAME,
    LeaseLost,
    ReleaseLease,
    release_holder,
)

PATH = f"/apis/coordination.k8s.io/v1/namespaces/inferops/leases/{LEASE_NAME}"


@pytest.fixture
def cluster() -> Iterator[tuple[FakeKubeAPI, ApiClient]]:
    api = FakeKubeAPI()
    served = Served(api)
    client = ApiClient(Configuration(host=served.url))
    yield api, client
    client.close()
    served.close()


def lease(client: ApiClient, holder: str, **options: Any) -> ReleaseLease:
    return ReleaseLease(client, "inferops", "dev", holder, **options)


def stored(api: FakeKubeAPI) -> dict[str, Any]:
    found = api.read(PATH)
    assert found is not None
    return found


def write(api: FakeKubeAPI, obj: dict[str, Any]) -> None:
    """Someone else's write of the Lease: it gets a new resourceVersion."""
    with api.lock:
        meta = obj["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        api.objects[PATH] = obj


def test_a_second_release_is_refused_with_who_holds_the_environment(
    cluster: tuple[FakeKubeAPI, ApiClient],
) -> None:
    api, client = cluster
    with lease(client, "release r-1") as first:
        first.check()  # held
        spec = stored(api)["spec"]
        assert spec["holderIdentity"] == first.identity
        assert "release r-1" in first.identity
        with pytest.raises(EnvironmentBusy, match=r"held by release r-1 \(pid \d+ on .*since"):
            lease(client, "release r-2").__enter__()
        assert (release_holder(client, "inferops") or "").startswith(first.identity + ", since")
    assert release_holder(client, "inferops") is None
    # Released on leaving: the next release takes it at once, and the hand-over is counted.
    assert stored(api)["spec"].get("holderIdentity") is None
    with lease(client, "release r-2"):
        spec = stored(api)["spec"]
        assert "release r-2" in spec["holderIdentity"]
        assert spec["leaseTransitions"] == 1


def test_a_lease_its_holder_stopped_renewing_is_taken_over(
    cluster: tuple[FakeKubeAPI, ApiClient],
) -> None:
    api, client = cluster
    crashed = lease(client, "release r-1", duration_s=30).__enter__()
    crashed._stop.set()  # the process died: nobody renews it any more
    with pytest.raises(EnvironmentBusy):
        lease(client, "release r-2").__enter__()
    stale = stored(api)
    stale["spec"]["renewTime"] = (datetime.now(UTC) - timedelta(seconds=31)).isoformat()
    write(api, stale)
    with lease(client, "release r-2"):
        assert "release r-2" in stored(api)["spec"]["holderIdentity"]


def test_of_two_releases_racing_for_a_free_lease_one_wins(
    cluster: tuple[FakeKubeAPI, ApiClient],
) -> None:
    api, client = cluster
    with lease(client, "release r-1"):
        pass
    late = lease(client, "release r-3")
    read = late.leases.read_namespaced_lease

    def read_then_lose_the_race(name: str, namespace: str) -> Any:
        seen = read(name, namespace)
        with lease(client, "release r-2"):  # takes it between our read and our write
            pass
        return seen

    late.leases.read_namespaced_lease = read_then_lose_the_race  # type: ignore[method-assign]
    with pytest.raises(EnvironmentBusy, match="taken by another release just now"):
        late.__enter__()
    # The loser wrote nothing: the Lease is as the winner left it.
    assert stored(api)["spec"].get("holderIdentity") is None
    assert stored(api)["spec"]["leaseTransitions"] == 1


def test_the_hold_is_renewed_while_the_release_runs(
    cluster: tuple[FakeKubeAPI, ApiClient],
) -> None:
    api, client = cluster
    with lease(client, "release r-1", duration_s=3):
        first = stored(api)["spec"]["renewTime"]
        deadline = time.monotonic() + 10
        while stored(api)["spec"]["renewTime"] == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stored(api)["spec"]["renewTime"] != first


def test_a_hold_taken_over_is_lost_and_left_to_its_new_holder(
    cluster: tuple[FakeKubeAPI, ApiClient],
) -> None:
    api, client = cluster
    with lease(client, "release r-1", duration_s=3) as held:
        taken = stored(api)
        taken["spec"]["holderIdentity"] = "release r-9 (an operator's laptop)"
        write(api, taken)
        deadline = time.monotonic() + 10
        while held.lost is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert held.lost is not None and "release r-9" in held.lost
        with pytest.raises(LeaseLost, match="stopped before committing anything more"):
            held.check()
    assert stored(api)["spec"]["holderIdentity"] == "release r-9 (an operator's laptop)"


def test_credentials_that_may_not_touch_leases_say_what_they_need(
    cluster: tuple[FakeKubeAPI, ApiClient],
) -> None:
    api, client = cluster
    api.refuse = True
    with pytest.raises(PlatformError, match="need get, create and update on coordination"):
        lease(client, "release r-1").__enter__()
