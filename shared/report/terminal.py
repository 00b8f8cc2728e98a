"""The plain-text summary ``bulwark status`` prints: per policy, its last session, RPO and cost."""

from __future__ import annotations

from collections.abc import Sequence

from .gather import PolicyReport
from .page import NONE, human_duration, human_size

__all__ = ["status_text"]


def status_text(reports: Sequence[PolicyReport]) -> str:
    if not reports:
        return "No policy has sessions in the catalog yet.\n"
    lines: list[str] = []
    for report in reports:
        latest = report.history[0] if report.history else None
        lines.append(f"policy {report.policy_id}" + ("" if report.policy is not None else " (deleted)"))
        if latest is None:
            lines.append("  last session   none yet")
        else:
            lines.append(
                f"  last session   {latest.status}  {latest.started:%Y-%m-%d %H:%M} UTC  "
                f"{human_duration(latest.duration)}  read {human_size(latest.bytes_read)}  "
                f"stored {human_size(latest.bytes_stored)}  ({latest.session_id})"
            )
            failed = [r for r in latest.resources if str(r.status) == "Failed"]
            for result in failed[:5]:
                lines.append(f"    failed       {result.resource_id.rsplit('/', 1)[-1]}: {result.reason or NONE}")
        results = [str(s.status) for s in report.history]
        summary = ", ".join(
            f"{results.count(name)} {name}" for name in ("Success", "Warning", "Failed") if name in results
        )
        lines.append(f"  last {len(results)} sessions  {summary or NONE}")
        if report.policy is not None:
            missed = [check for check in report.rpo if not check.compliant]
            lines.append(f"  RPO            {len(report.rpo) - len(missed)} of {len(report.rpo)} within their interval")
            for check in missed[:10]:
                age = human_duration(check.age) if check.age is not None else "no point"
                lines.append(
                    f"    missed       {check.resource_id.rsplit('/', 1)[-1]} ({check.kind}): newest {age} old, "
                    f"interval {human_duration(check.interval)}"
                )
        if report.cost is not None:
            lines.append(
                f"  cost           about {report.cost.total:,.2f} {report.cost.currency} a month "
                f"({report.cost.tier} tier, prices of {report.cost.prices_as_of})"
            )
        lines.append("")
    return "\n".join(lines)
