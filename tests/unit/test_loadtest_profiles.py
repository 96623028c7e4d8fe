"""Load profiles are strict data; the shipped ones load; fitting to a window is exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from inferops.loadtest import LoadProfile, LoadProfileError, load_profile

PROFILES = Path(__file__).resolve().parents[2] / "loadtests" / "profiles"


def profile(*stages: tuple[float, int, float], name: str = "p") -> LoadProfile:
    return LoadProfile.model_validate(
        {
            "name": name,
            "stages": [{"duration_s": d, "users": u, "spawn_rate": r} for d, u, r in stages],
        }
    )


@pytest.mark.parametrize("name", ["smoke", "step", "ramp", "soak", "capacity", "capacity-quick"])
def test_shipped_profiles_load(name: str) -> None:
    loaded = load_profile(PROFILES / f"{name}.yaml")

    assert loaded.name == name
    assert loaded.duration_s > 0 and loaded.peak_users > 0


def test_step_profile_is_constant_users() -> None:
    step = load_profile(PROFILES / "step.yaml")

    assert len({stage.users for stage in step.stages}) == 1


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"name": "x", "stages": []}, "at least 1 item"),
        ({"name": "x"}, "stages"),
        (
            {"name": "x", "stages": [{"duration_s": 0, "users": 1, "spawn_rate": 1}]},
            "greater than 0",
        ),
        ({"name": "x", "stages": [{"duration_s": 5, "users": -1, "spawn_rate": 1}]}, "users"),
        ({"name": "x", "stages": [{"duration_s": 5, "users": 1, "spawn_rate": 0}]}, "spawn_rate"),
        ({"name": "x", "stages": [{"duration_s": 5, "users": 0, "spawn_rate": 1}]}, "users > 0"),
        (
            {"name": "x", "stages": [{"duration_s": 5, "users": 1, "spawn_rate": 1, "rps": 9}]},
            "Extra inputs are not permitted",
        ),
        ({"name": "x", "shape": "ramp", "stages": []}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_profiles_are_refused_with_the_file_named(
    tmp_path: Path, document: dict[str, Any], complaint: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document))

    with pytest.raises(LoadProfileError, match=r"bad\.yaml is invalid") as caught:
        load_profile(path)
    assert complaint in str(caught.value)


def test_unreadable_and_malformed_files_are_profile_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("stages: [\n")

    with pytest.raises(LoadProfileError, match="not valid YAML"):
        load_profile(broken)
    with pytest.raises(LoadProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.yaml")


def test_fitting_holds_the_last_stage_for_a_longer_window() -> None:
    fitted = profile((60, 10, 10)).fitted(90)

    assert [(s.duration_s, s.users) for s in fitted.stages] == [(90, 10)]


def test_fitting_cuts_stages_for_a_shorter_window() -> None:
    fitted = profile((30, 5, 5), (30, 10, 5), (30, 20, 5)).fitted(45)

    assert [(s.duration_s, s.users) for s in fitted.stages] == [(30, 5), (15, 10)]
    assert fitted.duration_s == 45


def test_fitting_refuses_a_window_without_load() -> None:
    with pytest.raises(ValueError, match="puts no load"):
        profile((10, 0, 1), (10, 5, 1)).fitted(5)
    with pytest.raises(ValueError, match="positive number of seconds"):
        profile((10, 5, 1)).fitted(0)


def test_arrival_rates_are_given_on_every_stage_or_none() -> None:
    open_loop = load_profile(PROFILES / "capacity.yaml")
    assert open_loop.open_loop and [s.rate_rps for s in open_loop.stages][:3] == [5, 10, 20]
    assert not load_profile(PROFILES / "step.yaml").open_loop
    with pytest.raises(ValueError, match="rate_rps on every stage"):
        LoadProfile.model_validate(
            {
                "name": "mixed",
                "stages": [
                    {"duration_s": 5, "users": 4, "spawn_rate": 4, "rate_rps": 10},
                    {"duration_s": 5, "users": 4, "spawn_rate": 4},
                ],
            }
        )
    fitted = open_loop.fitted(25)
    assert [s.rate_rps for s in fitted.stages] == [5, 10, 20]


def test_a_machine_missing_from_the_price_table_is_refused_naming_those_it_has() -> None:
    from inferops.loadtest_plan import LoadTestRefused, price_of

    hourly, name = price_of("aws:g5.xlarge")
    assert hourly > 0 and name == "aws g5.xlarge on-demand"
    spot, _ = price_of("aws:g5.xlarge:spot")
    assert 0 < spot < hourly
    with pytest.raises(LoadTestRefused, match=r"no aws instance 'p9\.huge'; it has .*g5\.xlarge"):
        price_of("aws:p9.huge")
    with pytest.raises(LoadTestRefused, match="CLOUD:INSTANCE"):
        price_of("g5.xlarge")
