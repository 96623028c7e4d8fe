"""Monthly cost of an environment from its Terraform plan, at the list prices of a table.

Contract:

- `estimate` is pure: it reads the JSON of a saved plan (``terraform show -json PLAN``), or
  that JSON's ``resource_changes`` list, and a `PriceTable`; no files, network or clock.
  `load_prices` is the one function here that reads a file (the packaged
  ``inferops/prices.yaml`` unless given another path); `parse_prices` validates a table.
- Every managed resource instance in ``resource_changes`` is priced as it is now
  (``change.before``) and as it will be (``change.after``); no-ops are included, so the
  totals are the whole environment's cost, not only the changed part. A created resource
  costs nothing before, a deleted one nothing after (so does a forgotten one, which leaves
  the state though it keeps running); a replaced one is priced on both sides. Data sources
  are skipped.
- Prices are monthly USD: an hourly rate times ``hours_per_month`` (730). Usage the plan
  cannot show (NAT traffic, log volume, image storage) comes from the table's ``usage``
  section, and every estimate lists the assumptions its lines rest on.
- A value known only after apply (``after_unknown``) is never guessed silently: the
  estimator falls back to the provider's default or the table's, and the line's basis says so.
- A type the table lists as ``free`` is a line at $0 marked free. A type without a pricing
  rule, or a priced type whose machine, GPU or disk type is missing from the table, is listed
  in ``CostEstimate.unpriced`` with the reason and counts in neither total.
- Node counts: an EKS node group runs ``scaling_config[0].desired_size`` nodes (else
  ``min_size``). A GKE node pool runs ``node_count`` per zone, else its autoscaler's minimum
  (``total_min_node_count`` across zones, or ``min_node_count`` per zone), else
  ``initial_node_count`` per zone; its zones are its ``node_locations``, else its cluster's,
  else one for a zonal location and ``usage.gke_regional_zones`` (3, GKE's default for a
  regional cluster) for a region. An autoscaled pool is priced at its minimum: the floor of
  the bill, not a forecast.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "PRICED_TYPES",
    "CloudPrices",
    "Compute",
    "CostEstimate",
    "CostLine",
    "NodeDefaults",
    "PriceTable",
    "PriceTableError",
    "Unpriced",
    "estimate",
    "load_prices",
    "parse_prices",
]

_AWS_RATES = (
    "eks_cluster_hour",
    "nat_gateway_hour",
    "nat_data_gb",
    "public_ipv4_hour",
    "kms_key_month",
    "cloudwatch_alarm_month",
    "cloudwatch_dashboard_month",
    "cloudwatch_logs_ingestion_gb",
    "ecr_storage_gb_month",
)
_GCP_RATES = (
    "gke_cluster_hour",
    "cloud_nat_vm_hour",
    "cloud_nat_max_hour",
    "cloud_nat_data_gb",
    "alert_condition_month",
    "artifact_registry_gb_month",
    "kms_software_key_version_month",
    "kms_hsm_key_version_month",
)
_USAGE = (
    "nat_data_gb_month",
    "log_ingestion_gb_month",
    "registry_storage_gb",
    "gke_regional_zones",
)
# Cloud NAT bills per VM up to this many VMs, then a flat gateway rate.
_CLOUD_NAT_VM_CAP = 32
_ZONE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
_INDEX = re.compile(r"\[[^\]]*\]")
_TIMES = " \N{MULTIPLICATION SIGN} "


class PriceTableError(ValueError):
    """The price table is missing a figure or holds one that is not a price."""


@dataclass(frozen=True)
class Compute:
    """Hourly list prices of one machine or GPU type."""

    on_demand: float
    spot: float | None = None
    """A published spot price; without one, spot is on-demand less the cloud's discount."""
    bundled_gpu: str | None = None
    """A GPU type the machine's price includes (GCP's G2 machines include their L4)."""
    bundled_gpu_count: int = 0


@dataclass(frozen=True)
class NodeDefaults:
    """What a cloud's managed node pool uses when its configuration does not say."""

    machine_type: str
    disk_gb: float
    disk_type: str


