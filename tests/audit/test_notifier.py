"""The user notifier against a real aiosmtpd server and a real user store (SQLite and
PostgreSQL): each audited event kind gives one message to every notification address with
the repudiation instructions and no secret (AU-06); no address, unknown users, a server that
is down, refuses for a while or for good; the bounded queue; close. Time is a manual clock:
retry waits are read off the worker's sleep, never measured."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from tests.audit.notify_helpers import CONTACT, Mailbox, free_port, smtp_server
from tests.audit.test_alerts_digest import ManualClock, until

from sekisho.audit.events import ADMIN_EVENT, AuditEvent
from sekisho.audit.log import Auditor
from sekisho.audit.notifier import UserNotifier
from sekisho.audit.notify_mail import SmtpTransport
from sekisho.store.db import Database
from sekisho.store.users import UserRepository

CANARY = "CANARY-hunter2-9f3b"
PORTAL = "https://gw.example.com/_sekisho"
SENDER = "sekisho@gw.example.com"
ADDRESSES = ["alice@example.com", "alice.private@example.org"]
UA = f"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0 {CANARY}\r\nBcc: evil@example.net"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def users(database: Database) -> UserRepository:
    return UserRepository(database)


@pytest.fixture
async def alice(users: UserRepository) -> int:
    user = await users.add(username="alice", email=ADDRESSES[0], notify_email=ADDRESSES[1])
    return user.id


def make_notifier(port: int, users: UserRepository, clock: ManualClock | None = None,
                  **knobs: Any) -> UserNotifier:
    knobs.setdefault("settle", 0.0)
    return UserNotifier(
        transport=SmtpTransport(host="127.0.0.1", port=port, security="none", timeout=5),
        users=users, sender=SENDER, contact=CONTACT, portal_url=PORTAL,
        clock=clock or ManualClock(), **knobs)


@pytest.fixture
async def wired(smtp: tuple[int, Mailbox], users: UserRepository,
                database: Database) -> AsyncIterator[tuple[Auditor, UserNotifier, Mailbox]]:
    notifier = make_notifier(smtp[0], users)
    auditor = Auditor.for_database(database)
    auditor.subscribe(notifier.on_audit)
    await notifier.start()
    try:
        yield auditor, notifier, smtp[1]
    finally:
        await notifier.close()


# kind -> (the audit event, as the code that files it builds it; a phrase of the notice)
EVENTS: dict[str, tuple[Callable[[int], AuditEvent], str]] = {
    "authenticator_bound": (lambda uid: AuditEvent(
        event="authn_factor_bound:totp", account=str(uid), factor="totp",
        details={"replaced": False}), "authenticator app (TOTP) was set up"),
    "passkey_bound": (lambda uid: AuditEvent(
        event="authn_factor_bound:passkey", account=str(uid), factor="passkey",
        details={"passkey_id": 4, "aaguid": "00000000-0000-0000-0000-000000000000"}),
        "A new passkey was registered"),
    "authenticator_removed": (lambda uid: AuditEvent(
        event="authn_factor_removed:totp", account=str(uid), factor="totp"),
        "authenticator app (TOTP) was removed"),
    "passkey_removed": (lambda uid: AuditEvent(
        event="authn_factor_removed:passkey", account=str(uid), factor="passkey",
        details={"passkey_id": 4}), "The passkey was removed"),
    "password_changed": (lambda uid: AuditEvent(
        event="authn_password_change", account=str(uid), factor="password",
        client_ip="192.0.2.10", user_agent=UA,
        details={"was_restricted": False, "other_sessions_ended": 2}),
        "password of your account was changed. 2 other session(s)"),
    "password_reset": (lambda uid: AuditEvent(
        event="authn_password_reset", account=str(uid), factor="password"),
        "password of your account was reset"),
    "recovery_codes_regenerated": (lambda uid: AuditEvent(
        event="authn_recovery_codes_regenerated", account=str(uid), factor="recovery",
        details={"count": 10}), "new set of recovery codes"),
    "recovery_code_used": (lambda uid: AuditEvent(
        event="authn_recovery_code_used", account=str(uid), factor="recovery",
        details={"remaining": 9}), "recovery code was used to sign in to your account (account "
                                    "recovery). 9 unused"),
    "self_unlock": (lambda uid: AuditEvent(
        event="authz_change:selfunlock", account=str(uid), factor="recovery",
        client_ip="2001:db8::5", details={"factors": ["password"]}),
        "lifted by a sign-in with your password and a recovery code"),
    "admin_unlock": (lambda uid: AuditEvent(
        event=ADMIN_EVENT, account=str(uid), factor="password", actor="portal:root",
        target="lockout:7", action="lockout.unlock", reason=f"ticket {CANARY}",
        details={"lockout_id": 7, "username": "alice"}),
        "An administrator lifted the lock on your password"),
    "totp_code_reused": (lambda uid: AuditEvent(
        event="authn_token_reuse:totp", account=str(uid), factor="totp"),
        "entered a second time and refused"),
}


@pytest.mark.parametrize("kind", list(EVENTS))
async def test_au06_each_event_kind_mails_every_address_once(
    kind: str, wired: tuple[Auditor, UserNotifier, Mailbox], alice: int,
) -> None:
    """AU-06: one message, to both addresses, saying what happened, when (UTC and JST),
    the audit reference, the "if this wasn't you" steps and the contact; no secret, none
    of the client's raw text, and no free text from the event (the admin's reason)."""
    auditor, notifier, box = wired
    build, phrase = EVENTS[kind]
    stored = await auditor.record(build(alice))
    assert stored is not None
    await until(lambda: notifier.stats().pending == 0 and box.mails, "the notice")
    [(sender, rcpt, msg)] = box.mails
    assert sender == SENDER and sorted(rcpt) == sorted(ADDRESSES)
    assert msg["To"] == ", ".join(ADDRESSES) and msg["Auto-Submitted"] == "auto-generated"
    body = box.body()
    assert phrase in " ".join(body.split())
    assert f"Reference: audit #{stored.seq}" in body and f"参照番号: audit #{stored.seq}" in body
    assert " UTC (" in body and " JST)" in body
    assert "If this wasn't you" in body and "お心当たりがない場合" in body
    assert body.count(CONTACT) == 2 and body.count(f"{PORTAL}/security") == 2
    assert body.index("If this wasn't you") < body.index("（日本語）")  # English first
    raw = msg.as_string()
    assert CANARY not in raw and "evil@example.net" not in raw and "ticket" not in raw
    assert notifier.stats().messages_sent == 1


async def test_client_address_and_device_label_only(
    wired: tuple[Auditor, UserNotifier, Mailbox], alice: int,
) -> None:
    auditor, _, box = wired
    await auditor.record(EVENTS["password_changed"][0](alice))
    await until(lambda: box.mails, "the notice")
    assert "From: 192.0.2.10, Firefox / Linux" in box.body()
    assert "Your password was changed" in str(box.mails[0][2]["Subject"])
    assert "パスワードが変更されました" in str(box.mails[0][2]["Subject"])


async def test_one_message_per_user_per_burst(
    smtp: tuple[int, Mailbox], users: UserRepository, alice: int,
) -> None:
    """What one request files (a recovery code used, then the locks it lifted) is one
    message; another user's notice is a message of its own."""
    port, box = smtp
    bob = (await users.add(username="bob", email="bob@example.com")).id
    notifier = make_notifier(port, users)
    for event in (EVENTS["recovery_code_used"][0](alice), EVENTS["self_unlock"][0](alice),
                  EVENTS["password_changed"][0](bob)):
        notifier.on_audit(event, None)
    await notifier.start()
    await until(lambda: len(box.mails) == 2, "two messages")
    await notifier.close()
    by_rcpt = {tuple(sorted(rcpt)): msg for _, rcpt, msg in box.mails}
    both = by_rcpt[tuple(sorted(ADDRESSES))]
    text = both.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "recovery code was used" in text and "locks on your account were" in text
    assert "2 security changes" in str(both["Subject"])
    assert ("bob@example.com",) in by_rcpt
    assert notifier.stats().sent == 3 and notifier.stats().messages_sent == 2


