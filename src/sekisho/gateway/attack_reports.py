"""Attack mode's events, told to the audit trail and the alert digests (AU-02, AU-05).

The monitor (ratelimit/attack.py) knows nothing of audit or alerts; the composition root
builds it here with a hook that turns each :class:`AttackEvent` into one chained
``malicious_attack_mode:<kind>`` audit event and one alert:

==================  =====================  =========
event               alert kind             severity
==================  =====================  =========
start               ``attack_mode``        critical
end                 ``attack_mode_ended``  info
source_flagged      ``distinct_usernames`` warning
report_only         ``failure_rate`` or    info
                    ``distinct_usernames``
==================  =====================  =========

The alerter folds them into its digests; nothing here names a user or carries a secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sekisho.audit.alerter import Alerter
from sekisho.audit.alerts import Alert, Severity
from sekisho.audit.events import AuditEvent
from sekisho.audit.log import Auditor
from sekisho.config import Settings
from sekisho.ratelimit.attack import AttackMonitor, create_attack_monitor
from sekisho.ratelimit.attack_types import AttackEvent, AttackHook

__all__ = ["attack_alert", "attack_audit_event", "attack_reporter", "build_attack"]

_REASONS = {"failure_ratio": "a high share of failed password attempts",
            "distinct_usernames": "one address or subnet trying many usernames"}


def build_attack(
    settings: Settings, secret: bytes, *, auditor: Auditor, alerter: Alerter,
    clock: Callable[[], float] = time.time,
) -> AttackMonitor:
    return create_attack_monitor(
        settings.ratelimit.attack, url=settings.state.url, secret=secret, clock=clock,
        on_event=attack_reporter(auditor, alerter))


def attack_reporter(auditor: Auditor, alerter: Alerter) -> AttackHook:
    async def report(event: AttackEvent) -> None:
        alerter.emit(attack_alert(event))
        await auditor.record(attack_audit_event(event))

    return report


def attack_audit_event(event: AttackEvent) -> AuditEvent:
    details: dict[str, Any] = {"reason": event.reason, **event.details}
    for name in ("since", "until"):
        if (value := getattr(event, name)) is not None:
            details[name] = _iso(value)
    if event.would is not None:
        details["would"] = event.would
    if event.source is not None:
        details.update(source=event.source, source_kind=event.source_kind)
    return AuditEvent(event=f"malicious_attack_mode:{event.kind}",
                      client_ip=event.source if event.source_kind == "ip" else None,
                      details=details)


def attack_alert(event: AttackEvent) -> Alert:
    fields: dict[str, str | int] = {"reason": event.reason}
    fields.update({k: v if isinstance(v, int | str) else str(v)
                   for k, v in event.details.items()})
    for name in ("since", "until"):
        if (value := getattr(event, name)) is not None:
            fields[name] = _iso(value)
    if event.source is not None:
        fields["source"] = event.source
    why = _REASONS.get(event.reason, event.reason)
    kind, severity, title, summary = _wording(event, why)
    return Alert(kind=kind, severity=severity, title=title, summary=summary, fields=fields)


def _wording(event: AttackEvent, why: str) -> tuple[str, Severity, str, str]:
    d = event.details
    evidence = (f"{d.get('failures')} of {d.get('attempts')} password attempts failed in "
                f"{d.get('window')} s" if event.reason == "failure_ratio" else
                f"{d.get('source') or event.source} tried {d.get('usernames')} usernames in "
                f"{d.get('window')} s")
    if event.kind == "start":
        return ("attack_mode", "critical", f"Attack mode on: {why}",
                f"{evidence}. Tighter address budgets and a proof of work for unknown "
                f"browsers apply until {_iso(event.until)} (extended while it goes on).")
    if event.kind == "end":
        return ("attack_mode_ended", "info", "Attack mode ended",
                f"On since {_iso(event.since)} ({why}); no detector fired for the quiet "
                f"period, so it ended at {_iso(event.until)}.")
    if event.kind == "source_flagged":
        return ("distinct_usernames", "warning", f"Source flagged: {event.source}",
                f"{evidence}. Tighter budgets and a proof of work apply to it until "
                f"{_iso(event.until)}.")
    kind = "failure_rate" if event.reason == "failure_ratio" else "distinct_usernames"
    action = "started attack mode" if event.would == "start" else f"flagged {event.source}"
    return (kind, "info", f"Report-only: would have {action}",
            f"{evidence}. The rule is report-only, so nothing was enforced.")


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")
