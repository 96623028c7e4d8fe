"""The provisioning gate: what happens to a reviewed plan, and the drift report."""

from __future__ import annotations

import pytest

from inferops.provisioning import Gate, decide, drift_report

CLUSTER = ("module.eks.aws_eks_cluster.this",)


def gate(has_changes: bool = True, critical: tuple[str, ...] = (), **flags: bool) -> Gate:
    options = {"plan_only": False, "auto_approve": False, "allow_destroy": False, **flags}
    return decide(has_changes, critical, **options).gate


def test_a_plan_without_changes_has_nothing_to_apply_whatever_the_flags() -> None:
    assert gate(False) is Gate.NOTHING
    assert gate(False, CLUSTER, auto_approve=True) is Gate.NOTHING
    assert gate(False, plan_only=True) is Gate.NOTHING


def test_plan_only_never_applies() -> None:
    assert gate(plan_only=True, auto_approve=True, allow_destroy=True) is Gate.PLAN_ONLY
    assert gate(critical=CLUSTER, plan_only=True) is Gate.PLAN_ONLY


def test_a_person_approves_unless_auto_approved() -> None:
    assert gate() is Gate.APPROVAL
    assert gate(auto_approve=True) is Gate.APPLY


def test_destroying_a_cluster_needs_a_person_even_when_auto_approved() -> None:
    decision = decide(True, CLUSTER, plan_only=False, auto_approve=True, allow_destroy=False)
    assert decision.gate is Gate.APPROVAL
    assert CLUSTER[0] in decision.reason
    assert "--allow-destroy" in decision.reason


@pytest.mark.parametrize(("auto_approve", "expected"), [(True, Gate.APPLY), (False, Gate.APPROVAL)])
def test_allow_destroy_only_lifts_the_destroy_rule(auto_approve: bool, expected: Gate) -> None:
    assert gate(critical=CLUSTER, auto_approve=auto_approve, allow_destroy=True) is expected


def test_drift_is_reported_with_what_a_plan_would_change() -> None:
    drifted, report = drift_report("prod", True, "0 to add, 1 to change, 0 to destroy")
    assert drifted
    assert "1 to change" in report
    assert "inferops provision --env prod" in report
    assert drift_report("prod", False, "") == (
        False,
        "prod: no drift; the live infrastructure matches the code",
    )