@dataclass(frozen=True)
class CloudPrices:
    """One cloud's list prices in one region."""

    region: str
    spot_discount: float
    """The fraction taken off on-demand for spot capacity without a published spot price."""
    rates: Mapping[str, float]
    node_defaults: NodeDefaults
    disks: Mapping[str, float]
    """USD per GB-month, by volume or persistent disk type."""
    machines: Mapping[str, Compute]
    gpus: Mapping[str, Compute]

    def hourly(self, compute: Compute, spot: bool) -> float:
        """The hourly price of ``compute`` on spot or on-demand capacity."""
        if not spot:
            return compute.on_demand
        if compute.spot is not None:
            return compute.spot
        return compute.on_demand * (1 - self.spot_discount)


@dataclass(frozen=True)
class PriceTable:
    """List prices for the AWS and GCP environments, and the usage they assume."""

    source: str
    hours_per_month: float
    usage: Mapping[str, float]
    free: frozenset[str]
    """Resource types that cost nothing of their own."""
    aws: CloudPrices
    gcp: CloudPrices


@dataclass(frozen=True)
class CostLine:
    """One resource's monthly cost before and after the plan, and what decided it."""

    address: str
    type: str
    actions: tuple[str, ...]
    basis: str
    before_usd: float
    after_usd: float
    free: bool = False

    @property
    def delta_usd(self) -> float:
        """How much more (or, negative, less) the resource costs a month after the plan."""
        return self.after_usd - self.before_usd


@dataclass(frozen=True)
class Unpriced:
    """A resource the table cannot price, and why."""

    address: str
    type: str
    actions: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class CostEstimate:
    """The monthly cost of an environment before and after a plan, line by line."""

    lines: tuple[CostLine, ...]
    unpriced: tuple[Unpriced, ...]
    assumptions: tuple[str, ...]
    source: str
    hours_per_month: float = 730.0

    @property
    def before_usd(self) -> float:
        """Monthly cost of the priced resources as they are now."""
        return math.fsum(line.before_usd for line in self.lines)

    @property
    def after_usd(self) -> float:
        """Monthly cost of the priced resources once the plan is applied."""
        return math.fsum(line.after_usd for line in self.lines)

    @property
    def delta_usd(self) -> float:
        """The change in monthly cost the plan makes."""
        return self.after_usd - self.before_usd

    @property
    def unpriced_types(self) -> tuple[str, ...]:
        """The resource types with at least one resource left unpriced, sorted."""
        return tuple(sorted({item.type for item in self.unpriced}))

    @property
    def has_cost(self) -> bool:
        """Whether any resource costs something on either side of the plan."""
        return any(line.before_usd or line.after_usd for line in self.lines)


@dataclass(frozen=True)
class _Price:
    """What one side of one resource costs a month."""

    monthly: float
    basis: str
    assumptions: tuple[str, ...] = ()


@dataclass(frozen=True)
class _NoPrice:
    """Why one side of one resource could not be priced."""

    reason: str


@dataclass(frozen=True)
class _Instance:
    """One resource instance on one side of the plan: its attributes and what is unknown."""

    address: str
    type: str
    values: Mapping[str, Any]
    unknown: Any
    """The ``after_unknown`` shape: True where a value is known only after apply."""

    @property
    def config_address(self) -> str:
        """The address without instance keys, as the plan's configuration names it."""
        return _INDEX.sub("", self.address)

    def get(self, *path: str | int) -> Any:
        """The attribute at ``path``, or None when absent or known only after apply."""
        if self.is_unknown(*path):
            return None
        node: Any = self.values
        for key in path:
            if isinstance(key, int):
                if not isinstance(node, list) or key >= len(node):
                    return None
            elif not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        return node

    def is_unknown(self, *path: str | int) -> bool:
        """Whether the value at ``path`` (or one holding it) is known only after apply."""
        node: Any = self.unknown
        for key in path:
            if node is True:
                return True
            if isinstance(key, int) and isinstance(node, list) and key < len(node):
                node = node[key]
            elif isinstance(key, str) and isinstance(node, Mapping):
                node = node.get(key, False)
            else:
                return False
        return node is True


@dataclass(frozen=True)
class _Side:
    """Every resource instance on one side of the plan, for rules that look across them."""

    instances: Mapping[str, _Instance]
    launch_template_refs: Mapping[str, str]
    """Node group config address to the launch template config address it references."""

    def of_type(self, resource_type: str) -> list[_Instance]:
        """The instances of one resource type."""
        return [i for i in self.instances.values() if i.type == resource_type]


_Pricer = Callable[[_Instance, _Side, PriceTable], _Price | _NoPrice]


