"""User notifications end to end (AU-06): a real gateway on uvicorn, over memory + SQLite and
Redis + PostgreSQL, mailing a real aiosmtpd server. A password change on the portal, an
authenticator bound, recovery codes made and used for account recovery, an admin unlock from
the API and from the CLI: each audited event reaches both of the user's addresses exactly
once, with the repudiation contact, and no password or code ever appears in a mail."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from tests.audit.notify_helpers import CONTACT, Mailbox, smtp_server
from tests.integration.breach_helpers import NEW_PASSWORD, change_password
from tests.integration.mfa_portal import (
    BACKENDS,
    HTML,
    Clock,
    P,
    client,
    create_codes,
    enrol_totp,
    mfa_stack,
    password_step,
)
from tests.integration.stack import PASSWORD, Stack
from tests.integration.test_mfa_recover import SCHEDULE, lock_password, recover

from sekisho.audit.log import audit_log
from sekisho.store.db import Database
from sekisho.store.lockouts import LockoutRepository
from sekisho.store.users import UserRepository

pytestmark = pytest.mark.integration
SECOND = "alice.private@example.org"
ADDRESSES = sorted(["alice@example.com", SECOND])
SENDER = "sekisho@gw.example.com"
API_TOKEN = "notify-test-admin-token-0123456789"
REFERENCE = re.compile(r"^  Reference: audit #(\d+)\s*$", re.M)
T = TypeVar("T")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def mail_stack(request: pytest.FixtureRequest, tmp_path: Path,
               clock: Clock) -> Iterator[tuple[Stack, Mailbox]]:
    """The MFA stack (alice, sam) with notices going to an aiosmtpd server; alice has a
    second address, sam has none."""
    with smtp_server() as (port, box), mfa_stack(
        request, tmp_path, clock, ratelimit=SCHEDULE,
        admin={"api_token_sha256": [hashlib.sha256(API_TOKEN.encode()).hexdigest()]},
        notifications={"contact": CONTACT, "smtp": {
            "host": "127.0.0.1", "port": port, "security": "none", "from": SENDER}},
    ) as stack:
        run(stack, _second_address)
        yield stack, box


def run(stack: Stack, work: Callable[[Database], Awaitable[T]]) -> T:
    async def go() -> T:
        db = Database.from_url(stack.settings.database.url)
        try:
            return await work(db)
        finally:
            await db.close()
    return asyncio.run(go())


async def _second_address(db: Database) -> None:
    users = UserRepository(db)
    alice = await users.get_by_username("alice")
    assert alice is not None
    await users.set_notify_email(alice.id, SECOND)


def seqs(stack: Stack, *events: str) -> dict[int, str]:
    """The audit seq of every event with one of these names: what the mails must cite."""
    async def read(db: Database) -> dict[int, str]:
        log = audit_log(db)
        return {r.seq: r.event for name in events for r in await log.list(event=name)}
    return run(stack, read)


def cited(box: Mailbox) -> list[int]:
    return [int(n) for i in range(len(box.mails)) for n in REFERENCE.findall(box.body(i))]


def wait_for(box: Mailbox, expected: dict[int, str]) -> None:
    """Until every expected event is cited in a mail (a hang guard, not a timing check)."""
    deadline = time.monotonic() + 30
    while not set(expected) <= set(cited(box)):
        assert time.monotonic() < deadline, (
            f"no notice for {expected}: {len(box.mails)} mail(s) citing {cited(box)}")
        time.sleep(0.05)


def check_mails(box: Mailbox, *forbidden: str) -> None:
    """Every mail went to both addresses, says whom to contact, cites each event once, and
    carries none of the secrets."""
    for i, (sender, rcpt, msg) in enumerate(box.mails):
        assert sender == SENDER and sorted(rcpt) == ADDRESSES
        body = box.body(i)
        assert CONTACT in body and "If this wasn't you" in body and "お心当たりがない" in body
        raw = msg.as_string()
        assert not [secret for secret in forbidden if secret in raw]
    assert len(cited(box)) == len(set(cited(box)))


def test_password_change_mails_both_addresses(mail_stack: tuple[Stack, Mailbox]) -> None:
    """PW-14, AU-06: a change on {prefix}/password gives one notice to both addresses, from
    the client's address; the Security page lists both addresses, read-only."""
    stack, box = mail_stack
    with client(stack) as c:
        assert password_step(c, "alice").status_code == 303
        page = c.get(f"{P}/security", headers=HTML)
        assert re.findall(r"<li data-notify-address>([^<]+)</li>", page.text) == [
            "alice@example.com", SECOND]
        done = change_password(c, current=PASSWORD, new=NEW_PASSWORD)
        assert done.status_code == 303, done.text
    expected = seqs(stack, "authn_password_change")
    assert len(expected) == 1
    wait_for(box, expected)
    check_mails(box, PASSWORD, NEW_PASSWORD)
    [(_, _, msg)] = box.mails
    assert "Your password was changed" in str(msg["Subject"])
    assert "From: 127.0.0.1" in box.body()


