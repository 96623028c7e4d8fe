"""nginx weights and Prometheus targets of the local platform."""

import json

import pytest

from inferops.platforms.local_render import Pod, render_targets, render_upstreams, server_weights

IMG = "inferops-service@sha256:" + "e" * 64


@pytest.mark.parametrize(
    ("weight", "n_stable", "n_canary", "expected"),
    [
        (0, 2, 2, (1, 0)),
        (100, 2, 2, (0, 1)),
        (10, 2, 2, (9, 1)),
        (25, 2, 1, (3, 2)),
        (50, 3, 1, (1, 3)),
        (10, 2, 0, (1, 0)),
    ],
)
def test_server_weights_give_each_track_its_share(weight, n_stable, n_canary, expected) -> None:
    ws, wc = server_weights(weight, n_stable, n_canary)
    assert (ws, wc) == expected
    if n_canary and 0 < weight < 100:
        canary_share = wc * n_canary / (wc * n_canary + ws * n_stable)
        assert canary_share == pytest.approx(weight / 100)


def pods() -> list[Pod]:
    return [
        Pod("stable-1-0", "stable", IMG, 18100, 18101),
        Pod("canary-2-0", "canary", IMG, 18102, 18103),
    ]


def test_a_track_at_zero_percent_is_left_out() -> None:
    text = render_upstreams(pods(), 0, "abc")
    assert "18100 weight=1" in text and "18102" not in text


def test_no_serving_pod_is_refused() -> None:
    with pytest.raises(ValueError, match="no pod"):
        render_upstreams([], 0, "abc")


def test_targets_carry_track_and_version_labels() -> None:
    targets = json.loads(render_targets(pods(), "local"))
    assert targets[1]["labels"] == {
        "env": "local",
        "track": "canary",
        "version": "e" * 12,
        "pod": "canary-2-0",
    }
    assert targets[0]["targets"] == ["127.0.0.1:18101"]
