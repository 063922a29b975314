"""The proof of work of attack mode: ALTCHA challenges issued and verified by the ``altcha``
package, each solution accepted once, on memory and Redis (issue 3 item 4; RL-05's "bot
challenge"). Solutions come from ``altcha.solve_challenge``, not from our solver."""

# ruff: noqa: F811  (fixtures imported from attack_helpers are named by the tests' arguments)
from __future__ import annotations

import base64
import json

import altcha
import pytest
from tests.ratelimit.attack_helpers import (  # noqa: F401  (fixtures)
    MakeMonitor,
    clock,
    make_monitor,
    solve,
)
from tests.ratelimit.helpers import SECRET, FakeClock

from sekisho.ratelimit.attack_pow import MAX_PAYLOAD, Challenges
from sekisho.ratelimit.attack_store import MemoryAttackStore

EASY = {"challenge": {"max_number": 1000, "ttl": 60}}


def reencode(payload: str, change: dict[str, object]) -> str:
    data = json.loads(base64.b64decode(payload))
    data["challenge"]["parameters"].update(change)
    return base64.b64encode(json.dumps(data).encode()).decode()


async def test_a_genuine_solution_is_accepted_once(make_monitor: MakeMonitor) -> None:
    challenges = make_monitor(**EASY).challenges
    payload = solve(challenges.issue())
    assert await challenges.verify(payload=payload) == "ok"
    assert await challenges.verify(payload=payload) == "replayed"


async def test_a_solution_spent_on_one_replica_is_refused_on_another(
    redis_url: str, clock: FakeClock, prefix: str
) -> None:
    """Security invariant 6: the spent mark is set atomically in the shared store (Redis)."""
    from sekisho.config.attack import ChallengeSettings
    from sekisho.ratelimit.attack_store_redis import RedisAttackStore

    settings = ChallengeSettings(max_number=1000)
    stores = [RedisAttackStore(redis_url, prefix=prefix) for _ in range(2)]
    try:
        first, second = (Challenges(settings, secret=SECRET, store=s, clock=clock)
                         for s in stores)
        payload = solve(first.issue())
        assert await first.verify(payload=payload) == "ok"
        assert await second.verify(payload=payload) == "replayed"
    finally:
        for store in stores:
            await store.close()


@pytest.mark.parametrize("payload", [None, ""])
async def test_missing(make_monitor: MakeMonitor, payload: str | None) -> None:
    assert await make_monitor(**EASY).challenges.verify(payload=payload) == "missing"


async def test_wrong_answers_and_forgeries_are_invalid(make_monitor: MakeMonitor) -> None:
    challenges = make_monitor(**EASY).challenges
    good = solve(challenges.issue())
    wrong_counter = solve(challenges.issue(), counter_delta=1)
    easier = reencode(solve(challenges.issue()), {"keyPrefix": "00"})
    later = reencode(solve(challenges.issue()), {"expiresAt": 4_000_000_000})
    forged = altcha.create_challenge("SHA-256", 1, counter=5, hmac_secret=b"not our key" * 3,
                                     expires_at=4_000_000_000)
    raw_key = altcha.create_challenge("SHA-256", 1, counter=5, hmac_secret=SECRET,
                                      expires_at=4_000_000_000)
    for payload in [
        wrong_counter, easier, later, solve(forged.to_dict()), solve(raw_key.to_dict()),
        "not base64!", base64.b64encode(b"[1, 2]").decode(), base64.b64encode(b"{}").decode(),
        base64.b64encode(b'{"challenge": {"parameters": 1}, "solution": 2}').decode(),
        good + "A" * MAX_PAYLOAD, "é" + good,
    ]:
        assert await challenges.verify(payload=payload) == "invalid", payload[:60]
    assert await challenges.verify(payload=good) == "ok"  # none of the above spent it


async def test_expired(make_monitor: MakeMonitor, clock: FakeClock) -> None:
    challenges = make_monitor(**EASY).challenges
    payload = solve(challenges.issue())
    clock.advance(60)
    assert await challenges.verify(payload=payload) == "expired"


async def test_challenges_are_signed_with_their_own_key(clock: FakeClock) -> None:
    """The HMAC key is derived from the session key with a label of its own: a challenge from
    a gateway with another session key is invalid here."""
    from sekisho.config.attack import ChallengeSettings

    settings = ChallengeSettings(max_number=1000)
    mine = Challenges(settings, secret=SECRET, store=MemoryAttackStore(), clock=clock)
    theirs = Challenges(settings, secret=b"z" * 32, store=MemoryAttackStore(), clock=clock)
    assert await mine.verify(payload=solve(theirs.issue())) == "invalid"
    issued = mine.issue()
    assert issued["parameters"]["algorithm"] == "SHA-256"
    assert issued["parameters"]["expiresAt"] == int(clock()) + settings.ttl
    assert len(issued["parameters"]["keyPrefix"]) == 32  # the answer's 16 first bytes


async def test_difficulty_bounds_the_counter(make_monitor: MakeMonitor) -> None:
    """``max_number`` bounds the work: the answer is never above it."""
    challenges = make_monitor(**EASY).challenges
    for _ in range(20):
        found = altcha.solve_challenge(altcha.Challenge.from_dict(challenges.issue()))
        assert found is not None and 0 <= found.counter <= 1000
