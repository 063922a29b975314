"""Two gateway replicas (two real uvicorn servers, each with its own app and caches) sharing
one Redis and one PostgreSQL: attack mode detected on one is enforced on the other, and a
proof-of-work solution spent on one is refused on the other (issue 3 item 8; RL-08,
security invariant 6)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from tests.integration.attack_stack import (
    Gateways,
    attack_gateways,
    challenge_of,
    client,
    login_page,
    post_login,
    trip,
)
from tests.integration.stack import PASSWORD, Stack
from tests.ratelimit.attack_helpers import solve


@pytest.fixture
def replicas(pg_url: str, redis_url: str, request: pytest.FixtureRequest) -> Iterator[Gateways]:
    attack = getattr(request, "param", {})
    with attack_gateways(db_url=pg_url, state_url=redis_url, replicas=2, **attack) as running:
        running.stacks[0].add_user("alice", PASSWORD)
        yield running


def page_with_challenge(stack: Stack, c: httpx.Client) -> httpx.Response:
    """The login page, once this replica has seen attack mode (its copy of the shared state
    is at most ``cache_seconds`` old, one second by default)."""
    deadline = time.monotonic() + 15
    while challenge_of((page := login_page(c)).text) is None:
        assert time.monotonic() < deadline, "attack mode never reached this replica"
        time.sleep(0.1)
    return page


def test_attack_mode_detected_on_one_replica_is_enforced_on_the_other(
    replicas: Gateways,
) -> None:
    first, second = replicas.stacks
    with client(second) as c:
        assert challenge_of(login_page(c).text) is None  # the second replica caches "off"
    trip(first)
    with client(second) as c:
        page_with_challenge(second, c)
        before = replicas.hashes
        held = post_login(c, login_page(c), "alice", PASSWORD)
        assert held.status_code == 429 and replicas.hashes == before
        page = login_page(c)
        payload = solve(challenge_of(page.text) or {})
        assert post_login(c, page, "alice", PASSWORD, payload).status_code == 303
    with client(first, "198.51.100.20") as c:
        replayed = post_login(c, login_page(c), "alice", PASSWORD, payload)
        assert replayed.status_code == 429
        assert replicas.hashes == before + 1


@pytest.mark.parametrize("replicas", [{"distinct_usernames": {
    "max_per_ip": 2, "max_per_subnet": 2, "starts_attack_mode": False}}], indirect=True)
def test_a_source_flagged_on_one_replica_is_held_on_the_other(replicas: Gateways) -> None:
    """Without the global mode, only the flagged address (and its /24) meets the gate, on
    every replica."""
    first, second = replicas.stacks
    trip(first, "203.0.113.9")
    with client(second, "203.0.113.9") as attacker:
        page_with_challenge(second, attacker)
        assert post_login(attacker, login_page(attacker), "x", "y").status_code == 429
    with client(second, "192.0.2.7") as user:
        page = login_page(user)
        assert challenge_of(page.text) is None
        assert post_login(user, page, "alice", PASSWORD).status_code == 303
