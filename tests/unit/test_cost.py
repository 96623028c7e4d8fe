"""What an environment costs a month, read from its Terraform plan at the packaged list prices.

The fixtures in tests/fixtures/plans/ are shaped as ``terraform show -json`` documents a
saved plan. ``local.plan.json`` was made by real Terraform (see make_local_plan.py beside
it); the AWS and GCP plans were written by hand, and each expected total below is worked out
by hand from inferops/prices.yaml, so a change of price there is a change here too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferops.cost import (
    CostEstimate,
    PriceTable,
    PriceTableError,
    estimate,
    load_prices,
    parse_prices,
)

PLANS = Path(__file__).resolve().parents[1] / "fixtures" / "plans"
CENT = 0.005


@pytest.fixture(scope="module")
def prices() -> PriceTable:
    """The table the pipeline ships."""
    return load_prices()


def _fixture(name: str) -> dict[str, Any]:
    """One of the plan fixtures, as parsed JSON."""
    data: dict[str, Any] = json.loads((PLANS / name).read_text())
    return data


def _after(cost: CostEstimate) -> dict[str, float]:
    """Each priced resource's monthly cost after the plan, by address."""
    return {line.address: line.after_usd for line in cost.lines}


def _entry(
    resource_type: str,
    after: dict[str, Any] | None,
    before: dict[str, Any] | None = None,
    after_unknown: dict[str, Any] | None = None,
    name: str = "this",
) -> dict[str, Any]:
    """One resource_changes entry; its actions follow from which sides exist."""
    actions = (
        ["create"]
        if before is None
        else ["delete"]
        if after is None
        else ["no-op"]
        if before == after
        else ["update"]
    )
    return {
        "address": f"{resource_type}.{name}",
        "mode": "managed",
        "type": resource_type,
        "name": name,
        "provider_name": "registry.terraform.io/hashicorp/google",
        "change": {
            "actions": actions,
            "before": before,
            "after": after,
            "after_unknown": after_unknown or {},
        },
    }


def _pool(**node_config: Any) -> dict[str, Any]:
    """A GKE node pool's ``after`` with one node per zone in a regional location."""
    config = {"machine_type": "n1-standard-4", "disk_size_gb": 100, **node_config}
    return {"location": "us-central1", "node_count": 1, "node_config": [config]}


def test_the_packaged_table_holds_the_published_figures(prices: PriceTable) -> None:
    assert prices.hours_per_month == 730
    assert prices.source.startswith("list prices as published by the provider")
    assert prices.aws.rates["eks_cluster_hour"] == 0.10
    assert prices.aws.machines["m5.2xlarge"].on_demand == 0.384
    assert prices.aws.machines["g4dn.xlarge"].on_demand == 0.526
    assert prices.gcp.machines["g2-standard-4"].bundled_gpu == "nvidia-l4"
    assert prices.gcp.gpus["nvidia-tesla-t4"].spot == 0.14


