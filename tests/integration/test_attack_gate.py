"""Attack mode through the real login page on real uvicorn servers, over memory + SQLite and
Redis + PostgreSQL (issue 3 items 4 and 8; RL-02, RL-05, RL-08, AU-05).

The gateway's Argon2 hasher is wrapped in a counter: a refused proof of work must cost no
password hash (as RL-02 proves it for throttled attempts). Solutions come from the
``altcha`` package's own solver, an implementation independent of static/altcha-solver.js.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.attack_stack import (
    WRONG,
    Gateways,
    attack_gateways,
    challenge_of,
    client,
    login_page,
    post_login,
    trip,
)
from tests.integration.stack import PASSWORD, Stack
from tests.integration.test_login_flow import HTML, csrf_from
from tests.ratelimit.attack_helpers import solve

from sekisho.audit.log import audit_log
from sekisho.config import load_secrets
from sekisho.ratelimit.attack import create_attack_monitor
from sekisho.ratelimit.attack_pow import Challenges
from sekisho.ratelimit.attack_store import MemoryAttackStore
from sekisho.store import Database


@pytest.fixture(params=["memory+sqlite", "redis+postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "memory+sqlite":
        return {"db_url": f"sqlite:///{tmp_path / 'gw.sqlite3'}", "state_url": "memory://"}
    return {"db_url": request.getfixturevalue("pg_url"),
            "state_url": request.getfixturevalue("redis_url")}


@pytest.fixture
def gateways(backend: dict[str, str]) -> Iterator[Gateways]:
    with attack_gateways(**backend) as running:
        running.stacks[0].add_user("alice", PASSWORD)
        yield running


def test_no_challenge_outside_attack_mode(gateways: Gateways) -> None:
    stack = gateways.stacks[0]
    with client(stack) as c:
        page = login_page(c)
        assert challenge_of(page.text) is None and "altcha-solver.js" not in page.text
        assert post_login(c, page, "alice", PASSWORD).status_code == 303


def test_refused_proofs_of_work_cost_no_hash_and_say_nothing_of_the_account(
    gateways: Gateways, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 3 item 4 (with RL-02's rule): in attack mode an unknown browser's password is
    evaluated only with a valid, fresh, unused solution. Missing, wrong, expired and
    replayed ones get 429 and a fresh challenge, compute no password hash, answer alike for
    a real and an unknown name, and are audited without the password."""
    caplog.set_level(logging.INFO, logger="sekisho.audit")
    stack = gateways.stacks[0]
    trip(stack)
    with client(stack) as c:
        page = login_page(c)
        challenge = challenge_of(page.text)
        assert challenge is not None
        assert "altcha-solver.js" in page.text and "<noscript>" in page.text
        before = gateways.hashes
        refusals = {
            "wrong": post_login(c, page, "alice", PASSWORD, solve(challenge, counter_delta=1)),
            "missing": post_login(c, login_page(c), "alice", PASSWORD),
            "expired": post_login(c, login_page(c), "alice", PASSWORD, _expired(stack)),
            "ghost": post_login(c, login_page(c), "ghost", PASSWORD),
        }
        for why, response in refusals.items():
            assert response.status_code == 429, why
            assert "has to be checked" in response.text, why
            assert challenge_of(response.text) not in (None, challenge), why  # a fresh one
            assert "sekisho_session=" not in response.headers.get("set-cookie", ""), why
        assert gateways.hashes == before

        page = login_page(c)
        genuine = solve(challenge_of(page.text) or {})
        assert post_login(c, page, "alice", WRONG, genuine).status_code == 401
        assert gateways.hashes == before + 1
        replayed = post_login(c, login_page(c), "alice", PASSWORD, genuine)
        assert replayed.status_code == 429 and gateways.hashes == before + 1
        # Missing, wrong and replayed solutions and the failure spent this address's
        # attack-mode budget (5): the portal refuses the next attempt, and from then on the
        # address is refused before its form is read.
        throttled = post_login(c, login_page(c), "alice", PASSWORD)
        assert throttled.status_code == 429 and throttled.headers.get("retry-after")
        spent = c.post("/_sekisho/login", data={})
        assert spent.status_code == 429 and "came from your network" in spent.text
    with client(stack, "198.51.100.20") as c:
        page = login_page(c)
        done = post_login(c, page, "alice", PASSWORD, solve(challenge_of(page.text) or {}))
        assert done.status_code == 303
        assert c.get("/inside").status_code == 200
    reasons = [json.loads(r.getMessage())["details"]["reason"] for r in caplog.records
               if r.name == "sekisho.audit" and "pow_" in r.getMessage()]
    assert sorted(reasons) == sorted(["pow_missing", "pow_invalid", "pow_expired",
                                      "pow_missing", "pow_replayed"])
    assert not any(PASSWORD in r.getMessage() or WRONG in r.getMessage()
                   for r in caplog.records)


