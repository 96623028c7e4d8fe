"""The ``inferops`` command: each subcommand runs its Prefect flow.

Exit codes: 0 success (``release``: promoted), 2 rolled back, 1 error.
Errors print one line that says what is wrong and what to do.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import textwrap
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inferops.config import Config, ConfigError, load_config
from inferops.judge_cli import judge_command
from inferops.platforms.base import LiveState

if TYPE_CHECKING:
    from inferops.environments import Target

app = typer.Typer(
    help="Release an AI inference service through Git: canaries judged on live SLOs.\n\n"
    "Start with `inferops up --env local`, then `inferops release --env local`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Environment from inferops.yaml.")]
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Configuration file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="Print Prefect's whole log (engine messages, tracebacks), not just the "
        "pipeline's own lines; Prefect keeps it either way.",
    ),
]


class Failure(Exception):
    """An error to report in one line with exit code 1."""


def _config(path: Path) -> Config:
    return load_config(path)


def _prepare(config: Config, env: str, verbose: bool, use_server: bool = True) -> None:
    """Point Prefect at the environment's server when it runs, else ephemeral mode, and
    choose the console: the pipeline's own lines, or with ``verbose`` Prefect's whole log.

    ``down`` stops that server, so it never reports to it.
    """
    from inferops.environments import NotProvisioned, open_target
    from inferops.settings import prepare_prefect

    server = None
    try:
        if config.environment(env).platform == "local":
            layout = open_target(config, env).local
            if use_server and layout.prefect_enabled:
                server = layout.prefect_api_url
    except NotProvisioned:
        pass
    prepare_prefect(config.path(config.state_dir), server)
    from inferops.console import quiet_prefect_console

    quiet_prefect_console(verbose)


def _leave_if_prefect_went_down() -> AbstractContextManager[None]:
    """A release whose environment went down with its Prefect server reports its one
    line and exits 1 at once, instead of Prefect's client retrying the dead server for
    minutes (``inferops.runs.leave_when_settled``)."""
    import os

    from inferops import runs
    from inferops.settings import api_answers

    url = os.environ.get("PREFECT_API_URL")
    return runs.leave_when_settled(lambda: url is None or api_answers(url))


def _print(data: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(data, indent=2, default=str) if as_json else text)


@app.command()
def up(
    env: EnvOpt = "local",
    config: ConfigOpt = Path("inferops.yaml"),
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Provision ENV and start it: Terraform, GitOps repo, Redis, Prometheus, nginx, service."""
    cfg = _config(config)
    _prepare(cfg, env, verbose)
    from flows.environment import up as up_flow

    result = up_flow(env, str(config))
    _print(result, as_json, "\n".join(f"{k:>10}: {v}" for k, v in result.items() if v))


@app.command()
def down(
    env: EnvOpt = "local", config: ConfigOpt = Path("inferops.yaml"), verbose: VerboseOpt = False
) -> None:
    """Stop everything ENV runs and destroy its Terraform state (GitOps history is kept)."""
    cfg = _config(config)
    _prepare(cfg, env, verbose, use_server=False)
    from flows.environment import down as down_flow

    down_flow(env, str(config))
    typer.echo(f"{env} is down")