def test_the_aws_environment_costs_what_the_arithmetic_says(prices: PriceTable) -> None:
    cost = estimate(_fixture("aws.plan.json"), prices)

    # EKS control plane:  0.10 x 730                                            =    73.00
    # system nodes:       3 x 0.384 x 730 = 840.96; disks 3 x 100 GB x 0.08 = 24 =   864.96
    # gpu nodes (spot):   0.526 x (1 - 0.65) = 0.1841/h; 2 x 0.1841 x 730 = 268.786;
    #                     disks 2 x 200 GB (launch template) x 0.08 = 32          =   300.786
    # NAT gateways:       3 x (0.045 x 730 + 100 GB x 0.045) = 3 x 37.35        =   112.05
    # their public IPs:   3 x 0.005 x 730                                        =    10.95
    # KMS key 1.00; 4 alarms x 0.10 = 0.40; dashboard 3.00;
    # 2 log groups x 5 GB x 0.50 = 5.00; ECR 20 GB x 0.10 = 2.00                 =    11.40
    # total after: 73 + 864.96 + 300.786 + 112.05 + 10.95 + 11.40                = 1,373.146
    after = _after(cost)
    assert after["module.eks.aws_eks_cluster.this"] == pytest.approx(73.00)
    assert after["module.eks.aws_eks_node_group.system"] == pytest.approx(864.96)
    assert after["module.eks.aws_eks_node_group.gpu"] == pytest.approx(300.786)
    assert after["module.vpc.aws_nat_gateway.this[2]"] == pytest.approx(37.35)
    assert after["module.vpc.aws_eip.nat[0]"] == pytest.approx(3.65)
    assert cost.before_usd == 0
    assert cost.after_usd == pytest.approx(1373.146, abs=CENT)
    assert cost.delta_usd == pytest.approx(1373.146, abs=CENT)

    # Without the GPU node group the base environment costs 1,373.146 - 300.786 = 1,072.36:
    # a little under the $1,100-1,300 often quoted for EKS with 3 x m5.2xlarge, which also
    # counts a load balancer and data transfer that this plan does not create.
    base = cost.after_usd - after["module.eks.aws_eks_node_group.gpu"]
    assert base == pytest.approx(1072.36, abs=CENT)


def test_the_gpu_node_group_takes_its_disk_from_the_launch_template(prices: PriceTable) -> None:
    cost = estimate(_fixture("aws.plan.json"), prices)

    gpu = next(line for line in cost.lines if line.address == "module.eks.aws_eks_node_group.gpu")
    assert "g4dn.xlarge spot" in gpu.basis
    assert "200 GB gp3 (launch template module.eks.aws_launch_template.gpu)" in gpu.basis
    assert any("65% less than on-demand" in note for note in cost.assumptions)


def test_a_launch_template_made_with_for_each_is_found_by_its_instance_key(
    prices: PriceTable,
) -> None:
    # The eks module makes both templates with for_each: node["cpu"] and node["gpu"].
    plan = _fixture("aws.plan.json")
    (group,) = [
        r
        for r in plan["configuration"]["root_module"]["module_calls"]["eks"]["module"]["resources"]
        if r["address"] == "aws_eks_node_group.gpu"
    ]
    for expression in group["expressions"]["launch_template"][0].values():
        attribute = expression["references"][0].rsplit(".", 1)[1]
        expression["references"] = [
            f'aws_launch_template.node["gpu"].{attribute}',
            'aws_launch_template.node["gpu"]',
            "aws_launch_template.node",
        ]
    (template,) = [
        r for r in plan["resource_changes"] if r["address"] == "module.eks.aws_launch_template.gpu"
    ]
    template.update(address='module.eks.aws_launch_template.node["gpu"]', name="node", index="gpu")
    other = json.loads(json.dumps(template))
    other.update(address='module.eks.aws_launch_template.node["cpu"]', index="cpu")
    other["change"]["after"]["block_device_mappings"][0]["ebs"][0]["volume_size"] = 50
    plan["resource_changes"].append(other)

    cost = estimate(plan, prices)

    gpu = next(line for line in cost.lines if line.address == "module.eks.aws_eks_node_group.gpu")
    assert '200 GB gp3 (launch template module.eks.aws_launch_template.node["gpu"])' in gpu.basis