def estimate(
    plan: Mapping[str, Any] | Sequence[Mapping[str, Any]], prices: PriceTable
) -> CostEstimate:
    """Price every managed resource of a plan as it is now and as the plan leaves it."""
    if isinstance(plan, Mapping):
        entries: Sequence[Mapping[str, Any]] = plan.get("resource_changes") or []
        refs = _launch_template_refs(plan.get("configuration") or {})
    else:
        entries, refs = plan, {}
    managed = [entry for entry in entries if entry.get("mode", "managed") == "managed"]
    before = _side(managed, "before", refs)
    after = _side(managed, "after", refs)
    lines: list[CostLine] = []
    unpriced: list[Unpriced] = []
    assumptions: list[str] = []
    for entry in managed:
        address, resource_type = str(entry["address"]), str(entry.get("type", ""))
        actions = tuple(str(a) for a in (entry.get("change") or {}).get("actions") or ())
        sides = [
            _price(side.instances[address], side, prices) if address in side.instances else None
            for side in (before, after)
        ]
        failed = [side for side in sides if isinstance(side, _NoPrice)]
        if failed:
            unpriced.append(Unpriced(address, resource_type, actions, failed[0].reason))
            continue
        was, will = (side if isinstance(side, _Price) else None for side in sides)
        for price in (was, will):
            assumptions += [a for a in (price.assumptions if price else ()) if a not in assumptions]
        lines.append(
            CostLine(
                address=address,
                type=resource_type,
                actions=actions,
                basis=_basis(was, will),
                before_usd=was.monthly if was else 0.0,
                after_usd=will.monthly if will else 0.0,
                free=resource_type in prices.free and resource_type not in _PRICERS,
            )
        )
    return CostEstimate(
        tuple(lines), tuple(unpriced), tuple(assumptions), prices.source, prices.hours_per_month
    )


def _side(entries: Iterable[Mapping[str, Any]], which: str, refs: Mapping[str, str]) -> _Side:
    """The instances that exist on one side (``before`` or ``after``) of the plan."""
    instances = {}
    for entry in entries:
        change = entry.get("change") or {}
        values = change.get(which)
        if values is None:
            continue
        unknown = (change.get("after_unknown") or {}) if which == "after" else {}
        address = str(entry["address"])
        instances[address] = _Instance(address, str(entry.get("type", "")), values, unknown)
    return _Side(instances, refs)


def _price(instance: _Instance, side: _Side, prices: PriceTable) -> _Price | _NoPrice:
    """One side of one resource, by its type's rule, free, or not priced."""
    pricer = _PRICERS.get(instance.type)
    if pricer is not None:
        return pricer(instance, side, prices)
    if instance.type in prices.free:
        return _Price(0.0, "no charge of its own")
    return _NoPrice(f"no price for resource type {instance.type}")


def _basis(was: _Price | None, will: _Price | None) -> str:
    """What decided the price: the one side, or both when they differ."""
    if was and will and was.basis != will.basis:
        return f"{was.basis} → {will.basis}"
    return (will or was or _Price(0.0, "")).basis


def _launch_template_refs(configuration: Mapping[str, Any]) -> dict[str, str]:
    """Which launch template each EKS node group's configuration references, by address."""
    found: dict[str, str] = {}

    def walk(module: Mapping[str, Any], prefix: str) -> None:
        for resource in module.get("resources") or []:
            if resource.get("type") != "aws_eks_node_group":
                continue
            for block in (resource.get("expressions") or {}).get("launch_template") or []:
                for attribute in ("id", "name"):
                    for ref in (block.get(attribute) or {}).get("references") or []:
                        # With count or for_each, the reference names the instance too.
                        match = re.match(
                            r'^aws_launch_template\.[\w-]+(\[(\d+|"[^"]*")\])?', str(ref)
                        )
                        if match:  # the first reference is the most specific one
                            found.setdefault(
                                prefix + str(resource["address"]), prefix + match.group(0)
                            )
        for name, call in (module.get("module_calls") or {}).items():
            walk(call.get("module") or {}, f"{prefix}module.{name}.")

    walk(configuration.get("root_module") or {}, "")
    return found


# --- AWS -----------------------------------------------------------------------------------


def _hours(prices: PriceTable, hourly: float) -> float:
    """A monthly amount from an hourly rate."""
    return hourly * prices.hours_per_month


