"""nginx weights and Prometheus targets of the local platform."""

import json
import re
from pathlib import Path

import pytest

from inferops.platforms.local_render import (
    Pod,
    render_idle_upstreams,
    render_nginx,
    render_targets,
    render_upstreams,
    server_weights,
)

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


def address_map(text: str, variable: str) -> list[tuple[re.Pattern[str], str]]:
    """The regex entries of the nginx map that sets ``$variable``, in order."""
    block = text.split(f"map $upstream_addr ${variable} {{", 1)[1].split("}", 1)[0]
    entries = re.findall(r'^\s*"~(.+)" "(.*)";$', block, flags=re.MULTILINE)
    return [(re.compile(pattern), value) for pattern, value in entries]


def lookup(text: str, variable: str, upstream_addr: str) -> str:
    """What nginx sets ``$variable`` to for ``$upstream_addr``: the first match, else ""."""
    for pattern, value in address_map(text, variable):
        if pattern.search(upstream_addr):
            return value
    return ""


def pods_of_two_versions() -> list[Pod]:
    return [
        Pod("stable-1-0", "stable", IMG, 18100, 18101),
        Pod("canary-2-0", "canary", IMG.replace("e", "f"), 18102, 18103),
    ]


@pytest.mark.parametrize(
    ("upstream_addr", "track"),
    [
        ("127.0.0.1:18102", "canary"),
        ("127.0.0.1:18100", "stable"),
        ("127.0.0.1:18102, 127.0.0.1:18100", "stable"),  # retried: the last server answered
        ("127.0.0.1:18100 : 127.0.0.1:18102", "canary"),  # an internal redirect
        ("127.0.0.1:181020", ""),
        ("10.0.0.1:18100", ""),
        ("inferops_service", ""),  # no server could be tried
    ],
)
def test_the_router_names_the_track_of_the_last_pod_it_tried(upstream_addr, track) -> None:
    text = render_upstreams(pods_of_two_versions(), 50, "abc")

    assert lookup(text, "inferops_upstream_track", upstream_addr) == track
    version = {"": "", "stable": "e" * 12, "canary": "f" * 12}[track]
    assert lookup(text, "inferops_upstream_version", upstream_addr) == version


def test_a_pod_not_in_the_upstream_is_not_mapped() -> None:
    text = render_upstreams(pods(), 0, "abc")
    assert [v for _, v in address_map(text, "inferops_upstream_track")] == ["stable"]


def test_nothing_is_mapped_before_any_pod_serves() -> None:
    text = render_idle_upstreams()
    assert "down;" in text
    for variable in ("inferops_upstream_track", "inferops_upstream_version"):
        assert address_map(text, variable) == []


def test_a_value_nginx_would_read_as_a_variable_is_refused() -> None:
    bad = Pod("canary-0", "canary", "$host", 18102, 18103)  # its version: the image
    with pytest.raises(ValueError, match="router header"):
        render_upstreams([pods()[0], bad], 50, "abc")


def test_pods_stay_in_rotation_and_idle_connections_close_before_the_pods_do() -> None:
    text = render_upstreams(pods(), 50, "abc")
    servers = [line for line in text.splitlines() if line.strip().startswith("server ")]
    assert len(servers) == 2 and all("max_fails=0;" in line for line in servers)
    assert "keepalive_timeout 4s;" in text


def test_the_router_adds_track_headers_only_where_the_pod_sent_none(tmp_path: Path) -> None:
    text = render_nginx(tmp_path, 8080, run_as_root=False)
    assert "proxy_next_upstream off;" in text
    for name in ("track", "version"):
        header = f"x-inferops-{name}"
        assert f"add_header {header} $inferops_router_{name} always;" in text
        block = text.split(f"$inferops_router_{name} {{", 1)[1].split("}", 1)[0]
        # The pod's own header empty (absent): the tried pod's; present: add nothing.
        assert f'"" $inferops_upstream_{name};' in block and 'default "";' in block
        assert f"map $upstream_http_x_inferops_{name} $inferops_router_{name}" in text
