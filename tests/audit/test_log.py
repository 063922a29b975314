"""Audit events, JSON log lines and the Auditor facade (AU-01, AU-03, AU-04, AD-06)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sekisho.audit import (
    AUDIT_LOGGER,
    AuditError,
    AuditEvent,
    Auditor,
    SecretFieldRefused,
    json_line,
    lockout_unlocked,
)
from sekisho.errors import StoreError
from sekisho.store import Database, LockoutRepository, Sighting
from sekisho.store.audit_log import AuditLog

INJECTION = 'bob\n{"event":"authn_login_success"}'
AU01_FIELDS = {"timestamp", "event", "level", "account", "factor", "client_ip", "user_agent",
               "request_id", "node"}


def failed_login(**overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "event": "authn_login_fail", "account": "9f" * 16, "factor": "password",
        "client_ip": "203.0.113.5", "user_agent": "Mozilla/5.0", "request_id": "req-1",
    }
    fields.update(overrides)
    return AuditEvent(**fields)  # type: ignore[arg-type]


def test_event_carries_the_au01_fields_with_a_utc_timestamp() -> None:
    """AU-01: every field present; the timestamp is UTC ISO-8601."""
    tokyo = timezone(timedelta(hours=9))
    event = failed_login(timestamp=datetime(2025, 11, 29, 18, 0, tzinfo=tokyo))
    data = event.to_dict()
    assert set(data) >= AU01_FIELDS
    assert data["timestamp"] == "2025-11-29T09:00:00.000000Z"
    assert datetime.fromisoformat(data["timestamp"]).utcoffset() == timedelta(0)
    assert data["node"] and data["level"] == "INFO"


def test_unknown_names_and_naive_times_are_refused() -> None:
    """AU-02: only vocabulary names (a typo cannot hide an event)."""
    with pytest.raises(AuditError):
        AuditEvent(event="authn_login_sucess")
    with pytest.raises(AuditError):
        AuditEvent(event="authn_login_success", timestamp=datetime(2025, 1, 1))
    assert AuditEvent(event="authn_login_lock:maxretries").level == "WARN"


@pytest.mark.parametrize("name", [
    "password", "Password", "new_password", "otp", "code", "recovery_code", "token",
    "csrf-token", "totp_secret", "secret", "session_id", "sessionId", "newPassword", "seed",
    "pepper", "api_key", "pin",
])
def test_secret_looking_field_names_are_refused(name: str) -> None:
    """AU-03: a secret-looking name in details, before or after is refused at construction."""
    with pytest.raises(SecretFieldRefused, match=f"details.{name}:"):
        failed_login(details={name: "x"})
    with pytest.raises(SecretFieldRefused):
        AuditEvent(event="authz_admin", actor="a", target="t", action="x",
                   before={"nested": {name: "x"}})
    with pytest.raises(SecretFieldRefused):
        AuditEvent(event="authz_admin", actor="a", target="t", action="x",
                   after={"list": [{name: "x"}]})


def test_metadata_about_secrets_is_allowed() -> None:
    """AU-03: names that describe a secret without holding it pass."""
    event = failed_login(details={"password_changed_at": "2025-01-01", "has_password": True,
                                  "status_code": 401, "factor_count": 2, "shipping": 1,
                                  "hotpath": 1, "barcode_reader": 1})
    assert event.to_dict()["details"]["has_password"] is True


def test_admin_events_need_actor_target_action() -> None:
    """AD-06: an authz_admin event without actor, target or action is refused."""
    with pytest.raises(AuditError):
        AuditEvent(event="authz_admin", actor="cli:root", target="lockout:1")
    event = AuditEvent(event="authz_admin", actor="cli:root", target="lockout:1",
                       action="lockout.unlock", reason="called the user",
                       before={"state": "active"}, after={"state": "unlocked"})
    data = event.to_dict()
    assert {k: data[k] for k in ("actor", "target", "action", "reason")} == {
        "actor": "cli:root", "target": "lockout:1", "action": "lockout.unlock",
        "reason": "called the user"}
    assert data["before"] == {"state": "active"} and data["after"] == {"state": "unlocked"}


async def test_injection_stays_on_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """AU-04: username `bob\\n{"event":"authn_login_success"}` produces one line with the
    text escaped; reading it back gives the original text."""
    event = failed_login(user_agent=INJECTION + "\r\u2028\u0085",
                         details={"attempted": INJECTION})
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        await Auditor().record(event)
    [record] = [r for r in caplog.records if r.name == AUDIT_LOGGER]
    line = record.getMessage()
    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert line.isascii()
    assert len(line.splitlines()) == 1
    data = json.loads(line)
    assert data["event"] == "authn_login_fail"
    assert data["details"]["attempted"] == INJECTION
    assert data["user_agent"].startswith(INJECTION)


async def test_auditor_chains_admin_events_and_logs_failures_only(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """AU-04, AD-06: admin actions are chained in SQL and logged with seq and hash; a failed
    login (attacker-driven volume) goes to the log only."""
    auditor = Auditor.for_database(database)
    admin = AuditEvent(event="authz_admin", actor="cli:root", target="user:7",
                       action="user.disable", reason="left the company",
                       before={"disabled": False}, after={"disabled": True})
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        stored = await auditor.record(admin)
        skipped = await auditor.record(failed_login())
    assert stored is not None and stored.seq == 1 and skipped is None
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == AUDIT_LOGGER]
    assert [line["event"] for line in lines] == ["authz_admin", "authn_login_fail"]
    assert lines[0]["seq"] == 1 and lines[0]["hash"] == stored.hash
    assert "seq" not in lines[1]
    assert stored.data() == {k: v for k, v in lines[0].items() if k not in ("seq", "hash")}
    assert (await auditor.verify()).ok


async def test_a_failed_append_still_writes_the_line(caplog: pytest.LogCaptureFixture) -> None:
    """AU-04: the log line goes out even when the SQL append fails; the error is raised."""

    class Broken(AuditLog):
        def __init__(self) -> None:
            pass

        async def append(self, **_: object) -> object:  # type: ignore[override]
            raise StoreError("audit store failed: OperationalError")

    auditor = Auditor(store=Broken())
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER), pytest.raises(StoreError):
        await auditor.record(AuditEvent(event="authn_login_success", account="7"))
    assert [json.loads(r.getMessage())["event"] for r in caplog.records
            if r.name == AUDIT_LOGGER] == ["authn_login_success"]


async def test_unlock_event_from_records(database: Database) -> None:
    """AD-02, AD-06: the unlock event names actor, target, action, reason, before and after."""
    repo = LockoutRepository(database)
    now = datetime.now(UTC)
    opened = await repo.open_or_update(
        account_key="a" * 32, factor="password",
        sighting=Sighting(50, now, now, {"203.0.113.5": 50}))
    assert opened is not None
    after = await repo.unlock(opened.record.id, actor="cli:admin", reason="user called")
    event = lockout_unlocked(opened.record, after, user_agent="sekisho-cli/0.1.0")
    data = json.loads(json_line(event))
    assert data["event"] == "authz_admin" and data["action"] == "lockout.unlock"
    assert data["actor"] == "cli:admin" and data["reason"] == "user called"
    assert data["target"] == f"lockout:{after.id}"
    assert data["before"]["state"] == "active" and data["after"]["state"] == "unlocked"
    assert data["account"] == "a" * 32
