"""Desired state <-> manifests: reading, editing, and refusing bad input."""

from pathlib import Path

import pytest
import yaml

from inferops.gitops.manifests import (
    DesiredState,
    ManifestError,
    TrackSpec,
    read_state,
    seed,
    write_state,
)

OVERLAY = Path(__file__).parents[2] / "gitops" / "overlays" / "local"
IMG_A = "inferops-service@sha256:" + "a" * 64
IMG_B = "inferops-service@sha256:" + "b" * 64


def overlay() -> dict[str, str]:
    return {p.name: p.read_text() for p in OVERLAY.iterdir()}


def test_reads_the_local_overlay() -> None:
    state = read_state(overlay())
    assert state.weight == 0
    assert state.stable.replicas == 2
    assert state.canary.replicas == 0


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
    assert state.stable == TrackSpec(IMG_A, 3)
    assert state.canary.replicas == 0 and state.weight == 0