def test_account_recovery_mails_every_step(mail_stack: tuple[Stack, Mailbox],
                                           clock: Clock) -> None:
    """TO-03, RC-03, RC-05, RL-07: binding an authenticator, making recovery codes, then
    recovering a locked account with a code: each event is cited once in a notice to both
    addresses; no code or password is ever in a mail."""
    stack, box = mail_stack
    with client(stack) as c:
        password_step(c, "alice")
        secret, _ = enrol_totp(c, clock)
        codes = create_codes(c)
    clock.advance(30)
    lock_password(stack, clock)
    with client(stack) as c:
        done = recover(c, "alice", PASSWORD, codes[0])
        assert done.status_code == 303 and "recovered=1" in done.headers["location"]
    expected = seqs(stack, "authn_factor_bound", "authn_recovery_codes_regenerated",
                    "authn_recovery_code_used", "authz_change")
    assert sorted(expected.values()) == [
        "authn_factor_bound:totp", "authn_recovery_code_used",
        "authn_recovery_codes_regenerated", "authz_change:selfunlock"]
    wait_for(box, expected)
    check_mails(box, PASSWORD, secret, *codes, *(c.replace("-", "") for c in codes))
    text = "\n".join(box.body(i) for i in range(len(box.mails)))
    assert "recovery code was used to sign in" in text
    assert "lifted by a sign-in with your password and a recovery code" in text


def test_admin_unlock_from_the_api_and_the_cli_mails(
    mail_stack: tuple[Stack, Mailbox], clock: Clock, tmp_path: Path,
) -> None:
    """AD-02, AU-06: an unlock by API token and one by `sekisho lockouts unlock` each send
    the user a notice; the admin's reason stays out of it."""
    stack, box = mail_stack
    lock_password(stack, clock)
    [record] = _active(stack)
    with client(stack) as api:
        done = api.post(f"{P}/api/v1/lockouts/{record}/unlock",
                        json={"reason": "caller verified, ticket INC-77"},
                        headers={"authorization": f"Bearer {API_TOKEN}"})
        assert done.status_code == 200, done.text
    first = seqs(stack, "authz_admin")
    wait_for(box, first)

    lock_password(stack, clock)
    [record] = _active(stack)
    unlocked = _cli(stack, tmp_path, "lockouts", "unlock", str(record), "--reason",
                    "caller verified, ticket INC-78")
    assert unlocked.returncode == 0, unlocked.stderr
    both = seqs(stack, "authz_admin")
    assert len(both) == 2
    wait_for(box, both)
    check_mails(box, PASSWORD, "INC-77", "INC-78")
    assert all("An administrator unlocked your account" in str(m["Subject"])
               for _, _, m in box.mails)


def _active(stack: Stack) -> list[int]:
    async def read(db: Database) -> list[int]:
        return [r.id for r in await LockoutRepository(db).list(state="active")
                if r.id is not None]
    return run(stack, read)


def _cli(stack: Stack, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    s = stack.settings
    assert s.secrets.session_key and s.secrets.data_key and s.notifications.smtp
    smtp = s.notifications.smtp
    config = tmp_path / "cli.toml"
    config.write_text(
        f"[database]\nurl = '{s.database.url}'\n[state]\nurl = '{s.state.url}'\n"
        f"[secrets]\nsession_key = '{s.secrets.session_key.get_secret_value()}'\n"
        f"data_key = '{s.secrets.data_key.get_secret_value()}'\n"
        f"[ratelimit]\nfree_failures = {SCHEDULE['free_failures']}\n"
        f"first_delay = {SCHEDULE['first_delay']}\n"
        f"disable_after = {SCHEDULE['disable_after']}\n"
        f"[notifications]\ncontact = '{CONTACT}'\n[notifications.smtp]\n"
        f"host = '127.0.0.1'\nport = {smtp.port}\nsecurity = 'none'\nfrom = '{SENDER}'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}
    return subprocess.run([sys.executable, "-m", "sekisho", "-c", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