async def test_no_address_sends_nothing_and_raises_nothing(
    wired: tuple[Auditor, UserNotifier, Mailbox], users: UserRepository,
    caplog: pytest.LogCaptureFixture,
) -> None:
    auditor, notifier, box = wired
    nobody = await users.add(username="nobody", email="")
    caplog.set_level(logging.INFO, "sekisho.notifications")
    await auditor.record(EVENTS["password_changed"][0](nobody.id))
    await until(lambda: notifier.stats().no_address == 1, "the notice to be skipped")
    assert box.mails == [] and box.attempts == 0
    assert f"user {nobody.id} has no notification address" in caplog.text


async def test_the_same_address_twice_is_one_recipient(
    wired: tuple[Auditor, UserNotifier, Mailbox], users: UserRepository,
) -> None:
    auditor, _, box = wired
    carol = await users.add(username="carol", email="carol@example.com",
                            notify_email="Carol@Example.com")
    await auditor.record(EVENTS["password_reset"][0](carol.id))
    await until(lambda: box.mails, "the notice")
    assert box.mails[0][1] == ["carol@example.com"]


async def test_an_address_that_could_inject_headers_is_skipped(
    wired: tuple[Auditor, UserNotifier, Mailbox], users: UserRepository,
    caplog: pytest.LogCaptureFixture,
) -> None:
    auditor, _, box = wired
    dave = await users.add(username="dave", email="dave@example.com\r\nBcc: evil@example.net",
                           notify_email="dave@example.org")
    await auditor.record(EVENTS["password_reset"][0](dave.id))
    await until(lambda: box.mails, "the notice")
    assert box.mails[0][1] == ["dave@example.org"]
    assert "evil" not in box.mails[0][2].as_string()
    assert f"user {dave.id} has an address that is not a plain mailbox" in caplog.text
    assert "dave@example" not in caplog.text