def test_the_recovery_form_has_the_same_gate(gateways: Gateways) -> None:
    """Issue 3 item 4: recovery (code + password, RL-07) is another password pathway (LF-07):
    in attack mode it carries the challenge too, and without a solution nothing is hashed."""
    stack = gateways.stacks[0]
    trip(stack)
    with client(stack) as c:
        page = c.get("/_sekisho/recover", headers=HTML)
        assert challenge_of(page.text) is not None and "altcha-solver.js" in page.text
        before = gateways.hashes
        held = c.post("/_sekisho/recover", data={
            "csrf_token": csrf_from(page.text), "username": "alice", "password": PASSWORD,
            "code": "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA"})
        assert held.status_code == 429 and "has to be checked" in held.text
        assert challenge_of(held.text) is not None
        assert gateways.hashes == before


def test_admins_see_attack_mode(gateways: Gateways) -> None:
    """Issue 3 item 4: attack mode is shown to admins, on the lockouts page and in the API."""
    stack = gateways.stacks[0]
    stack.add_user("root", PASSWORD, groups=["sekisho-admins"])
    with client(stack) as c:
        assert post_login(c, login_page(c), "root", PASSWORD).status_code == 303
        assert 'id="attack-mode"' in c.get("/_sekisho/admin/lockouts", headers=HTML).text
        assert c.get("/_sekisho/api/v1/attack").json()["active"] is False
        trip(stack)
        page = c.get("/_sekisho/admin/lockouts", headers=HTML).text
        assert "Attack mode is on." in page and "203.0.113.9" in page
        status = c.get("/_sekisho/api/v1/attack").json()
        assert status["active"] is True
        assert "203.0.113.9" in {f["source"] for f in status["flagged"]}


def test_known_device_bypasses_the_gate(gateways: Gateways) -> None:
    """A browser that signed in as alice before needs no proof of work for alice."""
    stack = gateways.stacks[0]
    with client(stack) as c:
        assert post_login(c, login_page(c), "alice", PASSWORD).status_code == 303
        trip(stack)
        before = gateways.hashes
        back = post_login(c, login_page(c), "alice", PASSWORD)
        assert back.status_code == 303 and gateways.hashes == before + 1
        held = post_login(c, login_page(c), "bob", PASSWORD)  # not a device of bob's
        assert held.status_code == 429


def test_attack_mode_is_audited(gateways: Gateways) -> None:
    """AU-02, AU-05: the flagged source and the start are chained audit events."""
    stack = gateways.stacks[0]
    trip(stack)

    async def read() -> list[str]:
        db = Database.from_url(stack.settings.database.url)
        try:
            return [e.event for e in await audit_log(db).list(event="malicious_attack_mode")]
        finally:
            await db.close()

    assert sorted(asyncio.run(read())) == [  # its address and its /24, and the mode
        "malicious_attack_mode:source_flagged", "malicious_attack_mode:source_flagged",
        "malicious_attack_mode:start"]
    status = asyncio.run(_status(gateways))
    assert status["active"] and status["flagged"][0]["source"] == "203.0.113.9"


def _expired(stack: Stack) -> str:
    """A genuine solution to a challenge this gateway signed an hour ago."""
    settings = stack.settings
    old = Challenges(settings.ratelimit.attack.challenge,
                     secret=load_secrets(settings).session_key, store=MemoryAttackStore(),
                     clock=lambda: time.time() - 3600)
    return solve(old.issue())


async def _status(gateways: Gateways) -> dict[str, object]:
    """The status the admin page shows: the server's own monitor in memory; on Redis a
    monitor of the test's own (the server's is bound to its event loop)."""
    settings = gateways.stacks[0].settings
    if settings.state.url.startswith("memory://"):
        return (await gateways.apps[0].services.attack.status()).to_dict()
    monitor = create_attack_monitor(settings.ratelimit.attack, url=settings.state.url,
                                    secret=load_secrets(settings).session_key)
    try:
        return (await monitor.status()).to_dict()
    finally:
        await monitor.close()


def test_report_only_gate_records_and_lets_through(
    backend: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 3 item 4: with challenge.report_only the page asks nothing of the browser and
    the password is evaluated; the refusal it would have made is audited."""
    caplog.set_level(logging.INFO, logger="sekisho.audit")
    with attack_gateways(**backend, challenge={"max_number": 1000, "report_only": True}) as gw:
        stack = gw.stacks[0]
        stack.add_user("alice", PASSWORD)
        trip(stack)
        with client(stack) as c:
            page = login_page(c)
            assert challenge_of(page.text) is None
            assert post_login(c, page, "alice", PASSWORD).status_code == 303
    lines = [json.loads(r.getMessage()) for r in caplog.records
             if r.name == "sekisho.audit" and "pow_missing" in r.getMessage()]
    assert [line["details"] for line in lines] == [{"reason": "pow_missing",
                                                    "report_only": True}]
