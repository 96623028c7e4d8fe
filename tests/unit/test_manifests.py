"""Desired state <-> manifests: reading, editing, and refusing bad input."""

from pathlib import Path

import pytest
import yaml

from inferops.gitops.manifests import (
    DesiredState,
    ManifestError,
    TrackSpec,
    image_version,
    read_state,
    seed,
    write_state,
)
from inferops.rollout import canary_at, candidate_for

OVERLAY = Path(__file__).parents[2] / "gitops" / "overlays" / "local"
IMG_A = "inferops-service@sha256:" + "a" * 64
IMG_B = "inferops-service@sha256:" + "b" * 64


def overlay() -> dict[str, str]:
    return {p.name: p.read_text() for p in OVERLAY.iterdir()}


FAULTS = (("INFEROPS_FAULTS_ERROR_RATE", "0.01"),)
"""The local overlay's env: its simulated service fails about 1% of requests."""


def test_reads_the_local_overlay() -> None:
    state = read_state(overlay())
    assert state.weight == 0
    assert state.stable.replicas == 2
    assert state.canary.replicas == 0
    assert state.stable.env == state.canary.env == FAULTS


def test_a_releases_setting_overrides_the_local_error_rate_on_the_canary_only() -> None:
    files = seed(overlay(), IMG_A)
    state = read_state(files)
    bad = candidate_for(state, IMG_B, {"INFEROPS_FAULTS_ERROR_RATE": "0.08", "X": "1"})
    good = candidate_for(state, IMG_B, {"X": "1"})

    for candidate, rate in ((bad, "0.08"), (good, "0.01")):
        released = read_state(write_state(files, canary_at(state, candidate, 25)))
        assert dict(released.canary.env) == {"INFEROPS_FAULTS_ERROR_RATE": rate, "X": "1"}
        assert released.stable.env == FAULTS


def test_write_then_read_round_trips_and_touches_only_changed_files() -> None:
    files = overlay()
    state = DesiredState(TrackSpec(IMG_A, 2), TrackSpec(IMG_B, 2, (("X", "1"),)), weight=25)
    out = write_state(files, state)
    assert read_state(out) == state
    assert out["services.yaml"] == files["services.yaml"]
    ingress = [d for d in yaml.safe_load_all(out["traffic.yaml"]) if d][1]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] == "25"


def test_writing_the_same_state_changes_nothing() -> None:
    files = write_state(overlay(), DesiredState(TrackSpec(IMG_A, 2), TrackSpec(IMG_A, 0)))
    again = write_state(files, read_state(files))
    assert again == files


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (DesiredState(TrackSpec(IMG_A, 2), TrackSpec(IMG_B, 0), weight=10), "canary replicas"),
        (DesiredState(TrackSpec(IMG_A, 0), TrackSpec(IMG_B, 1), weight=50), "stable takes"),
        (DesiredState(TrackSpec(IMG_A, 2), TrackSpec(IMG_B, 1), weight=101), "0..100"),
        (DesiredState(TrackSpec("Not An Image!", 2), TrackSpec(IMG_B, 1)), "image"),
        (DesiredState(TrackSpec(IMG_A, 2), TrackSpec(IMG_B, 1, (("bad key", "x"),))), "env name"),
    ],
)
def test_invalid_states_are_refused_before_writing(state: DesiredState, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        write_state(overlay(), state)


def test_manifests_without_a_canary_deployment_are_rejected() -> None:
    files = overlay()
    del files["canary.yaml"]
    with pytest.raises(ManifestError, match=r"inferops\.io/track=canary"):
        read_state(files)


def test_broken_yaml_names_the_file() -> None:
    files = overlay()
    files["traffic.yaml"] = "kind: [unclosed"
    with pytest.raises(ManifestError, match=r"traffic\.yaml"):
        read_state(files)


def test_seeding_puts_the_image_on_stable_and_empties_the_canary() -> None:
    state = read_state(seed(overlay(), IMG_A, 3))
    assert state.stable == TrackSpec(IMG_A, 3, FAULTS)
    assert state.canary.replicas == 0 and state.weight == 0


def test_seeding_keeps_the_replicas_the_manifests_hold_unless_told() -> None:
    assert read_state(seed(overlay(), IMG_A)).stable.replicas == 2


DOWNWARD = {
    "name": "INFEROPS_IDENTITY_TRACK",
    "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['inferops.io/track']"}},
}