async def test_events_of_no_user_or_other_kinds_queue_nothing(
    wired: tuple[Auditor, UserNotifier, Mailbox], alice: int,
) -> None:
    auditor, notifier, box = wired
    await auditor.record(AuditEvent(event="authn_login_success", account=str(alice)))
    await auditor.record(AuditEvent(event="authn_login_fail", account="ab" * 32))
    await auditor.record(AuditEvent(  # an unlock of a name that is no account: an HMAC key
        event=ADMIN_EVENT, account="12" * 32, factor="password", actor="cli:ops",
        target="lockout:3", action="lockout.unlock", reason="x"))
    await auditor.record(AuditEvent(  # the self-service unlock closes records as self:...
        event=ADMIN_EVENT, account=str(alice), factor="password", actor="self:recovery",
        target="lockout:4", action="lockout.unlock", reason="x"))
    await auditor.record(AuditEvent(
        event=ADMIN_EVENT, account=None, actor="cli:ops", target="lockouts",
        action="lockout.export"))
    assert notifier.stats().queued == 0
    assert box.mails == []


async def test_unknown_user_id_is_counted_not_sent(
    wired: tuple[Auditor, UserNotifier, Mailbox],
) -> None:
    auditor, notifier, box = wired
    await auditor.record(EVENTS["password_reset"][0](999_999))
    await until(lambda: notifier.stats().unknown_user == 1, "the lookup")
    assert box.attempts == 0


