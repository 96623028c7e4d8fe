"""A Terraform plan as a reviewer reads it: what it destroys first, then what it costs.

Contract (pure: no files, network or clock; the caller loads the plan JSON and the prices):

- `review_plan` takes the JSON of a saved plan (``terraform show -json PLAN``), the
  environment's name and a `PriceTable`, and returns a `PlanReview`.
- Counts follow Terraform's "Plan: N to add, M to change, K to destroy" (a replacement
  counts in both add and destroy); the verdict line adds the monthly cost delta.
- Destructive changes (deletes and replacements) come before everything else, and those of
  a cluster or node group (`inferops.terraform.APPROVAL_TYPES`) are marked "needs
  approval"; `PlanReview.needs_approval` is what a gate acts on.
- `PlanReview.markdown` is ready to post on a pull request: title, verdict, destructive
  changes, changes by resource type, the cost table, what is not priced and why, the
  assumptions, and the per-resource cost lines in a collapsible block.
  `PlanReview.text` is the short form for logs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inferops.cost import CostEstimate, CostLine, PriceTable, estimate
from inferops.terraform import PlanSummary, ResourceChange, summarise_plan

__all__ = ["PlanReview", "action_label", "review_plan"]

_REASONS = {
    "replace_because_tainted": "tainted",
    "replace_by_request": "replacement requested (-replace)",
    "replace_by_triggers": "replace_triggered_by",
    "replace_because_cannot_update": "cannot be updated in place",
    "delete_because_no_resource_config": "removed from the configuration",
    "delete_because_no_module": "its module was removed",
    "delete_because_count_index": "count no longer includes it",
    "delete_because_each_key": "for_each no longer includes it",
    "delete_because_wrong_repetition": "count or for_each was added or removed",
    "delete_because_no_move_target": "moved to an address that does not exist",
}
_COLUMNS = ("delete", "replace", "create", "update")


@dataclass(frozen=True)
class PlanReview:
    """A plan's summary and cost for one environment, rendered for people."""

    environment: str
    summary: PlanSummary
    cost: CostEstimate
    reasons: Mapping[str, str] = field(default_factory=dict)
    """Why Terraform deletes or replaces a resource, by address, where the plan says."""

    @property
    def has_changes(self) -> bool:
        """Whether applying the plan changes any resource or output."""
        return self.summary.has_changes

    @property
    def needs_approval(self) -> bool:
        """Whether the plan deletes or replaces a cluster or node group."""
        return self.summary.needs_approval

    @property
    def critical(self) -> tuple[str, ...]:
        """The addresses of the clusters and node groups the plan deletes or replaces."""
        return tuple(change.address for change in self.summary.needing_approval)

    @property
    def monthly_usd(self) -> float | None:
        """The environment's monthly cost once applied, or None when nothing in it is priced."""
        return self.cost.after_usd if self.cost.has_cost else None

    @property
    def verdict(self) -> str:
        """One line: Terraform's counts and the change in monthly cost."""
        s = self.summary
        counts = f"{s.adds} to add, {s.changes} to change, {s.destroys} to destroy"
        return f"{counts} — {_cost_phrase(self.cost)}"

    @property
    def markdown(self) -> str:
        """The review as Markdown for a pull request comment or a Prefect artifact."""
        parts = [f"### Terraform plan for `{self.environment}`", f"**{self.verdict}**"]
        if self.needs_approval:
            parts.append(
                f"> **Needs approval:** this plan deletes or replaces "
                f"{_count(len(self.critical), 'cluster or node group', 'clusters or node groups')}"
                ": the workloads on them stop. A person approves it before it is applied."
            )
        if not self.has_changes:
            parts.append("No changes: the infrastructure matches the configuration.")
        parts += _destructive_section(self.summary, self.reasons)
        parts += _by_type_section(self.summary)
        parts += _other_changes_section(self.summary)
        if self.summary.output_changes:
            names = ", ".join(f"`{name}`" for name in self.summary.output_changes)
            parts.append(f"Outputs that change: {names}.")
        parts += _cost_section(self.cost)
        return "\n\n".join(parts) + "\n"

    @property
    def text(self) -> str:
        """The review in a few lines for logs: verdict, each change (destructive first), cost."""
        lines = [f"terraform plan for {self.environment}: {self.verdict}"]
        if self.needs_approval:
            lines.append("NEEDS APPROVAL: deletes or replaces " + ", ".join(self.critical))
        for change in _ordered(self.summary.resource_changes):
            flag = " (needs approval)" if change.needs_approval else ""
            lines.append(f"  {action_label(change):<8} {change.address}{flag}")
        cost = self.cost
        if cost.has_cost:
            lines.append(
                f"monthly cost: {_usd(cost.before_usd)} -> {_usd(cost.after_usd)} "
                f"({_signed(cost.delta_usd)})"
            )
        if cost.unpriced:
            lines.append("not priced: " + ", ".join(cost.unpriced_types))
        return "\n".join(lines)


