"""Attack mode's events as audit events and alerts (AU-02, AU-05): the kinds, the wording,
nothing that names a user, and delivery through the real Alerter's digests."""

from __future__ import annotations

import logging

import pytest

from sekisho.audit.alerter import Alerter
from sekisho.audit.alerts import Digest
from sekisho.audit.log import AuditLineWriter, Auditor
from sekisho.gateway.attack_reports import attack_alert, attack_audit_event, attack_reporter
from sekisho.ratelimit.attack_types import AttackEvent

T0 = 1_800_000_000.0
START = AttackEvent("start", "failure_ratio", since=T0, until=T0 + 900,
                    details={"failures": 60, "attempts": 80, "window": 600})
FLAGGED = AttackEvent("source_flagged", "distinct_usernames", since=T0, until=T0 + 900,
                      source="203.0.113.9", source_kind="ip",
                      details={"usernames": 11, "window": 600})
END = AttackEvent("end", "failure_ratio", since=T0, until=T0 + 900)
WOULD = AttackEvent("report_only", "distinct_usernames", source="198.51.100.0/24",
                    source_kind="subnet", would="flag", details={"usernames": 31, "window": 600})


@pytest.mark.parametrize(("event", "kind", "severity", "title"), [
    (START, "attack_mode", "critical", "Attack mode on: a high share of failed password attempts"),
    (END, "attack_mode_ended", "info", "Attack mode ended"),
    (FLAGGED, "distinct_usernames", "warning", "Source flagged: 203.0.113.9"),
    (WOULD, "distinct_usernames", "info", "Report-only: would have flagged 198.51.100.0/24"),
])
def test_alerts(event: AttackEvent, kind: str, severity: str, title: str) -> None:
    alert = attack_alert(event)
    assert (alert.kind, alert.severity, alert.title) == (kind, severity, title)
    assert alert.fields["reason"] == event.reason


def test_start_alert_gives_the_evidence() -> None:
    alert = attack_alert(START)
    assert alert.summary.startswith("60 of 80 password attempts failed in 600 s.")
    assert alert.fields["until"] == "2027-01-15T08:15:00Z"


@pytest.mark.parametrize("event", [START, END, FLAGGED, WOULD])
def test_audit_events(event: AttackEvent) -> None:
    audited = attack_audit_event(event)
    assert audited.event == f"malicious_attack_mode:{event.kind}"
    assert audited.level == "WARN"
    assert audited.details is not None and audited.details["reason"] == event.reason
    assert audited.client_ip == ("203.0.113.9" if event is FLAGGED else None)


class Sink:
    name = "capture"

    def __init__(self) -> None:
        self.digests: list[Digest] = []

    async def send(self, digest: Digest) -> None:
        self.digests.append(digest)

    async def close(self) -> None:
        return None


async def test_reporter_audits_and_alerts_through_the_digest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sekisho.audit")
    sink = Sink()
    alerter = Alerter(sinks=[sink], interval=60, settle=0)
    report = attack_reporter(Auditor(writer=AuditLineWriter()), alerter)
    for event in (FLAGGED, START, END):
        await report(event)
    await alerter.close()  # flushes what is pending
    assert [d.total for d in sink.digests] == [3]
    assert dict(sink.digests[0].counts) == {
        "distinct_usernames": 1, "attack_mode": 1, "attack_mode_ended": 1}
    assert sum("malicious_attack_mode:" in r.getMessage() for r in caplog.records) == 3