def _aws_eks_cluster(instance: _Instance, side: _Side, prices: PriceTable) -> _Price:
    """The EKS control plane's hourly fee."""
    return _Price(_hours(prices, prices.aws.rates["eks_cluster_hour"]), "EKS control plane")


def _aws_nat_gateway(instance: _Instance, side: _Side, prices: PriceTable) -> _Price:
    """A NAT gateway's hours and the traffic it is assumed to process."""
    gb = prices.usage["nat_data_gb_month"]
    rates = prices.aws.rates
    monthly = _hours(prices, rates["nat_gateway_hour"]) + gb * rates["nat_data_gb"]
    return _Price(
        monthly,
        f"NAT gateway + {gb:g} GB/month processed",
        (f"each NAT gateway processes {gb:g} GB a month",),
    )


def _aws_eip(instance: _Instance, side: _Side, prices: PriceTable) -> _Price:
    """A public IPv4 address, charged by the hour whether attached or not."""
    return _Price(_hours(prices, prices.aws.rates["public_ipv4_hour"]), "public IPv4 address")


def _aws_kms_key(instance: _Instance, side: _Side, prices: PriceTable) -> _Price:
    """A customer managed KMS key (requests are not priced)."""
    return _Price(prices.aws.rates["kms_key_month"], "KMS customer managed key")


def _aws_alarm(instance: _Instance, side: _Side, prices: PriceTable) -> _Price:
    """A standard-resolution CloudWatch metric alarm."""
    return _Price(prices.aws.rates["cloudwatch_alarm_month"], "CloudWatch alarm")


def _aws_dashboard(instance: _Instance, side: _Side, prices: PriceTable) -> _Price:
    """A CloudWatch dashboard."""
    return _Price(prices.aws.rates["cloudwatch_dashboard_month"], "CloudWatch dashboard")


def _aws_log_group(instance: _Instance, side: _Side, prices: PriceTable) -> _Price:
    """A log group's assumed monthly ingestion."""
    gb = prices.usage["log_ingestion_gb_month"]
    return _Price(
        gb * prices.aws.rates["cloudwatch_logs_ingestion_gb"],
        f"{gb:g} GB/month ingested",
        (f"each CloudWatch log group ingests {gb:g} GB a month",),
    )


def _aws_ecr(instance: _Instance, side: _Side, prices: PriceTable) -> _Price:
    """A repository's assumed image storage."""
    gb = prices.usage["registry_storage_gb"]
    return _Price(
        gb * prices.aws.rates["ecr_storage_gb_month"],
        f"{gb:g} GB stored",
        (f"each image repository stores {gb:g} GB",),
    )


def _aws_node_group(instance: _Instance, side: _Side, prices: PriceTable) -> _Price | _NoPrice:
    """An EKS managed node group: its nodes' instance hours and root volumes."""
    aws = prices.aws
    template = _launch_template(instance, side)
    notes: list[str] = []
    types = instance.get("instance_types") or []
    if types:
        instance_type = str(types[0])
        if len(types) > 1:
            notes.append(f"first of {len(types)} instance types")
    elif template is not None and template.get("instance_type"):
        instance_type = str(template.get("instance_type"))
    else:
        instance_type = aws.node_defaults.machine_type
        notes.append("EKS default instance type")
    compute = aws.machines.get(instance_type)
    if compute is None:
        return _NoPrice(f"no price for EC2 instance type {instance_type} in the table")
    spot = instance.get("capacity_type") == "SPOT"
    count = _eks_desired(instance, notes)
    disk_gb, disk_type, disk_note = _eks_disk(instance, template, aws.node_defaults)
    if disk_type not in aws.disks:
        return _NoPrice(f"no price for EBS volume type {disk_type} in the table")
    monthly = count * (_hours(prices, aws.hourly(compute, spot)) + disk_gb * aws.disks[disk_type])
    capacity = "spot" if spot else "on-demand"
    basis = f"{count}{_TIMES}{instance_type} {capacity} + {count}{_TIMES}{disk_gb:g} GB {disk_type}"
    basis += f" ({disk_note})" if disk_note else ""
    basis += "".join(f"; {note}" for note in notes)
    return _Price(monthly, basis, _spot_assumption("AWS", aws, compute) if spot else ())