@app.command()
def provision(
    env: EnvOpt = "local",
    config: ConfigOpt = Path("inferops.yaml"),
    plan_only: Annotated[
        bool, typer.Option("--plan-only", help="Plan and publish the review; apply nothing.")
    ] = False,
    auto_approve: Annotated[
        bool,
        typer.Option(
            "--auto-approve",
            help="Apply without waiting for a person, unless the plan destroys or replaces "
            "a cluster or node pool.",
        ),
    ] = False,
    allow_destroy: Annotated[
        bool,
        typer.Option(
            "--allow-destroy",
            help="With --auto-approve, apply plans that destroy or replace clusters or pools.",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the plan review as Markdown (for a PR)."),
    ] = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Plan ENV's infrastructure, publish the review and its cost, and apply what was reviewed.

    Without --auto-approve the run pauses until a person approves or rejects it (in the
    Prefect UI, or with `inferops approve RUN_ID`). For a pull request:
    `inferops provision --env prod --plan-only --out plan.md`, then apply on merge.
    """
    cfg = _config(config)
    _prepare(cfg, env, verbose)
    from flows.provision import provision as provision_flow

    result = provision_flow(
        env,
        str(config),
        plan_only=plan_only,
        auto_approve=auto_approve,
        allow_destroy=allow_destroy,
        out=None if out is None else str(out.resolve()),
    )
    lines = [f"{env}: {result['status']}", result["summary"]]
    if result.get("monthly_usd") is not None:
        lines.append(f"cost at list prices: ${result['monthly_usd']:,.2f}/month")
    if out is not None:
        lines.append(f"review written to {out}")
    lines += [f"  {k}: {v}" for k, v in sorted((result.get("outputs") or {}).items())]
    _print(result, as_json, "\n".join(lines))


@app.command()
def render(
    env: EnvOpt = "local",
    config: ConfigOpt = Path("inferops.yaml"),
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the files into this folder.")
    ] = None,
) -> None:
    """Render ENV's manifests as its GitOps repository holds them (one file per object)."""
    from inferops.environments import manifest_files

    files = manifest_files(_config(config), env)
    if out is None:
        typer.echo(
            "\n".join(f"{name}  ({len(text.splitlines())} lines)" for name, text in files.items())
        )
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    typer.echo(f"wrote {len(files)} files to {out}")


@app.command()
def validate(env: EnvOpt = "local", config: ConfigOpt = Path("inferops.yaml")) -> None:
    """Check ENV's rendered manifests: Kubernetes schemas (strict), then checkov's policies.

    Exits 1 with one line per problem (object, field, what is wrong): the same check every
    GitOps commit passes first.
    """
    from inferops.environments import manifest_files, manifest_problems
    from inferops.gitops.validate import format_problems

    cfg = _config(config)
    files = manifest_files(cfg, env)
    problems = manifest_problems(cfg, env, files)
    if problems:
        typer.echo(format_problems(problems), err=True)
        raise Failure(f"{env}: {len(problems)} problems in {len(files)} rendered files")
    version = cfg.environment(env).manifests.kubernetes_version
    typer.echo(f"{env}: {len(files)} files valid for Kubernetes {version}")


@app.command()
def drift(
    env: EnvOpt = "local", config: ConfigOpt = Path("inferops.yaml"), verbose: VerboseOpt = False
) -> None:
    """Check whether ENV's live infrastructure still matches its code; exit 1 when not."""
    cfg = _config(config)
    _prepare(cfg, env, verbose)
    from flows.provision import drift as drift_flow

    drift_flow(env, str(config))
    typer.echo(f"{env}: no drift; the live infrastructure matches the code")


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="The paused provision run's id (it logs it).")],
    env: EnvOpt = "local",
    reject: Annotated[bool, typer.Option("--reject", help="Refuse the plan instead.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why; kept with the run.")] = "",
    config: ConfigOpt = Path("inferops.yaml"),
    verbose: VerboseOpt = False,
) -> None:
    """Answer a provision run that waits for approval: apply its plan, or --reject it."""
    cfg = _config(config)
    _prepare(cfg, env, verbose)
    from flows.provision import answer_approval

    answer_approval(run_id, not reject, reason)
    typer.echo(f"{'rejected' if reject else 'approved'} the plan of run {run_id}")