def with_downward_env(files: dict[str, str]) -> dict[str, str]:
    """The overlay with the track variable from the downward API on both Deployments."""
    out = dict(files)
    for name in ("stable.yaml", "canary.yaml"):
        docs = list(yaml.safe_load_all(files[name]))
        for doc in docs:
            if doc and doc.get("kind") == "Deployment":
                doc["spec"]["template"]["spec"]["containers"][0]["env"] = [DOWNWARD]
        out[name] = yaml.safe_dump_all(docs)
    return out


def env_of(files: dict[str, str], name: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(files[name]) if d and d.get("kind") == "Deployment"]
    return docs[0]["spec"]["template"]["spec"]["containers"][0]["env"]


def test_variables_from_the_downward_api_are_kept_and_not_part_of_a_release() -> None:
    files = with_downward_env(overlay())
    assert read_state(files).stable.env == ()
    canary = TrackSpec(IMG_B, 1, (("INFEROPS_SIMULATOR_TTFT_MS", "30"),))
    written = write_state(files, DesiredState(TrackSpec(IMG_A, 2), canary, 10))
    assert env_of(written, "canary.yaml") == [
        DOWNWARD,
        {"name": "INFEROPS_SIMULATOR_TTFT_MS", "value": "30"},
    ]
    assert read_state(written).canary == canary
    # A release that sets the same variable replaces the manifests' source for it.
    pinned = TrackSpec(IMG_B, 1, (("INFEROPS_IDENTITY_TRACK", "canary"),))
    written = write_state(files, DesiredState(TrackSpec(IMG_A, 2), pinned, 10))
    assert env_of(written, "canary.yaml") == [
        {"name": "INFEROPS_IDENTITY_TRACK", "value": "canary"}
    ]


ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: inferops-service
  namespace: inferops
spec:
  parentRefs: [{name: inference, namespace: gateways}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs:
        - {name: inferops-service-stable, port: 80, weight: 100}
        - {name: inferops-service-canary, port: 80, weight: 0}
"""


def gateway_overlay() -> dict[str, str]:
    files = overlay()
    files["traffic.yaml"] = ROUTE
    return files


def test_an_httproute_router_reads_and_writes_the_canary_share() -> None:
    files = gateway_overlay()
    assert read_state(files).weight == 0
    state = DesiredState(TrackSpec(IMG_A, 2), TrackSpec(IMG_B, 2), weight=25)
    out = write_state(files, state)
    assert read_state(out) == state
    (route,) = [d for d in yaml.safe_load_all(out["traffic.yaml"]) if d]
    weights = {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]}
    assert weights == {"inferops-service-stable": 75, "inferops-service-canary": 25}
    # Everything else in the route is as it was.
    before = yaml.safe_load(ROUTE)
    for ref in before["spec"]["rules"][0]["backendRefs"]:
        ref["weight"] = weights[ref["name"]]
    assert route == before


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (ROUTE.replace("weight: 100", "weight: 90"), "adding up to 100"),
        (ROUTE.replace("weight: 0", "weight: none"), "must be an integer"),
    ],
)
def test_an_httproute_that_does_not_split_100_is_refused(route: str, message: str) -> None:
    files = {**overlay(), "traffic.yaml": route}
    with pytest.raises(ManifestError, match=message):
        read_state(files)


def test_two_routers_at_once_are_refused() -> None:
    files = {**overlay(), "route.yaml": ROUTE}
    with pytest.raises(ManifestError, match="keep one router"):
        read_state(files)


def test_a_version_is_the_short_digest_or_a_tag_fit_for_a_label() -> None:
    assert image_version(IMG_B) == "b" * 12
    assert image_version("registry.example:5000/inferops-service:v1.2+rc1") == "v1.2-rc1"
    assert image_version("registry.example:5000/inferops-service") == "latest"


def test_the_version_label_follows_the_image_where_the_pods_carry_one() -> None:
    files = overlay()
    docs = list(yaml.safe_load_all(files["canary.yaml"]))
    for doc in docs:
        if doc and doc.get("kind") == "Deployment":
            doc["spec"]["template"]["metadata"]["labels"]["inferops.io/version"] = "unset"
    files["canary.yaml"] = yaml.safe_dump_all(docs)
    written = write_state(files, DesiredState(TrackSpec(IMG_A, 2), TrackSpec(IMG_B, 1), 10))
    canary = next(
        d for d in yaml.safe_load_all(written["canary.yaml"]) if d and d["kind"] == "Deployment"
    )
    assert canary["spec"]["template"]["metadata"]["labels"]["inferops.io/version"] == "b" * 12
    # The local overlay's stable pods carry no version label, and none is added.
    stable = next(
        d for d in yaml.safe_load_all(written["stable.yaml"]) if d and d["kind"] == "Deployment"
    )
    assert "inferops.io/version" not in stable["spec"]["template"]["metadata"]["labels"]