def _eks_desired(instance: _Instance, notes: list[str]) -> int:
    """How many nodes a node group runs: desired size, else its minimum, else one."""
    for key in ("desired_size", "min_size"):
        value = instance.get("scaling_config", 0, key)
        if value is not None:
            if key == "min_size":
                notes.append("desired size unknown until apply: priced at min_size")
            return int(value)
    notes.append("size unknown until apply: priced as 1 node")
    return 1


def _eks_disk(
    instance: _Instance, template: _Instance | None, defaults: NodeDefaults
) -> tuple[float, str, str]:
    """A node's root volume size, type and where they came from."""
    size = instance.get("disk_size")
    if size is not None:
        return float(size), defaults.disk_type, ""
    if template is not None:
        for mapping in template.get("block_device_mappings") or []:
            ebs = (mapping.get("ebs") or [{}])[0] if isinstance(mapping, Mapping) else {}
            if ebs.get("volume_size") is not None:
                kind = str(ebs.get("volume_type") or defaults.disk_type)
                return float(ebs["volume_size"]), kind, f"launch template {template.address}"
        return defaults.disk_gb, defaults.disk_type, "launch template sets no volume: default"
    if instance.get("launch_template"):
        return defaults.disk_gb, defaults.disk_type, "launch template not in the plan: default"
    return defaults.disk_gb, defaults.disk_type, "EKS default"


def _launch_template(instance: _Instance, side: _Side) -> _Instance | None:
    """The launch template a node group uses, found by id, name or configuration reference."""
    templates = side.of_type("aws_launch_template")
    for key in ("id", "name"):
        wanted = instance.get("launch_template", 0, key)
        found = [t for t in templates if wanted is not None and t.get(key) == wanted]
        if found:
            return found[0]
    target = side.launch_template_refs.get(instance.config_address)
    referenced = [t for t in templates if target in (t.address, t.config_address)]
    # A reference to a template with several instances (count, for_each) is ambiguous.
    return referenced[0] if len(referenced) == 1 else None


def _spot_assumption(cloud: str, prices: CloudPrices, compute: Compute) -> tuple[str, ...]:
    """The assumption a spot price rests on, when it is not a published figure."""
    if compute.spot is not None:
        return ()
    return (
        f"{cloud} spot capacity costs {prices.spot_discount:.0%} less than on-demand "
        "(spot prices vary by zone and over time)",
    )


# --- GCP -----------------------------------------------------------------------------------


def _gke_cluster(instance: _Instance, side: _Side, prices: PriceTable) -> _Price | _NoPrice:
    """A GKE cluster's management fee, plus its default node pool unless it is removed."""
    location = instance.get("location")
    kind = "regional " if _is_region(location) else "zonal " if _is_zone(location) else ""
    fee = _hours(prices, prices.gcp.rates["gke_cluster_hour"])
    basis = f"GKE {kind}cluster management fee"
    if instance.get("enable_autopilot"):
        return _Price(fee, basis + "; Autopilot pods not priced")
    if instance.get("remove_default_node_pool"):
        return _Price(fee, basis)
    nodes = _gke_nodes(instance, side, prices, "initial_node_count")
    pool = _gke_node_cost(instance, nodes, prices)
    if isinstance(pool, _NoPrice):
        return pool
    return _Price(fee + pool.monthly, f"{basis} + default pool: {pool.basis}", pool.assumptions)


def _gke_node_pool(instance: _Instance, side: _Side, prices: PriceTable) -> _Price | _NoPrice:
    """A GKE node pool: its nodes' machine, GPU and boot disk hours."""
    return _gke_node_cost(instance, _gke_nodes(instance, side, prices), prices)


@dataclass(frozen=True)
class _Nodes:
    """How many nodes a pool runs, and how that number was reached."""

    count: int
    basis: str
    assumptions: tuple[str, ...] = ()


def _gke_nodes(
    instance: _Instance, side: _Side, prices: PriceTable, per_zone_key: str = "node_count"
) -> _Nodes:
    """A pool's node count: per zone times its zones, or the autoscaler's total minimum."""
    zones, zones_basis, assumptions = _gke_zones(instance, side, prices)
    per_zone = instance.get(per_zone_key)
    if per_zone is not None:
        return _Nodes(
            int(per_zone) * zones, f"{per_zone} per zone{_TIMES}{zones_basis}", assumptions
        )
    total_min = instance.get("autoscaling", 0, "total_min_node_count")
    if total_min:
        return _Nodes(int(total_min), f"autoscaled, at least {total_min} in all")
    min_per_zone = instance.get("autoscaling", 0, "min_node_count")
    if min_per_zone is not None:
        count = int(min_per_zone) * zones
        return _Nodes(
            count, f"autoscaled, at least {min_per_zone} per zone{_TIMES}{zones_basis}", assumptions
        )
    initial = instance.get("initial_node_count")
    if initial is not None:
        return _Nodes(int(initial) * zones, f"{initial} per zone{_TIMES}{zones_basis}", assumptions)
    return _Nodes(zones, f"size unknown until apply: 1 per zone{_TIMES}{zones_basis}", assumptions)


