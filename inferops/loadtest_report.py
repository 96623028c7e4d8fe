"""A load test's report as one self-contained HTML page: the verdict, the SLO table, and
plots drawn as inline SVG (no script, no network), readable on a laptop screen.

- TTFT (p50, p95) and end-to-end latency (p95) over time, in 2 s buckets, with each
  stage's start marked and the SLO limits drawn as dashed lines;
- requests per second and failures over time;
- for a capacity run, goodput and the rate sent against the rate offered, with the
  knee marked, and the cost at the knee.

Pure: ``render_html(summary, samples)`` returns the page.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

WIDTH, HEIGHT = 860, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 16, 40
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")

Series = Sequence[tuple[float, float]]


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ticks(value: float, count: int = 4) -> tuple[float, float]:
    """A round axis top at or above ``value`` and its tick step (1, 2 or 5 times 10^k)."""
    raw = max(value, 1e-9) / count
    power = float(10.0 ** math.floor(math.log10(raw)))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return step * math.ceil(max(value, 1e-9) / step), step


def _chart(
    title: str,
    series: Mapping[str, Series],
    x_label: str,
    y_label: str,
    *,
    hlines: Mapping[str, float] | None = None,
    vlines: Sequence[tuple[float, str]] = (),
    points: Sequence[tuple[float, float, str]] = (),
    x_max: float | None = None,
    diagonal: str | None = None,
) -> str:
    """One line chart as SVG."""
    xs = [x for s in series.values() for x, _ in s] or [0.0]
    ys = [y for s in series.values() for _, y in s] + list((hlines or {}).values())
    top_x, step_x = _ticks(x_max or max(xs) or 1.0, 5)
    top_y, step_y = _ticks(max(ys, default=1.0) * 1.05)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + plot_w * x / top_x

    def py(y: float) -> float:
        return TOP + plot_h * (1 - y / top_y)

    out = [
        f"<figure><figcaption>{html.escape(title)}</figcaption>"
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">'
    ]
    for i in range(round(top_y / step_y) + 1):
        y = step_y * i
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            f'class="grid"/><text x="{LEFT - 6}" y="{py(y) + 4:.1f}" class="tick" '
            f'text-anchor="end">{y:g}</text>'
        )
    for i in range(round(top_x / step_x) + 1):
        x = step_x * i
        out.append(
            f'<text x="{px(x):.1f}" y="{TOP + plot_h + 16}" class="tick" '
            f'text-anchor="middle">{x:g}</text>'
        )
    if diagonal is not None:
        end = min(top_x, top_y)
        out.append(
            f'<line x1="{px(0):.1f}" y1="{py(0):.1f}" x2="{px(end):.1f}" y2="{py(end):.1f}" '
            f'class="stage"/><text x="{px(end) - 4:.1f}" y="{py(end) + 14:.1f}" '
            f'class="tick" text-anchor="end">{html.escape(diagonal)}</text>'
        )
    out.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" class="axis" '
        f'text-anchor="middle">{html.escape(x_label)}</text>'
        f'<text x="14" y="{TOP + plot_h / 2}" class="axis" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">{html.escape(y_label)}</text>'
    )
    for x, label in vlines:
        out.append(
            f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
            f'class="stage"/><text x="{px(x) + 3:.1f}" y="{TOP + 10}" class="tick">'
            f"{html.escape(label)}</text>"
        )
    for (name, y), colour in zip((hlines or {}).items(), COLOURS[::-1], strict=False):
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            f'stroke="{colour}" class="limit"/><text x="{LEFT + plot_w - 4}" '
            f'y="{py(y) - 4:.1f}" class="tick" fill="{colour}" text-anchor="end">'
            f"{html.escape(name)}</text>"
        )
    for i, (name, data) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        if data:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in data)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        out.append(
            f'<rect x="{LEFT + plot_w + 8}" y="{TOP + 40 + 18 * i}" width="12" height="3" '
            f'fill="{colour}"/><text x="{LEFT + plot_w + 24}" y="{TOP + 45 + 18 * i}" '
            f'class="legend">{html.escape(name)}</text>'
        )
    for x, y, label in points:
        out.append(
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="6" class="knee"/>'
            f'<text x="{px(x) + 9:.1f}" y="{py(y) - 8:.1f}" class="knee-label">'
            f"{html.escape(label)}</text>"
        )
    out.append("</svg></figure>")
    return "".join(out)


def _buckets(samples: Sequence[Mapping[str, Any]], width_s: float) -> list[dict[str, Any]]:
    if not samples:
        return []
    start = min(float(s["ts"]) for s in samples)
    grouped: dict[int, list[Mapping[str, Any]]] = {}
    for s in samples:
        grouped.setdefault(int((float(s["ts"]) - start) // width_s), []).append(s)
    out = []
    for index in sorted(grouped):
        mine = grouped[index]
        ttfts = [float(s["ttft_s"]) for s in mine if s.get("ttft_s") is not None]
        latencies = [float(s["latency_s"]) for s in mine if s.get("ok")]
        out.append(
            {
                "t": (index + 0.5) * width_s,
                "rps": len(mine) / width_s,
                "failed_rps": sum(1 for s in mine if not s.get("ok")) / width_s,
                "ttft_p50": _quantile(ttfts, 0.5),
                "ttft_p95": _quantile(ttfts, 0.95),
                "latency_p95": _quantile(latencies, 0.95),
            }
        )
    return out


def _ms(points: Sequence[Mapping[str, Any]], key: str) -> Series:
    return [(p["t"], p[key] * 1000) for p in points if p[key] is not None]


def _figure_text(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    if metric.endswith("_usd"):
        return f"${value:,.4g}"
    if metric in ("error_rate", "goodput"):
        return f"{value:.2%}"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _generator(summary: Mapping[str, Any]) -> str:
    cores = summary.get("generator_cores")
    if cores is None:
        return "the load generator's CPU was not measured"
    if summary.get("generator_bound"):
        return (
            f"<b>the load generator was CPU-bound</b> ({cores:.2f} of its core): the rates "
            "reached may be its limit, not the service's"
        )
    return f"the load generator used {cores:.2f} of its core (not the bottleneck)"


def render_html(
    summary: Mapping[str, Any],
    samples: Sequence[Mapping[str, Any]],
    headline: str,
    stage_starts: Sequence[tuple[float, str]] = (),
) -> str:
    """The whole report page."""
    limits = {c["metric"]: c["limit"] for c in summary["checks"] if c["limit"] is not None}
    width = max(1.0, float(summary.get("duration_s") or 60) / 60)
    width = 2.0 if width < 2 else round(width)
    points = _buckets(samples, width)
    duration = max((p["t"] + width / 2 for p in points), default=1.0)
    hl = {}
    if "ttft_p95_s" in limits:
        hl["TTFT p95 SLO"] = limits["ttft_p95_s"] * 1000
    if "latency_p95_s" in limits:
        hl["latency p95 SLO"] = limits["latency_p95_s"] * 1000
    charts = [
        _chart(
            "Time to first token and latency over time",
            {
                "TTFT p50": _ms(points, "ttft_p50"),
                "TTFT p95": _ms(points, "ttft_p95"),
                "latency p95": _ms(points, "latency_p95"),
            },
            "seconds since start",
            "milliseconds",
            hlines=hl,
            vlines=stage_starts,
            x_max=duration,
        ),
        _chart(
            "Throughput over time",
            {
                "requests/s": [(p["t"], p["rps"]) for p in points],
                "failed/s": [(p["t"], p["failed_rps"]) for p in points],
            },
            "seconds since start",
            "requests per second",
            vlines=stage_starts,
            x_max=duration,
        ),
    ]
    capacity = summary.get("capacity")
    cost_box = ""
    if capacity:
        stages = capacity["stages"]
        knee_points = [
            (s["offered_rps"], s["goodput_rps"], f"knee {s['offered_rps']:g} req/s")
            for s in stages
            if s["offered_rps"] == capacity["knee_rps"]
        ]
        top = max(s["offered_rps"] for s in stages)
        charts.append(
            _chart(
                "Goodput against the offered rate (requests within every per-request limit)",
                {
                    "goodput": [(s["offered_rps"], s["goodput_rps"]) for s in stages],
                    "sent": [(s["offered_rps"], s["sent_rps"]) for s in stages],
                },
                "offered requests per second",
                "requests per second",
                points=knee_points,
                x_max=top,
                diagonal="all that was offered",
            )
        )
        cost = capacity.get("cost_at_knee")
        if cost:
            cost_box = (
                f"<p class='cost'>At the knee, priced as {html.escape(cost['priced_as'])} "
                f"(${cost['hourly_usd']:.4g} an hour): <b>${cost['per_1m_output_tokens_usd']:.4g}"
                f"</b> per 1M output tokens, <b>${cost['per_1k_requests_usd']:.4g}</b> per 1K "
                "requests.</p>"
            )
    rows = "".join(
        "<tr class='{cls}'><td>{name}</td><td>{fig}</td><td>{lim}</td><td>{held}</td>"
        "<td>{detail}</td></tr>".format(
            cls={True: "ok", False: "bad", None: "na"}[c["held"]],
            name=html.escape(c["name"]),
            fig=_figure_text(c["figure"], c["metric"]),
            lim="-"
            if c["limit"] is None
            else f"{c['bound']} {_figure_text(c['limit'], c['metric'])}",
            held={True: "held", False: "BREACHED", None: "not judged"}[c["held"]],
            detail=html.escape(c["detail"]),
        )
        for c in summary["checks"]
    )
    verdict = "held" if summary["held"] else "breached"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Load test {html.escape(summary["profile"])} on {html.escape(summary["env"])}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 900px;
  color: #222; padding: 0 12px; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }}
.verdict {{ padding: 10px 14px; border-radius: 6px; margin: 12px 0; }}
.verdict.held {{ background: #e8f5e9; border-left: 5px solid #2e7d32; }}
.verdict.breached {{ background: #ffebee; border-left: 5px solid #c62828; }}
.meta {{ color: #555; }}
table {{ border-collapse: collapse; width: 100%; margin: 8px 0 16px; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left;
  vertical-align: top; }}
tr.bad td {{ color: #b71c1c; font-weight: 600; }} tr.na td {{ color: #888; }}
figure {{ margin: 18px 0; }} figcaption {{ font-weight: 600; margin-bottom: 4px; }}
svg {{ width: 100%; height: auto; }}
.grid {{ stroke: #eee; }} .tick {{ font-size: 11px; fill: #666; }}
.axis {{ font-size: 12px; fill: #444; }} .legend {{ font-size: 12px; fill: #333; }}
.stage {{ stroke: #bbb; stroke-dasharray: 3 3; }} .limit {{ stroke-dasharray: 6 4; }}
.knee {{ fill: none; stroke: #000; stroke-width: 2; }}
.knee-label {{ font-size: 12px; font-weight: 600; }}
.cost {{ background: #f5f5f5; padding: 8px 12px; border-radius: 6px; }}
</style></head><body>
<h1>Load test: {html.escape(summary["profile"])} on {html.escape(summary["env"])}</h1>
<p class="meta">{html.escape(summary["target"])} ({html.escape(summary["url"])}),
{summary["requests"]} requests in {summary["duration_s"]} s, {summary["failures"]} failed;
{_generator(summary)}; SLO file {html.escape(summary["slo_file"])}</p>
<div class="verdict {verdict}">{html.escape(headline)}</div>
{cost_box}
<h2>SLOs, judged on {html.escape(summary.get("judged_on", "the run"))}</h2>
<table><tr><th>check</th><th>figure</th><th>limit</th><th></th><th>detail</th></tr>{rows}</table>
{"".join(charts)}
</body></html>
"""