async def test_smtp_down_is_retried_with_backoff_then_given_up(
    users: UserRepository, alice: int, caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that refuses connections: retried after 30, 60, 120 s (a manual clock),
    then given up with an error naming the user id — never an address."""
    clock = ManualClock()
    notifier = make_notifier(free_port(), users, clock, retries=3, retry_backoff=30.0)
    await notifier.start()
    notifier.on_audit(EVENTS["password_changed"][0](alice), None)
    for attempt, wait in enumerate((30.0, 60.0, 120.0), start=1):
        await until(lambda a=attempt: notifier.stats().failures == a, f"attempt {attempt}")
        await until(lambda: clock.sleeping, "the retry wait")
        assert [deadline - clock.t for deadline, _ in clock._sleepers] == [wait]
        clock.advance(wait)
    await until(lambda: notifier.stats().given_up == 1, "giving up")
    assert notifier.stats().failures == 4 and notifier.stats().pending == 0
    assert f"gave up on password_changed for user {alice} after 4 attempt(s)" in caplog.text
    assert "retry 1 of 3 in 30s" in caplog.text
    assert "example" not in caplog.text and CANARY not in caplog.text
    await notifier.close()


async def test_a_temporary_refusal_is_retried_and_delivered(
    smtp: tuple[int, Mailbox], users: UserRepository, alice: int,
) -> None:
    port, box = smtp
    box.refuse.extend(["451 4.3.0 try again later"] * 2)
    clock = ManualClock()
    notifier = make_notifier(port, users, clock, retry_backoff=10.0)
    await notifier.start()
    notifier.on_audit(EVENTS["recovery_codes_regenerated"][0](alice), None)
    for wait in (10.0, 20.0):
        await until(lambda: clock.sleeping, "the retry wait")
        clock.advance(wait)
    await until(lambda: notifier.stats().sent == 1, "the delivery")
    assert box.attempts == 3 and len(box.mails) == 1
    await notifier.close()


async def test_a_permanent_refusal_is_not_retried(
    smtp: tuple[int, Mailbox], users: UserRepository, alice: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, box = smtp
    box.refuse.append("554 5.7.1 rejected by policy")
    notifier = make_notifier(port, users)
    await notifier.start()
    notifier.on_audit(EVENTS["password_reset"][0](alice), None)
    await until(lambda: notifier.stats().given_up == 1, "giving up")
    assert box.attempts == 1 and "SMTP 554" in caplog.text
    await notifier.close()


async def test_the_queue_is_bounded(
    smtp: tuple[int, Mailbox], users: UserRepository, alice: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Beyond max_pending a new notice is dropped with a log line (user id, no address);
    what was queued is still sent."""
    port, box = smtp
    notifier = make_notifier(port, users, max_pending=3)
    user = await users.get(alice)
    assert user is not None
    accepted = [notifier.notify(user=user, event="password_reset") for _ in range(5)]
    assert accepted == [True, True, True, False, False]
    stats = notifier.stats()
    assert (stats.queued, stats.dropped, stats.pending) == (3, 2, 3)
    assert caplog.text.count(f"dropped a password_reset notice for user {alice}") == 2
    assert "example" not in caplog.text
    await notifier.start()
    await until(lambda: notifier.stats().pending == 0, "the queue to drain")
    await notifier.close()
    assert len(box.mails) == 1  # one burst of one user: one message listing three notices
    assert box.body().count("The password of your account was reset.") == 3
    assert "3 security changes" in str(box.mails[0][2]["Subject"])


async def test_close_sends_what_is_queued(
    smtp: tuple[int, Mailbox], users: UserRepository, alice: int,
) -> None:
    port, box = smtp
    notifier = make_notifier(port, users, settle=30.0)
    await notifier.start()
    notifier.on_audit(EVENTS["password_reset"][0](alice), None)
    await notifier.close()  # the settle wait is cut short
    assert len(box.mails) == 1 and notifier.stats().pending == 0
    user = await users.get(alice)
    assert user is not None
    assert not notifier.notify(user=user, event="password_reset")
    assert notifier.stats().dropped == 1


async def test_a_failing_subscriber_never_fails_the_audited_action(
    database: Database, caplog: pytest.LogCaptureFixture,
) -> None:
    auditor = Auditor.for_database(database)
    seen: list[str] = []

    def broken(event: AuditEvent, stored: object) -> None:
        raise RuntimeError(CANARY)

    auditor.subscribe(broken)
    auditor.subscribe(lambda event, stored: seen.append(event.event))
    stored = await auditor.record(AuditEvent(event="authn_password_change", account="1"))
    assert stored is not None and seen == ["authn_password_change"]
    assert "audit subscriber" in caplog.text and "RuntimeError" in caplog.text
    assert CANARY not in caplog.text