def test_the_gcp_environment_costs_what_the_arithmetic_says(prices: PriceTable) -> None:
    cost = estimate(_fixture("gcp.plan.json"), prices)

    # GKE regional cluster fee: 0.10 x 730                                       =  73.00
    # system pool: 1 node per zone x 3 zones (regional, no node_locations) = 3 nodes;
    #   3 x 0.194 x 730 = 424.86; disks 3 x 100 GB pd-balanced x 0.10 = 30       = 454.86
    # gpu pool (spot): autoscaled, min 1 per zone x 2 node_locations = 2 nodes;
    #   n1-standard-4 spot 0.19 x (1 - 0.60) = 0.076/h, T4 spot 0.14/h: 0.216/h;
    #   2 x 0.216 x 730 = 315.36; disks 2 x 200 GB x 0.10 = 40                   = 355.36
    # Cloud NAT: 5 VMs x 0.0014 x 730 = 5.11; 100 GB x 0.045 = 4.50              =   9.61
    # alert policies: 1 + 1 + 2 conditions x 1.50                                =   6.00
    # Artifact Registry 20 GB x 0.10 = 2.00; KMS key version 0.06                =   2.06
    # dashboard, network, subnetwork, router, key ring, service account: free
    # total after: 73 + 454.86 + 355.36 + 9.61 + 6.00 + 2.06                     = 900.89
    after = _after(cost)
    assert after["google_container_cluster.main"] == pytest.approx(73.00)
    assert after["google_container_node_pool.system"] == pytest.approx(454.86)
    assert after["google_container_node_pool.gpu"] == pytest.approx(355.36)
    assert after["google_compute_router_nat.nat"] == pytest.approx(9.61)
    assert after["google_monitoring_alert_policy.gpu"] == pytest.approx(3.00)
    assert after["google_monitoring_dashboard.inference"] == 0
    assert cost.after_usd == pytest.approx(900.89, abs=CENT)
    assert cost.unpriced == ()


def test_a_replace_and_deletes_are_priced_on_both_sides(prices: PriceTable) -> None:
    cost = estimate(_fixture("aws-replace.plan.json"), prices)

    # Before: EKS 73 + system 864.96 (no-ops, on both sides)
    #   + gpu 2 x g4dn.xlarge spot 268.786 + 2 x 200 GB x 0.08 = 300.786
    #   + legacy EKS 73 + legacy pool 2 x 0.096 x 730 = 140.16 + 2 x 20 GB x 0.08 = 3.20
    #   + legacy log group 2.50 + latency alarm 0.10                             = 1,457.706
    # After:  EKS 73 + system 864.96
    #   + gpu 2 x g5.xlarge on-demand 2 x 1.006 x 730 = 1,468.76 + 32 = 1,500.76
    #   + latency alarm 0.10 + gpu_util alarm 0.10                               = 2,438.92
    # Delta: 2,438.92 - 1,457.706                                                = +981.214
    assert cost.before_usd == pytest.approx(1457.706, abs=CENT)
    assert cost.after_usd == pytest.approx(2438.92, abs=CENT)
    assert cost.delta_usd == pytest.approx(981.214, abs=CENT)
    lines = {line.address: line for line in cost.lines}
    legacy = lines["module.legacy.aws_eks_node_group.default"]
    assert (legacy.before_usd, legacy.after_usd) == (pytest.approx(143.36), 0)
    gpu = lines["module.eks.aws_eks_node_group.gpu"]
    assert gpu.actions == ("create", "delete")
    assert "g4dn.xlarge spot" in gpu.basis.split("→")[0]
    assert "g5.xlarge on-demand" in gpu.basis.split("→")[1]


def test_the_local_plan_from_real_terraform_costs_nothing(prices: PriceTable) -> None:
    # local.plan.json is `terraform show -json` of the local module's first plan, made by
    # the embedded Terraform through inferops.terraform (tests/fixtures/plans/make_local_plan.py).
    cost = estimate(_fixture("local.plan.json"), prices)

    assert len(cost.lines) == 7
    assert all(line.free and line.type == "terraform_data" for line in cost.lines)
    assert (cost.before_usd, cost.after_usd, cost.unpriced) == (0, 0, ())
    assert not cost.has_cost
    assert cost.assumptions == ()


def test_unknown_types_are_listed_not_priced_at_zero(prices: PriceTable) -> None:
    cost = estimate(_fixture("aws.plan.json"), prices)

    assert cost.unpriced_types == ("aws_route53_zone",)
    assert "aws_route53_zone.internal" not in _after(cost)
    assert cost.unpriced[0].reason == "no price for resource type aws_route53_zone"

    cost = estimate([_entry("azurerm_kubernetes_cluster", {"name": "aks"})], prices)
    assert cost.lines == ()
    assert cost.unpriced_types == ("azurerm_kubernetes_cluster",)


