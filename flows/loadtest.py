"""A load test of its own, judged against the SLO file.

The runbook: check the profile, the SLO file and the target (``plan_loadtest``: a
one-line refusal before any load is sent); drive the profile with Locust, reporting
users, requests/s, p95 TTFT and failures as it goes; read every SLO with an absolute
limit off the run's requests (``inferops.analysis.slo_report``); keep the figures as
``summary.json`` beside the samples and as a Prefect artifact. The run ends
``Completed`` when every SLO held, ``Failed`` (named ``Breached``) when one did not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from inferops.analysis.samples import SampleSet
from inferops.analysis.slo_report import breached, judge_run
from inferops.config import load_config
from inferops.loadtest import run_load
from inferops.loadtest_plan import LoadTestPlan, plan_loadtest


def run_plan(plan: LoadTestPlan) -> dict[str, Any]:
    """Run a planned load test and judge it: the summary."""
    log = get_run_logger()
    log.info(
        "load test %s against %s (%s), judged by %s",
        plan.profile.name,
        plan.target,
        plan.url,
        plan.slo_path,
    )
    prices = (
        {"INFEROPS_LOAD_PRICES": json.dumps(plan.spec.cost.model_dump())} if plan.spec.cost else {}
    )
    result = run_load(
        plan.url,
        plan.profile,
        plan.out_dir,
        env={"INFEROPS_LOAD_MAX_TOKENS": str(plan.max_tokens), **prices},
        on_progress=log.info,
        progress_every_s=5.0,
    )
    samples = SampleSet.from_records(result.samples(), "run")
    results = judge_run(plan.spec, samples)
    broken = breached(results)
    for r in results:
        log.info("%s %s", {True: "held  ", False: "BREACH", None: "-     "}[r.held], r.detail)
    summary = {
        "env": plan.env,
        "profile": plan.profile.name,
        "target": plan.target,
        "url": plan.url,
        "slo_file": str(plan.slo_path),
        "requests": result.requests,
        "failures": result.failures,
        "rps": round(result.rps, 2),
        "duration_s": round(result.duration_s, 1),
        "held": not broken,
        "breached": [r.name for r in broken],
        "checks": [r.to_dict() for r in results],
        "samples": str(result.samples_path),
    }
    (plan.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    create_table_artifact(
        key=f"loadtest-{plan.env}-{plan.profile.name}".lower().replace("_", "-"),
        table=[
            {
                "check": r.name,
                "figure": "-" if r.figure is None else f"{r.figure:.4g}",
                "limit": "-" if r.limit is None else f"{r.bound} {r.limit:g}",
                "held": {True: "yes", False: "NO", None: "not judged"}[r.held],
                "detail": r.detail,
            }
            for r in results
        ],
        description=(
            f"{plan.profile.name} on {plan.env} ({plan.target}): {result.requests} requests, "
            f"{result.rps:.1f} req/s, {result.failures} failed"
        ),
    )
    return summary


def headline(summary: dict[str, Any]) -> str:
    """The run's result in one line."""
    start = (
        f"{summary['profile']} on {summary['env']}: {summary['requests']} requests at "
        f"{summary['rps']:.1f} req/s"
    )
    broken = [c for c in summary["checks"] if c["held"] is False]
    if not broken:
        judged = sum(1 for c in summary["checks"] if c["held"] is not None)
        return f"{start}; every SLO held ({judged} judged)"
    return f"{start}; SLO breached: " + "; ".join(c["detail"] for c in broken)


def summary_of(state: State) -> dict[str, Any]:
    """The summary a load-test run returned; an error it ended with is raised."""
    data = state.result(raise_on_failure=False)
    if isinstance(data, BaseException):
        raise data
    if not isinstance(data, dict):
        raise RuntimeError(f"the run ended {state.name} without a summary: {state.message}")
    return data


@flow(name="loadtest")
def loadtest(
    env: str = "local",
    profile: str = "smoke",
    target: str | None = None,
    slo_path: str | None = None,
    config_path: str = "inferops.yaml",
) -> State:
    """Run ``profile`` against ``env`` (or ``target``) and judge it against its SLOs.

    Ends ``Completed`` when every SLO held, else ``Failed`` named ``Breached``; the summary
    is the result either way (read it with ``state.result(raise_on_failure=False)``).
    """
    plan = plan_loadtest(
        load_config(config_path), env, profile, target, None if slo_path is None else Path(slo_path)
    )
    summary = run_plan(plan)
    if summary["held"]:
        return Completed(data=summary, message=headline(summary))
    return Failed(data=summary, name="Breached", message=headline(summary))
