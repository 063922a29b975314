"""BreachChecker: each source, min_count, fail open and closed, events, and the policy."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.auth.breach.corpora import build_corpus
from tests.auth.breach.fake_range import FakeRange, running_fake_range

from sekisho.auth.breach import BreachCorpus, CorpusError, decode_count, encode_count
from sekisho.auth.breach.checker import EVENT_INTERVAL, BreachChecker, build_policy
from sekisho.auth.policy import PasswordBreached
from sekisho.config import validate_settings
from sekisho.config.breach import BreachSettings
from sekisho.errors import PasswordRejected

OFTEN = "tangerine orbit quietly 77"  # listed 1,000 times in these tests
RARELY = "marmalade canyon softly 12"  # listed 3 times
ONLINE_ONLY = "lantern meadow gravel 5150"
CLEAN = "purple giraffe lamp umbrella"
STORED = decode_count(encode_count(1000))  # the corpus keeps a lower bound above 15


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    async def __call__(self, source: str, why: str, missed: int) -> None:
        self.seen.append((source, why, missed))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return build_corpus(tmp_path / "pwned.sekisho", {OFTEN: 1000, RARELY: 3})


@pytest.fixture
def fake() -> Iterator[FakeRange]:
    with running_fake_range() as server:
        server.add(OFTEN, 1000)
        server.add(ONLINE_ONLY, 42)
        yield server


def checker(**values: Any) -> tuple[BreachChecker, Events, Clock]:
    events, clock = Events(), Clock()
    settings = BreachSettings(**values)
    return BreachChecker.from_settings(settings, on_unavailable=events, clock=clock), events, clock


async def test_offline_source_and_min_count(corpus: Path) -> None:
    """PW-08a: a listed password is breached; one seen fewer than min_count times is not."""
    check, _, _ = checker(mode="offline", corpus_path=str(corpus))
    await check.start()
    try:
        verdict = await check.check(OFTEN)
        assert (verdict.breached, verdict.count, verdict.source) == (True, STORED, "offline")
        assert (await check.check(RARELY)).breached
        assert not (await check.check(CLEAN)).breached
    finally:
        await check.close()
    strict, _, _ = checker(mode="offline", corpus_path=str(corpus), min_count=10)
    await strict.start()
    try:
        rare = await strict.check(RARELY)
        assert not rare.breached and rare.count == 3 and not rare.unavailable
        assert (await strict.check(OFTEN)).breached
    finally:
        await strict.close()


async def test_online_source(fake: FakeRange) -> None:
    check, events, _ = checker(mode="online", api_url=fake.base)
    await check.start()
    try:
        verdict = await check.check(ONLINE_ONLY)
        assert (verdict.breached, verdict.count, verdict.source) == (True, 42, "online")
        assert not (await check.check(CLEAN)).breached
    finally:
        await check.close()
    assert events.seen == []


async def test_both_asks_online_only_for_what_the_corpus_does_not_list(
    corpus: Path, fake: FakeRange
) -> None:
    check, _, _ = checker(mode="both", corpus_path=str(corpus), api_url=fake.base)
    await check.start()
    try:
        assert (await check.check(OFTEN)).source == "offline"
        assert fake.requests == []
        assert (await check.check(ONLINE_ONLY)).source == "online"
        assert len(fake.requests) == 1
    finally:
        await check.close()


async def test_off_has_no_source(corpus: Path) -> None:
    check, _, _ = checker(mode="off", corpus_path=str(corpus))
    await check.start()
    verdict = await check.check(OFTEN)
    assert not verdict.breached and not verdict.unavailable
    assert check.sources == ()


async def test_auto_without_a_file_needs_no_download_and_picks_one_up(tmp_path: Path) -> None:
    path = tmp_path / "pwned.sekisho"
    check, events, clock = checker(mode="auto", corpus_path=str(path), reload_interval=30)
    await check.start()  # no file: not an error
    try:
        verdict = await check.check(OFTEN)
        assert not verdict.breached and not verdict.unavailable
        build_corpus(path, {OFTEN: 5})
        assert not (await check.check(OFTEN)).breached  # looked for every 30 s, not per check
        clock.now += 30
        assert (await check.check(OFTEN)).breached
    finally:
        await check.close()
    assert events.seen == []


async def test_offline_mode_refuses_to_start_without_a_usable_corpus(tmp_path: Path) -> None:
    """Invariant 7: missing, empty, truncated and corrupted corpora are refused clearly."""
    path = tmp_path / "pwned.sekisho"
    check, _, _ = checker(mode="offline", corpus_path=str(path))
    with pytest.raises(CorpusError, match="cannot open corpus"):
        await check.start()
    path.write_bytes(b"")
    with pytest.raises(CorpusError, match=r"pwned\.sekisho"):
        await check.start()
    build_corpus(path, {})
    with pytest.raises(CorpusError, match="holds no hashes"):
        await check.start()
    build_corpus(path, {OFTEN: 5})
    path.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(CorpusError, match="truncated"):
        await check.start()
    build_corpus(path, {OFTEN: 5})
    with BreachCorpus(path) as corpus:
        index_offset = corpus.info.layout.index_offset
    data = bytearray(path.read_bytes())
    data[index_offset + 16] ^= 0xFF  # inside the index section
    path.write_bytes(bytes(data))
    with pytest.raises(CorpusError, match="checksum"):
        await check.start()


async def test_auto_with_a_corrupted_file_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "pwned.sekisho"
    path.write_bytes(b"not a corpus at all" * 100)
    check, _, _ = checker(mode="auto", corpus_path=str(path))
    with pytest.raises(CorpusError):
        await check.start()


@pytest.mark.parametrize(("fail", "groups", "closed"), [
    ("open", ["staff"], False),
    ("open", ["staff", "admins"], True),  # PW-11 default: admins fail closed
    ("closed", ["staff"], True),
])
async def test_online_outage_fails_open_or_closed(
    fake: FakeRange, fail: str, groups: list[str], closed: bool
) -> None:
    """PW-11: timeout -> unavailable verdict, the event, and the configured fail mode."""
    fake.delay = 2.0
    check, events, _ = checker(mode="online", api_url=fake.base, timeout=0.1, fail=fail)
    await check.start()
    try:
        verdict = await check.check(OFTEN, groups=groups)
    finally:
        await check.close()
    assert verdict.unavailable and not verdict.breached
    assert verdict.fail_closed is closed
    assert [(s, m) for s, _, m in events.seen] == [("online", 0)]
    assert "did not answer" in events.seen[0][1]


async def test_outage_events_are_throttled_per_source(fake: FakeRange) -> None:
    fake.status = 503
    check, events, clock = checker(mode="online", api_url=fake.base)
    for _ in range(5):
        await check.check(CLEAN + "x")
    clock.now += EVENT_INTERVAL
    await check.check(CLEAN + "y")
    assert [(s, m) for s, _, m in events.seen] == [("online", 0), ("online", 4)]


async def test_both_with_online_down_still_answers_from_the_corpus(
    corpus: Path, fake: FakeRange
) -> None:
    fake.status = 503
    check, events, _ = checker(mode="both", corpus_path=str(corpus), api_url=fake.base,
                               fail="closed")
    await check.start()
    try:
        assert (await check.check(OFTEN)).breached
        verdict = await check.check(CLEAN)
    finally:
        await check.close()
    # The corpus answered, so the password is judged; the outage is still reported.
    assert not verdict.unavailable and not verdict.breached
    assert [s for s, _, _ in events.seen] == ["online"]


async def test_policy_reasons_from_the_checker(corpus: Path, fake: FakeRange) -> None:
    """PW-08a, PW-09, PW-11 through the policy used when a password is set."""
    settings = validate_settings({"breach": {"mode": "both", "corpus_path": str(corpus),
                                             "api_url": fake.base, "timeout": 0.2}})
    check = BreachChecker.from_settings(settings.breach)
    policy = build_policy(settings, check)
    await check.start()
    try:
        with pytest.raises(PasswordBreached) as info:
            await policy.check(OFTEN, username="alice")
        assert info.value.reason == "breached"
        assert (info.value.verdict.source, info.value.verdict.count) == ("offline", STORED)
        with pytest.raises(PasswordRejected) as common:
            await policy.check("qwertyuiop12345", username="alice")
        assert common.value.reason == "common"
    finally:
        await check.close()
    online = validate_settings({"breach": {"mode": "online", "api_url": fake.base}})
    check = BreachChecker.from_settings(online.breach)
    policy = build_policy(online, check)
    fake.status = 503
    await check.start()
    try:
        await policy.check("purple giraffe lamp umbrella 2", username="alice", groups=["staff"])
        with pytest.raises(PasswordRejected) as closed:
            await policy.check("purple giraffe lamp umbrella 3", username="root",
                               groups=["admins"])
        assert closed.value.reason == "breach_unavailable"
    finally:
        await check.close()


async def test_a_bad_offline_file_at_lookup_is_reported_not_raised(tmp_path: Path) -> None:
    """The CLI path (no start): an unusable corpus is an unavailable source, not a crash."""
    path = tmp_path / "pwned.sekisho"
    path.write_bytes(b"garbage")
    check, events, _ = checker(mode="offline", corpus_path=str(path), fail="closed")
    verdict = await check.check(OFTEN)
    assert verdict.unavailable and verdict.fail_closed
    assert events.seen[0][0] == "offline"
    os.unlink(path)