def test_a_machine_missing_from_the_table_is_unpriced_with_the_reason(
    prices: PriceTable,
) -> None:
    plan = [_entry("google_container_node_pool", _pool(machine_type="a3-highgpu-8g"))]

    cost = estimate(plan, prices)

    assert cost.lines == ()
    assert cost.unpriced[0].reason == "no price for machine type a3-highgpu-8g in the table"


def test_spot_capacity_costs_less_than_on_demand(prices: PriceTable) -> None:
    def node_group(capacity: str) -> float:
        after = {
            "instance_types": ["g4dn.xlarge"],
            "capacity_type": capacity,
            "scaling_config": [{"desired_size": 1, "min_size": 1, "max_size": 1}],
            "disk_size": 20,
        }
        return estimate([_entry("aws_eks_node_group", after)], prices).after_usd

    disk = 20 * 0.08
    assert node_group("ON_DEMAND") == pytest.approx(0.526 * 730 + disk)
    assert node_group("SPOT") == pytest.approx(0.526 * 0.35 * 730 + disk)

    def pool(**spot: bool) -> float:
        plan = [_entry("google_container_node_pool", _pool(**spot, disk_size_gb=10))]
        return estimate(plan, prices).after_usd

    # 3 zones x (n1-standard-4 + 10 GB pd-balanced at 0.10)
    assert pool(spot=False) == pytest.approx(3 * (0.19 * 730 + 1.0))
    assert pool(spot=True) == pytest.approx(3 * (0.19 * 0.40 * 730 + 1.0))
    assert pool(preemptible=True) == pool(spot=True)


def test_a_regional_pool_multiplies_its_nodes_by_its_zones(prices: PriceTable) -> None:
    def nodes(after: dict[str, Any], unknown: dict[str, Any] | None = None) -> float:
        plan = [_entry("google_container_node_pool", after, after_unknown=unknown)]
        line = estimate(plan, prices).lines[0]
        # One node: n1-standard-4 on-demand plus 100 GB pd-balanced.
        return line.after_usd / (0.19 * 730 + 100 * 0.10)

    assert nodes(_pool()) == pytest.approx(3)
    assert nodes({**_pool(), "location": "us-central1-b"}) == pytest.approx(1)
    assert nodes({**_pool(), "node_locations": ["us-central1-a", "us-central1-f"]}) == 2
    assert nodes({**_pool(), "node_count": 2}) == pytest.approx(6)
    autoscaled = {**_pool(), "node_count": None, "autoscaling": [{"min_node_count": 2}]}
    assert nodes(autoscaled, {"node_count": True}) == pytest.approx(6)
    total = {**_pool(), "node_count": None, "autoscaling": [{"total_min_node_count": 4}]}
    assert nodes(total, {"node_count": True}) == pytest.approx(4)


def test_a_pool_inherits_its_clusters_zones(prices: PriceTable) -> None:
    cluster = {
        "name": "c",
        "location": "us-central1-a",
        "node_locations": ["us-central1-b"],
        "remove_default_node_pool": True,
    }
    pool = {**_pool(), "location": None}
    plan = [
        _entry("google_container_cluster", cluster),
        _entry("google_container_node_pool", pool, after_unknown={"location": True}),
    ]

    line = estimate(plan, prices).lines[1]

    # A zonal cluster's node_locations leave out its own zone: a and b, 2 nodes.
    assert line.after_usd == pytest.approx(2 * (0.19 * 730 + 100 * 0.10))
    assert "2 zones of the cluster" in line.basis


def test_values_known_only_after_apply_fall_back_and_say_so(prices: PriceTable) -> None:
    group = {
        "instance_types": ["m5.large"],
        "capacity_type": "ON_DEMAND",
        "scaling_config": [{"desired_size": None, "min_size": 2}],
        "disk_size": 20,
    }
    unknown = {"scaling_config": [{"desired_size": True}]}
    policy = {"display_name": "x", "conditions": None}
    plan = [
        _entry("aws_eks_node_group", group, after_unknown=unknown),
        _entry("google_monitoring_alert_policy", policy, after_unknown={"conditions": True}),
    ]

    lines = estimate(plan, prices).lines

    assert lines[0].after_usd == pytest.approx(2 * (0.096 * 730 + 20 * 0.08))
    assert "desired size unknown until apply: priced at min_size" in lines[0].basis
    assert lines[1].after_usd == pytest.approx(1.50)
    assert "conditions unknown until apply" in lines[1].basis


