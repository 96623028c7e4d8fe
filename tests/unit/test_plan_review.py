"""The plan review a person reads before apply: destructive changes first, then the cost.

Fixtures are in tests/fixtures/plans/: ``local.plan.json`` is real Terraform's plan of the
local module (made by make_local_plan.py there); the AWS and GCP plans are hand-written in
the documented ``terraform show -json`` shape, their totals worked out in test_cost.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inferops.cost import PriceTable, load_prices
from inferops.plan_review import PlanReview, review_plan
from inferops.terraform import APPROVAL_TYPES, ResourceChange, summarise_plan

PLANS = Path(__file__).resolve().parents[1] / "fixtures" / "plans"


@pytest.fixture(scope="module")
def prices() -> PriceTable:
    """The table the pipeline ships."""
    return load_prices()


def _review(name: str, prices: PriceTable, env: str = "aws") -> PlanReview:
    """The review of one plan fixture."""
    plan: dict[str, Any] = json.loads((PLANS / name).read_text())
    return review_plan(env, plan, prices)


def test_the_verdict_counts_as_terraform_does_and_adds_the_cost_delta(
    prices: PriceTable,
) -> None:
    review = _review("aws-replace.plan.json", prices)

    # A replace counts in add and destroy: 2 add (alarm, gpu pool), 1 update (alarm),
    # 4 destroy (gpu pool, legacy cluster, legacy pool, legacy log group); the cost delta is
    # worked out in test_cost.py.
    assert review.verdict == "2 to add, 1 to change, 4 to destroy — +$981.21/month"
    assert review.markdown.splitlines()[:3] == [
        "### Terraform plan for `aws`",
        "",
        "**2 to add, 1 to change, 4 to destroy — +$981.21/month**",
    ]


def test_destructive_changes_come_before_additions(prices: PriceTable) -> None:
    markdown = _review("aws-replace.plan.json", prices).markdown

    destructive = markdown.index("#### Destructive changes (4)")
    replace = markdown.index("| **replace** | `module.eks.aws_eks_node_group.gpu`")
    cluster = markdown.index("| **delete** | `module.legacy.aws_eks_cluster.this`")
    log_group = markdown.index("| **delete** | `aws_cloudwatch_log_group.legacy`")
    create = markdown.index("| create | `aws_cloudwatch_metric_alarm.gpu_util` |")
    assert destructive < replace < cluster < log_group < create
    assert markdown.index("#### Destructive changes") < markdown.index("#### Monthly cost")


def test_destructive_rows_say_which_need_approval_and_why(prices: PriceTable) -> None:
    markdown = _review("aws-replace.plan.json", prices).markdown

    assert (
        "| **replace** | `module.eks.aws_eks_node_group.gpu` | **needs approval** | "
        "`instance_types`, `capacity_type` cannot be updated in place |"
    ) in markdown
    assert (
        "| **delete** | `aws_cloudwatch_log_group.legacy` |  | removed from the configuration |"
    ) in markdown
    assert "> **Needs approval:** this plan deletes or replaces 3 clusters or node groups" in (
        markdown
    )


@pytest.mark.parametrize("resource_type", sorted(APPROVAL_TYPES))
@pytest.mark.parametrize(
    ("actions", "needs_approval"),
    [
        (["delete"], True),
        (["delete", "create"], True),
        (["create", "delete"], True),
        (["create"], False),
        (["update"], False),
        (["no-op"], False),
    ],
)
def test_needs_approval_exactly_for_a_cluster_or_node_group_delete_or_replace(
    resource_type: str, actions: list[str], needs_approval: bool
) -> None:
    entry = {
        "address": f"{resource_type}.main",
        "type": resource_type,
        "change": {"actions": actions},
        "previous_address": f"{resource_type}.old",
    }

    summary = summarise_plan({"resource_changes": [entry]})

    assert summary.needs_approval is needs_approval
    assert bool(summary.needing_approval) is needs_approval


@pytest.mark.parametrize(
    "change",
    [
        ResourceChange("aws_cloudwatch_log_group.x", "aws_cloudwatch_log_group", ("delete",)),
        ResourceChange("aws_launch_template.x", "aws_launch_template", ("delete", "create")),
        ResourceChange("google_compute_router_nat.x", "google_compute_router_nat", ("delete",)),
    ],
)
def test_other_destructive_changes_are_flagged_but_need_no_approval(
    change: ResourceChange,
) -> None:
    assert change.is_destructive
    assert not change.needs_approval


def test_the_summary_lists_destructive_changes_in_plan_order(prices: PriceTable) -> None:
    summary = _review("aws-replace.plan.json", prices).summary

    assert [c.address for c in summary.destructive] == [
        "aws_cloudwatch_log_group.legacy",
        "module.eks.aws_eks_node_group.gpu",
        "module.legacy.aws_eks_cluster.this",
        "module.legacy.aws_eks_node_group.default",
    ]
    assert [c.address for c in summary.needing_approval] == [
        "module.eks.aws_eks_node_group.gpu",
        "module.legacy.aws_eks_cluster.this",
        "module.legacy.aws_eks_node_group.default",
    ]


def test_what_the_flow_reads_off_a_review(prices: PriceTable) -> None:
    review = _review("aws-replace.plan.json", prices)

    assert review.has_changes
    assert review.needs_approval
    assert review.critical == (
        "module.eks.aws_eks_node_group.gpu",
        "module.legacy.aws_eks_cluster.this",
        "module.legacy.aws_eks_node_group.default",
    )
    assert review.monthly_usd == pytest.approx(2438.92)


def test_the_cost_table_shows_before_after_and_delta(prices: PriceTable) -> None:
    markdown = _review("aws-replace.plan.json", prices).markdown

    assert "| `aws_eks_node_group` | 3 | $1,309.11 | $2,365.72 | +$1,056.61 |" in markdown
    assert "| `aws_eks_cluster` | 2 | $146.00 | $73.00 | -$73.00 |" in markdown
    assert "| **Total** | 8 | **$1,457.71** | **$2,438.92** | **+$981.21** |" in markdown
    assert "65% less than on-demand (spot prices vary" in markdown


def test_per_resource_cost_lines_are_folded_away(prices: PriceTable) -> None:
    markdown = _review("aws-replace.plan.json", prices).markdown

    details = markdown[markdown.index("<summary>Cost per resource (8)</summary>") :]
    assert details.rstrip().endswith("</details>")
    row = next(line for line in details.splitlines() if "aws_eks_node_group.gpu`" in line)
    assert "g4dn.xlarge spot" in row
    assert "g5.xlarge on-demand" in row
    assert row.endswith("| $300.79 | $1,500.76 | +$1,199.97 |")


def test_unpriced_types_are_listed_in_the_review(prices: PriceTable) -> None:
    review = _review("aws.plan.json", prices)

    assert (
        review.verdict == "22 to add, 0 to change, 0 to destroy — +$1,373.15/month (1 not priced)"
    )
    assert "**Not priced** (`aws_route53_zone`):" in review.markdown
    assert "- `aws_route53_zone.internal`: no price for resource type" in review.markdown
    assert "not priced: aws_route53_zone" in review.text


def test_a_plan_of_additions_needs_no_approval(prices: PriceTable) -> None:
    review = _review("gcp.plan.json", prices, env="gcp")

    assert not review.needs_approval
    assert review.critical == ()
    assert "Destructive changes" not in review.markdown
    assert "Needs approval" not in review.markdown
    assert "| `google_container_node_pool` |  |  | 2 |  |" in review.markdown
    assert review.verdict.endswith("— +$900.89/month")


def test_the_local_plan_from_real_terraform_has_no_cost(prices: PriceTable) -> None:
    # local.plan.json: the embedded Terraform's plan of terraform/environments/local,
    # made by tests/fixtures/plans/make_local_plan.py through inferops.terraform.
    review = _review("local.plan.json", prices, env="local")

    assert review.verdict == "7 to add, 0 to change, 0 to destroy — no cost"
    assert review.monthly_usd is None
    assert not review.needs_approval
    markdown = review.markdown
    assert "| `terraform_data` |  |  | 7 |  |" in markdown
    assert "Nothing in this plan costs money at list prices." in markdown
    assert "No charge of their own: 7 resources (`terraform_data`)." in markdown
    assert "Outputs that change: `environment`, `gitops`," in markdown
    assert "Cost per resource" not in markdown


def test_a_plan_without_changes_says_so(prices: PriceTable) -> None:
    cluster = {"name": "inferops-aws", "version": "1.33"}
    entry = {
        "address": "aws_eks_cluster.this",
        "mode": "managed",
        "type": "aws_eks_cluster",
        "name": "this",
        "change": {"actions": ["no-op"], "before": cluster, "after": cluster},
    }

    review = review_plan("aws", {"resource_changes": [entry]}, prices)

    assert not review.has_changes
    assert review.verdict == (
        "0 to add, 0 to change, 0 to destroy — no change in monthly cost ($73.00/month)"
    )
    assert "No changes: the infrastructure matches the configuration." in review.markdown


def test_the_text_form_puts_approvals_first_and_ends_with_the_cost(prices: PriceTable) -> None:
    text = _review("aws-replace.plan.json", prices).text

    assert text.splitlines() == [
        "terraform plan for aws: 2 to add, 1 to change, 4 to destroy — +$981.21/month",
        "NEEDS APPROVAL: deletes or replaces module.eks.aws_eks_node_group.gpu, "
        "module.legacy.aws_eks_cluster.this, module.legacy.aws_eks_node_group.default",
        "  replace  module.eks.aws_eks_node_group.gpu (needs approval)",
        "  delete   module.legacy.aws_eks_cluster.this (needs approval)",
        "  delete   module.legacy.aws_eks_node_group.default (needs approval)",
        "  delete   aws_cloudwatch_log_group.legacy",
        "  create   aws_cloudwatch_metric_alarm.gpu_util",
        "  update   aws_cloudwatch_metric_alarm.latency_p99",
        "monthly cost: $1,457.71 -> $2,438.92 (+$981.21)",
    ]


def test_a_summary_from_the_runner_is_reused(prices: PriceTable) -> None:
    plan = json.loads((PLANS / "aws-replace.plan.json").read_text())
    summary = summarise_plan(plan)

    review = review_plan("aws", plan, prices, summary)

    assert review.summary is summary