def review_plan(
    environment: str,
    plan_json: Mapping[str, Any],
    prices: PriceTable,
    summary: PlanSummary | None = None,
) -> PlanReview:
    """Review a saved plan's JSON for ``environment``: its summary, cost and reasons."""
    return PlanReview(
        environment=environment,
        summary=summary if summary is not None else summarise_plan(plan_json),
        cost=estimate(plan_json, prices),
        reasons=_reasons(plan_json.get("resource_changes") or []),
    )


def action_label(change: ResourceChange) -> str:
    """One word for what happens to a resource: create, update, delete, replace, move..."""
    if change.is_replace:
        return "replace"
    if change.actions == ("no-op",):
        return "move"
    return "/".join(change.actions)


def _reasons(entries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Why each deleted or replaced resource goes, from the plan's action_reason."""
    found = {}
    for entry in entries:
        reason = _REASONS.get(str(entry.get("action_reason", "")))
        if reason is None:
            continue
        paths = [_path_text(path) for path in entry.get("replace_paths") or []]
        if paths and entry.get("action_reason") == "replace_because_cannot_update":
            reason = ", ".join(f"`{path}`" for path in paths) + " cannot be updated in place"
        found[str(entry["address"])] = reason
    return found


def _path_text(path: Sequence[Any]) -> str:
    """An attribute path as HCL writes it: launch_template[0].id."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _ordered(changes: Sequence[ResourceChange]) -> list[ResourceChange]:
    """Changes needing approval, then other destructive ones, then the rest; plan order kept."""
    return sorted(changes, key=lambda c: (not c.needs_approval, not c.is_destructive))


def _destructive_section(summary: PlanSummary, reasons: Mapping[str, str]) -> list[str]:
    """The deletes and replacements, those needing approval first."""
    destructive = _ordered(summary.destructive)
    if not destructive:
        return []
    rows = [
        (
            f"**{action_label(c)}**",
            f"`{c.address}`",
            "**needs approval**" if c.needs_approval else "",
            reasons.get(c.address, ""),
        )
        for c in destructive
    ]
    return [
        f"#### Destructive changes ({len(destructive)})",
        _table(("Action", "Resource", "Approval", "Why"), rows),
    ]


def _by_type_section(summary: PlanSummary) -> list[str]:
    """Counts per resource type, types with destructive changes first."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for change in summary.resource_changes:
        counts[change.type][action_label(change)] += 1
    if not counts:
        return []
    others = sorted({a for c in counts.values() for a in c} - set(_COLUMNS))
    columns = (*_COLUMNS, *others)
    order = sorted(counts, key=lambda t: (not (counts[t]["delete"] or counts[t]["replace"]), t))
    rows = [(f"`{t}`", *(str(counts[t][a] or "") for a in columns)) for t in order]
    table = _table(("Resource type", *columns), rows, right=range(1, len(columns) + 1))
    return ["#### Changes by resource type", table]


def _other_changes_section(summary: PlanSummary) -> list[str]:
    """The creates, updates and moves, one row each, folded away."""
    others = [c for c in summary.resource_changes if not c.is_destructive]
    if not others:
        return []
    rows = [(action_label(c), f"`{c.address}`") for c in others]
    return [
        _details(
            f"Other changes ({len(others)})",
            _table(("Action", "Resource"), rows),
        )
    ]


def _cost_section(cost: CostEstimate) -> list[str]:
    """Monthly cost before and after by type, what is not priced, assumptions, lines."""
    parts = ["#### Monthly cost"]
    priced = [line for line in cost.lines if not line.free]
    if cost.has_cost:
        parts.append(_cost_table(cost, priced))
    elif cost.unpriced:
        parts.append("Nothing priced in this plan costs money; some resources are not priced.")
    else:
        parts.append("Nothing in this plan costs money at list prices.")
    if cost.unpriced:
        items = "\n".join(
            f"- `{item.address}`: {item.reason}; not in the totals" for item in cost.unpriced
        )
        types = ", ".join(f"`{t}`" for t in cost.unpriced_types)
        parts.append(f"**Not priced** ({types}):\n{items}")
    free = [line for line in cost.lines if line.free]
    if free:
        types = ", ".join(f"`{t}`" for t in sorted({line.type for line in free}))
        parts.append(f"No charge of their own: {_count(len(free), 'resource')} ({types}).")
    notes = [f"{cost.source}; {cost.hours_per_month:g} hours a month"] if cost.has_cost else []
    notes += cost.assumptions
    if notes:
        parts.append("_Assumes: " + "; ".join(notes) + "._")
    if priced:
        parts.append(_details(f"Cost per resource ({len(priced)})", _cost_lines(priced)))
    return parts


def _cost_table(cost: CostEstimate, priced: Sequence[CostLine]) -> str:
    """Monthly cost per resource type before and after the plan, and the totals."""
    rows = [
        (f"`{t}`", str(n), _usd(before), _usd(after), _signed(after - before))
        for t, n, before, after in _cost_by_type(priced)
    ]
    total = (
        "**Total**",
        str(len(priced)),
        f"**{_usd(cost.before_usd)}**",
        f"**{_usd(cost.after_usd)}**",
        f"**{_signed(cost.delta_usd)}**",
    )
    header = ("Resource type", "Resources", "Before", "After", "Delta")
    return _table(header, [*rows, total], right=(1, 2, 3, 4))


def _cost_lines(priced: Sequence[CostLine]) -> str:
    """One row per priced resource: what decided its price, before, after, delta."""
    rows = [
        (
            f"`{line.address}`",
            "/".join(line.actions),
            line.basis,
            _usd(line.before_usd),
            _usd(line.after_usd),
            _signed(line.delta_usd),
        )
        for line in priced
    ]
    header = ("Resource", "Action", "Priced as", "Before", "After", "Delta")
    return _table(header, rows, right=(3, 4, 5))


def _cost_by_type(lines: Sequence[CostLine]) -> list[tuple[str, int, float, float]]:
    """Per resource type: how many, and the monthly cost before and after; biggest change first."""
    grouped: dict[str, list[CostLine]] = defaultdict(list)
    for line in lines:
        grouped[line.type].append(line)
    totals = [
        (t, len(ls), sum(x.before_usd for x in ls), sum(x.after_usd for x in ls))
        for t, ls in grouped.items()
    ]
    return sorted(totals, key=lambda row: (-abs(row[3] - row[2]), -row[3], row[0]))


def _cost_phrase(cost: CostEstimate) -> str:
    """The verdict's cost part: the monthly delta, or why there is none."""
    unpriced = f" ({len(cost.unpriced)} not priced)" if cost.unpriced else ""
    if not cost.has_cost:
        return "nothing priced" + unpriced if cost.unpriced else "no cost"
    if round(cost.delta_usd, 2) == 0:
        return f"no change in monthly cost ({_usd(cost.after_usd)}/month)" + unpriced
    return f"{_signed(cost.delta_usd)}/month" + unpriced


def _usd(amount: float) -> str:
    """Dollars with cents and thousands separators: $1,187.20."""
    cents = round(amount, 2)
    return f"-${-cents:,.2f}" if cents < 0 else f"${cents:,.2f}"


def _signed(amount: float) -> str:
    """A change in dollars with its sign: +$1,187.20, -$12.00, $0.00."""
    return f"+{_usd(amount)}" if round(amount, 2) > 0 else _usd(amount)


def _count(n: int, one: str, many: str | None = None) -> str:
    """'1 resource', '3 resources'."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[int] = ()) -> str:
    """A Markdown table, the ``right`` columns right-aligned; pipes inside cells are escaped."""
    rule = "|" + "".join("---:|" if i in right else "---|" for i in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _details(summary: str, body: str) -> str:
    """A collapsible block; the blank lines let GitHub render the Markdown inside it."""
    return f"<details>\n<summary>{summary}</summary>\n\n{body}\n\n</details>"
