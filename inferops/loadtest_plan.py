"""What ``inferops loadtest`` will do, checked before any load is sent.

``plan_loadtest`` turns the command's arguments into a ``LoadTestPlan``: the profile
(a name in the project's profiles folder, or a file), the SLO file (``--slo``, else the
environment's), and where the load goes: the environment's own router by default, one
pod of a track (``stable`` or ``canary``: what a single replica carries), or an explicit
``http(s)`` URL. Each problem is a ``LoadTestRefused`` whose message says what to do:
an unknown profile lists the known ones, a target that refuses connections is named,
an instance type missing from the price table lists those it has. ``--priced-as
aws:g5.xlarge`` (``:spot`` for spot capacity) prices the run as if the target were
that machine: a capacity run then reports the cost per 1M output tokens at its knee.
Nothing here sends load or imports Prefect.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from inferops.analysis.spec import AnalysisSpec
from inferops.config import Config
from inferops.cost import load_prices
from inferops.environments import accepts, load_slos, open_target
from inferops.loadtest import LoadProfile, LoadProfileError, load_profile
from inferops.platforms.local import LocalPlatform

TRACKS = ("stable", "canary")


class LoadTestRefused(ValueError):
    """The load test cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class LoadTestPlan:
    """A load test ready to run."""

    env: str
    url: str
    target: str
    """What ``url`` is, in words: the router, a track's pod, or the URL given."""
    profile: LoadProfile
    profile_path: Path
    spec: AnalysisSpec
    slo_path: Path
    out_dir: Path
    max_tokens: int
    price: tuple[float, str] | None = None
    """The hourly price the run is priced at, and what it is (``aws g5.xlarge on-demand``)."""


def _profile(config: Config, env: str, name: str) -> tuple[LoadProfile, Path]:
    folder = config.path(config.environment(env).canary.load_profile).parent
    path = Path(name) if name.endswith((".yaml", ".yml")) else folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise LoadTestRefused(
            f"no load profile {name!r}: the profiles in {folder} are {', '.join(known)} "
            "(or give a profile file ending in .yaml)"
        )
    try:
        return load_profile(path), path
    except LoadProfileError as exc:
        raise LoadTestRefused(" ".join(str(exc).split())) from None


def _target(config: Config, env: str, target: str | None) -> tuple[str, str]:
    """The URL the load goes to, and what it is."""
    if target is not None and target not in TRACKS:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LoadTestRefused(
                f"--target {target!r}: give stable, canary or an http(s) URL such as "
                "http://127.0.0.1:18080"
            )
        return target.rstrip("/"), "--target"
    opened = open_target(config, env)
    if target is None:
        return opened.router_url, f"the router of {env}"
    if opened.on_cluster:
        raise LoadTestRefused(
            f"--target {target}: on a cluster, give the URL of that track's Service"
        )
    pods = [p for p in LocalPlatform(opened.local).status().pods if p.get("track") == target]
    if not pods:
        raise LoadTestRefused(
            f"--target {target}: {env} runs no {target} pod now (`inferops status --env {env}`)"
        )
    return f"http://127.0.0.1:{pods[0]['port']}", f"{target} pod {pods[0]['name']}"


def price_of(priced_as: str) -> tuple[float, str]:
    """``CLOUD:INSTANCE[:spot]`` at the price table's list price per hour, and its name."""
    cloud, _, rest = priced_as.partition(":")
    machine, _, market = rest.partition(":")
    if cloud not in ("aws", "gcp") or not machine or market not in ("", "spot", "on-demand"):
        raise LoadTestRefused(
            f"--priced-as {priced_as!r}: give CLOUD:INSTANCE[:spot], e.g. aws:g5.xlarge "
            "or gcp:g2-standard-8:spot"
        )
    table = load_prices()
    prices = table.aws if cloud == "aws" else table.gcp
    compute = prices.machines.get(machine)
    if compute is None:
        raise LoadTestRefused(
            f"--priced-as {priced_as!r}: the price table ({table.source}) has no {cloud} "
            f"instance {machine!r}; it has {', '.join(sorted(prices.machines))}"
        )
    spot = market == "spot"
    return prices.hourly(compute, spot), f"{cloud} {machine} {'spot' if spot else 'on-demand'}"


def plan_loadtest(
    config: Config,
    env: str,
    profile: str,
    target: str | None = None,
    slo: Path | None = None,
    priced_as: str | None = None,
) -> LoadTestPlan:
    """Check everything a load test needs; a ``LoadTestRefused`` names the first problem."""
    settings = config.environment(env)
    price = None if priced_as is None else price_of(priced_as)
    loaded, profile_path = _profile(config, env, profile)
    slo_path = slo.resolve() if slo is not None else config.path(settings.slo_file)
    spec = load_slos(slo_path)
    url, what = _target(config, env, target)
    if not accepts(url, timeout_s=2.0):
        if what == "--target":
            raise LoadTestRefused(f"--target {url} refuses connections: is the service up there?")
        raise LoadTestRefused(
            f"{what} at {url} refuses connections: start it (`inferops up --env {env}`) "
            "or give another --target"
        )
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return LoadTestPlan(
        env=env,
        url=url,
        target=what,
        profile=loaded,
        profile_path=profile_path,
        spec=spec,
        slo_path=slo_path,
        out_dir=config.env_state_dir(env) / "loadtests" / f"loadtest-{loaded.name}-{stamp}",
        max_tokens=settings.canary.max_tokens,
        price=price,
    )