@app.command()
def build(
    env: EnvOpt = "local",
    version: Annotated[str, typer.Option(help="Git revision of the service to build.")] = "HEAD",
    config: ConfigOpt = Path("inferops.yaml"),
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Build the service at VERSION into a content-addressed image."""
    cfg = _config(config)
    _prepare(cfg, env, verbose)
    from flows.build import build as build_flow

    image = build_flow(env, version, str(config))
    _print(image, as_json, image["ref"])


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _service_env(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise Failure(f"--set expects KEY=VALUE, got {pair!r}")
        if not _ENV_NAME.fullmatch(key):
            raise Failure(
                f"--set {key!r}: not an environment variable name (letters, digits and _, "
                "not starting with a digit), e.g. --set INFEROPS_SIMULATOR_TTFT_MS=30"
            )
        out[key] = value
    return out


def _preflight(config: Config, env: str, version: str | None = None) -> None:
    """What a release reads, checked before Prefect starts, the build runs or a lock is
    taken: the environment (configured, and up), its SLO file, and the revision to build.
    Each problem is one line saying what to do, and nothing has changed."""
    from inferops.builders.local import resolve_revision, source_repo
    from inferops.environments import open_target

    target = open_target(config, env)
    target.slos()
    if version is not None:
        repo, _ = source_repo(config.path(config.service_source))
        resolve_revision(repo, version)


SetOpt = Annotated[
    list[str],
    typer.Option(
        "--set",
        help="Change the new version's environment (it starts as the stable version's): "
        "KEY=VALUE sets, KEY= removes; repeatable, e.g. --set INFEROPS_SIMULATOR_TTFT_MS=30.",
    ),
]


def _exit_for(result: dict[str, Any], as_json: bool) -> None:
    verdict = result["verdict"]
    text = (
        f"{result['release_id']}: {result['decision'].upper()} at step {result['step']} "
        f"({result['weight']}%)\n  {verdict['reason']}"
    )
    _print(result, as_json, text)
    raise typer.Exit(0 if result["decision"] == "promote" else 2)


def _print_plan(cfg: Config, env: str, as_json: bool) -> None:
    from inferops import rollout as steps
    from inferops.environments import open_target

    target = open_target(cfg, env)
    warnings: list[str] = []
    made = steps.plan_for(target, target.slos(), warnings.append)
    data = {
        "env": env,
        "fits": made.fits,
        "rate_rps": made.rate_rps,
        "rate_source": made.rate_source,
        "expected_s": made.expected_s,
        "budget_s": made.budget_s,
        "needed_rps": made.needed_rps,
        "coarsened": list(made.coarsened),
        "steps": [
            {
                "weight": s.weight,
                "canary_replicas": s.canary_replicas,
                "stable_replicas": s.stable_replicas,
                "expected_s": s.expected_s,
                "comparable": s.machine.comparable,
            }
            for s in made.steps
        ],
        "warnings": warnings,
    }
    _print(data, as_json, "\n".join([*warnings, made.describe()]))
    raise typer.Exit(0 if made.fits else 1)


@app.command()
def release(
    env: EnvOpt = "local",
    version: Annotated[str, typer.Option(help="Git revision of the service to release.")] = "HEAD",
    set_: SetOpt = [],  # noqa: B006 - typer reads the default, never mutates it
    config: ConfigOpt = Path("inferops.yaml"),
    as_json: JsonOpt = False,
    plan: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="Print the release plan (steps, the traffic each gets, how long an unchanged "
            "canary should take, whether it fits the budget) and change nothing: exit 0 when "
            "it fits, 1 when a release would be refused.",
        ),
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Build VERSION and roll it out as a canary. Exit 0 promoted, 2 rolled back, 1 error."""
    cfg = _config(config)
    service_env = _service_env(set_)
    if plan:
        _print_plan(cfg, env, as_json)
        return
    _preflight(cfg, env, version)
    _prepare(cfg, env, verbose)
    from flows.release import release as release_flow
    from flows.rollout import verdict_of

    with _leave_if_prefect_went_down():
        state = release_flow(env, version, service_env, str(config), return_state=True)
    _exit_for(verdict_of(state), as_json)


@app.command()
def rollout(
    image: Annotated[str, typer.Argument(help="Image reference pinned by digest.")],
    env: EnvOpt = "local",
    set_: SetOpt = [],  # noqa: B006
    config: ConfigOpt = Path("inferops.yaml"),
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Roll out an already built IMAGE as a canary. Exit 0 promoted, 2 rolled back, 1 error."""
    cfg = _config(config)
    service_env = _service_env(set_)
    _preflight(cfg, env)
    _prepare(cfg, env, verbose)
    from flows.rollout import rollout as rollout_flow
    from flows.rollout import verdict_of

    with _leave_if_prefect_went_down():
        state = rollout_flow(image, env, service_env, str(config), return_state=True)
    _exit_for(verdict_of(state), as_json)


@app.command()
def loadtest(
    env: EnvOpt = "local",
    profile: Annotated[
        str,
        typer.Option(
            help="A profile of loadtests/profiles (smoke, step, ramp, soak) or a .yaml file."
        ),
    ] = "smoke",
    target: Annotated[
        str | None,
        typer.Option(
            help="Where the load goes: the environment's router (default), one pod of a "
            "track (stable or canary: what one replica carries), or an http(s) URL."
        ),
    ] = None,
    slo: Annotated[
        Path | None,
        typer.Option(help="SLO file to judge the run by (default: the environment's)."),
    ] = None,
    priced_as: Annotated[
        str | None,
        typer.Option(
            "--priced-as",
            help="Price the run as this machine, CLOUD:INSTANCE[:spot] from the price table "
            "(e.g. aws:g5.xlarge): a capacity run reports the cost per 1M output tokens "
            "and per 1K requests at its knee.",
        ),
    ] = None,
    config: ConfigOpt = Path("inferops.yaml"),
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Load-test ENV with a profile and judge the run against the SLO file.

    Every SLO with an absolute limit (max, or min) is read off the run's requests: the
    p95 TTFT, the share of failed requests, the cost per 1M output tokens. Exit 0 when
    every one held, 2 when one was breached (named, with by how much), 1 on an error.
    Samples and summary.json land in .inferops/ENV/loadtests/.

    The capacity profile offers Poisson arrivals at rising rates and reports the knee:
    the highest rate carried within the SLOs' per-request limits, e.g.
    `inferops loadtest --profile capacity --target stable --priced-as aws:g5.xlarge`.
    """
    from inferops.loadtest_plan import plan_loadtest
    from inferops.loadtest_summary import headline

    cfg = _config(config)
    plan_loadtest(cfg, env, profile, target, slo, priced_as)  # refused before any load
    _prepare(cfg, env, verbose)
    from flows.loadtest import loadtest as loadtest_flow
    from flows.loadtest import summary_of

    state = loadtest_flow(
        env,
        profile,
        target,
        None if slo is None else str(slo.resolve()),
        str(config),
        priced_as,
        return_state=True,
    )
    summary = summary_of(state)
    _print(summary, as_json, headline(summary))
    raise typer.Exit(0 if summary["held"] else 2)


def _live_summary(env: str, state: LiveState) -> list[str]:
    """The first lines of a status: which commit is live, and the traffic split."""
    return [
        f"{env}: {'live' if state.live else 'NOT live'} at {(state.revision or '-')[:12]}",
        f"  traffic: stable {state.weights.get('stable', '-')}% / "
        f"canary {state.weights.get('canary', '-')}%",
    ]


def _print_cluster_status(env: str, state: LiveState, held_by: str | None, as_json: bool) -> None:
    data = {
        "env": env,
        "revision": state.revision,
        "live": state.live,
        "error": state.error,
        "weights": state.weights,
        "components": state.components,
        "held_by": held_by,
    }
    lines = _live_summary(env, state)
    lines.append(f"  release: {'held by ' + held_by if held_by else 'none running'}")
    if state.error:
        lines.append(f"  waiting on: {state.error}")
    lines += [
        f"  {name:<40} " + ", ".join(f"{k} {v}" for k, v in summary.items())
        for name, summary in state.components.items()
    ]
    _print(data, as_json, "\n".join(lines))


def _local_release(target: Target) -> dict[str, Any]:
    """The release running on a local environment now, or the one whose process is gone
    while its canary still takes traffic (orphaned); ``says`` puts it in words."""
    from inferops import runs
    from inferops.gitops.history import unfinished

    running = runs.live(target.state_dir)
    if running:
        now = running[0]
        what = now.get("release_id") or "a release (building, not yet holding the environment)"
        at = f" at step {now['step']}" if now.get("step") else ""
        return {"state": "running", **now, "says": f"{what} running (pid {now['pid']}){at}"}
    left = unfinished(target.repo().log())
    if left is None:
        return {"state": "none", "says": "none running"}
    last = left.events[-1]
    return {
        "state": "orphaned",
        "release_id": left.release_id,
        "step": last.step,
        "weight": last.weight,
        "says": (
            f"{left.release_id} ORPHANED at step {last.step} ({last.weight}%): its process is "
            f"gone and its canary keeps {last.weight}% of the traffic; `inferops up` or the "
            "next release rolls it back"
        ),
    }


def _running_word(running: bool | None) -> str:
    return "unknown" if running is None else ("running" if running else "DOWN")


@app.command()
def status(
    env: EnvOpt = "local", config: ConfigOpt = Path("inferops.yaml"), as_json: JsonOpt = False
) -> None:
    """What ENV runs now: the live commit, the traffic split and the pods (or, on a
    cluster, what its GitOps controller applied and each Deployment's rollout)."""
    from inferops.environments import cluster_platform, open_target

    cfg = _config(config)
    if cfg.environment(env).platform == "kubernetes":
        from inferops.platforms.kubernetes_lease import release_holder

        cluster = cluster_platform(cfg, env)
        held_by = release_holder(cluster.api, cluster.target.namespace)
        _print_cluster_status(env, cluster.status(), held_by, as_json)
        return
    target = open_target(cfg, env)
    state = target.platform().status()
    release_now = _local_release(target)
    data = {
        "env": env,
        "revision": state.revision,
        "live": state.live,
        "error": state.error,
        "weights": state.weights,
        "release": release_now,
        "pods": list(state.pods),
        "components": state.components,
        "endpoints": state.endpoints,
    }
    lines = _live_summary(env, state)
    lines.append(f"  release: {release_now['says']}")
    lines += [
        f"  {p['name']:<28} {p['track']:<7} :{p['port']}  restarts {p['restarts']}"
        + ("" if "answering" not in p else ("  answering" if p["answering"] else "  NOT ANSWERING"))
        for p in state.pods
    ]
    lines += [
        f"  {name:<28} {_running_word(c.get('running')):<7} restarts {c['restarts']}"
        for name, c in state.components.items()
    ]
    lines += [f"  {k:<10} {v}" for k, v in state.endpoints.items()]
    if state.error:
        lines.append(f"  error: {state.error}")
    _print(data, as_json, "\n".join(lines))


@app.command()
def history(
    env: EnvOpt = "local", config: ConfigOpt = Path("inferops.yaml"), as_json: JsonOpt = False
) -> None:
    """Every release of ENV from the GitOps log: steps, weights, verdicts and reasons."""
    from inferops.environments import cluster_repo, open_target
    from inferops.gitops.history import releases

    cfg = _config(config)
    on_cluster = cfg.environment(env).platform == "kubernetes"
    target = None if on_cluster else open_target(cfg, env, destroyed_ok=True)
    repo = cluster_repo(cfg, env) if target is None else target.repo()
    found = releases(repo.log())
    if as_json:
        data = [
            {
                "release_id": r.release_id,
                "image": r.image,
                "outcome": r.outcome,
                "events": [e.__dict__ for e in r.events],
            }
            for r in found
        ]
        typer.echo(json.dumps(data, indent=2))
        return
    lines = []
    for r in found:
        lines.append(f"{r.release_id}  {r.outcome.upper():<12} {r.image}")
        for e in r.events:
            lines.append(
                f"  {e.sha[:10]} {e.date[11:19]} {e.step:>5} {e.weight:>3}%  "
                f"{e.verdict:<9} {e.subject}"
            )
            if e.reason and e.verdict not in ("seed",):
                width = max(60, shutil.get_terminal_size((120, 24)).columns - 6)
                lines += textwrap.wrap(
                    " ".join(e.reason.split()),
                    width,
                    initial_indent=" " * 6,
                    subsequent_indent=" " * 6,
                )
    if target is None:
        lines.append(f"\nGitOps repository: {repo.remote} ({repo.path} on {repo.branch})")
    else:
        lines.append(f"\nGitOps repository: {repo.remote} (git --git-dir {repo.remote} log)")
        lines.append(
            f"Load-test samples and logs: {target.state_dir / 'loadtests'}, "
            f"{target.state_dir / 'logs'}"
        )
    typer.echo("\n".join(lines))


app.command("judge")(judge_command)


def main() -> None:
    """Console entry point: one-line errors, exit 1."""
    from inferops.analysis.planning import PlanError
    from inferops.analysis.spec import SpecError
    from inferops.builders.local import BuildError
    from inferops.credentials import CredentialsError
    from inferops.environments import NotProvisioned
    from inferops.gitops.manifests import ManifestError
    from inferops.gitops.render import RenderError
    from inferops.gitops.repo import GitOpsError
    from inferops.gitops.validate import ValidatorError
    from inferops.loadtest import LoadTestError
    from inferops.loadtest_plan import LoadTestRefused
    from inferops.lock import EnvironmentBusy
    from inferops.platforms.base import PlatformError
    from inferops.provisioning import Drifted, ProvisionRefused
    from inferops.terraform import TerraformError

    known = (
        ConfigError,
        SpecError,
        PlanError,
        BuildError,
        NotProvisioned,
        ManifestError,
        GitOpsError,
        RenderError,
        ValidatorError,
        EnvironmentBusy,
        LoadTestRefused,
        LoadTestError,
        PlatformError,
        TerraformError,
        CredentialsError,
        ProvisionRefused,
        Drifted,
        Failure,
    )
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except known as exc:
        typer.echo(f"inferops: error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