def _gke_zones(
    instance: _Instance, side: _Side, prices: PriceTable
) -> tuple[int, str, tuple[str, ...]]:
    """How many zones a pool's nodes run in, how that was decided, and any assumption."""
    own = instance.get("node_locations")
    if own and instance.type == "google_container_node_pool":
        return len(own), _zones_text(len(own)), ()
    cluster = _cluster_of(instance, side)
    location = instance.get("location") or (cluster.get("location") if cluster else None)
    cluster_zones = cluster.get("node_locations") if cluster else None
    if cluster_zones:
        # A zonal cluster's node_locations leave out its own zone, which always has nodes.
        named = set(cluster_zones) | ({location} if _is_zone(location) else set())
        return len(named), _zones_text(len(named)) + " of the cluster", ()
    if _is_zone(location):
        return 1, f"1 zone ({location})", ()
    zones = int(prices.usage["gke_regional_zones"])
    where = f"regional {location}" if _is_region(location) else "a location unknown until apply"
    return (
        zones,
        f"{zones} zones of {where}",
        (f"a regional GKE node pool without node_locations runs in {zones} zones",),
    )


def _zones_text(count: int) -> str:
    """'1 zone' or 'N zones'."""
    return f"{count} zone" + ("" if count == 1 else "s")


def _cluster_of(instance: _Instance, side: _Side) -> _Instance | None:
    """The cluster a node pool belongs to: by name, else the plan's only cluster."""
    if instance.type == "google_container_cluster":
        return instance
    clusters = side.of_type("google_container_cluster")
    name = instance.get("cluster")
    named = [c for c in clusters if name and str(name).rsplit("/", 1)[-1] == c.get("name")]
    if named:
        return named[0]
    return clusters[0] if len(clusters) == 1 else None


def _gke_node_cost(instance: _Instance, nodes: _Nodes, prices: PriceTable) -> _Price | _NoPrice:
    """What ``nodes`` nodes of the resource's node_config cost a month."""
    gcp = prices.gcp
    defaults = gcp.node_defaults
    notes: list[str] = []
    machine_type = instance.get("node_config", 0, "machine_type")
    if machine_type is None:
        machine_type = defaults.machine_type
        notes.append("GKE default machine type")
    machine = gcp.machines.get(str(machine_type))
    if machine is None:
        return _NoPrice(f"no price for machine type {machine_type} in the table")
    spot = bool(
        instance.get("node_config", 0, "spot") or instance.get("node_config", 0, "preemptible")
    )
    hourly = gcp.hourly(machine, spot)
    assumptions = list(nodes.assumptions)
    if spot:
        assumptions += _spot_assumption("GCP", gcp, machine)
    gpus_text = ""
    for accelerator in instance.get("node_config", 0, "guest_accelerator") or []:
        gpu_type, gpu_count = str(accelerator.get("type")), int(accelerator.get("count") or 0)
        if gpu_type == machine.bundled_gpu:
            gpus_text += f" + {gpu_count}{_TIMES}{gpu_type} (included)"
            continue
        gpu = gcp.gpus.get(gpu_type)
        if gpu is None:
            return _NoPrice(f"no price for GPU type {gpu_type} in the table")
        hourly += gpu_count * gcp.hourly(gpu, spot)
        gpus_text += f" + {gpu_count}{_TIMES}{gpu_type}"
        if spot:
            assumptions += _spot_assumption("GCP", gcp, gpu)
    disk_gb = float(instance.get("node_config", 0, "disk_size_gb") or defaults.disk_gb)
    disk_type = str(instance.get("node_config", 0, "disk_type") or defaults.disk_type)
    if disk_type not in gcp.disks:
        return _NoPrice(f"no price for disk type {disk_type} in the table")
    count = nodes.count
    monthly = count * (_hours(prices, hourly) + disk_gb * gcp.disks[disk_type])
    capacity = "spot" if spot else "on-demand"
    # GPUs are per node, so they are grouped with the machine they attach to.
    node = f"({machine_type}{gpus_text})" if gpus_text else str(machine_type)
    basis = (
        f"{count}{_TIMES}{node} {capacity} ({nodes.basis})"
        f" + {count}{_TIMES}{disk_gb:g} GB {disk_type}"
    )
    basis += "".join(f"; {note}" for note in notes)
    return _Price(monthly, basis, tuple(dict.fromkeys(assumptions)))