def test_a_node_group_without_sizes_uses_the_eks_defaults(prices: PriceTable) -> None:
    group = {"scaling_config": [{"desired_size": 1}], "launch_template": []}
    unknown = {"instance_types": True, "capacity_type": True, "disk_size": True}

    line = estimate([_entry("aws_eks_node_group", group, after_unknown=unknown)], prices).lines[0]

    assert line.after_usd == pytest.approx(0.0416 * 730 + 20 * 0.08)
    assert "t3.medium on-demand" in line.basis
    assert "EKS default" in line.basis


def test_g2_machines_include_their_l4(prices: PriceTable) -> None:
    accelerator = [{"type": "nvidia-l4", "count": 1}]
    pool = {**_pool(machine_type="g2-standard-4", guest_accelerator=accelerator)}
    pool["node_count"] = None
    pool["node_locations"] = ["us-central1-a"]
    pool["initial_node_count"] = 1

    line = estimate([_entry("google_container_node_pool", pool)], prices).lines[0]

    assert line.after_usd == pytest.approx(0.71 * 730 + 100 * 0.10)
    assert "nvidia-l4 (included)" in line.basis


def test_cloud_nat_charges_per_vm_up_to_32(prices: PriceTable) -> None:
    def nat_with(nodes_per_zone: int) -> float:
        plan = [
            _entry("google_container_node_pool", {**_pool(), "node_count": nodes_per_zone}),
            _entry("google_compute_router_nat", {"name": "nat"}),
        ]
        return estimate(plan, prices).lines[1].after_usd

    data = 100 * 0.045
    assert nat_with(2) == pytest.approx(6 * 0.0014 * 730 + data)
    assert nat_with(20) == pytest.approx(0.044 * 730 + data)


def test_a_cluster_keeping_its_default_pool_pays_for_its_nodes(prices: PriceTable) -> None:
    cluster = {"name": "c", "location": "us-central1", "initial_node_count": 1, "node_config": []}

    line = estimate([_entry("google_container_cluster", cluster)], prices).lines[0]

    # Fee 73.00 + 3 zones x (e2-medium 0.0335 x 730 + 100 GB pd-balanced x 0.10)
    assert line.after_usd == pytest.approx(73 + 3 * (0.0335 * 730 + 10))
    assert "default pool" in line.basis


def test_data_sources_are_not_priced(prices: PriceTable) -> None:
    entry = {**_entry("aws_eks_cluster", {"name": "x"}), "mode": "data"}
    entry["change"]["actions"] = ["read"]

    cost = estimate({"resource_changes": [entry]}, prices)

    assert (cost.lines, cost.unpriced) == ((), ())


def test_a_table_missing_a_figure_names_it() -> None:
    data = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "inferops" / "prices.yaml").read_text()
    )
    del data["aws"]["rates"]["nat_gateway_hour"]

    with pytest.raises(PriceTableError, match=r"'aws\.rates\.nat_gateway_hour' must be a non"):
        parse_prices(data, "prices.yaml")


def test_a_missing_table_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PriceTableError, match=r"cannot read price table .*pass no path"):
        load_prices(tmp_path / "absent.yaml")


def test_a_table_file_can_replace_the_packaged_one(tmp_path: Path) -> None:
    data = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "inferops" / "prices.yaml").read_text()
    )
    data["aws"]["rates"]["eks_cluster_hour"] = 0.60
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(data))

    cost = estimate([_entry("aws_eks_cluster", {"name": "x"})], load_prices(path))

    assert cost.after_usd == pytest.approx(0.60 * 730)
