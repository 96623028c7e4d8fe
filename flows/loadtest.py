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

from flows.runs import returned
from inferops.analysis.capacity import cost_at, knee, request_limits, stage_figures
from inferops.analysis.samples import SampleSet
from inferops.analysis.slo_report import breached, judge_run
from inferops.config import load_config
from inferops.loadtest import run_load
from inferops.loadtest_plan import LoadTestPlan, plan_loadtest
from inferops.loadtest_report import render_html
from inferops.loadtest_summary import headline, judged_rows


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
    rows = result.samples()
    capacity = _capacity(plan, rows) if plan.profile.open_loop else None
    judged, scope = judged_rows(rows, plan.profile, capacity)
    results = judge_run(plan.spec, SampleSet.from_records(judged, "run"))
    broken = breached(results)
    log.info("the SLOs, judged on %s:", scope)
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
        "generator_cores": result.generator_cores,
        "generator_bound": result.generator_bound,
        "judged_on": scope,
        "held": not broken,
        "breached": [r.name for r in broken],
        "checks": [r.to_dict() for r in results],
        "samples": str(result.samples_path),
    }
    if capacity is not None:
        summary["capacity"] = capacity
    report = plan.out_dir / "report.html"
    summary["report"] = str(report)
    (plan.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    starts, at = [], 0.0
    for stage in plan.profile.stages if len(plan.profile.stages) > 1 else ():
        label = f"{stage.rate_rps:g}/s" if stage.rate_rps else f"{stage.users}u"
        starts.append((at, label))
        at += stage.duration_s
    report.write_text(render_html(summary, rows, headline(summary), starts), encoding="utf-8")
    log.info("report: %s", report)
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


def _capacity(plan: LoadTestPlan, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Goodput at each offered rate of an open-loop run, and the knee; each stage logged."""
    log = get_run_logger()
    limits = request_limits(plan.spec)
    stages = [(float(s.rate_rps or 0.0), s.duration_s) for s in plan.profile.stages]
    figures = stage_figures(rows, stages, limits)
    for f in figures:
        ttft = "-" if f.ttft_p95_s is None else f"{f.ttft_p95_s * 1000:.0f} ms"
        log.info(
            "offered %g req/s: sent %.1f, goodput %.1f req/s (%.0f%% good), p95 TTFT %s, %d failed",
            f.offered_rps,
            f.sent_rps,
            f.goodput_rps,
            100 * f.good_share,
            ttft,
            f.failed,
        )
    found = knee(figures)
    ok = [r for r in rows if r.get("ok")]
    per_request = sum(int(r.get("output_tokens") or 0) for r in ok) / max(1, len(ok))
    cost = None
    if found is not None and plan.price is not None:
        cost = cost_at(found, per_request, *plan.price).to_dict()
        log.info(
            "at the knee, priced as %s ($%.4g/h): $%.4g per 1M output tokens, $%.4g per 1K "
            "requests",
            plan.price[1],
            plan.price[0],
            cost["per_1m_output_tokens_usd"],
            cost["per_1k_requests_usd"],
        )
    return {
        "limits": limits,
        "stages": [f.to_dict() for f in figures],
        "knee_rps": None if found is None else found.offered_rps,
        "goodput_at_knee_rps": None if found is None else round(found.goodput_rps, 2),
        "output_tokens_per_request": round(per_request, 1),
        "cost_at_knee": cost,
    }


def summary_of(state: State) -> dict[str, Any]:
    """The summary a load-test run returned; an error it ended with is raised."""
    return returned(state, "summary")


@flow(name="loadtest")
def loadtest(
    env: str = "local",
    profile: str = "smoke",
    target: str | None = None,
    slo_path: str | None = None,
    config_path: str = "inferops.yaml",
    priced_as: str | None = None,
) -> State:
    """Run ``profile`` against ``env`` (or ``target``) and judge it against its SLOs.

    Ends ``Completed`` when every SLO held, else ``Failed`` named ``Breached``; the summary
    is the result either way (read it with ``state.result(raise_on_failure=False)``).
    """
    slo = None if slo_path is None else Path(slo_path)
    plan = plan_loadtest(load_config(config_path), env, profile, target, slo, priced_as)
    summary = run_plan(plan)
    if summary["held"]:
        return Completed(data=summary, message=headline(summary))
    return Failed(data=summary, name="Breached", message=headline(summary))