def _gke_router_nat(instance: _Instance, side: _Side, prices: PriceTable) -> _Price:
    """A Cloud NAT gateway: per VM it serves (the plan's GKE nodes) and the traffic assumed."""
    rates = prices.gcp.rates
    vms = sum(
        _gke_nodes(pool, side, prices).count for pool in side.of_type("google_container_node_pool")
    ) + sum(
        _gke_nodes(cluster, side, prices, "initial_node_count").count
        for cluster in side.of_type("google_container_cluster")
        if not cluster.get("remove_default_node_pool") and not cluster.get("enable_autopilot")
    )
    assumptions = [f"each NAT gateway processes {prices.usage['nat_data_gb_month']:g} GB a month"]
    if vms == 0:
        vms = 1
        assumptions.append("a Cloud NAT gateway with no GKE nodes in the plan serves 1 VM")
    hourly = (
        vms * rates["cloud_nat_vm_hour"]
        if vms <= _CLOUD_NAT_VM_CAP
        else rates["cloud_nat_max_hour"]
    )
    gb = prices.usage["nat_data_gb_month"]
    return _Price(
        _hours(prices, hourly) + gb * rates["cloud_nat_data_gb"],
        f"Cloud NAT for {vms} VM{'s' if vms != 1 else ''} + {gb:g} GB/month processed",
        tuple(assumptions),
    )


def _gcp_alert_policy(instance: _Instance, side: _Side, prices: PriceTable) -> _Price:
    """An alert policy, charged per condition."""
    conditions = instance.get("conditions")
    count = len(conditions) if conditions else 1
    basis = f"{count} condition{'s' if count != 1 else ''}"
    if not conditions:
        basis += " (conditions unknown until apply: priced as 1)"
    return _Price(count * prices.gcp.rates["alert_condition_month"], basis)


def _gcp_artifact_registry(instance: _Instance, side: _Side, prices: PriceTable) -> _Price:
    """A repository's assumed image storage."""
    gb = prices.usage["registry_storage_gb"]
    return _Price(
        gb * prices.gcp.rates["artifact_registry_gb_month"],
        f"{gb:g} GB stored",
        (f"each image repository stores {gb:g} GB",),
    )


def _gcp_kms_crypto_key(instance: _Instance, side: _Side, prices: PriceTable) -> _Price:
    """One active key version; each rotation adds another until old versions are destroyed."""
    level = str(instance.get("version_template", 0, "protection_level") or "SOFTWARE")
    key = "kms_hsm_key_version_month" if level == "HSM" else "kms_software_key_version_month"
    return _Price(prices.gcp.rates[key], f"1 active key version, {level}")


def _is_zone(location: object) -> bool:
    """Whether a GCP location names a zone (us-central1-a)."""
    return isinstance(location, str) and bool(_ZONE.match(location))


def _is_region(location: object) -> bool:
    """Whether a GCP location names a region (us-central1)."""
    return isinstance(location, str) and bool(_REGION.match(location))


_PRICERS: dict[str, _Pricer] = {
    "aws_eks_cluster": _aws_eks_cluster,
    "aws_eks_node_group": _aws_node_group,
    "aws_nat_gateway": _aws_nat_gateway,
    "aws_eip": _aws_eip,
    "aws_kms_key": _aws_kms_key,
    "aws_cloudwatch_metric_alarm": _aws_alarm,
    "aws_cloudwatch_dashboard": _aws_dashboard,
    "aws_cloudwatch_log_group": _aws_log_group,
    "aws_ecr_repository": _aws_ecr,
    "google_container_cluster": _gke_cluster,
    "google_container_node_pool": _gke_node_pool,
    "google_compute_router_nat": _gke_router_nat,
    "google_monitoring_alert_policy": _gcp_alert_policy,
    "google_artifact_registry_repository": _gcp_artifact_registry,
    "google_kms_crypto_key": _gcp_kms_crypto_key,
}
PRICED_TYPES = frozenset(_PRICERS)
"""The resource types with a pricing rule."""


