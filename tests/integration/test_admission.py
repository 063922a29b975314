"""The admission gate (gateway/admission.py) on real uvicorn servers, over memory + SQLite and
Redis + PostgreSQL (issue 3 items 2, 3 and 7; RL-02, RL-05, RL-07).

A flood from an address whose budget is spent is refused from the request head: the form is
never read (a POST with no CSRF token at all gets the 429, not the 403 the portal would give)
and no password is hashed; browsers with a genuine device token pass, and still meet the
budgets in the portal when the token belongs to another account.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tests.integration.attack_stack import (
    WRONG,
    Gateways,
    attack_gateways,
    client,
    login_page,
    post_login,
)
from tests.integration.stack import PASSWORD

ADDRESS_BUDGET = {"ip": {"short": "3/10 minutes", "long": "100/day"}}
GATE_TEXT = "Too many sign-in attempts came from your network"


@pytest.fixture(params=["memory+sqlite", "redis+postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "memory+sqlite":
        return {"db_url": f"sqlite:///{tmp_path / 'gw.sqlite3'}", "state_url": "memory://"}
    return {"db_url": request.getfixturevalue("pg_url"),
            "state_url": request.getfixturevalue("redis_url")}


@pytest.fixture
def gateways(backend: dict[str, str]) -> Iterator[Gateways]:
    with attack_gateways(**backend, ratelimit=ADDRESS_BUDGET, enabled=False) as running:
        running.stacks[0].add_user("alice", PASSWORD)
        running.stacks[0].add_user("bob", PASSWORD)
        yield running


def spend_address(gateways: Gateways, address: str) -> httpx.Response:
    """Three failures use up the address budget; the fourth attempt is refused by the
    portal, which is how this process learns that the budget is spent."""
    with client(gateways.stacks[0], address) as c:
        for _ in range(3):
            assert post_login(c, login_page(c), "carol", WRONG).status_code == 401
        learned = post_login(c, login_page(c), "alice", PASSWORD)
    assert learned.status_code == 429 and 'name="csrf_token"' in learned.text
    return learned


def device_cookie(gateways: Gateways, username: str, address: str) -> str:
    with client(gateways.stacks[0], address) as c:
        assert post_login(c, login_page(c), username, PASSWORD).status_code == 303
        token = c.cookies.get("sekisho_session_device")
    assert token
    return token


def test_spent_address_is_refused_before_the_form_is_read(gateways: Gateways) -> None:
    """RL-02, RL-05: 429 + Retry-After from the request head: a POST without a form or CSRF
    token gets the refusal (the portal would answer 403), no hash is computed, no account is
    named, and another subnet is not affected."""
    spend_address(gateways, "192.0.2.7")
    hashes = gateways.hashes
    with client(gateways.stacks[0], "192.0.2.7") as c:
        bare = c.post("/_sekisho/login", content=b"", headers={"content-type": "text/plain"})
        right = post_login(c, login_page(c), "alice", PASSWORD)
    for response in (bare, right):
        assert response.status_code == 429
        assert 590 <= int(response.headers["retry-after"]) <= 601
        assert GATE_TEXT in response.text and "alice" not in response.text
        assert "set-cookie" not in response.headers
        assert response.headers["cache-control"] == "no-store"
    assert "About 10 min" not in right.text and "about 10 min" in right.text
    assert gateways.hashes == hashes
    with client(gateways.stacks[0], "198.51.100.1") as other:
        assert post_login(other, login_page(other), "alice", PASSWORD).status_code == 303
    assert gateways.stacks[0].upstream.requests == []


def test_recovery_post_is_gated_too(gateways: Gateways) -> None:
    spend_address(gateways, "192.0.2.8")
    with client(gateways.stacks[0], "192.0.2.8") as c:
        response = c.post("/_sekisho/recover", data={"username": "alice"})
    assert response.status_code == 429 and GATE_TEXT in response.text


def test_known_device_passes_the_gate(gateways: Gateways) -> None:
    """Issue 3 item 3, RL-07: the real user's browser gets in while its address is blocked;
    a forged token does not."""
    token = device_cookie(gateways, "alice", "192.0.2.9")
    spend_address(gateways, "192.0.2.9")
    with client(gateways.stacks[0], "192.0.2.9") as c:
        c.cookies.set("sekisho_session_device", token)
        assert post_login(c, login_page(c), "alice", PASSWORD).status_code == 303
    with client(gateways.stacks[0], "192.0.2.9") as c:
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        c.cookies.set("sekisho_session_device", forged)
        refused = post_login(c, login_page(c), "alice", PASSWORD)
    assert refused.status_code == 429 and GATE_TEXT in refused.text


def test_another_accounts_device_token_still_meets_the_budgets(gateways: Gateways) -> None:
    """A genuine token passes the gate, but for another account it is no token in the
    portal: the budget refuses there (the full login page), and nothing is hashed."""
    bobs = device_cookie(gateways, "bob", "192.0.2.10")
    spend_address(gateways, "192.0.2.10")
    hashes = gateways.hashes
    with client(gateways.stacks[0], "192.0.2.10") as c:
        c.cookies.set("sekisho_session_device", bobs)
        refused = post_login(c, login_page(c), "alice", PASSWORD)
    assert refused.status_code == 429
    assert GATE_TEXT not in refused.text and 'name="csrf_token"' in refused.text
    assert gateways.hashes == hashes


def test_refusals_are_summed_in_one_audit_line(
    gateways: Gateways, caplog: pytest.LogCaptureFixture
) -> None:
    """AU-01 without a line per flood request: the first gate refusal is written at once,
    the next ones are summed into the following line (and at shutdown), naming no account
    and carrying no form content."""
    caplog.set_level(logging.INFO, logger="sekisho.audit")
    spend_address(gateways, "192.0.2.11")
    with client(gateways.stacks[0], "192.0.2.11") as c:
        for _ in range(5):
            assert c.post("/_sekisho/login", data={"username": "alice", "password": PASSWORD},
                          ).status_code == 429
    lines = [json.loads(r.getMessage()) for r in caplog.records
             if "excess_rate_limit_exceeded:admission" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0]["details"] == {"refused": 1, "reasons": {"ip": 1}, "addresses": 1,
                                   "addresses_capped": False}
    assert PASSWORD not in caplog.text
    admission = gateways.apps[0].admission
    gateways.apps[0].services.clock = lambda: time.time() + 11  # the digest interval passed
    with client(gateways.stacks[0], "192.0.2.11") as c:
        assert c.post("/_sekisho/login", data={}).status_code == 429
    lines = [json.loads(r.getMessage()) for r in caplog.records
             if "excess_rate_limit_exceeded:admission" in r.getMessage()]
    assert [line["details"]["refused"] for line in lines] == [1, 5]
    assert admission.in_flight == 0


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[Gateways]:
    with attack_gateways(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}", state_url="memory://",
                         ratelimit={"unknown_in_flight": 1}, enabled=False) as running:
        running.stacks[0].add_user("alice", PASSWORD)
        yield running


def test_unknown_browsers_in_flight_are_capped(capped: Gateways) -> None:
    """Issue 3 item 7: while ``unknown_in_flight`` POSTs from unknown browsers are being
    handled, one more is answered 503 + Retry-After at once, without its body being read;
    a known device is never capped."""
    token = device_cookie(capped, "alice", "192.0.2.20")
    admission = capped.apps[0].admission
    url = urlsplit(capped.stacks[0].base)
    slow = socket.create_connection((url.hostname or "", url.port or 80))
    try:  # a POST whose body never finishes holds the one slot
        slow.sendall(b"POST /_sekisho/login HTTP/1.1\r\nhost: " + url.netloc.encode() + b"\r\n"
                     b"x-forwarded-for: 192.0.2.21\r\n"
                     b"content-type: application/x-www-form-urlencoded\r\n"
                     b"content-length: 100\r\n\r\nusername=al")
        deadline = time.monotonic() + 10
        while admission.in_flight < 1:
            assert time.monotonic() < deadline, "the slow POST never reached the gate"
            time.sleep(0.01)
        with client(capped.stacks[0], "192.0.2.22") as c:
            busy = c.post("/_sekisho/login", content=b"x" * 10)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        with client(capped.stacks[0], "192.0.2.22") as c:
            c.cookies.set("sekisho_session_device", token)
            assert post_login(c, login_page(c), "alice", PASSWORD).status_code == 303
    finally:
        slow.close()
    deadline = time.monotonic() + 10
    while admission.in_flight:
        assert time.monotonic() < deadline, "the slot was not given back"
        time.sleep(0.01)
    with client(capped.stacks[0], "192.0.2.23") as c:
        assert post_login(c, login_page(c), "alice", PASSWORD).status_code == 303


def test_refusals_are_answered_late(gateways: Gateways) -> None:
    """The gate holds each refusal for ``refusal_delay`` (0.5 s by default) before answering,
    on a timer: while one waits, the gate counts it, and the answer is the usual 429."""
    import threading

    spend_address(gateways, "192.0.2.30")
    admission = gateways.apps[0].admission
    answers: list[httpx.Response] = []

    def refused() -> None:
        with client(gateways.stacks[0], "192.0.2.30") as c:
            answers.append(c.post("/_sekisho/login", data={}))

    thread = threading.Thread(target=refused)
    thread.start()
    deadline = time.monotonic() + 10
    while admission.delayed < 1:  # held, not answered yet
        assert time.monotonic() < deadline and thread.is_alive(), "the refusal was not held"
        time.sleep(0.005)
    thread.join(10)
    assert [a.status_code for a in answers] == [429] and admission.delayed == 0

