"""The report as one self-contained HTML page: inline CSS and SVG, no script, no external request.

``session_page`` shows one session (per resource: result, duration, data read and stored,
throughput) above its policy's section; ``policy_page`` only the policy's: charts of the last
sessions, RPO compliance per resource and the cost estimate. Every text from the catalog is escaped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape

from shared.catalog.model import ResourceResult, Session

from .cost import CostEstimate
from .gather import PolicyReport, SessionReport
from .rpo import RpoCheck

__all__ = ["human_duration", "human_size", "policy_page", "session_page"]

NONE = "-"

_COLORS = {"Success": "#2e7d32", "Warning": "#ef6c00", "Failed": "#c62828", "Running": "#1565c0"}
_STYLE = """
:root { color-scheme: light; --ink: #1d2330; --muted: #5b6475; --line: #d9dee7; --band: #f4f6fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); }
header { background: #17233b; color: #fff; padding: 18px 28px; }
header h1 { margin: 0; font-size: 20px; font-weight: 600; }
header p { margin: 4px 0 0; color: #c9d3e6; }
main { padding: 8px 28px 28px; max-width: 1180px; }
h2 { font-size: 16px; margin: 26px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 16px; }
.card { background: var(--band); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px;
  min-width: 150px; }
.card b { display: block; font-size: 18px; }
.card > span { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--band); font-weight: 600; font-size: 12px; color: var(--muted); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 12px; font-weight: 600; }
.reason { color: var(--muted); font-size: 12px; max-width: 420px; }
.charts { display: flex; flex-wrap: wrap; gap: 18px; }
figure { margin: 0; }
figcaption { color: var(--muted); font-size: 12px; margin-bottom: 4px; }
.note { color: var(--muted); font-size: 12px; }
ul.assumptions { margin: 6px 0; padding-left: 18px; color: var(--muted); font-size: 12px; }
footer { color: var(--muted); font-size: 12px; padding: 0 28px 24px; }
"""


def session_page(report: SessionReport) -> str:
    session = report.session
    duration = session.duration
    seconds = duration.total_seconds() if duration else 0.0
    cards = [
        ("result", _badge(str(session.status))),
        ("resources", str(len(session.resources))),
        ("duration", escape(human_duration(duration))),
        ("data read", escape(human_size(session.bytes_read))),
        ("data stored", escape(human_size(session.bytes_stored))),
        ("throughput", escape(_throughput(session.bytes_read, seconds))),
    ]
    body = [
        _cards(cards),
        f'<p class="reason">{escape(session.reason)}</p>' if session.reason else "",
        "<h2>Resources</h2>",
        _resources_table(session.resources),
        _policy_sections(report.policy, highlight=session.session_id),
    ]
    title = f"Session {session.session_id}"
    subtitle = (
        f"policy {session.policy_id} · {session.trigger} · started {_when(session.started)}"
        + (f" · ended {_when(session.ended)}" if session.ended else "")
        + (" · image-level" if session.image_backup else " · snapshots")
    )
    return _page(title, subtitle, "".join(body), report.policy.generated)


def policy_page(report: PolicyReport) -> str:
    latest = report.history[0] if report.history else None
    compliant = sum(check.compliant for check in report.rpo)
    cards = [
        ("last session", _badge(str(latest.status)) if latest else "none yet"),
        ("sessions shown", str(len(report.history))),
        ("RPO compliant", f"{compliant} of {len(report.rpo)}" if report.rpo else "n/a"),
        ("estimated per month", escape(_money(report.cost)) if report.cost else "n/a"),
    ]
    body = [_cards(cards), _sessions_table(report.history), _policy_sections(report, highlight=None)]
    subtitle = "the policy's sessions, RPO compliance and estimated cost"
    if report.policy is not None and report.policy.description:
        subtitle = report.policy.description
    return _page(f"Policy {report.policy_id}", subtitle, "".join(body), report.generated)


# -- sections --------------------------------------------------------------------------------------


def _policy_sections(report: PolicyReport, *, highlight: str | None) -> str:
    parts = [f"<h2>Last sessions of policy {escape(report.policy_id)}</h2>", _charts(report.history, highlight)]
    parts.append("<h2>RPO compliance</h2>")
    if report.policy is None:
        parts.append('<p class="note">The policy no longer exists: no schedule to check against.</p>')
    else:
        parts.append(_rpo_table(report.rpo))
    parts.append("<h2>Estimated monthly cost</h2>")
    parts.append(_cost_section(report.cost) if report.cost else '<p class="note">No policy, no estimate.</p>')
    return "".join(parts)


def _resources_table(results: Sequence[ResourceResult]) -> str:
    rows = []
    for result in results:
        duration = result.duration
        seconds = duration.total_seconds() if duration else 0.0
        rows.append(
            "<tr>"
            f"<td>{escape(_short(result.resource_id))}<div class='note'>{escape(str(result.kind))}</div></td>"
            f"<td>{_badge(str(result.status))}</td>"
            f"<td class='num'>{escape(human_duration(duration))}</td>"
            f"<td class='num'>{escape(human_size(result.bytes_read))}</td>"
            f"<td class='num'>{escape(human_size(result.bytes_stored))}</td>"
            f"<td class='num'>{escape(_throughput(result.bytes_read, seconds))}</td>"
            f"<td class='reason'>{escape(result.reason)}</td>"
            "</tr>"
        )
    if not rows:
        return '<p class="note">This session covered no resource.</p>'
    head = (
        "<tr><th>resource</th><th>result</th><th class='num'>duration</th><th class='num'>read</th>"
        "<th class='num'>stored</th><th class='num'>throughput</th><th>reason</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _sessions_table(history: Sequence[Session]) -> str:
    rows = [
        "<tr>"
        f"<td>{escape(s.session_id)}</td><td>{_badge(str(s.status))}</td><td>{escape(_when(s.started))}</td>"
        f"<td class='num'>{escape(human_duration(s.duration))}</td>"
        f"<td class='num'>{escape(human_size(s.bytes_read))}</td>"
        f"<td class='num'>{escape(human_size(s.bytes_stored))}</td>"
        f"<td class='num'>{len(s.resources)}</td></tr>"
        for s in history
    ]
    head = (
        "<tr><th>session</th><th>result</th><th>started</th><th class='num'>duration</th>"
        "<th class='num'>read</th><th class='num'>stored</th><th class='num'>resources</th></tr>"
    )
    if not rows:
        return "<h2>Sessions</h2><p class='note'>No session recorded yet.</p>"
    return f"<h2>Sessions</h2><table>{head}{''.join(rows)}</table>"


def _rpo_table(checks: Sequence[RpoCheck]) -> str:
    if not checks:
        return '<p class="note">No resource recorded in the last sessions.</p>'
    rows = []
    for check in checks:
        mark = _badge("Success", "within") if check.compliant else _badge("Failed", "missed")
        rows.append(
            "<tr>"
            f"<td>{escape(_short(check.resource_id))}</td><td>{escape(str(check.kind))}</td>"
            f"<td class='num'>{escape(human_duration(check.interval))}</td>"
            f"<td>{escape(_when(check.latest)) if check.latest else 'none'}</td>"
            f"<td class='num'>{escape(human_duration(check.age))}</td><td>{mark}</td></tr>"
        )
    head = (
        "<tr><th>resource</th><th>restore point</th><th class='num'>schedule interval</th><th>newest</th>"
        "<th class='num'>age</th><th>RPO</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _cost_section(cost: CostEstimate) -> str:
    rows = [
        "<tr>"
        f"<td>{escape(line.item)}<div class='note'>{escape(line.detail)}</div></td>"
        f"<td class='num'>{line.quantity:,.3f} {escape(line.unit)}</td>"
        f"<td class='num'>{line.unit_price:g}</td><td class='num'>{line.monthly:,.2f}</td></tr>"
        for line in cost.lines
    ]
    rows.append(
        f"<tr><th colspan='3'>total per month ({escape(cost.currency)})</th><th class='num'>{cost.total:,.2f}</th></tr>"
    )
    head = (
        f"<tr><th>item</th><th class='num'>quantity</th><th class='num'>unit price ({escape(cost.currency)})</th>"
        f"<th class='num'>per month</th></tr>"
    )
    tiers = ", ".join(f"{escape(name)} {value:,.2f}" for name, value in cost.tier_comparison.items())
    assumptions = "".join(f"<li>{escape(text)}</li>" for text in cost.assumptions)
    return (
        f"<table>{head}{''.join(rows)}</table>"
        f"<p class='note'>Repository storage by access tier ({escape(cost.currency)} per month): {tiers}.</p>"
        f"<ul class='assumptions'>{assumptions}</ul>"
        f"<p class='note'>Prices: {escape(cost.region)}, {escape(cost.currency)}, as of {escape(cost.prices_as_of)};"
        f" from {escape(cost.prices_source)}</p>"
    )


# -- charts (inline SVG) ---------------------------------------------------------------------------


def _charts(history: Sequence[Session], highlight: str | None) -> str:
    if not history:
        return '<p class="note">No session recorded yet.</p>'
    ordered = list(reversed(history))  # oldest on the left
    data = _bar_chart(
        "data per session (read, stored)",
        ordered,
        [(s.bytes_read, "#90a4c8") for s in ordered],
        [(s.bytes_stored, "#17233b") for s in ordered],
        human_size,
        highlight,
    )
    durations = _bar_chart(
        "duration per session (colour: result)",
        ordered,
        [((s.duration.total_seconds() if s.duration else 0.0), _COLORS.get(str(s.status), "#777")) for s in ordered],
        None,
        lambda v: human_duration(dt.timedelta(seconds=v)),
        highlight,
    )
    return f"<div class='charts'>{data}{durations}</div>"


def _bar_chart(
    caption: str,
    sessions: Sequence[Session],
    bars: Sequence[tuple[float, str]],
    inner: Sequence[tuple[float, str]] | None,
    label: object,
    highlight: str | None,
) -> str:
    width, height, left, bottom, top = 520, 200, 64, 28, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max([value for value, _ in bars] + [value for value, _ in inner or ()] + [1.0])
    step = plot_w / max(len(sessions), 1)
    bar_w = max(3.0, min(28.0, step * 0.7))
    fmt = label if callable(label) else str
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
        f"aria-label='{escape(caption, quote=True)}' viewBox='0 0 {width} {height}'>",
        f"<line x1='{left}' y1='{top + plot_h}' x2='{width - 10}' y2='{top + plot_h}' stroke='#9aa3b2'/>",
        f"<text x='{left - 6}' y='{top + 10}' font-size='10' text-anchor='end' fill='#5b6475'>"
        f"{escape(str(fmt(peak)))}</text>",
        f"<text x='{left - 6}' y='{top + plot_h}' font-size='10' text-anchor='end' fill='#5b6475'>0</text>",
    ]
    for index, session in enumerate(sessions):
        x = left + index * step + (step - bar_w) / 2
        value, color = bars[index]
        h = plot_h * value / peak
        ring = " stroke='#000' stroke-width='1.5'" if session.session_id == highlight else ""
        tip = f"{session.session_id}: {fmt(value)} ({session.status})"
        parts.append(
            f"<rect x='{x:.1f}' y='{top + plot_h - h:.1f}' width='{bar_w:.1f}' height='{h:.1f}' fill='{color}'{ring}>"
            f"<title>{escape(tip)}</title></rect>"
        )
        if inner is not None:
            stored, inner_color = inner[index]
            ih = plot_h * stored / peak
            parts.append(
                f"<rect x='{x + bar_w * 0.25:.1f}' y='{top + plot_h - ih:.1f}' width='{bar_w * 0.5:.1f}' "
                f"height='{ih:.1f}' fill='{inner_color}'><title>{escape(f'stored {fmt(stored)}')}</title></rect>"
            )
    first, last = sessions[0].started, sessions[-1].started
    parts.append(
        f"<text x='{left}' y='{height - 8}' font-size='10' fill='#5b6475'>{escape(_when(first))}</text>"
        f"<text x='{width - 10}' y='{height - 8}' font-size='10' text-anchor='end' fill='#5b6475'>"
        f"{escape(_when(last))}</text></svg>"
    )
    return f"<figure><figcaption>{escape(caption)}</figcaption>{''.join(parts)}</figure>"


# -- plumbing --------------------------------------------------------------------------------------


def _page(title: str, subtitle: str, body: str, generated: dt.datetime) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"  # no favicon request
        # nothing may be fetched or run: a browser refuses (and reports) anything but inline styles
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
        f"<title>Bulwark · {escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>Bulwark · {escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<main>{body}</main><footer>Generated {escape(_when(generated))} by Bulwark.</footer></body></html>"
    )


def _cards(cards: Iterable[tuple[str, str]]) -> str:
    return (
        "<div class='cards'>"
        + "".join(f"<div class='card'><b>{v}</b><span>{k}</span></div>" for k, v in cards)
        + "</div>"
    )


def _badge(status: str, text: str | None = None) -> str:
    color = _COLORS.get(status, "#777")
    return f"<span class='badge' style='background:{color}'>{escape(text or status)}</span>"


def _money(cost: CostEstimate) -> str:
    return f"{cost.total:,.2f} {cost.currency}"


def _throughput(size: int, seconds: float) -> str:
    return f"{human_size(size / seconds)}/s" if seconds > 0 and size > 0 else NONE


def _short(resource_id: str) -> str:
    """The resource's name, with its group: ``rg/name``."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    group = parts[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered[:-1] else ""
    return f"{group}/{parts[-1]}" if group else parts[-1]


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else NONE


def human_size(size: float) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_duration(duration: dt.timedelta | None) -> str:
    if duration is None:
        return NONE
    seconds = round(duration.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours % 24 == 0 and minutes == 0 and seconds == 0:
        return f"{hours // 24} d"
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"
