"""The provisioning gate: whether a reviewed plan is applied, waits for a person, or stops.

Contract (pure; the provision flow acts on the answer):

- A plan with no changes has nothing to apply.
- ``plan_only`` never applies: the plan is for review (a pull request), applied on merge.
- Otherwise a person approves before apply, unless ``auto_approve``. A plan that deletes
  or replaces a cluster or a node pool (``critical``) needs a person even with
  ``auto_approve``, unless ``allow_destroy`` says such a plan was expected.
- Drift is a plan with changes while nobody changed the code: :func:`drift_report` says
  what differs, for a scheduled check that fails when there is any.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum


class ProvisionRefused(Exception):
    """The plan was not applied: rejected, or it needs an approval nobody can give here."""


class Drifted(Exception):
    """The live infrastructure differs from the code."""


class Gate(Enum):
    """What happens to a reviewed plan."""

    NOTHING = "nothing to apply"
    PLAN_ONLY = "planned for review; not applied"
    APPLY = "apply"
    APPROVAL = "wait for approval"


@dataclass(frozen=True)
class GateDecision:
    """The gate, and the sentence that explains it in logs and artifacts."""

    gate: Gate
    reason: str


def decide(
    has_changes: bool,
    critical: Sequence[str],
    *,
    plan_only: bool,
    auto_approve: bool,
    allow_destroy: bool,
) -> GateDecision:
    """Decide what happens to a plan; ``critical`` lists the clusters or pools it removes."""
    if not has_changes:
        return GateDecision(Gate.NOTHING, "the infrastructure matches the code")
    if plan_only:
        return GateDecision(Gate.PLAN_ONLY, "plan only: review it, then apply on merge")
    if critical and not allow_destroy:
        named = ", ".join(critical)
        if auto_approve:
            return GateDecision(
                Gate.APPROVAL,
                f"the plan destroys or replaces {named}: it needs a person's approval even "
                "with --auto-approve; add --allow-destroy when that is intended",
            )
        return GateDecision(
            Gate.APPROVAL,
            f"the plan destroys or replaces {named}: a person approves it before it is applied",
        )
    if auto_approve:
        reason = "auto-approved" + (" (destroys allowed)" if critical else "")
        return GateDecision(Gate.APPLY, reason)
    return GateDecision(Gate.APPROVAL, "a person approves the plan before it is applied")


def drift_report(env: str, has_changes: bool, describe: str) -> tuple[bool, str]:
    """Whether ``env`` drifted from its code, and the sentence (and plan) that says so."""
    if not has_changes:
        return False, f"{env}: no drift; the live infrastructure matches the code"
    return True, (
        f"{env}: the live infrastructure differs from the code; a plan would change:\n"
        f"{describe}\nApply the code (`inferops provision --env {env}`) or change the code "
        "to match what was changed by hand."
    )