# --- The table -----------------------------------------------------------------------------


def load_prices(path: Path | None = None) -> PriceTable:
    """Read and validate a price table: ``path``, or the one packaged with inferops."""
    if path is None:
        origin = "inferops/prices.yaml"
        text = resources.files("inferops").joinpath("prices.yaml").read_text(encoding="utf-8")
    else:
        origin = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PriceTableError(
                f"cannot read price table {path}: {exc.strerror}; point at a YAML file shaped "
                "like inferops/prices.yaml, or pass no path to use that one"
            ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PriceTableError(f"price table {origin} is not valid YAML: {exc}") from None
    return parse_prices(data, origin)


def parse_prices(data: Any, origin: str = "price table") -> PriceTable:
    """A validated `PriceTable` from the table's parsed YAML."""
    table = _section(data, origin, "")
    usage = _section(table.get("usage"), origin, "usage")
    return PriceTable(
        source=str(table.get("source") or "list prices (source not stated)"),
        hours_per_month=_number(table.get("hours_per_month"), origin, "hours_per_month"),
        usage={key: _number(usage.get(key), origin, f"usage.{key}") for key in _USAGE},
        free=frozenset(str(t) for t in table.get("free") or []),
        aws=_cloud(table.get("aws"), origin, "aws", _AWS_RATES, "instances"),
        gcp=_cloud(table.get("gcp"), origin, "gcp", _GCP_RATES, "machines"),
    )


def _cloud(
    data: Any, origin: str, name: str, required: Sequence[str], machines_key: str
) -> CloudPrices:
    """One cloud's section of the table."""
    section = _section(data, origin, name)
    rates = _section(section.get("rates"), origin, f"{name}.rates")
    defaults = _section(section.get("node_defaults"), origin, f"{name}.node_defaults")
    machine_key = "instance_type" if name == "aws" else "machine_type"
    disks = _section(section.get("disks"), origin, f"{name}.disks")
    return CloudPrices(
        region=str(section.get("region") or ""),
        spot_discount=_number(section.get("spot_discount"), origin, f"{name}.spot_discount"),
        rates={key: _number(rates.get(key), origin, f"{name}.rates.{key}") for key in required},
        node_defaults=NodeDefaults(
            machine_type=str(defaults.get(machine_key) or ""),
            disk_gb=_number(defaults.get("disk_gb"), origin, f"{name}.node_defaults.disk_gb"),
            disk_type=str(defaults.get("disk_type") or ""),
        ),
        disks={
            str(kind): _number(value, origin, f"{name}.disks.{kind}")
            for kind, value in disks.items()
        },
        machines=_computes(section.get(machines_key), origin, f"{name}.{machines_key}"),
        gpus=_computes(section.get("gpus") or {}, origin, f"{name}.gpus"),
    )


def _computes(data: Any, origin: str, where: str) -> dict[str, Compute]:
    """Machine or GPU types to their hourly prices."""
    found = {}
    for kind, entry in _section(data, origin, where).items():
        fields = _section(entry, origin, f"{where}.{kind}")
        spot = fields.get("spot")
        found[str(kind)] = Compute(
            on_demand=_number(fields.get("on_demand"), origin, f"{where}.{kind}.on_demand"),
            spot=None if spot is None else _number(spot, origin, f"{where}.{kind}.spot"),
            bundled_gpu=str(fields["bundled_gpu"]) if fields.get("bundled_gpu") else None,
            bundled_gpu_count=int(fields.get("bundled_gpu_count") or 0),
        )
    return found


def _section(data: Any, origin: str, where: str) -> Mapping[str, Any]:
    """A mapping in the table, or PriceTableError naming where it should be."""
    if not isinstance(data, Mapping):
        place = f"section '{where}'" if where else "the top level"
        raise PriceTableError(
            f"{origin}: {place} must be a mapping of names to values, got "
            f"{type(data).__name__}; compare it with inferops/prices.yaml"
        )
    return data


def _number(value: Any, origin: str, where: str) -> float:
    """A non-negative price or quantity, or PriceTableError naming the key."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PriceTableError(
            f"{origin}: '{where}' must be a non-negative number (USD, or a quantity), got "
            f"{value!r}; add or fix it"
        )
    return float(value)
